import { expect } from "chai";
import {
  claimLease,
  LEASES_COLLECTION,
  leaseNeedsRenewal,
  releaseLease,
  SWEEP_LEASE_ID,
  sweepLeaseHolder,
} from "../../services/stores/mongodb/sweep-lease.js";

/**
 * The sweep lease's commands, as data (test/mongo/sweep-lease.spec.ts runs
 * them against a server): several instances on one MongoDB sweep each
 * environment once, whoever holds its lease.
 */
describe("MongoDB engine: the sweep lease", () => {
  it("one document per environment, in that environment's database", () => {
    expect([LEASES_COLLECTION, SWEEP_LEASE_ID]).to.deep.equal(["leases", "expiry-sweep"]);
  });

  it("claiming: one upsert that matches only the holder's own lease or an expired one, by MongoDB's clock, and sets the expiry on it", () => {
    expect(claimLease("host:42:abcd", 15_000)).to.deep.equal({
      filter: { _id: "expiry-sweep", $or: [{ holder: "host:42:abcd" }, { $expr: { $lte: ["$expiresAt", "$$NOW"] } }] },
      update: [{ $set: { holder: { $literal: "host:42:abcd" }, expiresAt: { $add: ["$$NOW", 15_000] } } }],
      options: { upsert: true },
    });
  });

  it("a holder name that looks like a field path stays a value ($literal)", () => {
    const update = claimLease("$holder", 1_000).update as { $set: { holder: unknown } }[];
    expect(update[0].$set.holder).to.deep.equal({ $literal: "$holder" });
  });

  it("releasing: only the holder's own lease, expired at once, still naming its last holder", () => {
    expect(releaseLease("host:42:abcd")).to.deep.equal({
      filter: { _id: "expiry-sweep", holder: "host:42:abcd" },
      update: { $set: { expiresAt: new Date(0) } },
    });
  });

  it("renewal: asked of MongoDB once a third of the lease has passed since it was last sent, or when none is held", () => {
    expect(leaseNeedsRenewal(undefined, 1_000, 15_000)).to.equal(true);
    expect(leaseNeedsRenewal(1_000, 1_000, 15_000)).to.equal(false);
    expect(leaseNeedsRenewal(1_000, 5_999, 15_000)).to.equal(false);
    expect(leaseNeedsRenewal(1_000, 6_000, 15_000)).to.equal(true);
    expect(leaseNeedsRenewal(1_000, 60_000, 15_000)).to.equal(true);
  });

  it("holders: host and process id for whoever reads the document, unique per start", () => {
    const [one, two] = [sweepLeaseHolder(), sweepLeaseHolder()];
    expect(one).to.match(new RegExp(`^.+:${process.pid}:[0-9a-f]{8}$`));
    expect(one).to.not.equal(two);
  });
});
