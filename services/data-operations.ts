import { createHash } from "node:crypto";
import { decodeLabelCursor, encodeLabelCursor } from "../core/cursor.js";
import { invalidArgument } from "../core/errors.js";
import { parseKeyExpression, rangeIncludes, type KeyRange } from "../core/expressions.js";
import type { HistoryEntry } from "../core/history.js";
import type { ItemRecord } from "../core/item.js";
import { hasLoneSurrogate, hasOwn, isJsonObject, setOwn, utf8Length, type JsonObject } from "../core/json.js";
import { isSimpleKey, looksLikeExpression, MAX_KEY_BYTES, parseKey, type Key } from "../core/keys.js";
import { checkBatchSize, MAX_PAGE_BYTES, MAX_SEGMENTS, parseLabelName, resolveLimit } from "../core/limits.js";
import { bulkChunks } from "../core/bulk-chunks.js";
import { checkIfVersion, planAdd, planBatchSet, planSeed, planSet, type SetInput } from "../core/set-plan.js";
import type { LabelNumber, LabelPosition } from "../core/item.js";
import type { FetchedPage, IdempotentWrite, ReadOptions, ScanFilter, Store } from "./stores/store.js";

/**
 * The operations of the data API in domain terms: each validates and plans
 * with the pure domain, makes its store calls, and shapes the result. The
 * handlers only translate protobuf to and from these.
 */

export interface PageResult {
  readonly items: ItemRecord[];
  readonly lastKey?: string;
}

export interface QueryInput {
  readonly expression: string;
  readonly label: string;
  readonly limit: number;
  readonly reverse: boolean;
  readonly start: string;
}

export interface ScanInput {
  readonly limit: number;
  readonly start: string;
  readonly label: string;
  readonly attributes: readonly string[];
  readonly segment?: number;
  readonly totalSegments?: number;
  readonly count: boolean;
}

export type Clock = () => number;

export class DataOperations {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock = Date.now,
  ) {}

  /** With `asOf` (epoch ms), the item as it was then (Store.getAsOf). */
  async get(rawKey: string, reads: ReadOptions = {}, asOf?: number): Promise<ItemRecord | undefined> {
    const key = singleKey(rawKey, "Get");
    if (asOf !== undefined) return this.store.getAsOf(key, asOf, this.clock(), reads);
    return this.store.get(key, this.clock(), reads);
  }

  /** A page of a key's retained changes, newest first, with `lastKey` iff older ones follow (P6). */
  async history(
    input: { key: string; limit: number; start: string },
    reads: ReadOptions = {},
  ): Promise<{ entries: HistoryEntry[]; lastKey?: string }> {
    const key = singleKey(input.key, "History");
    const limit = resolveLimit(input.limit);
    const before = input.start === "" ? undefined : input.start;
    const page = await this.store.history({ key, limit, before }, this.clock(), reads);
    return { entries: page.entries, lastKey: page.more ? page.entries[page.entries.length - 1].position : undefined };
  }

  /** B1-B3: live items in the order of their first mention. */
  async batchGet(rawKeys: readonly string[], reads: ReadOptions = {}): Promise<ItemRecord[]> {
    checkBatchSize(rawKeys.length, "keys", "batch get");
    const keys = uniqueKeys(rawKeys.map(exactKey));
    const found = await this.store.getMany(keys, this.clock(), reads);
    const byKey = new Map(found.map((item) => [item.key.full, item]));
    return keys.flatMap((key) => byKey.get(key.full) ?? []);
  }

  async query(input: QueryInput, reads: ReadOptions = {}): Promise<PageResult> {
    const limit = resolveLimit(input.limit);
    const range = parseKeyExpression(input.expression);
    const now = this.clock();
    if (input.label === "") {
      const after = input.start === "" ? undefined : inNamespaceOf(range, parseKey(input.start));
      const page = await this.store.queryKeys({ range, reverse: input.reverse, limit, maxBytes: MAX_PAGE_BYTES, after }, now, reads);
      return { items: page.items, lastKey: lastOf(page)?.key.full };
    }
    const label = parseLabelName(input.label);
    const after = input.start === "" ? undefined : decodeLabelCursor(input.start);
    if (after) inNamespaceOf(range, after.label);
    const page = await this.store.queryLabel({ label, range, reverse: input.reverse, limit, maxBytes: MAX_PAGE_BYTES, after }, now, reads);
    const last = lastOf(page);
    return { items: page.items, lastKey: last && labelCursor(last, label) };
  }

  /** The number of live items a query of the same expression and label would page through. */
  async count(input: { readonly expression: string; readonly label: string }, reads: ReadOptions = {}): Promise<number> {
    const range = parseKeyExpression(input.expression);
    const label = input.label === "" ? undefined : parseLabelName(input.label);
    return this.store.countRange({ range, label }, this.clock(), reads);
  }

  async set(input: SetInput, idempotencyKey = ""): Promise<ItemRecord> {
    const now = this.clock();
    const plan = planSet(input, now);
    const outcome = await this.store.set(plan, now, idempotent(idempotencyKey, "set", input));
    return outcome.item;
  }

  async batchSet(items: readonly SetInput[], options: { overwrite?: boolean; removeNulls: boolean }, idempotencyKey = ""): Promise<ItemRecord[]> {
    const now = this.clock();
    const plans = planBatchSet(items, options, now);
    const outcomes = await this.store.setMany(plans, now, idempotent(idempotencyKey, "batchSet", [items, options]));
    return outcomes.map((outcome) => outcome.item);
  }

  async add(
    input: { key: string; attribute?: string; amount: number; overwrite: boolean; ifVersion?: number },
    idempotencyKey = "",
  ): Promise<ItemRecord> {
    const now = this.clock();
    const plan = planAdd(input, now);
    const outcome = await this.store.set(plan, now, idempotent(idempotencyKey, "add", input));
    return outcome.item;
  }

  /** R1-R5: returns the keys that held a live item. */
  async remove(rawKeys: readonly string[], options: { readonly ifVersion?: number } = {}, idempotencyKey = ""): Promise<Key[]> {
    const idempotency = idempotent(idempotencyKey, "remove", [rawKeys, options]);
    checkBatchSize(rawKeys.length, "keys", "batch remove");
    const ifVersion = checkIfVersion(options.ifVersion, 1);
    if (ifVersion !== undefined && new Set(rawKeys.map((raw) => parseKey(raw).full)).size !== 1) {
      throw invalidArgument("INVALID_OPTION", "'ifVersion' applies to one item: remove exactly one key with it");
    }
    const keys = uniqueKeys(
      rawKeys.map((raw) => {
        const key = parseKey(raw);
        if (looksLikeExpression(key)) {
          throw invalidArgument("INVALID_KEY", "You cannot delete items using conditionals. Please remove each item separately.");
        }
        return key;
      }),
    );
    return this.store.remove(keys, this.clock(), { ...(ifVersion === undefined ? {} : { ifVersion }), ...idempotency });
  }

  async scan(input: ScanInput, reads: ReadOptions = {}): Promise<PageResult & { count?: number }> {
    const limit = resolveLimit(input.limit);
    const filter = scanFilter(input);
    const now = this.clock();
    if (input.count) return { items: [], count: await this.store.count(filter, now, reads) };
    let after: Key | LabelPosition | undefined;
    if (input.start !== "") after = filter.label ? decodeLabelCursor(input.start) : parseKey(input.start);
    const page = await this.store.scan({ ...filter, limit, maxBytes: MAX_PAGE_BYTES, after }, now, reads);
    const items = input.attributes.length > 0 ? page.items.map((item) => project(item, input.attributes)) : page.items;
    const last = lastOf(page);
    return { items, lastKey: last && (filter.label ? labelCursor(last, filter.label) : last.key.full) };
  }

  /** A page of the namespaces holding live items, with `lastKey` iff more follow (P6). */
  async namespaces(input: { limit: number; start: string }, reads: ReadOptions = {}): Promise<{ namespaces: string[]; lastNamespace?: string }> {
    const limit = resolveLimit(input.limit);
    const after = input.start === "" ? undefined : namespaceStart(input.start);
    const found = await this.store.namespaces({ limit: limit + 1, after }, this.clock(), reads);
    const namespaces = found.slice(0, limit);
    return { namespaces, lastNamespace: found.length > limit ? namespaces[namespaces.length - 1] : undefined };
  }

  /** SE1-SE3: everything is validated before the environment is touched. */
  /**
   * SE1-SE3. With overwrite the environment is replaced all or nothing
   * (Store.replaceAll): a failure, a cancelled call or a crash part-way
   * leaves the old content. Without, each chunk commits on its own, as SE1
   * says (written in chunks), after every item has been validated (SE3).
   * Between chunks the event loop runs: other calls proceed, and a cancelled
   * or timed-out call (its signal fires on a timer) stops instead of writing
   * on for no one.
   */
  async seed(items: readonly SetInput[], overwrite: boolean, signal?: AbortSignal): Promise<number> {
    const now = this.clock();
    const plans = planSeed(items, now);
    if (overwrite) return this.store.replaceAll(asyncChunks(bulkChunks(plans)), now, { signal });
    let first = true;
    for (const chunk of bulkChunks(plans)) {
      if (!first) await new Promise((resolve) => setImmediate(resolve));
      first = false;
      signal?.throwIfAborted();
      await this.store.setMany(chunk, this.clock());
    }
    return plans.length;
  }
}

/** A replaceAll reads its chunks as they come; plans already in memory come at once. */
export async function* asyncChunks<T>(chunks: Iterable<T>): AsyncGenerator<T> {
  yield* chunks;
}

const MAX_IDEMPOTENCY_KEY_BYTES = 128;

/**
 * A write's idempotency key, checked, with the fingerprint of the request as
 * the caller made it (before planning, which reads the clock), so a retry of
 * the same call has the same fingerprint and any other call another.
 */
function idempotent(key: string, operation: string, request: unknown): { idempotency?: IdempotentWrite } {
  if (key === "") return {};
  if (Buffer.byteLength(key, "utf8") > MAX_IDEMPOTENCY_KEY_BYTES || key.trim() !== key) {
    throw invalidArgument("INVALID_OPTION", `An idempotency key has 1 to ${MAX_IDEMPOTENCY_KEY_BYTES} bytes and no leading or trailing whitespace`);
  }
  const fingerprint = createHash("sha256")
    .update(JSON.stringify([operation, request]))
    .digest("base64url");
  return { idempotency: { key, fingerprint } };
}

/** P6: the item a page continues after, when more follow. */
function lastOf(page: FetchedPage): ItemRecord | undefined {
  return page.more ? page.items[page.items.length - 1] : undefined;
}

/** The one exact key a Get or History names. */
function singleKey(rawKey: string, call: string): Key {
  const key = parseKey(rawKey);
  if (looksLikeExpression(key)) {
    parseKeyExpression(rawKey); // a malformed expression gets its own message (Q2-Q4)
    throw invalidArgument("INVALID_KEY", `${call} takes an exact key: use Query for key expressions`);
  }
  return key;
}

function exactKey(raw: string): Key {
  const key = parseKey(raw);
  if (looksLikeExpression(key)) {
    // B2 [L]: the published client would run the expression as a literal key.
    throw invalidArgument("INVALID_KEY", "Batch get takes exact keys only: use one query per key expression");
  }
  return key;
}

/**
 * P4: a start, of a key query or a label query, lies in the queried
 * namespace; a simple key is in none but its own (K8), so it starts only a
 * query of that simple key.
 */
function inNamespaceOf(range: KeyRange, start: Key): Key {
  if (start.ns !== range.ns || (isSimpleKey(start) && !rangeIncludes(range, start))) {
    throw invalidArgument("INVALID_OPTION", "'start' must be a key in the queried namespace");
  }
  return start;
}

/** A namespace as a previous page returned it: a position only, compared bytewise like every namespace (K4, K7). */
function namespaceStart(start: string): string {
  if (start.includes(":") || hasLoneSurrogate(start) || utf8Length(start) > MAX_KEY_BYTES) {
    throw invalidArgument("INVALID_OPTION", "'start' must be a namespace: a previous page's lastNamespace");
  }
  return start;
}

function uniqueKeys(keys: readonly Key[]): Key[] {
  const seen = new Set<string>();
  return keys.filter((key) => !seen.has(key.full) && seen.add(key.full));
}

function labelCursor(item: ItemRecord, label: LabelNumber): string {
  return encodeLabelCursor({ label: item.labels[label - 1]!, item: item.key });
}

/** SC5: segment and totalSegments go together, 0 <= segment < totalSegments <= 1000. */
function scanFilter(input: ScanInput): ScanFilter {
  const label = input.label === "" ? undefined : parseLabelName(input.label);
  const { segment, totalSegments } = input;
  if (segment === undefined && totalSegments === undefined) return { label };
  if (segment === undefined || totalSegments === undefined) {
    throw invalidArgument("INVALID_OPTION", "'segment' and 'totalSegments' must be given together");
  }
  if (!Number.isInteger(totalSegments) || totalSegments < 1 || totalSegments > MAX_SEGMENTS) {
    throw invalidArgument("INVALID_OPTION", "'totalSegments' must be between 1 and 1000");
  }
  if (!Number.isInteger(segment) || segment < 0 || segment >= totalSegments) {
    throw invalidArgument("INVALID_OPTION", "'segment' must be at least 0 and less than 'totalSegments'");
  }
  return { label, segment: { index: segment, total: totalSegments } };
}

/** SC4: object values keep only the named root attributes; single values stay whole. */
function project(item: ItemRecord, attributes: readonly string[]): ItemRecord {
  if (!isJsonObject(item.value)) return item;
  const value: JsonObject = {};
  for (const attribute of attributes) {
    if (hasOwn(item.value, attribute)) setOwn(value, attribute, item.value[attribute]);
  }
  return { ...item, value };
}
