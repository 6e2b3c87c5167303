import { MongoClient } from "mongodb";
import type { Logger } from "../../log.js";
import type { Engine } from "../engine.js";
import { MongoStore } from "./mongo-store.js";

export interface MongoEngineOptions {
  readonly uri: string;
  /** Environment `prod` lives in database `<prefix>prod`. */
  readonly dbPrefix: string;
  readonly changeRetentionMs: number;
  /** How often expired items are deleted (with their events) ahead of the TTL monitor. */
  readonly sweepIntervalMs?: number;
}

/** Change streams with pre- and post-images need MongoDB 6.0. */
export const MINIMUM_VERSION = [6, 0] as const;

/**
 * Checks what Larder needs from the deployment, so a wrong one fails at start
 * with a message that says how to fix it rather than at the first Watch.
 */
export function checkDeployment(version: string, hello: { setName?: string; msg?: string }): string | undefined {
  const [major, minor] = version.split(".").map(Number);
  if (major < MINIMUM_VERSION[0] || (major === MINIMUM_VERSION[0] && minor < MINIMUM_VERSION[1])) {
    return `MongoDB ${version} is too old: Larder needs 6.0 or newer (change streams with pre- and post-images)`;
  }
  if (!hello.setName && hello.msg !== "isdbgrid") {
    return (
      "MongoDB is a standalone server: Larder needs a replica set or a sharded cluster for change streams " +
      "and transactions. Start mongod with --replSet rs0 and run rs.initiate() once (a single-node replica " +
      "set is enough), then add ?replicaSet=rs0 to MONGODB_URI. See docs/mongodb.md."
    );
  }
  return undefined;
}

/** One pooled client for every environment; each environment is its own database. */
export async function openMongoEngine(options: MongoEngineOptions, log: Logger): Promise<Engine> {
  const client = new MongoClient(options.uri, {
    appName: "larder",
    serverSelectionTimeoutMS: 10_000,
    connectTimeoutMS: 10_000,
    retryWrites: true,
    retryReads: true,
  });
  await client.connect();
  try {
    const admin = client.db("admin");
    const { version } = (await admin.command({ buildInfo: 1 })) as { version: string };
    const hello = (await admin.command({ hello: 1 })) as { setName?: string; msg?: string };
    const problem = checkDeployment(version, hello);
    if (problem) throw new Error(problem);
    log.info({ version, replicaSet: hello.setName ?? "sharded" }, "connected to MongoDB");
  } catch (error) {
    await client.close();
    throw error;
  }
  return new MongoEngine(client, options, log);
}

class MongoEngine implements Engine {
  private readonly stores = new Map<string, Promise<MongoStore>>();
  private readonly sweeper?: NodeJS.Timeout;

  constructor(
    private readonly client: MongoClient,
    private readonly options: MongoEngineOptions,
    private readonly log: Logger,
  ) {
    if (options.sweepIntervalMs) {
      this.sweeper = setInterval(() => void this.sweep(), options.sweepIntervalMs);
      this.sweeper.unref();
    }
  }

  describe(): string {
    return `mongodb, databases ${this.options.dbPrefix}*`;
  }

  environment(name: string): Promise<MongoStore> {
    let store = this.stores.get(name);
    if (!store) {
      store = MongoStore.open({
        client: this.client,
        db: this.client.db(this.options.dbPrefix + name),
        environment: name,
        changeRetentionMs: this.options.changeRetentionMs,
        log: this.log,
      });
      this.stores.set(name, store);
      store.catch(() => this.stores.delete(name));
    }
    return store;
  }

  async list(): Promise<string[]> {
    const { databases } = await this.client.db("admin").admin().listDatabases({ nameOnly: true });
    return databases
      .map((database) => database.name)
      .filter((name) => name.startsWith(this.options.dbPrefix))
      .map((name) => name.slice(this.options.dbPrefix.length))
      .sort();
  }

  async drop(name: string): Promise<void> {
    const store = this.stores.get(name);
    this.stores.delete(name);
    await (await store)?.close();
    await this.client.db(this.options.dbPrefix + name).dropDatabase();
  }

  async close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    const stores = [...this.stores.values()];
    this.stores.clear();
    await Promise.all(stores.map(async (store) => (await store).close()));
    await this.client.close();
  }

  private async sweep(): Promise<void> {
    for (const store of this.stores.values()) {
      try {
        await (await store).purgeExpired(Date.now());
      } catch (error) {
        this.log.warn({ err: error }, "expired items could not be purged; the TTL index will");
      }
    }
  }
}
