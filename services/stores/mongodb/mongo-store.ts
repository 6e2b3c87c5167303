import { randomUUID } from "node:crypto";
import type { ClientSession, Collection, Db, MongoClient } from "mongodb";
import { DomainError } from "../../domain/errors.js";
import { isLive, type ItemRecord } from "../../domain/item.js";
import type { Key } from "../../domain/keys.js";
import { applySet, type SetOutcome, type SetPlan } from "../../domain/set-plan.js";
import type { Logger } from "../../log.js";
import type { KeyQuery, LabelQuery, ScanFilter, ScanQuery, Store, WriteOptions } from "../store.js";
import { decodeItem, keyFilter, type ItemDocument } from "./codec.js";
import { fromMongoError, isDuplicateKey } from "./errors.js";
import { MongoFeed } from "./mongo-feed.js";
import { itemIndexes, keyQueryShape, labelQueryShape, liveFilter, scanShape, type ReadShape } from "./queries.js";
import { setUpdate } from "./updates.js";

export const ITEMS = "items";

export interface MongoStoreOptions {
  readonly client: MongoClient;
  readonly db: Db;
  readonly environment: string;
  readonly changeRetentionMs: number;
  readonly log: Logger;
}

/**
 * One environment in MongoDB: one database, one `items` collection. Reads
 * are single index range scans; each set is one atomic update (updates.ts);
 * batches commit in one transaction; events come from one change stream.
 */
export class MongoStore implements Store {
  readonly feed: MongoFeed;
  private readonly items: Collection<ItemDocument>;

  private constructor(private readonly options: MongoStoreOptions) {
    this.items = options.db.collection<ItemDocument>(ITEMS);
    this.feed = new MongoFeed(options.db, this.items, options.log.child({ environment: options.environment }));
  }

  static async open(options: MongoStoreOptions): Promise<MongoStore> {
    const store = new MongoStore(options);
    await store.prepare();
    return store;
  }

  /** Idempotent: the collection with pre- and post-images for change events, and its indexes. */
  private async prepare(): Promise<void> {
    const existing = await this.options.db.listCollections({ name: ITEMS }).toArray();
    if (existing.length === 0) {
      await this.options.db
        .createCollection(ITEMS, { changeStreamPreAndPostImages: { enabled: true } })
        .catch((error: unknown) => {
          // Another server created it first: fine, collMod below makes sure of the images.
          if ((error as { codeName?: string }).codeName !== "NamespaceExists") throw error;
        });
    }
    await this.options.db.command({ collMod: ITEMS, changeStreamPreAndPostImages: { enabled: true } });
    await this.items.createIndexes(itemIndexes());
    await this.feed.start();
  }

  describe(): string {
    return `mongodb database ${this.options.db.databaseName}`;
  }

  async get(key: Key, now: number): Promise<ItemRecord | undefined> {
    return this.guard(async () => {
      const document = await this.items.findOne({ ...keyFilter(key), ...liveFilter(now) });
      return document ? decodeItem(document) : undefined;
    });
  }

  async getMany(keys: readonly Key[], now: number): Promise<ItemRecord[]> {
    return this.guard(async () => {
      const documents = await this.items
        .find({ $or: keys.map(keyFilter), ...liveFilter(now) } as never)
        .toArray();
      return documents.map(decodeItem);
    });
  }

  async queryKeys(query: KeyQuery, now: number): Promise<ItemRecord[]> {
    return this.read(keyQueryShape(query, now), query.limit);
  }

  async queryLabel(query: LabelQuery, now: number): Promise<ItemRecord[]> {
    return this.read(labelQueryShape(query, now), query.limit);
  }

  async scan(query: ScanQuery, now: number): Promise<ItemRecord[]> {
    return this.read(scanShape(query, now), query.limit);
  }

  async count(filter: ScanFilter, now: number): Promise<number> {
    return this.guard(async () => {
      const shape = scanShape(filter, now);
      return this.items.countDocuments(shape.filter, { hint: shape.hint });
    });
  }

  async set(plan: SetPlan, now: number): Promise<SetOutcome> {
    return this.guard(() => this.applyOne(plan, now));
  }

  /** BS3: every item of a batch commits together or not at all, in one transaction. */
  async setMany(plans: readonly SetPlan[], now: number, _options: WriteOptions = {}): Promise<SetOutcome[]> {
    return this.guard(() =>
      this.transaction(async (session) => {
        const outcomes: SetOutcome[] = [];
        for (const plan of plans) outcomes.push(await this.applyOne(plan, now, session));
        return outcomes;
      }),
    );
  }

  async remove(keys: readonly Key[], now: number): Promise<Key[]> {
    return this.guard(() =>
      this.transaction(async (session) => {
        const filter = { $or: keys.map(keyFilter) } as never;
        const found = await this.items.find(filter, { session }).toArray();
        await this.items.deleteMany(filter, { session });
        return found.map(decodeItem).filter((item) => isLive(item, now)).map((item) => item.key);
      }),
    );
  }

  async clear(now: number, _options: WriteOptions = {}): Promise<number> {
    return this.guard(async () => {
      const live = await this.items.countDocuments(liveFilter(now));
      await this.items.deleteMany({});
      return live;
    });
  }

  /** T7: the TTL index deletes within about a minute; this makes it prompt, with the same `deleted` events. */
  async purgeExpired(now: number): Promise<number> {
    return this.guard(async () => (await this.items.deleteMany({ expires: { $lte: new Date(now) } })).deletedCount);
  }

  async close(): Promise<void> {
    await this.feed.stop();
  }

  /**
   * One atomic findOneAndUpdate. When the filter's checks fail, or the
   * pipeline refused the value (its write id is not ours), the unchanged
   * document is read and applySet names the exact error (S5); a unique-key
   * collision is E1's ALREADY_EXISTS, or an upsert race that is retried.
   */
  private async applyOne(plan: SetPlan, now: number, session?: ClientSession): Promise<SetOutcome> {
    for (let attempt = 0; ; attempt++) {
      const writeId = randomUUID();
      const { filter, pipeline, upsert } = setUpdate(plan, now, writeId);
      let document: (ItemDocument & { _w?: string }) | null;
      try {
        document = await this.items.findOneAndUpdate(filter, pipeline, {
          upsert,
          returnDocument: "after",
          session,
        });
      } catch (error) {
        if (!isDuplicateKey(error)) throw error;
        if (plan.exists === false) throw new DomainError("ALREADY_EXISTS", "ITEM_EXISTS", "Item already exists");
        if (attempt < 3) continue; // two upserts of a new key raced; the loser now finds the item
        throw error;
      }
      if (document && document._w === writeId) return { item: decodeItem(document) };
      const stored = await this.items.findOne(keyFilter(plan.key), { session });
      const live = stored ? decodeItem(stored) : undefined;
      // Throws the precise error for what is stored; if it does not, the item changed in between: try again.
      applySet(live && isLive(live, now) ? live : undefined, plan, now);
      if (attempt >= 3) throw new DomainError("UNAVAILABLE", "STORE_UNAVAILABLE", "The item kept changing during the write; retry");
    }
  }

  private async read(shape: ReadShape, limit: number): Promise<ItemRecord[]> {
    return this.guard(async () => {
      const documents = await this.items.find(shape.filter).sort(shape.sort).hint(shape.hint).limit(limit).toArray();
      return documents.map(decodeItem);
    });
  }

  private async transaction<T>(body: (session: ClientSession) => Promise<T>): Promise<T> {
    const session = this.options.client.startSession();
    try {
      // withTransaction retries the whole body on TransientTransactionError (write conflicts).
      return await session.withTransaction(() => body(session), { writeConcern: { w: "majority" } });
    } finally {
      await session.endSession();
    }
  }

  private async guard<T>(body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (error) {
      throw fromMongoError(error);
    }
  }
}
