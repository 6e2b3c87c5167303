import { expect } from "chai";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { authenticate, generateKey, hashKey, loadKeysFile } from "../../services/access/api-keys.js";
import { LOCAL_PRINCIPAL } from "../../services/access/principal.js";
import { roleAllows } from "../../services/access/roles.js";
import { checkManages, dataEnvironment, mayManage } from "../../services/access/tenancy.js";
import { DomainError } from "../../core/errors.js";

describe("API keys and roles", () => {
  const dir = mkdtempSync(join(tmpdir(), "larder-keys-"));
  function keysFile(content: unknown): string {
    const path = join(dir, `keys-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(path, JSON.stringify(content));
    return path;
  }

  it("authenticates a presented key by its hash and binds it to an environment and role", () => {
    const prod = generateKey();
    const dev = generateKey();
    const keys = loadKeysFile(
      keysFile({
        keys: [
          { id: "prod-writer", sha256: hashKey(prod), environment: "prod", role: "write" },
          { id: "dev-reader", sha256: hashKey(dev), environment: "dev", role: "read" },
        ],
      }),
    );
    expect(authenticate(keys, prod)).to.deep.equal({ keyId: "prod-writer", environment: "prod", role: "write", manages: "own" });
    expect(authenticate(keys, dev)).to.deep.equal({ keyId: "dev-reader", environment: "dev", role: "read", manages: "own" });
    expect(authenticate(keys, generateKey())).to.equal(undefined);
    expect(authenticate(keys, "")).to.equal(undefined);
  });

  it("an operator key is bound to no environment and manages every one; every other key manages only its own", () => {
    const operator = generateKey();
    const admin = generateKey();
    const keys = loadKeysFile(
      keysFile({
        keys: [
          { id: "ops", sha256: hashKey(operator), role: "operator" },
          { id: "prod-admin", sha256: hashKey(admin), environment: "prod", role: "admin" },
        ],
      }),
    );
    const ops = authenticate(keys, operator)!;
    expect(ops).to.deep.equal({ keyId: "ops", environment: undefined, role: "operator", manages: "every" });
    const prodAdmin = authenticate(keys, admin)!;
    expect([mayManage(ops, "prod"), mayManage(ops, "anything")]).to.deep.equal([true, true]);
    expect([mayManage(prodAdmin, "prod"), mayManage(prodAdmin, "stage")]).to.deep.equal([true, false]);
    expect(() => checkManages(prodAdmin, "stage"))
      .to.throw(DomainError, /bound to the environment 'prod'/)
      .that.includes({ code: "PERMISSION_DENIED", reason: "ENVIRONMENT_NOT_ALLOWED" });
    expect(mayManage(LOCAL_PRINCIPAL, "stage"), "the keyless local caller owns every environment").to.equal(true);
    expect(() => dataEnvironment(ops))
      .to.throw(DomainError)
      .that.includes({ reason: "ROLE_NOT_ALLOWED" });
    expect(dataEnvironment(prodAdmin)).to.equal("prod");
  });

  it("refuses an operator entry that names an environment, and any other entry that names none", () => {
    expect(() => loadKeysFile(keysFile({ keys: [{ id: "x", sha256: hashKey("k"), environment: "prod", role: "operator" }] }))).to.throw(
      /entry 0: an "operator" key manages every environment and takes no "environment"/,
    );
    expect(() => loadKeysFile(keysFile({ keys: [{ id: "x", sha256: hashKey("k"), role: "admin" }] }))).to.throw(/entry 0: "environment"/);
  });

  it("generated keys are distinct and carry 256 random bits", () => {
    const a = generateKey();
    expect(a).to.match(/^lk_[A-Za-z0-9_-]{43}$/);
    expect(generateKey()).to.not.equal(a);
  });

  it("refuses a malformed keys file with a message naming the entry", () => {
    expect(() => loadKeysFile(keysFile({ nope: [] }))).to.throw(/must hold \{"keys": \[\.\.\.\]\}/);
    expect(() => loadKeysFile(keysFile({ keys: [{ id: "x", sha256: "abc", environment: "prod", role: "read" }] }))).to.throw(/entry 0: "sha256"/);
    expect(() => loadKeysFile(keysFile({ keys: [{ id: "x", sha256: hashKey("k"), environment: "Prod!", role: "read" }] }))).to.throw(
      /entry 0: "environment"/,
    );
    expect(() => loadKeysFile(keysFile({ keys: [{ id: "x", sha256: hashKey("k"), environment: "prod", role: "root" }] }))).to.throw(
      /entry 0: "role"/,
    );
    expect(() => loadKeysFile(join(dir, "missing.json"))).to.throw(/cannot read the keys file/);
  });

  it("roles: read reads, write also writes, watch also watches, app reads, writes and watches, admin does everything", () => {
    const data = "larder.data.v1.DataService";
    const admin = "larder.admin.v1.AdminService";
    expect(roleAllows("read", data, "Get")).to.equal(true);
    expect(roleAllows("read", data, "Set")).to.equal(false);
    expect(roleAllows("read", data, "Watch")).to.equal(false);
    expect(roleAllows("write", data, "Set")).to.equal(true);
    expect(roleAllows("write", data, "Watch")).to.equal(false);
    expect(roleAllows("watch", data, "Watch")).to.equal(true);
    expect(roleAllows("watch", data, "Remove")).to.equal(false);
    expect(roleAllows("admin", data, "Seed")).to.equal(true);
    // app: what an @ampt/data app needs (read, write, data.on()), and no AdminService.
    for (const method of ["Get", "Query", "Set", "Add", "Remove", "Seed", "Watch", "Ack"])
      expect(roleAllows("app", data, method), method).to.equal(true);
    expect(roleAllows("app", "larder.admin.v1.AdminService", "ListEnvironments")).to.equal(false);
    expect(roleAllows("write", admin, "ListEnvironments")).to.equal(false);
    expect(roleAllows("admin", admin, "DropEnvironment")).to.equal(true);
    expect(roleAllows("admin", "some.Other", "Call")).to.equal(false);
    expect(roleAllows("operator", admin, "CloneEnvironment")).to.equal(true);
    for (const method of ["Get", "Set", "Watch", "Ping"]) expect(roleAllows("operator", data, method), method).to.equal(false);
  });
});
