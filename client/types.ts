/**
 * The public types of the drop-in `data` object. They follow @ampt/data 1.0.27's
 * `types/index.d.ts` overload for overload, so that our `Data` is assignable to
 * theirs (test/client/types-compat.ts checks it); where Larder accepts more (a
 * `Date` as ttl, `count` on scans) the types say so without narrowing anything.
 */

/** `label1` … `label5`. */
export type LabelName = "label1" | "label2" | "label3" | "label4" | "label5";

/** A label to query: `label1` … `label5` or the bare digits `1` … `5` (L4). */
export type LabelSelector = LabelName | "1" | "2" | "3" | "4" | "5";

export interface GetOptions {
  /** Return `{ key, value, created, modified, ttl?, labelN? }` objects (M4). */
  meta?: boolean;
  /** Descending order (P3). */
  reverse?: boolean;
  /** Page size, 1 to 1000; 0 or absent means 100 (P2). */
  limit?: number;
  /** Continue after this key, or after a label page's `lastKey` (P4, P5). */
  start?: string;
  /** Query this label's values instead of keys (L3). */
  label?: LabelSelector;
  /**
   * Larder's addition, for one exact key: read the item as it was at this instant
   * (undefined if it did not exist then). Within the change history's retention;
   * an older instant fails OUT_OF_RANGE (HISTORY_EXPIRED), a future one INVALID_ARGUMENT.
   */
  asOf?: Date;
}

export interface GetOptionsMeta extends GetOptions {
  meta: true;
}

/** A label in a set: a value, `[value]` to set it only when absent, `null` to remove it (L2). */
export type LabelSetting = string | [string] | null;

export interface SetOptions {
  /** Seconds (relative, or absolute epoch seconds), an ISO 8601 string, a Date, or null to remove (T1-T4). */
  ttl?: number | string | Date | null;
  /** Replace the item and its metadata instead of merging (M2). */
  overwrite?: boolean;
  label1?: LabelSetting;
  label2?: LabelSetting;
  label3?: LabelSetting;
  label4?: LabelSetting;
  label5?: LabelSetting;
  /** Values used where the item has none (D1-D5). */
  default?: any;
  /** The integrity check: the item's `created` in epoch seconds or milliseconds (C1, C2). */
  created?: number;
  /** false stores null root attributes; defaults to `data.removeNulls` (V6, V9). */
  removeNulls?: boolean;
  /** false: only create; true: only update an existing item (E1, E2). */
  exists?: boolean;
  /**
   * Larder's addition: write only if the item is at this version (0: only if there is
   * none); otherwise FAILED_PRECONDITION with reason VERSION_MISMATCH, nothing written.
   */
  ifVersion?: number;
  /**
   * Larder's addition: the write's idempotency key (default: a random one per call, which
   * the client's own retries reuse). A retry with it within the server's window gets the
   * first outcome instead of writing again.
   */
  idempotencyKey?: string;
  /** Return the meta form (M4). */
  meta?: boolean;
}

export interface SetOptionsMeta extends SetOptions {
  meta: true;
}

export interface ScanOptions {
  meta?: boolean;
  limit?: number;
  /** A previous scan page's `lastKey`. */
  start?: string;
  /** Only items with this label, in label order (SC3). */
  label?: LabelSelector;
  /** Only these root attributes of object values (SC4). */
  attributes?: string[];
  /** With `totalSegments`: this segment, from 0 (SC5). */
  segment?: number;
  totalSegments?: number;
  /** Return `{ items: [], count }` instead of items (SC6). */
  count?: boolean;
}

export interface RemoveOptions {
  /** Larder's addition: remove the one key given only if its item is at this version. */
  ifVersion?: number;
  /** Larder's addition: the write's idempotency key (see SetOptions). */
  idempotencyKey?: string;
}

export interface SeedOptions {
  /** Remove every item of the environment first (SE2). */
  overwrite?: boolean;
}

export type SetBatchOptions =
  | {
      /** Return the meta form of each written item. */
      meta?: boolean;
      removeNulls?: boolean;
      /** Batch items are always overwritten (BS2); false is refused. */
      overwrite?: boolean;
      /** Larder's addition: the write's idempotency key (see SetOptions). */
      idempotencyKey?: string;
    }
  | boolean;

export interface AddOptions {
  /** Set the counter to the number instead of adding (A5). */
  overwrite?: boolean;
  /** Larder's addition: add only if the item is at this version (0: only if there is none). */
  ifVersion?: number;
  /** Larder's addition: the write's idempotency key (see SetOptions). */
  idempotencyKey?: string;
  meta?: boolean;
}

export interface HistoryOptions {
  /** Changes per page, 1 to 1000; 0 or absent means 100. */
  limit?: number;
  /** A previous page's `lastKey`: continue with older changes. */
  start?: string;
}

/** One change of a key, as `history()` lists it. */
export interface HistoryEntry<T> {
  name: "created" | "updated" | "deleted";
  /** For a `deleted`: the item expired (T7) rather than being removed. */
  expired: boolean;
  /** When the change was committed. */
  time: Date;
  /** The item the change left, in the meta form with its version; for a `deleted`, the item deleted. */
  item: KeyValueMeta<T>;
}

/** A page of a key's changes, newest first: `lastKey` and `next` are present iff older ones follow. */
export interface HistoryResponse<T> {
  entries: HistoryEntry<T>[];
  lastKey?: string;
  next?: () => Promise<HistoryResponse<T>>;
}

export interface Metadata {
  created?: Date;
  modified?: Date;
  ttl?: Date;
  /** Larder's addition: 1 at creation, one more with each write; pass it back as `ifVersion`. */
  version?: number;
  label1?: string;
  label2?: string;
  label3?: string;
  label4?: string;
  label5?: string;
}

export interface KeyValue<T> {
  key: string;
  value: T;
}

export type KeyValueMeta<T> = KeyValue<T> & Metadata;

export type GetResponse<T> = T | undefined;
export type GetResponseMeta<T> = KeyValueMeta<T> | undefined;

/** A page of results: `lastKey` and `next` are present iff more items match (P6, P8). */
export interface GetBatchResponse<T> {
  items: KeyValue<T>[];
  lastKey?: string;
  next?: () => Promise<GetBatchResponse<T>>;
}

export interface GetBatchResponseMeta<T> {
  items: KeyValueMeta<T>[];
  lastKey?: string;
  next?: () => Promise<GetBatchResponseMeta<T>>;
}

export type ScanResponse<T> =
  | {
      items: KeyValue<T>[];
      lastKey?: string;
      next?: () => Promise<ScanResponse<T>>;
      /** With `count: true`: the number of live items (SC6). */
      count?: number;
    }
  | undefined;

export interface BatchSetItem<T> {
  key: string;
  value: T;
  default?: Partial<T>;
  ttl?: number | string | Date | null;
  label1?: string;
  label2?: string;
  label3?: string;
  label4?: string;
  label5?: string;
}

export type SetResponse<T> = T;
export type SetResponseMeta<T> = KeyValueMeta<T>;

/** `unprocessed` is never returned: a Larder batch is all or nothing (BS3). */
export interface SetBatchResponse<T> {
  items: KeyValue<T>[];
  unprocessed?: KeyValue<T>[];
}

export type AddResponse<T> = KeyValue<T> | T | undefined;

type Whitespace = "\n" | " ";
type Trim<T> = T extends `${Whitespace}${infer U}` ? Trim<U> : T extends `${infer U}${Whitespace}` ? Trim<U> : T;
type WildcardQuery = `${string}:${string | ""}*`;
type ComparisonQuery = `${string}:${string | ""}${Trim<"<"> | Trim<">"> | Trim<"<="> | Trim<">=">}${string}`;
type RangeQuery = `${string}:${string}${Trim<"|">}${string}`;
/** A key expression (Q1): `ns:*`, `ns:prefix*`, `ns:>x`, `ns:a|b` … */
export type Query = WildcardQuery | ComparisonQuery | RangeQuery;

export type EventName = "created" | "updated" | "deleted" | "*";
/** An event specifier (EV2): `created`, `updated:users:*`, `*:order_*:item_*` … */
export type ListenerPath = EventName | `${EventName}:${string}` | `${EventName}:${WildcardQuery}`;
/**
 * What an `on()` handler receives (EV4): @ampt/data's `{ name, item, previous? }`, items in
 * the meta form (M4), plus Larder's stable id, change time, resume token and expiry flag.
 */
export interface DataChangeEvent {
  name: "created" | "updated" | "deleted";
  item: any;
  previous?: any;
  /** The same on every delivery of this event: de-duplicates at-least-once delivery. */
  id: string;
  /** When the change was applied. */
  time: Date;
  resumeToken: string;
  /** A `deleted` caused by the item's ttl (EV6). */
  expired: boolean;
}
export type DataEventHandler = (event: DataChangeEvent) => unknown;

/** The `data` object: @ampt/data's `Data` interface plus the global `removeNulls` switch (V9). */
export interface Data {
  get<T>(keys: Query | string[], options: false): Promise<GetBatchResponse<T>>;
  get<T>(keys: Query | string[], options: true): Promise<GetBatchResponseMeta<T>>;
  get<T>(keys: Query | string[], options: GetOptionsMeta): Promise<GetBatchResponseMeta<T>>;
  get<T>(keys: Query | string[], options?: GetOptions): Promise<GetBatchResponse<T>>;
  get<T>(keys: string, options: false): Promise<GetResponse<T>>;
  get<T>(keys: string, options: true): Promise<GetResponseMeta<T>>;
  get<T>(keys: string, options: GetOptionsMeta): Promise<GetResponseMeta<T>>;
  get<T>(keys: string, options?: GetOptions): Promise<GetResponse<T>>;
  getByLabel<T>(label: LabelSelector, keys: Query | string[] | string, options?: GetOptions | boolean): Promise<GetBatchResponse<T>>;
  getByLabel<T>(label: LabelSelector, keys: Query | string[] | string, options: GetOptionsMeta): Promise<GetBatchResponseMeta<T>>;
  getByLabel<T>(label: LabelSelector, keys: Query | string[] | string, options: true): Promise<GetBatchResponseMeta<T>>;
  getByLabel<T>(label: LabelSelector, keys: Query | string[] | string, options: false): Promise<GetBatchResponse<T>>;
  scan<T>(options: ScanOptions | boolean): Promise<ScanResponse<T>>;
  /**
   * Larder's addition: the number of live items a key expression matches,
   * or with a label first, that label's expression (`count("label1", "city:*")`).
   * Answered from the index, never counting expired items.
   */
  count(keys: Query | string): Promise<number>;
  count(label: LabelSelector, keys: Query | string): Promise<number>;
  /**
   * Larder's addition: one exact key's changes within the change history's
   * retention, newest first, a page at a time.
   */
  history<T>(key: string, options?: HistoryOptions): Promise<HistoryResponse<T>>;
  set<T>(keys: BatchSetItem<T>[], opts?: SetBatchOptions | boolean): Promise<SetBatchResponse<T>>;
  set<T>(keys: string, value: T | Partial<T>, options: false): Promise<SetResponse<T>>;
  set<T>(keys: string, value: T | Partial<T>, options: true): Promise<SetResponseMeta<T>>;
  set<T>(keys: string, value: T | Partial<T>, options: SetOptionsMeta): Promise<SetResponseMeta<T>>;
  set<T>(keys: string, value: T | Partial<T>, options?: SetOptions): Promise<SetResponse<T>>;
  seed(data: any[] | string, options?: SeedOptions | boolean): Promise<{ items: number }>;
  remove(keys: string | string[], options?: RemoveOptions): Promise<boolean>;
  add<T>(key: string, value: number, opts?: AddOptions | boolean): Promise<AddResponse<T>>;
  add<T>(key: string, attribute: number | string, value: number | AddOptions | boolean, opts?: AddOptions | boolean): Promise<AddResponse<T>>;
  on: (name: ListenerPath | ListenerPath[], ...handler: [{ timeout: number }, DataEventHandler] | [DataEventHandler]) => void;
  /** The default of `removeNulls` for every later set (V9); assigning a non-boolean throws. */
  removeNulls: boolean;
}
