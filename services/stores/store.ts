import type { KeyRange } from "../../core/expressions.js";
import type { ItemRecord, LabelNumber, LabelPosition } from "../../core/item.js";
import type { HistoryEntry } from "../../core/history.js";
import type { Key } from "../../core/keys.js";
import type { SetOutcome } from "../../core/apply-set.js";
import type { SetPlan } from "../../core/set-plan.js";
import type { ChangeFeed } from "../feed/change-feed.js";

/**
 * The port every engine implements, and the only way the service reaches
 * data. Stores do I/O only: key expressions arrive parsed as ranges, writes
 * arrive planned; `now` (epoch ms) comes from the caller so every read hides
 * items expired at that instant (T7) and tests can control the clock.
 */
export interface Store {
  /** For the startup line: the engine and where its data lives. */
  describe(): string;

  /** The environment's change log, in commit order (EV7). */
  readonly feed: ChangeFeed;

  get(key: Key, now: number, options?: ReadOptions): Promise<ItemRecord | undefined>;
  /**
   * The key as it was at `at` (core/history.ts stateAt), from the change
   * log: OUT_OF_RANGE HISTORY_EXPIRED when the retained log no longer
   * reaches back to `at`, INVALID_ARGUMENT when `at` is after `now`.
   */
  getAsOf(key: Key, at: number, now: number, options?: ReadOptions): Promise<ItemRecord | undefined>;
  /**
   * One page of a key's retained changes, newest first (History), bounded by
   * count and by bytes (PageBudget, measured on the stored change before it
   * is decoded); `more` when older ones follow.
   */
  history(query: HistoryQuery, now: number, options?: ReadOptions): Promise<{ entries: HistoryEntry[]; more: boolean }>;
  /** The live items among the keys, in any order. */
  getMany(keys: readonly Key[], now: number, options?: ReadOptions): Promise<ItemRecord[]>;
  /** A page of the live items of a key range, in key order (K7, P3). */
  queryKeys(query: KeyQuery, now: number, options?: ReadOptions): Promise<FetchedPage>;
  /** A page of the live items whose label lies in a range, by label then key (L5). */
  queryLabel(query: LabelQuery, now: number, options?: ReadOptions): Promise<FetchedPage>;
  /** A page of the live items of the environment, by key (SC2) or by a label (SC3). */
  scan(query: ScanQuery, now: number, options?: ReadOptions): Promise<FetchedPage>;
  /**
   * The number of live items of a key range, or whose label lies in a range,
   * answered from an index without reading item values.
   */
  countRange(query: CountQuery, now: number, options?: ReadOptions): Promise<number>;
  /** The number of live items a scan would return, ignoring limit and start (SC6). */
  count(query: ScanFilter, now: number, options?: ReadOptions): Promise<number>;
  /**
   * Up to `limit` namespaces after `after` (K7 order) that hold a live
   * collection item (T7, K8), found by jumping through the key index from one
   * namespace to the next: the cost is per namespace, not per item.
   */
  namespaces(query: NamespaceQuery, now: number, options?: ReadOptions): Promise<string[]>;

  /** One atomic write with its checks (S4, E1, E2, C1). */
  set(plan: SetPlan, now: number, options?: Pick<WriteOptions, "idempotency">): Promise<SetOutcome>;
  /** Atomic writes that commit together or not at all (BS3). */
  setMany(plans: readonly SetPlan[], now: number, options?: WriteOptions): Promise<SetOutcome[]>;
  /** Removes the keys together; returns those that held a live item (R2, R5). */
  remove(keys: readonly Key[], now: number, options?: RemoveOptions): Promise<Key[]>;
  /** Removes every item of the environment, each with its `deleted` event (SE2). */
  clear(now: number, options?: WriteOptions): Promise<number>;
  /**
   * Replaces every item of the environment with what the plans (overwrites,
   * in order) write, all or nothing, also across a crash: readers see the
   * old content until the new one is complete. Events as a clear followed by
   * setMany of each chunk would emit (SE2). The chunks are read one at a
   * time and the event loop runs between them. Returns the number of plans.
   */
  replaceAll(chunks: AsyncIterable<readonly SetPlan[]>, now: number, options?: BulkOptions): Promise<number>;
  /**
   * Deletes one bounded chunk of the items expired at `now`, each with one
   * `deleted` event (T7, EV6); returns how many (0: none are left). The
   * sweeper (sweeper.ts) asks chunk after chunk, yielding in between.
   */
  purgeExpired(now: number): Promise<number>;

  close(): Promise<void>;
}

export interface ReadOptions {
  /**
   * The time the caller still waits (its deadline), in ms: a database server
   * can stop a read nobody will wait for (MongoDB's maxTimeMS). A read that
   * runs out fails with a TimeoutError (DEADLINE_EXCEEDED).
   */
  readonly timeoutMs?: number;
}

/**
 * A write that carries an idempotency key (replay.ts): its outcome is stored
 * with it, atomically, and a retry within the window gets that outcome back.
 */
export interface IdempotentWrite {
  readonly key: string;
  /** A digest of the request: the same key with another request is IDEMPOTENCY_KEY_REUSED. */
  readonly fingerprint: string;
}

export interface RemoveOptions extends Pick<WriteOptions, "idempotency"> {
  /** With exactly one key: remove only if its live item has this version (VERSION_MISMATCH otherwise). */
  readonly ifVersion?: number;
}

export interface WriteOptions {
  /** false: write without change events (imports and clones that ask to skip them). */
  readonly events?: boolean;
  /** Store the outcome with the write, and replay it to a retry of the same request. */
  readonly idempotency?: IdempotentWrite;
}

export interface BulkOptions extends WriteOptions {
  /** Stops the work between chunks (a cancelled call, or its deadline); nothing is changed then. */
  readonly signal?: AbortSignal;
}

/**
 * What every page read takes: at most `limit` items (P2) and `maxBytes` of
 * their values' JSON (P7), applied by the store with a PageBudget as it reads
 * rows, before it decodes them, so a read's memory is bounded by its page.
 */
export interface PageBounds {
  readonly limit: number;
  /** Default: MAX_PAGE_BYTES, P7's 1 MiB. */
  readonly maxBytes?: number;
}

/** A page as a store reads it: its items, and whether a live item follows them (P6). */
export interface FetchedPage {
  readonly items: ItemRecord[];
  readonly more: boolean;
}

/** Where a page continues: strictly after this position in the query's direction (P4). */
export interface KeyQuery extends PageBounds {
  readonly range: KeyRange;
  readonly reverse: boolean;
  readonly after?: Key;
}

export interface HistoryQuery extends PageBounds {
  readonly key: Key;
  /** Continue with the changes before this one (an entry's `position`; a store refuses one it did not make). */
  readonly before?: string;
}

export interface NamespaceQuery {
  readonly limit: number;
  /** Continue strictly after this namespace. */
  readonly after?: string;
}

export interface LabelQuery extends PageBounds {
  readonly label: LabelNumber;
  readonly range: KeyRange;
  readonly reverse: boolean;
  readonly after?: LabelPosition;
}

/** What Count selects: a key range, or with `label` a range of that label's values. */
export interface CountQuery {
  readonly range: KeyRange;
  readonly label?: LabelNumber;
}

export interface ScanFilter {
  /** Only items with this label, in label order (SC3). */
  readonly label?: LabelNumber;
  /** SC5: this segment of `total`; an item's segment is segmentOf(key, total). */
  readonly segment?: { readonly index: number; readonly total: number };
}

export interface ScanQuery extends ScanFilter, PageBounds {
  /** A key for key order, a label position for label order. */
  readonly after?: Key | LabelPosition;
}
