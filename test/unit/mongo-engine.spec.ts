import { expect } from "chai";
import { DomainError } from "../../core/errors.js";
import { checkFeatureCompatibility, checkTopology, checkVersion, CLIENT_OPTIONS } from "../../services/stores/mongodb/mongo-engine.js";
import { databaseName, MAX_DATABASE_NAME_BYTES } from "../../services/stores/mongodb/database-name.js";

/** The start-up checks of the MongoDB engine; the real deployment is checked by `npm run test:mongo`. */
describe("MongoDB engine: start-up checks", () => {
  it("refuses MongoDB older than 6.0, saying why and what to do", () => {
    const problem = checkVersion("5.0.14");
    expect(problem).to.contain("MongoDB 5.0.14 is too old").and.contain("6.0 or newer").and.contain("pre- and post-images");
    expect(checkVersion("4.4.0")).to.contain("too old");
  });

  it("refuses a standalone server, with the exact steps to make it a single-node replica set", () => {
    const problem = checkTopology({});
    expect(problem).to.contain("standalone").and.contain("--replSet rs0").and.contain("rs.initiate()").and.contain("?replicaSet=rs0");
  });

  it("accepts replica sets and sharded clusters of 6.0 and newer", () => {
    for (const version of ["6.0.0", "7.0.2", "8.0.1", "10.1.0"]) expect(checkVersion(version), version).to.equal(undefined);
    expect(checkTopology({ setName: "rs0" })).to.equal(undefined);
    expect(checkTopology({ msg: "isdbgrid" })).to.equal(undefined);
  });

  it("refuses feature compatibility below 6.0 (pre- and post-images are refused there), with the command that raises it; unknown is not checked", () => {
    expect(checkFeatureCompatibility("5.0")).to.contain("featureCompatibilityVersion is 5.0").and.contain("setFeatureCompatibilityVersion");
    expect(checkFeatureCompatibility("6.0")).to.equal(undefined);
    expect(checkFeatureCompatibility("8.0")).to.equal(undefined);
    expect(checkFeatureCompatibility(undefined)).to.equal(undefined);
  });

  it("one database per environment, named prefix + name, within MongoDB's 63 bytes", () => {
    expect(databaseName("larder_", "prod")).to.equal("larder_prod");
    expect(() => databaseName("larder_", "x".repeat(MAX_DATABASE_NAME_BYTES)))
      .to.throw(DomainError, /longer than MongoDB's 63 bytes/)
      .that.includes({ code: "INVALID_ARGUMENT", reason: "ENVIRONMENT_NAME_TOO_LONG" });
  });

  it("one pooled client: named, retrying reads and writes, failing fast when no server is reachable", () => {
    expect(CLIENT_OPTIONS).to.deep.include({ appName: "larder", retryWrites: true, retryReads: true });
    expect(CLIENT_OPTIONS.serverSelectionTimeoutMS).to.be.at.most(10_000);
  });
});
