import { randomUUID } from "node:crypto";
import type { ClientSession, Collection, Db, MongoClient, ResumeToken, WithId } from "mongodb";
import { DomainError, failedPrecondition } from "../../../core/errors.js";
import { MAX_SUBSCRIPTIONS, tooManySubscriptions } from "../../../core/limits.js";
import { isLive, type ItemRecord } from "../../../core/item.js";
import { checkAsOf, stateAt, type HistoryEntry } from "../../../core/history.js";
import { keyFromParts, type Key } from "../../../core/keys.js";
import { applySet, type SetOutcome } from "../../../core/apply-set.js";
import type { SetPlan } from "../../../core/set-plan.js";
import { itemExists, versionMismatch } from "../../../core/write-refusals.js";
import type { Logger } from "../../log.js";
import type { EngineObserver } from "../engine-observer.js";
import type {
  BulkOptions,
  CountQuery,
  FetchedPage,
  HistoryQuery,
  IdempotentWrite,
  KeyQuery,
  LabelQuery,
  NamespaceQuery,
  PageBounds,
  ReadOptions,
  RemoveOptions,
  ScanFilter,
  ScanQuery,
  Store,
  WriteOptions,
} from "../store.js";
import { idempotencyRecord, IDEMPOTENCY_TTL_INDEX, replayableFilter, type IdempotencyDocument } from "./idempotency.js";
import { DEFAULT_IDEMPOTENCY_WINDOW_MS, idempotencyKeyReused, REMOVED_KEYS, SET_OUTCOME, SET_OUTCOMES, type OutcomeCodec } from "../replay.js";
import { COLLECTIONS, decodeItem, encodeItem, keyFilter, storedVersion, valueJsonBytes, type ItemDocument } from "./codec.js";
import { fromMongoError, isDuplicateKey, isUnauthorized } from "./errors.js";
import { PageBudget } from "../../../core/paging.js";
import {
  decodeHistoryDocument,
  decodeHistoryPosition,
  firstChangeAfter,
  HISTORY_COLLECTION,
  HISTORY_INDEXES,
  historyPage,
  historyWrites,
  lastChangeAtOrBefore,
  type HistoryDocument,
  type HistoryRead,
} from "./history.js";
import { MongoChangeLog, type ChangeCursor, type ChangeSource } from "./change-log.js";
import { DEFAULT_MAX_LAG, DEFAULT_RING_BYTES, FeedHub } from "../../feed/feed-hub.js";
import {
  batchGetFilter,
  countRangeShape,
  countShape,
  expiredChunk,
  expiredChunkDelete,
  forgettableSubscription,
  itemIndexes,
  keyQueryPlan,
  labelQueryPlan,
  liveFilter,
  namespaceStep,
  readTimeLimit,
  scanPlan,
  type ReadPlan,
} from "./queries.js";
import { expiresAtWrite, incrementUpdate, isUnconditionalOverwrite, setUpdate } from "./updates.js";

export interface MongoStoreOptions {
  readonly client: MongoClient;
  readonly db: Db;
  readonly environment: string;
  readonly changeRetentionMs: number;
  /** How long an idempotency record answers retries (replay.ts). */
  readonly idempotencyWindowMs?: number;
  readonly log: Logger;
  /** Told the change stream's lag (metrics). */
  readonly observer?: Pick<EngineObserver, "changeStreamLag">;
  /** How many changes a Watch may fall behind before it is ended, resumably (LARDER_WATCH_MAX_LAG). */
  readonly watchMaxLag?: number;
  /** Told when the change feed starts or stops failing, with the reason (health). */
  readonly onFeedHealth?: (environment: string, failure: string | undefined) => void;
}

/** The change stream every feed reads: items and head markers, with both images of each item. */
export const STREAM_PIPELINE = [{ $match: { "ns.coll": { $in: [COLLECTIONS.items, COLLECTIONS.heads] } } }];
export const STREAM_OPTIONS = {
  fullDocument: "whenAvailable",
  fullDocumentBeforeChange: "whenAvailable",
  // A getMore waits this long for changes; it also bounds how long a stopping feed waits.
  maxAwaitTimeMS: 1_000,
} as const;

/** IndexOptionsConflict, IndexKeySpecsConflict: an index of that name or keys exists with other options. */
const INDEX_CONFLICTS = new Set([85, 86]);

interface CollectionInfo {
  readonly options?: { collation?: { locale?: string }; changeStreamPreAndPostImages?: { enabled?: boolean } };
}

interface SubscriptionDocument {
  _id: string;
  token: string;
  at: Date;
}

/**
 * A replace whose new content comes in at most this many chunks (of at most
 * 100 items and 4 MiB each, BULK_CHUNK) is held in memory, so its one
 * transaction can be rerun by withTransaction on a write conflict; a larger
 * one streams through a single transaction that is not rerun.
 */
const REPLAYABLE_REPLACE_CHUNKS = 4;

/** Items a quiet clear marks and deletes per transaction (at most 40 MB of items and their pre-images), whatever the environment holds. */
const QUIET_CLEAR_BATCH = 100;

/**
 * One environment in MongoDB: one database with an `items` collection. Reads
 * are single index range scans that hide expired items (queries.ts); each
 * set is one atomic update (updates.ts); batches commit in one transaction;
 * events come from one change stream (change-log.ts) fanned out by the feed hub.
 */
export class MongoStore implements Store {
  readonly feed: FeedHub;
  private readonly changeLog: MongoChangeLog;
  private readonly items: Collection<ItemDocument>;
  private readonly records: Collection<IdempotencyDocument>;
  private readonly historyLog: Collection<HistoryDocument>;

  private constructor(private readonly options: MongoStoreOptions) {
    this.items = options.db.collection<ItemDocument>(COLLECTIONS.items);
    this.records = options.db.collection<IdempotencyDocument>(COLLECTIONS.idempotency);
    this.historyLog = options.db.collection<HistoryDocument>(HISTORY_COLLECTION);
    this.changeLog = new MongoChangeLog(this.changeSource(), {
      retentionMs: options.changeRetentionMs,
      log: options.log.child({ environment: options.environment }),
      consumed: options.observer && ((commitTime) => options.observer!.changeStreamLag(options.environment, (Date.now() - commitTime) / 1000)),
    });
    this.feed = new FeedHub(this.changeLog, {
      maxLag: options.watchMaxLag ?? DEFAULT_MAX_LAG,
      maxBytes: DEFAULT_RING_BYTES,
      retentionMs: options.changeRetentionMs,
      onHealth: options.onFeedHealth && ((failure) => options.onFeedHealth!(options.environment, failure)),
    });
  }

  static async open(options: MongoStoreOptions): Promise<MongoStore> {
    const store = new MongoStore(options);
    await store.prepare();
    return store;
  }

  /**
   * Idempotent, and safe when several Larder servers start at once: the
   * collection with pre- and post-images (EV4 needs both), its indexes, and
   * the feed's consumer.
   */
  private async prepare(): Promise<void> {
    const { db } = this.options;
    const items = (await this.itemsInfo()) ?? (await this.createItems());
    const collation = items.options?.collation;
    if (collation && collation.locale !== "simple") {
      // K7 needs bytewise string order; a collection collation would change every comparison and index.
      throw failedPrecondition(
        "STORE_UNAVAILABLE",
        `The collection ${db.databaseName}.${COLLECTIONS.items} has the collation '${collation.locale}'; Larder needs ` +
          "MongoDB's default binary string order (K7). Move the data to a collection without a collation.",
      );
    }
    if (items.options?.changeStreamPreAndPostImages?.enabled !== true) await this.enablePrePostImages();
    await this.items.createIndexes(itemIndexes().map((index) => ({ ...index }))).catch((error: unknown) => {
      if (!INDEX_CONFLICTS.has((error as { code?: number }).code as number)) throw error;
      throw failedPrecondition(
        "STORE_UNAVAILABLE",
        `An index on ${db.databaseName}.${COLLECTIONS.items} has a name Larder uses but another definition ` +
          `(${(error as Error).message}). Drop that index (db.${COLLECTIONS.items}.dropIndex("<name>")) and start Larder again: ` +
          "it builds the index it needs (see docs/mongodb.md, Indexes).",
      );
    });
    await this.records.createIndexes([{ ...IDEMPOTENCY_TTL_INDEX }]);
    await this.historyLog.createIndexes(HISTORY_INDEXES.map((index) => ({ ...index })));
    // The ring is fed from the consumer's first change: resuming Watches find their place in it.
    this.feed.start();
    await this.changeLog.start();
  }

  private async itemsInfo(): Promise<CollectionInfo | undefined> {
    const [info] = (await this.options.db.listCollections({ name: COLLECTIONS.items }).toArray()) as CollectionInfo[];
    return info;
  }

  /** The collection as it is now: made here with pre- and post-images, or as another server made it first. */
  private async createItems(): Promise<CollectionInfo> {
    const changeStreamPreAndPostImages = { enabled: true };
    try {
      await this.options.db.createCollection(COLLECTIONS.items, { changeStreamPreAndPostImages });
      return { options: { changeStreamPreAndPostImages } };
    } catch (error) {
      if ((error as { codeName?: string }).codeName !== "NamespaceExists") throw error;
      const made = await this.itemsInfo();
      if (!made) throw error;
      return made;
    }
  }

  /**
   * Only for a collection made without pre- and post-images (by hand, or by
   * an older Larder): collMod needs dbAdmin, which readWrite users lack.
   */
  private async enablePrePostImages(): Promise<void> {
    const { db } = this.options;
    try {
      await db.command({ collMod: COLLECTIONS.items, changeStreamPreAndPostImages: { enabled: true } });
    } catch (error) {
      if (!isUnauthorized(error)) throw error;
      throw failedPrecondition(
        "STORE_UNAVAILABLE",
        `The collection ${db.databaseName}.${COLLECTIONS.items} has no change-stream pre- and post-images, and Larder's ` +
          "MongoDB user may not enable them. Run once as a dbAdmin: " +
          `db.getSiblingDB("${db.databaseName}").runCommand({collMod: "${COLLECTIONS.items}", changeStreamPreAndPostImages: {enabled: true}})`,
      );
    }
  }

  describe(): string {
    return `mongodb database ${this.options.db.databaseName}`;
  }

  async get(key: Key, now: number, options?: ReadOptions): Promise<ItemRecord | undefined> {
    return guard(async () => {
      const document = await this.items.findOne({ ...keyFilter(key), ...liveFilter(now) }, readTimeLimit(options));
      return document ? decodeItem(document) : undefined;
    });
  }

  /**
   * The stored item is read first, then the history is brought up to date:
   * whatever change made that item is then in the history, so "no change
   * after `at`" really means the item was already so at `at`.
   */
  async getAsOf(key: Key, at: number, now: number, options?: ReadOptions): Promise<ItemRecord | undefined> {
    if (at > now) checkAsOf(at, now, Number.NEGATIVE_INFINITY);
    return guard(async () => {
      const stored = await this.items.findOne(keyFilter(key), readTimeLimit(options));
      const horizon = await this.historyHorizon(now);
      checkAsOf(at, now, horizon);
      const atOrBefore = await this.readHistory(lastChangeAtOrBefore(key, at, horizon), options);
      const after = atOrBefore.length > 0 ? [] : await this.readHistory(firstChangeAfter(key, at), options);
      return stateAt({ atOrBefore: atOrBefore[0], after: after[0], stored: stored ? decodeItem(stored) : undefined }, at);
    });
  }

  async history(query: HistoryQuery, now: number, options?: ReadOptions): Promise<{ entries: HistoryEntry[]; more: boolean }> {
    // A malformed start is refused before any round trip.
    if (query.before !== undefined) decodeHistoryPosition(query.before);
    return guard(async () => {
      const horizon = await this.historyHorizon(now);
      const read = historyPage(query.key, horizon, query.limit + 1, query.before);
      // Documents one at a time, each measured by its change's JSON text before it is decoded (PageBudget).
      const budget = new PageBudget(query.limit, query.maxBytes);
      const cursor = this.historyLog.find(read.filter, {
        sort: read.sort,
        limit: read.limit,
        hint: read.hint,
        batchSize: 16,
        ...readTimeLimit(options),
      });
      const documents: HistoryDocument[] = [];
      let more = false;
      try {
        for await (const document of cursor) {
          if (!budget.admits(document.c.length)) {
            more = true;
            break;
          }
          documents.push(document);
        }
      } finally {
        await cursor.close();
      }
      return { entries: documents.map(decodeHistoryDocument), more };
    });
  }

  /** Where the history is complete from: the retention, and this server's consumer's own start (change-log.ts). */
  private async historyHorizon(now: number): Promise<number> {
    const since = await this.changeLog.historySynced();
    if (since === Number.POSITIVE_INFINITY) {
      throw new DomainError("UNAVAILABLE", "STORE_UNAVAILABLE", "The key history starts over after a gap in MongoDB's change stream; retry");
    }
    return Math.max(now - this.options.changeRetentionMs, since);
  }

  private async readHistory(read: HistoryRead, options?: ReadOptions): Promise<HistoryEntry[]> {
    const documents = await this.historyLog
      .find(read.filter, { sort: read.sort, limit: read.limit, hint: read.hint, ...readTimeLimit(options) })
      .toArray();
    return documents.map(decodeHistoryDocument);
  }

  /** B3: one query for every key; the caller puts the items in request order. */
  async getMany(keys: readonly Key[], now: number, options?: ReadOptions): Promise<ItemRecord[]> {
    if (keys.length === 0) return [];
    return guard(async () => {
      const documents = await this.items.find(batchGetFilter(keys, now), readTimeLimit(options)).toArray();
      return documents.map(decodeItem);
    });
  }

  async queryKeys(query: KeyQuery, now: number, options?: ReadOptions): Promise<FetchedPage> {
    return this.read(keyQueryPlan(query, now), query, options);
  }

  async queryLabel(query: LabelQuery, now: number, options?: ReadOptions): Promise<FetchedPage> {
    return this.read(labelQueryPlan(query, now), query, options);
  }

  async scan(query: ScanQuery, now: number, options?: ReadOptions): Promise<FetchedPage> {
    return this.read(scanPlan(query, now), query, options);
  }

  async namespaces(query: NamespaceQuery, now: number, options?: ReadOptions): Promise<string[]> {
    return guard(async () => {
      const found: string[] = [];
      const started = performance.now();
      let after = query.after;
      while (found.length < query.limit) {
        const step = namespaceStep(after, now);
        const [next] = await this.items
          .find(step.filter, { projection: step.projection, ...readTimeLimit(options, performance.now() - started) })
          .sort(step.sort)
          .hint(step.hint)
          .limit(1)
          .toArray();
        if (!next) break;
        found.push(next.ns);
        after = next.ns;
      }
      return found;
    });
  }

  async countRange(query: CountQuery, now: number, options?: ReadOptions): Promise<number> {
    const shape = countRangeShape(query, now);
    if (!shape) return 0;
    return guard(() => this.items.countDocuments(shape.filter, { hint: shape.hint, ...readTimeLimit(options) }));
  }

  async count(filter: ScanFilter, now: number, options?: ReadOptions): Promise<number> {
    return guard(async () => {
      const shape = countShape(filter, now);
      return this.items.countDocuments(shape.filter, { hint: shape.hint, ...readTimeLimit(options) });
    });
  }

  /** With an idempotency key, the exact path in a transaction that also records the outcome. */
  async set(plan: SetPlan, now: number, options: Pick<WriteOptions, "idempotency"> = {}): Promise<SetOutcome> {
    if (options.idempotency) {
      const replay = { write: options.idempotency, codec: SET_OUTCOME };
      return guard(() => this.transaction((session) => this.setExactly(plan, now, session, false), replay));
    }
    return guard(() => this.setOne(plan, now));
  }

  /**
   * BS3: the items of a batch commit together or not at all, in one
   * transaction. Batches are overwrites (BS2, SE1), whose result does not
   * depend on what is stored, so they go as one bulkWrite of the same update
   * pipelines a set uses; anything else is applied item by item inside it.
   */
  async setMany(plans: readonly SetPlan[], now: number, options: WriteOptions = {}): Promise<SetOutcome[]> {
    if (plans.length === 0) return [];
    const quiet = options.events === false;
    const replay = options.idempotency && { write: options.idempotency, codec: SET_OUTCOMES };
    return guard(() => this.transaction((session) => this.writeBatch(plans, now, session, quiet), replay));
  }

  /** The writes of setMany, inside a transaction the caller holds. */
  private async writeBatch(plans: readonly SetPlan[], now: number, session: ClientSession, quiet: boolean): Promise<SetOutcome[]> {
    if (!plans.every(isUnconditionalOverwrite)) {
      const outcomes: SetOutcome[] = [];
      for (const plan of plans) outcomes.push(await this.setExactly(plan, now, session, quiet));
      return outcomes;
    }
    const writeIds = plans.map(() => randomUUID());
    await this.items.bulkWrite(
      plans.map((plan, index) => {
        const update = setUpdate(plan, now, writeIds[index], { quiet });
        return { updateOne: { filter: update.filter, update: update.pipeline, upsert: true } };
      }),
      { session, ordered: true },
    );
    // The versions the pipelines wrote, read in the same transaction (before EV6's deletes below).
    const written = await this.items
      .find({ $or: plans.map((plan) => keyFilter(plan.key)) }, { session, projection: { ns: 1, part: 1, ver: 1 } })
      .toArray();
    const versions = new Map(written.map((document) => [keyFromParts(document.ns, document.part).full, storedVersion(document.ver)]));
    // EV6: an item written with a ttl already past is created and expires at once, as on the
    // embedded engine; a seed may write one key twice (SE3), and only the last write stays.
    const last = new Map(plans.map((plan, index) => [plan.key.full, index]));
    const expired = plans
      .map((plan, index) => ({ plan, index }))
      .filter(({ plan, index }) => last.get(plan.key.full) === index && expiresAtWrite(plan, now));
    if (expired.length > 0) {
      await this.items.deleteMany({ $or: expired.map(({ plan, index }) => ({ ...keyFilter(plan.key), _w: writeIds[index] })) }, { session });
    }
    // An unconditional overwrite's item does not depend on what was stored (M2), but for its version:
    // a key written twice (SE3) was at one less after its earlier write.
    const laterWrites = new Map<string, number>();
    return [...plans]
      .reverse()
      .map((plan) => {
        const later = laterWrites.get(plan.key.full) ?? 0;
        laterWrites.set(plan.key.full, later + 1);
        const version = (versions.get(plan.key.full) ?? 1) - later;
        return { item: { ...applySet(undefined, plan, now).item, version } };
      })
      .reverse();
  }

  /** R2, R5: removes the keys together and reports those that held a live item. */
  async remove(keys: readonly Key[], now: number, options: RemoveOptions = {}): Promise<Key[]> {
    if (keys.length === 0) return [];
    return guard(() =>
      this.transaction(
        async (session) => {
          const filter = { $or: keys.map(keyFilter) };
          const found = await this.items.find(filter, { session, projection: { ns: 1, part: 1, expires: 1, ver: 1 } }).toArray();
          if (options.ifVersion !== undefined) {
            // Read in the transaction that deletes: a write between the check and the delete aborts it.
            const stored = found.find((document) => document.ns === keys[0].ns && document.part === keys[0].part);
            const live = stored && !(stored.expires instanceof Date && stored.expires.getTime() <= now);
            const version = live ? storedVersion(stored.ver) : 0;
            if (version !== options.ifVersion) throw versionMismatch(options.ifVersion, version);
          }
          if (found.length > 0) await this.items.deleteMany(filter, { session });
          const live = new Set(
            found
              .filter((document) => !(document.expires instanceof Date) || document.expires.getTime() > now)
              .map((document) => keyFromParts(document.ns, document.part).full),
          );
          return keys.filter((key) => live.has(key.full));
        },
        options.idempotency && { write: options.idempotency, codec: REMOVED_KEYS },
      ),
    );
  }

  /**
   * SE2: every item goes, each with its `deleted` event from the change
   * stream. Without events (imports and clones that ask), each item is
   * marked so the feed passes its delete over, and marked and deleted in the
   * same transaction, a bounded batch at a time: a crash between the two
   * would leave items marked, and their later deletes (a remove, an expiry)
   * would then be passed over too; one transaction for the whole
   * environment would outgrow MongoDB's limits.
   */
  async clear(now: number, options: WriteOptions = {}): Promise<number> {
    return guard(async () => {
      const live = await this.items.countDocuments(liveFilter(now));
      if (options.events !== false) {
        await this.items.deleteMany({});
        return live;
      }
      for (;;) {
        const batch = await this.items.find({}, { projection: { _id: 1 }, limit: QUIET_CLEAR_BATCH }).toArray();
        if (batch.length === 0) return live;
        const ids = { _id: { $in: batch.map((document) => document._id) } };
        await this.transaction(async (session) => {
          await this.items.updateMany(ids, { $set: { _q: "d" } }, { session });
          await this.items.deleteMany(ids, { session });
        });
      }
    });
  }

  /**
   * All or nothing, whatever the size: the clear and the writes are one
   * transaction, each item still its own change event (every `deleted`, then
   * every `created`, as on the embedded engine), so the environment shows the
   * old content or the new, also across a crash. A small replace is held in
   * memory and run by withTransaction, which reruns it on a write conflict. A
   * larger one streams chunk by chunk through one transaction (one chunk in
   * memory at a time) and is not rerun: its source cannot be read twice. What
   * MongoDB cannot hold in one transaction (TransactionTooLargeForCache, the
   * 60 s lifetime) aborts it, nothing is written, and the caller gets
   * RESOURCE_EXHAUSTED or UNAVAILABLE with the reason — never a part.
   * Every plan was validated before this runs (SE3).
   */
  async replaceAll(chunks: AsyncIterable<readonly SetPlan[]>, now: number, options: BulkOptions = {}): Promise<number> {
    const quiet = options.events === false;
    const source = chunks[Symbol.asyncIterator]();
    const held: (readonly SetPlan[])[] = [];
    let exhausted = false;
    while (held.length <= REPLAYABLE_REPLACE_CHUNKS) {
      options.signal?.throwIfAborted();
      const next = await source.next();
      if (next.done) {
        exhausted = true;
        break;
      }
      held.push(next.value);
    }
    const clearAll = async (session: ClientSession) => {
      // A quiet clear marks each item so the feed passes its delete over (skip_events).
      if (quiet) await this.items.updateMany({}, { $set: { _q: "d" } }, { session });
      await this.items.deleteMany({}, { session });
    };
    if (exhausted) {
      options.signal?.throwIfAborted();
      await guard(() =>
        this.transaction(async (session) => {
          await clearAll(session);
          for (const plans of held) if (plans.length > 0) await this.writeBatch(plans, now, session, quiet);
        }),
      );
      return held.reduce((sum, plans) => sum + plans.length, 0);
    }
    return guard(async () => {
      const session = this.options.client.startSession();
      try {
        session.startTransaction({ writeConcern: { w: "majority" } });
        await clearAll(session);
        let written = 0;
        const write = async (plans: readonly SetPlan[]) => {
          options.signal?.throwIfAborted();
          if (plans.length > 0) await this.writeBatch(plans, now, session, quiet);
          written += plans.length;
        };
        for (let plans = held.shift(); plans; plans = held.shift()) await write(plans);
        for (let next = await source.next(); !next.done; next = await source.next()) await write(next.value);
        await session.commitTransaction();
        return written;
      } catch (error) {
        if (session.inTransaction()) await session.abortTransaction().catch(() => undefined);
        throw error;
      } finally {
        await session.endSession();
      }
    });
  }

  /**
   * T7, EV6: the TTL index deletes expired items within about a minute; the
   * sweeper makes it prompt, one chunk (expiredChunk) per call. Either way
   * each delete is one `deleted` event, marked expired by the feed. `now`
   * should be sweepTime()'s: see there why not plain Date.now().
   */
  async purgeExpired(now: number): Promise<number> {
    return guard(async () => {
      const chunk = expiredChunk(now);
      const ids = (await this.items.find(chunk.filter, chunk.options).toArray()).map((document) => document._id);
      return ids.length === 0 ? 0 : (await this.items.deleteMany(expiredChunkDelete(ids, now))).deletedCount;
    });
  }

  async close(): Promise<void> {
    await this.changeLog.stop();
  }

  /**
   * A counter on a live number is one `$inc` (incrementUpdate). Otherwise,
   * or when that matched nothing, the path is one findOneAndUpdate of an
   * update pipeline (setUpdate). When it did not
   * apply (a check in the filter failed, the pipeline refused the value, or
   * two upserts of a new key raced), the exact path decides: a transaction
   * that reads the item, applies the pure applySet (which throws the precise
   * error of S5's order) and writes the result. Checks are never made
   * outside an atomic step.
   */
  private async setOne(plan: SetPlan, now: number): Promise<SetOutcome> {
    const writeId = randomUUID();
    const increment = incrementUpdate(plan, now, writeId);
    if (increment) {
      const { filter, update, arrayFilters } = increment;
      const counted = await this.items.findOneAndUpdate(filter, update, {
        returnDocument: "after",
        ...(arrayFilters ? { arrayFilters } : {}),
      });
      if (counted) return { item: decodeItem(counted) };
    }
    const update = setUpdate(plan, now, writeId);
    let document: WithId<ItemDocument> | null = null;
    try {
      document = await this.items.findOneAndUpdate(update.filter, update.pipeline, {
        upsert: update.upsert,
        returnDocument: "after",
      });
    } catch (error) {
      if (!isDuplicateKey(error)) throw error;
      // E1: the upsert's insert collided with a live item (an expired one would have matched).
      if (plan.exists === false) throw itemExists();
    }
    if (document && document._w === writeId) {
      const item = decodeItem(document);
      if (!isLive(item, now)) {
        // EV6: a write whose ttl is already past is created, then expires at once.
        await this.items.deleteOne({ ...keyFilter(plan.key), _w: writeId });
      }
      return { item };
    }
    if (document) {
      // The pipeline refused, and `document` is exactly what it saw: applySet names the error.
      // If applySet accepts, the pipeline's size bound was above the exact size (V8): decide exactly.
      const stored = decodeItem(document);
      applySet(isLive(stored, now) ? stored : undefined, plan, now);
    }
    return this.transaction((session) => this.setExactly(plan, now, session, false));
  }

  /** Reads, applies and writes one item inside the caller's transaction. */
  private async setExactly(plan: SetPlan, now: number, session: ClientSession, quiet: boolean): Promise<SetOutcome> {
    const stored = await this.items.findOne(keyFilter(plan.key), { session });
    const current = stored ? decodeItem(stored) : undefined;
    const live = current && isLive(current, now) ? current : undefined;
    const outcome = applySet(live, plan, now);
    const expired = !isLive(outcome.item, now);
    const document = {
      ...encodeItem(outcome.item, { writeId: randomUUID(), created: !live }),
      ...(quiet ? { _q: expired ? ("d" as const) : ("w" as const) } : {}),
    };
    // The key in the filter too: a sharded collection routes by it.
    if (stored) await this.items.replaceOne({ _id: stored._id, ...keyFilter(plan.key) }, document, { session });
    else await this.items.insertOne(document, { session });
    // EV6, as in setOne.
    if (expired) await this.items.deleteOne(keyFilter(plan.key), { session });
    return outcome;
  }

  /**
   * A read plan's shapes in order until the page is full (queries.ts), by
   * count or by bytes (PageBudget): documents are measured from their cells
   * (valueJsonBytes) before any is decoded, and the first that does not fit
   * ends the page with more to come. The cursor holds one batch at a time,
   * which MongoDB caps at 16 MiB.
   */
  private async read(plan: ReadPlan, bounds: PageBounds, options?: ReadOptions): Promise<FetchedPage> {
    return guard(async () => {
      const budget = new PageBudget(bounds.limit, bounds.maxBytes);
      const found: ItemRecord[] = [];
      const started = performance.now();
      for (const shape of plan) {
        // One past the page: whether it exists is P6's "more".
        const wanted = bounds.limit + 1 - found.length;
        const cursor = this.items
          .find(shape.filter, readTimeLimit(options, performance.now() - started))
          .sort(shape.sort)
          .hint(shape.hint)
          .limit(wanted)
          .batchSize(wanted);
        try {
          for await (const document of cursor) {
            if (!budget.admits(valueJsonBytes(document))) return { items: found, more: true };
            found.push(decodeItem(document));
          }
        } finally {
          await cursor.close();
        }
      }
      return { items: found, more: false };
    });
  }

  /**
   * Runs the body in a transaction. With `replay`, a record of the key within
   * the window answers instead of the body (nothing written), or the body's
   * outcome is recorded in the same transaction (idempotency.ts).
   */
  private async transaction<T>(
    body: (session: ClientSession) => Promise<T>,
    replay?: { readonly write: IdempotentWrite; readonly codec: OutcomeCodec<T> },
  ): Promise<T> {
    const session = this.options.client.startSession();
    const windowMs = this.options.idempotencyWindowMs ?? DEFAULT_IDEMPOTENCY_WINDOW_MS;
    const run = async (): Promise<T> => {
      if (!replay) return body(session);
      const record = await this.records.findOne(replayableFilter(replay.write.key, Date.now(), windowMs), { session });
      if (record) {
        if (record.f !== replay.write.fingerprint) throw idempotencyKeyReused();
        return replay.codec.decode(record.o);
      }
      const outcome = await body(session);
      const document = idempotencyRecord(replay.write, replay.codec.encode(outcome), Date.now(), windowMs);
      // Replaces a record past the window that the TTL monitor has not deleted yet.
      await this.records.replaceOne({ _id: document._id }, document, { session, upsert: true });
      return outcome;
    };
    try {
      // withTransaction reruns the whole body on TransientTransactionError (write conflicts).
      return await session.withTransaction(run, { writeConcern: { w: "majority" } });
    } finally {
      await session.endSession();
    }
  }

  private changeSource(): ChangeSource {
    const { db } = this.options;
    const heads = db.collection<{ _id: string; n: number }>(COLLECTIONS.heads);
    const subscriptions = db.collection<SubscriptionDocument>(COLLECTIONS.subscriptions);
    return {
      open: (resumeAfter?: ResumeToken): ChangeCursor =>
        // One database-wide stream, filtered to items and markers: a head marker and the items it
        // follows are then in one order, and the same tokens resume the consumer and catch-ups.
        db.watch(STREAM_PIPELINE, { ...STREAM_OPTIONS, ...(resumeAfter ? { resumeAfter } : {}) }) as unknown as ChangeCursor,
      markHead: async () => {
        const marked = await heads.findOneAndUpdate({ _id: "head" }, { $inc: { n: 1 } }, { upsert: true, returnDocument: "after" });
        return marked!.n;
      },
      // The field keeps its name `token`: it holds the position of one (services/feed/token.ts).
      saveSubscription: async (name, token) => {
        const at = new Date();
        if ((await subscriptions.updateOne({ _id: name }, { $set: { token, at } })).matchedCount > 0) return;
        // Two new names at once may both pass the count: the bound is approximate by at most the racing Watches.
        if ((await subscriptions.countDocuments({}, { limit: MAX_SUBSCRIPTIONS })) >= MAX_SUBSCRIPTIONS) {
          const forgettable = forgettableSubscription(at.getTime(), this.options.changeRetentionMs);
          if (!(await subscriptions.findOneAndDelete(forgettable.filter, { sort: forgettable.sort }))) throw tooManySubscriptions();
        }
        await subscriptions.updateOne({ _id: name }, { $set: { token, at } }, { upsert: true });
      },
      loadSubscription: async (name) => (await subscriptions.findOne({ _id: name }))?.token,
      writeHistory: async (documents) => {
        await this.historyLog.bulkWrite(historyWrites(documents), { ordered: true });
      },
    };
  }
}

async function guard<T>(body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (error) {
    throw fromMongoError(error);
  }
}
