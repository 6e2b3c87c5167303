import { setTimeout as sleep } from "node:timers/promises";
import { MongoClient, type Collection } from "mongodb";
import type { Logger } from "../../log.js";
import type { EngineFigures, EngineObserver, EnvironmentFigures } from "../engine-observer.js";
import { PendingDrops, type Engine } from "../engine.js";
import { Sweeper } from "../sweeper.js";
import { databaseName } from "./database-name.js";
import { fromMongoError, isUnauthorized } from "./errors.js";
import { MongoStore } from "./mongo-store.js";
import { OPLOG_ENDS, oplogWindow, type OplogEntry } from "./oplog.js";
import { observeConnectionPool } from "./pool-events.js";
import { LEASES_COLLECTION, sweepLeaseHolder, SweepLeases, type LeaseDocument } from "./sweep-lease.js";

export interface MongoEngineOptions {
  /** A MongoDB connection string: a replica set or a sharded cluster, MongoDB 6.0 or newer. */
  readonly uri: string;
  /** Environment `prod` lives in database `<prefix>prod`. */
  readonly dbPrefix: string;
  /** How long change events stay resumable (the oplog may bound it further). */
  readonly changeRetentionMs: number;
  /** How often expired items are deleted (with their events) ahead of the TTL monitor; 0 or unset: never. */
  readonly sweepIntervalMs?: number;
  /**
   * How long an instance keeps an environment's sweep lease (sweep-lease.ts)
   * without renewing it: how soon another instance sweeps once the holder is
   * gone. Unset: three sweep intervals, at least a second.
   */
  readonly sweepLeaseMs?: number;
  /** Told of sweeps, the change streams' lag and the connection pool (metrics). */
  readonly observer?: EngineObserver;
  /** How long an idempotency record answers retries; unset: 24 h. */
  readonly idempotencyWindowMs?: number;
  /** How many changes a Watch may fall behind before it is ended, resumably (LARDER_WATCH_MAX_LAG). */
  readonly watchMaxLag?: number;
  /** Told when an environment's change feed starts or stops failing, with the reason (health). */
  readonly onFeedHealth?: (environment: string, failure: string | undefined) => void;
}

/**
 * How long a close waits for a sweep under way to end its chunk and for the
 * sweep leases to be given up: an unreachable MongoDB (10 s to find no
 * server) must not hold a shutdown. Leases not given up expire by themselves.
 */
const CLOSE_SWEEP_WAIT_MS = 2_000;

/** Change streams with pre- and post-images need MongoDB 6.0. */
export const MINIMUM_VERSION = [6, 0] as const;

/** Client settings, in one place: one pooled client serves every environment. */
export const CLIENT_OPTIONS = {
  appName: "larder",
  // Fail a call (UNAVAILABLE) after 10 s without a usable server, rather than the driver's 30 s.
  serverSelectionTimeoutMS: 10_000,
  connectTimeoutMS: 10_000,
  retryWrites: true,
  retryReads: true,
} as const;

/**
 * What Larder needs from the deployment, checked at start so a wrong one
 * fails with a message that says how to fix it, not at the first Watch.
 * Each check runs only once the ones before it passed (a server too old
 * for `hello` gets the version message).
 */
export function checkVersion(version: string): string | undefined {
  const [major, minor] = version.split(".").map(Number);
  if (major > MINIMUM_VERSION[0] || (major === MINIMUM_VERSION[0] && minor >= MINIMUM_VERSION[1])) return undefined;
  return (
    `MongoDB ${version} is too old: Larder needs MongoDB 6.0 or newer (change streams with pre- and post-images ` +
    "give change events their item and previous state). Upgrade the deployment, or use LARDER_ENGINE=embedded."
  );
}

export function checkTopology(hello: { setName?: string; msg?: string }): string | undefined {
  if (hello.setName || hello.msg === "isdbgrid") return undefined;
  return (
    "MongoDB is a standalone server: Larder needs a replica set or a sharded cluster (change streams and " +
    "transactions exist only there). A single-node replica set is enough: start mongod with --replSet rs0, run " +
    "rs.initiate() once in mongosh, and add ?replicaSet=rs0 to MONGODB_URI. See docs/mongodb.md."
  );
}

/**
 * A 6.0 binary upgraded from 5.0 keeps feature compatibility 5.0 until it is
 * raised, and refuses pre- and post-images until then. Undefined `fcv`: the
 * user may not read it (getParameter needs clusterMonitor), so it is not checked.
 */
export function checkFeatureCompatibility(fcv: string | undefined): string | undefined {
  if (fcv === undefined || checkVersion(fcv) === undefined) return undefined;
  return (
    `MongoDB's featureCompatibilityVersion is ${fcv}: change streams with pre- and post-images need 6.0 or newer. ` +
    'Raise it once the deployment is upgraded: db.adminCommand({setFeatureCompatibilityVersion: "6.0", confirm: true}) ' +
    "(confirm is for MongoDB 7.0 and newer)."
  );
}

/** One pooled client for every environment; each environment is its own database. */
export async function openMongoEngine(options: MongoEngineOptions, log: Logger): Promise<Engine> {
  const client = new MongoClient(options.uri, CLIENT_OPTIONS);
  // Before connecting: the pool's first connections are events too.
  if (options.observer) observeConnectionPool(client, options.observer.connectionPool);
  try {
    await client.connect();
    const admin = client.db("admin");
    const { version } = (await admin.command({ buildInfo: 1 })) as { version: string };
    const tooOld = checkVersion(version);
    if (tooOld) throw new Error(tooOld);
    const hello = (await admin.command({ hello: 1 })) as { setName?: string; msg?: string };
    const problem = checkTopology(hello) ?? checkFeatureCompatibility(await featureCompatibilityVersion(client));
    if (problem) throw new Error(problem);
    log.info({ version, replicaSet: hello.setName ?? "sharded cluster" }, "connected to MongoDB");
  } catch (error) {
    await client.close().catch(() => undefined);
    const mapped = fromMongoError(error);
    if (mapped !== error) {
      throw new Error(
        `Cannot reach MongoDB at the MONGODB_URI given (${(error as Error).message}); check that it runs and that the ` +
          "URI names its replica set (e.g. mongodb://127.0.0.1:27017/?replicaSet=rs0)",
        { cause: error },
      );
    }
    throw error;
  }
  return new MongoEngine(client, options, log);
}

async function featureCompatibilityVersion(client: MongoClient): Promise<string | undefined> {
  try {
    const answer = await client.db("admin").command({ getParameter: 1, featureCompatibilityVersion: 1 });
    return (answer as { featureCompatibilityVersion?: { version?: string } }).featureCompatibilityVersion?.version;
  } catch {
    return undefined; // not allowed to read it (Atlas shared tiers, users without clusterMonitor)
  }
}

class MongoEngine implements Engine {
  private readonly stores = new Map<string, Promise<MongoStore>>();
  private readonly drops = new PendingDrops();
  private readonly sweeper: Sweeper<MongoStore>;
  /** Several instances on one deployment: only the holder of an environment's lease sweeps it. */
  private readonly leases: SweepLeases;
  /** False once MongoDB said this user may not read the oplog: not asked again at every scrape. */
  private oplogReadable = true;

  constructor(
    private readonly client: MongoClient,
    private readonly options: MongoEngineOptions,
    private readonly log: Logger,
  ) {
    this.leases = new SweepLeases(sweepLeaseHolder(), options.sweepLeaseMs ?? Math.max(3 * (options.sweepIntervalMs ?? 0), 1_000));
    this.sweeper = new Sweeper<MongoStore>(
      {
        openEnvironments: () => this.stores.entries(),
        // One reading of MongoDB's clock serves every environment's sweep.
        sweepTime: () => sweepTime(this.client, Date.now()),
        claim: (environment) => this.leases.claim(environment, this.leasesOf(environment)),
      },
      {
        intervalMs: options.sweepIntervalMs,
        observer: options.observer,
        failed: (error) => this.log.warn({ err: error }, "expired items could not be deleted now; reads hide them, and the TTL index deletes them"),
      },
    );
  }

  private leasesOf(environment: string): Collection<LeaseDocument> {
    return this.client.db(databaseName(this.options.dbPrefix, environment)).collection<LeaseDocument>(LEASES_COLLECTION);
  }

  describe(): string {
    return `mongodb, database prefix ${this.options.dbPrefix}`;
  }

  environment(name: string): Promise<MongoStore> {
    const dropping = this.drops.settled(name);
    if (dropping) return dropping.then(() => this.environment(name));
    let store = this.stores.get(name);
    if (!store) {
      store = (async () =>
        MongoStore.open({
          client: this.client,
          db: this.client.db(databaseName(this.options.dbPrefix, name)),
          environment: name,
          changeRetentionMs: this.options.changeRetentionMs,
          idempotencyWindowMs: this.options.idempotencyWindowMs,
          log: this.log,
          observer: this.options.observer,
          watchMaxLag: this.options.watchMaxLag,
          onFeedHealth: this.options.onFeedHealth,
        }))();
      this.stores.set(name, store);
      store.catch(() => this.stores.delete(name));
    }
    return store;
  }

  async list(): Promise<string[]> {
    // authorizedDatabases: a user limited to some databases (Atlas roles) still gets a list.
    const { databases } = await this.client.db("admin").admin().listDatabases({ nameOnly: true, authorizedDatabases: true });
    return databases
      .map((database) => database.name)
      .filter((name) => name.startsWith(this.options.dbPrefix) && name.length > this.options.dbPrefix.length)
      .map((name) => name.slice(this.options.dbPrefix.length))
      .sort();
  }

  async drop(name: string): Promise<void> {
    await this.drops.run(name, async () => {
      const store = this.stores.get(name);
      this.stores.delete(name);
      // The feed's stream stops first, so dropping the database does not look like a failure to it.
      await (await store?.catch(() => undefined))?.close();
      this.leases.forget(name);
      await this.client.db(databaseName(this.options.dbPrefix, name)).dropDatabase();
    });
  }

  async close(): Promise<void> {
    let late = false;
    // Not after the client closed: an operation then would only fail, or connect it again.
    const released = this.sweeper.stop().then(() => (late ? undefined : this.leases.releaseAll((environment) => this.leasesOf(environment))));
    const waited = new AbortController();
    await Promise.race([released, sleep(CLOSE_SWEEP_WAIT_MS, undefined, { signal: waited.signal }).catch(() => undefined)]);
    waited.abort();
    late = true;
    const stores = [...this.stores.values()];
    this.stores.clear();
    await Promise.all(stores.map(async (store) => (await store.catch(() => undefined))?.close()));
    await this.client.close();
  }

  async figures(): Promise<EngineFigures> {
    const environments: EnvironmentFigures[] = [];
    for (const [environment, opening] of this.stores) {
      const store = await opening.catch(() => undefined);
      if (store) environments.push({ environment, feedRing: store.feed.ringFigures() });
    }
    return { environments, oplog: await this.oplogWindow() };
  }

  /** The oplog's first and last entries: two reads in natural order of a capped collection, each one document. */
  private async oplogWindow(): Promise<EngineFigures["oplog"]> {
    if (!this.oplogReadable) return undefined;
    try {
      const oplog = this.client.db(OPLOG_ENDS.db).collection<OplogEntry>(OPLOG_ENDS.collection);
      const [first] = await oplog.find({}, OPLOG_ENDS.first).toArray();
      const [last] = await oplog.find({}, OPLOG_ENDS.last).toArray();
      return oplogWindow(first, last);
    } catch (error) {
      if (isUnauthorized(error)) {
        this.oplogReadable = false;
        this.log.info("the oplog cannot be read with these rights (clusterMonitor is needed): no oplog window in the metrics");
      }
      return undefined;
    }
  }
}

/**
 * The instant up to which a sweep deletes: the earlier of Larder's clock and
 * MongoDB's (hello's localTime). A delete's event time is MongoDB's wall
 * clock, later than both, so the event finds the item expired (EV6) however
 * the clocks differ; an item only Larder's clock finds expired is already
 * hidden from reads, and goes at a later sweep.
 */
export async function sweepTime(client: MongoClient, larderNow: number): Promise<number> {
  const { localTime } = (await client.db("admin").command({ hello: 1 })) as { localTime?: Date };
  return Math.min(larderNow, localTime?.getTime() ?? larderNow);
}
