import { expect } from "chai";
import { MongoClient } from "mongodb";
import pino from "pino";
import { planSet } from "../../core/set-plan.js";
import type { EngineObserver } from "../../services/stores/engine-observer.js";
import type { Engine } from "../../services/stores/engine.js";
import { COLLECTIONS } from "../../services/stores/mongodb/codec.js";
import { openMongoEngine } from "../../services/stores/mongodb/mongo-engine.js";
import { LEASES_COLLECTION, SWEEP_LEASE_ID, SweepLeases, type LeaseDocument } from "../../services/stores/mongodb/sweep-lease.js";
import { sleep } from "../support/async.js";
import { startServer, type RunningServer } from "../support/server.js";
import { setInput } from "../support/set-input.js";
import { mongoTitle, mongoUri, skipWithoutMongo } from "./mongo-support.js";

/**
 * Several Larder instances on one MongoDB (docs/mongodb.md): each runs a
 * sweeper, and only the holder of an environment's lease sweeps it. Against
 * a real deployment (MONGODB_URI); skipped without one.
 */
describe(mongoTitle("several instances on one MongoDB: the sweep lease"), function () {
  this.timeout(120_000);
  const prefix = `larder_lease_${process.pid}_${Date.now() % 1_000_000}_`;
  let client: MongoClient;
  let uri: string;

  before(async function () {
    const given = mongoUri();
    if (!given) return skipWithoutMongo(this);
    uri = given;
    client = await MongoClient.connect(uri);
  });
  after(async () => {
    if (!client) return;
    const { databases } = await client.db("admin").admin().listDatabases({ nameOnly: true });
    for (const { name } of databases) if (name.startsWith(prefix)) await client.db(name).dropDatabase();
    await client.close();
  });

  const serverTime = async () => ((await client.db("admin").command({ hello: 1 })) as { localTime: Date }).localTime;

  it("one holder at a time; one that stops renewing (an instance that died) keeps it until MongoDB's clock passes its expiry, then another takes it", async () => {
    const leases = client.db(`${prefix}lease`).collection<LeaseDocument>(LEASES_COLLECTION);
    const leaseMs = 2_000;
    const [a, b] = [new SweepLeases("instance-a", leaseMs), new SweepLeases("instance-b", leaseMs)];
    expect(await a.claim("prod", leases), "a free lease is taken").to.equal(true);
    expect(await b.claim("prod", leases), "a held one is not").to.equal(false);
    const held = (await leases.findOne({ _id: SWEEP_LEASE_ID }))!;
    expect(held.holder).to.equal("instance-a");
    // Renewing (a fresh SweepLeases asks MongoDB at once) moves the expiry on, for the holder only.
    expect(await new SweepLeases("instance-a", leaseMs).claim("prod", leases)).to.equal(true);
    const renewed = (await leases.findOne({ _id: SWEEP_LEASE_ID }))!;
    expect(renewed.expiresAt.getTime()).to.be.at.least(held.expiresAt.getTime());

    // a now never renews: b asks until it gets the lease, which it may only once MongoDB's clock passed a's expiry.
    let taken = false;
    for (let attempt = 0; attempt < 200 && !taken; attempt++) {
      const before = await serverTime();
      taken = await b.claim("prod", leases);
      if (!taken) expect(before.getTime(), "refused only while a's lease lasts").to.be.below(renewed.expiresAt.getTime());
      else expect((await serverTime()).getTime(), "taken only once it expired").to.be.at.least(renewed.expiresAt.getTime());
      if (!taken) await sleep(100);
    }
    expect(taken, "b takes the expired lease").to.equal(true);
    expect((await leases.findOne({ _id: SWEEP_LEASE_ID }))!.holder).to.equal("instance-b");
    expect(await a.claim("prod", leases), "a, back, finds it taken").to.equal(false);

    // A stopping holder gives it up: the other takes it at once, with no wait for the expiry.
    await b.releaseAll(() => leases);
    expect(await a.claim("prod", leases)).to.equal(true);
    expect(await leases.countDocuments({}), "one document per environment").to.equal(1);
  });

  it("two engines on one database: only the lease holder sweeps; once it stops, the other sweeps", async () => {
    const swept = new Map<Engine, number>();
    const observer = (engine: () => Engine): EngineObserver => ({
      swept: (_, items) => swept.set(engine(), (swept.get(engine()) ?? 0) + items),
      changeStreamLag: () => undefined,
      connectionPool: {
        created: () => undefined,
        closed: () => undefined,
        checkOutStarted: () => undefined,
        checkedOut: () => undefined,
        checkOutFailed: () => undefined,
        checkedIn: () => undefined,
        cleared: () => undefined,
      },
    });
    const log = pino({ level: "silent" });
    const options = { uri, dbPrefix: prefix, changeRetentionMs: 3_600_000, sweepIntervalMs: 100, sweepLeaseMs: 5_000 };
    // Not const: each engine's observer reads its own variable, and may run before open() returns.
    let first!: Engine;
    let second!: Engine;
    // eslint-disable-next-line prefer-const
    first = await openMongoEngine({ ...options, observer: observer(() => first) }, log);
    // eslint-disable-next-line prefer-const
    second = await openMongoEngine({ ...options, observer: observer(() => second) }, log);
    const items = client.db(`${prefix}shared`).collection(COLLECTIONS.items);
    try {
      const writer = await first.environment("shared");
      await second.environment("shared");
      /** Writes expired items and waits until a sweep (or MongoDB's TTL monitor) deleted them. */
      const expireSome = async (round: number) => {
        const now = Date.now();
        const plans = Array.from({ length: 5 }, (_, i) => planSet(setInput(`gone:${round}:${i}`, i, { ttl: { seconds: -1 } }), now));
        await writer.setMany(plans, now);
        for (let wait = 0; wait < 200 && (await items.countDocuments({})) > 0; wait++) await sleep(50);
        expect(await items.countDocuments({}), "swept within 10 s").to.equal(0);
      };

      for (let round = 0; round < 10; round++) await expireSome(round);
      const holder = (swept.get(first) ?? 0) > 0 ? first : second;
      const other = holder === first ? second : first;
      expect(
        [swept.get(holder) ?? 0, swept.get(other) ?? 0].map((count) => count > 0),
        "exactly one instance swept",
      ).to.deep.equal([true, false]);

      await holder.close();
      for (let round = 10; round < 20; round++) await expireSome(round);
      expect(swept.get(other) ?? 0, "the other instance took over").to.be.greaterThan(0);
    } finally {
      await Promise.all([first, second].map((engine) => engine.close().catch(() => undefined)));
    }
  });
  it("two Larder processes: when the holder is killed (SIGKILL, no release), the other takes the lease only after it expired, and sweeps", async () => {
    const env = { LARDER_ENGINE: "mongodb", MONGODB_URI: uri, LARDER_MONGODB_DB_PREFIX: `${prefix}p_`, LARDER_SWEEP_INTERVAL_MS: "200" };
    const leases = client.db(`${prefix}p_default`).collection<LeaseDocument>(LEASES_COLLECTION);
    const items = client.db(`${prefix}p_default`).collection(COLLECTIONS.items);
    const servers: RunningServer[] = [];
    // Writes expired items without sweeping (no sweep interval): only the two processes sweep.
    const writer = await openMongoEngine({ uri, dbPrefix: `${prefix}p_`, changeRetentionMs: 3_600_000 }, pino({ level: "silent" }));
    try {
      servers.push(await startServer({ env }), await startServer({ env }));
      const pidOf = (holder: string | undefined) => Number(holder?.split(":").at(-2));
      let lease: LeaseDocument | null = null;
      for (let wait = 0; wait < 200 && !lease; wait++) {
        lease = await leases.findOne({ _id: SWEEP_LEASE_ID });
        if (!lease) await sleep(50);
      }
      const holder = servers.find((server) => server.process.pid === pidOf(lease?.holder));
      expect(holder, `the lease names one of the two processes: ${lease?.holder}`).to.not.equal(undefined);
      const survivor = servers.find((server) => server !== holder)!;

      await holder!.stop("SIGKILL");
      const last = (await leases.findOne({ _id: SWEEP_LEASE_ID }))!;
      expect(pidOf(last.holder), "a killed holder gives nothing up").to.equal(holder!.process.pid);
      const store = await writer.environment("default");
      const now = Date.now();
      await store.setMany(
        Array.from({ length: 5 }, (_, i) => planSet(setInput(`gone:${i}`, i, { ttl: { seconds: -1 } }), now)),
        now,
      );

      let taken: LeaseDocument | null = null;
      for (let wait = 0; wait < 400 && !taken; wait++) {
        const seen = await leases.findOne({ _id: SWEEP_LEASE_ID });
        if (seen && pidOf(seen.holder) === survivor.process.pid) taken = seen;
        else await sleep(50);
      }
      expect(taken, "the survivor takes the lease").to.not.equal(null);
      expect((await serverTime()).getTime(), "only once the killed holder's lease expired").to.be.at.least(last.expiresAt.getTime());
      for (let wait = 0; wait < 200 && (await items.countDocuments({})) > 0; wait++) await sleep(50);
      expect(await items.countDocuments({}), "the expired items are deleted within 10 s").to.equal(0);
    } finally {
      await writer.close();
      await Promise.all(servers.map((server) => server.stop()));
    }
  });
});
