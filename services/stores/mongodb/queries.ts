import type { Document } from "mongodb";
import { narrowRange, rangeIncludes, type Bound, type KeyRange } from "../../../core/expressions.js";
import { compareUtf8, type Key } from "../../../core/keys.js";
import { LABEL_NUMBERS, type LabelNumber, type LabelPosition } from "../../../core/item.js";
import type { CountQuery, KeyQuery, LabelQuery, ReadOptions, ScanFilter, ScanQuery } from "../store.js";
import { labelFields } from "./codec.js";

/** The name MongoDB gives the unique key index; the hint of every key read. */
export const KEY_INDEX = "ns_1_part_1";
export const labelIndexName = (label: number) => `label${label}`;
export const TTL_INDEX = "expires_ttl";

/**
 * One index range scan: a filter whose indexed fields are equalities
 * followed by one range, the sort of the index (or its reverse) and that
 * index as the hint, so MongoDB never sorts in memory and reads at most the
 * keys it returns plus one (test/mongo/explain.spec.ts checks this).
 */
export interface ReadShape {
  readonly filter: Document;
  readonly sort: Record<string, 1 | -1>;
  readonly hint: string;
}

/**
 * A read is one or more shapes run in order until the page is full. A
 * continuation inside a compound index (after a label value tie, after a
 * namespace in a scan) cannot be one MongoDB range: index bounds are a
 * product of per-field intervals, and a tuple comparison written as $or
 * either leaves the leading field unbounded (reading everything before the
 * position on every later page) or depends on the planner merging branches.
 * So each step is an exact range of its own, and late pages cost what early ones do.
 */
export type ReadPlan = readonly ReadShape[];

/**
 * T7: the TTL monitor deletes expired items only about once a minute, so
 * every read excludes them itself. `$not: { $lte }` also matches a missing
 * field, without the $or that `$exists: false OR $gt` needs.
 */
export function liveFilter(now: number): Document {
  return { expires: { $not: { $lte: new Date(now) } } };
}

/**
 * Expired items for the sweeper, up to `bound`: the earlier of Larder's
 * clock and MongoDB's (sweepTime in mongo-engine.ts). ($$NOW would say the
 * same inside the query, but the delete command does not take it.)
 */
export function expiredFilter(bound: number): Document {
  return { expires: { $lte: new Date(bound) } };
}

/** Expired items the sweeper deletes per step: one step's ids are all Larder holds, and each delete is short. */
export const SWEEP_CHUNK = 500;

/**
 * One step of the sweep: the ids of the oldest expired items, in the TTL
 * index's order (only ids reach Larder, never values), then deleted by id with the
 * expiry checked again (an item rewritten meanwhile stays). A backlog of any
 * size drains step by step, each holding at most SWEEP_CHUNK ids in memory
 * and one short delete on the server.
 */
export function expiredChunk(bound: number): { filter: Document; options: { projection: Document; sort: Document; hint: string; limit: number } } {
  return {
    filter: expiredFilter(bound),
    options: { projection: { _id: 1, expires: 1 }, sort: { expires: 1 }, hint: TTL_INDEX, limit: SWEEP_CHUNK },
  };
}

export function expiredChunkDelete(ids: readonly unknown[], bound: number): Document {
  return { _id: { $in: ids }, ...expiredFilter(bound) };
}

/**
 * The subscription a new name may replace once an environment holds
 * MAX_SUBSCRIPTIONS: the least recently acknowledged, if it has gone
 * unacknowledged for the change retention (the embedded engine's rule too).
 */
export function forgettableSubscription(now: number, retentionMs: number): { filter: Document; sort: Record<string, 1> } {
  return { filter: { at: { $lt: new Date(now - retentionMs) } }, sort: { at: 1 } };
}

function boundsOf(range: Pick<KeyRange, "lower" | "upper">): Document {
  const bounds: Document = { [range.lower.inclusive ? "$gte" : "$gt"]: range.lower.value };
  if (range.upper) bounds[range.upper.inclusive ? "$lte" : "$lt"] = range.upper.value;
  return bounds;
}

/**
 * The caller's remaining time as the server's own limit on the read
 * (maxTimeMS), so a query nobody waits for any more stops on the server too.
 * Never 0, which MongoDB reads as "no limit". `spentMs`: what earlier steps
 * of the same read took (a plan may take several queries).
 */
export function readTimeLimit(options: ReadOptions = {}, spentMs = 0): { maxTimeMS?: number } {
  return options.timeoutMs === undefined ? {} : { maxTimeMS: Math.max(1, Math.ceil(options.timeoutMs - spentMs)) };
}

/** A range that holds no key part at all (a start past its end, P4), so nothing is read. */
export function isEmptyRange(range: { readonly lower: Bound; readonly upper?: Bound }): boolean {
  if (!range.upper) return false;
  const order = compareUtf8(range.lower.value, range.upper.value);
  return order > 0 || (order === 0 && !(range.lower.inclusive && range.upper.inclusive));
}

const direction = (reverse: boolean) => (reverse ? -1 : 1);
const beyond = (reverse: boolean) => (reverse ? "$lt" : "$gt");

/**
 * A key range (Q1-Q5, P4): the namespace is an equality and the key part is
 * bounded on both sides. MongoDB compares strings bytewise in UTF-8 under the
 * default (simple) collation, which is K7's order, so no regex and no
 * in-memory sort is ever needed. A start replaces the bound on its side
 * (narrowRange), so a late page is as cheap as the first.
 */
export function keyQueryPlan(query: KeyQuery, now: number): ReadPlan {
  const range = narrowRange(query.range, query.after?.part, query.reverse);
  if (isEmptyRange(range)) return [];
  const d = direction(query.reverse);
  return [{ filter: { ns: range.ns, part: boundsOf(range), ...liveFilter(now) }, sort: { ns: d, part: d }, hint: KEY_INDEX }];
}

/**
 * The label slot's partial index holds only items with that label; naming
 * `$exists: true` next to the bounds lets the planner prove the hint is
 * complete (a partial index is used only when the query implies its filter).
 */
function labelNs(field: string, condition: Document): Document {
  return { [field]: { ...condition, $exists: true } };
}

function labelSort(label: LabelNumber, reverse: boolean): Record<string, 1 | -1> {
  const fields = labelFields(label);
  const d = direction(reverse);
  return { [fields.ns]: d, [fields.part]: d, ns: d, part: d };
}

/**
 * A label range (L3, L5) on the label's partial index (label ns, label part,
 * ns, part): by label value, ties by item key. Continuing after a position
 * (label value L, item key) reads the rest of L's ties (same namespace, then
 * later namespaces) and then the range beyond L, each an exact range.
 */
export function labelQueryPlan(query: LabelQuery, now: number): ReadPlan {
  const fields = labelFields(query.label);
  const live = liveFilter(now);
  const sort = labelSort(query.label, query.reverse);
  const hint = labelIndexName(query.label);
  const inLabelNs = labelNs(fields.ns, { $eq: query.range.ns });
  const shapes: ReadShape[] = [];
  const after = query.after;
  if (after && rangeIncludes(query.range, after.label)) {
    const past = beyond(query.reverse);
    const tie = { ...inLabelNs, [fields.part]: after.label.part };
    shapes.push(
      { filter: { ...tie, ns: after.item.ns, part: { [past]: after.item.part }, ...live }, sort, hint },
      { filter: { ...tie, ns: { [past]: after.item.ns }, ...live }, sort, hint },
    );
  }
  const rest = narrowRange(query.range, after?.label.part, query.reverse);
  if (!isEmptyRange(rest)) shapes.push({ filter: { ...inLabelNs, [fields.part]: boundsOf(rest), ...live }, sort, hint });
  return shapes;
}

/**
 * B3: a batch get as one query on the key index: per namespace one `$in` of
 * key parts (point intervals of one index scan), several namespaces as the
 * `$or` of those. Any order; the caller puts the items in request order.
 */
export function batchGetFilter(keys: readonly Key[], now: number): Document {
  const partsByNs = new Map<string, string[]>();
  for (const key of keys) {
    const parts = partsByNs.get(key.ns);
    if (parts) parts.push(key.part);
    else partsByNs.set(key.ns, [key.part]);
  }
  const branches = [...partsByNs].map(([ns, parts]) => ({ ns, part: parts.length === 1 ? parts[0] : { $in: parts } }));
  return { ...(branches.length === 1 ? branches[0] : { $or: branches }), ...liveFilter(now) };
}

/**
 * SC2/SC3/SC5: the whole environment in key order (namespace, then key part,
 * a simple key first since its part is ""), or in one label's order. A
 * segment is `seg % total = index` on the stored hash, filtered on the way.
 */
export function scanPlan(query: ScanFilter & Pick<ScanQuery, "after">, now: number): ReadPlan {
  const extra: Document = { ...liveFilter(now), ...segmentFilter(query) };
  if (query.label) {
    const fields = labelFields(query.label);
    const sort = labelSort(query.label, false);
    const hint = labelIndexName(query.label);
    const after = query.after as LabelPosition | undefined;
    if (!after) return [{ filter: { ...labelNs(fields.ns, {}), ...extra }, sort, hint }];
    const sameNs = labelNs(fields.ns, { $eq: after.label.ns });
    const sameLabel = { ...sameNs, [fields.part]: after.label.part };
    return [
      { filter: { ...sameLabel, ns: after.item.ns, part: { $gt: after.item.part }, ...extra }, sort, hint },
      { filter: { ...sameLabel, ns: { $gt: after.item.ns }, ...extra }, sort, hint },
      { filter: { ...sameNs, [fields.part]: { $gt: after.label.part }, ...extra }, sort, hint },
      { filter: { ...labelNs(fields.ns, { $gt: after.label.ns }), ...extra }, sort, hint },
    ];
  }
  const sort = { ns: 1, part: 1 } as const;
  const after = query.after as Key | undefined;
  if (!after) return [{ filter: extra, sort, hint: KEY_INDEX }];
  return [
    { filter: { ns: after.ns, part: { $gt: after.part }, ...extra }, sort, hint: KEY_INDEX },
    { filter: { ns: { $gt: after.ns }, ...extra }, sort, hint: KEY_INDEX },
  ];
}

/**
 * One step of the namespace walk: the first live collection item (part > "",
 * K8) past the namespace `after`, on the key index. Its bounds skip the rest
 * of `after`'s entries and every simple key; only expired items not yet
 * deleted are fetched and passed over. The store runs one step per namespace
 * (a `distinct` cannot stop after a page, nor hide expired items from the index alone).
 */
export function namespaceStep(after: string | undefined, now: number): ReadShape & { readonly projection: Document } {
  return {
    filter: { ns: { $gt: after ?? "" }, part: { $gt: "" }, ...liveFilter(now) },
    sort: { ns: 1, part: 1 },
    hint: KEY_INDEX,
    projection: { _id: 0, ns: 1 },
  };
}

/** SC6: what a scan would return, ignoring limit and start. */
export function countShape(query: ScanFilter, now: number): { readonly filter: Document; readonly hint: string } {
  const [whole] = scanPlan({ ...query, after: undefined }, now);
  return { filter: whole.filter, hint: whole.hint };
}

/**
 * Count: the first page's range of the same query, without sort or limit,
 * on the same hinted index; undefined when the range holds no key part, so
 * nothing is read. Expired items are excluded like in every read (T7); the
 * server checks `expires` on the documents of the range, since no index of
 * ours ends with it.
 */
export function countRangeShape(query: CountQuery, now: number): { readonly filter: Document; readonly hint: string } | undefined {
  const [shape] = query.label
    ? labelQueryPlan({ label: query.label, range: query.range, reverse: false, limit: 0 }, now)
    : keyQueryPlan({ range: query.range, reverse: false, limit: 0 }, now);
  return shape && { filter: shape.filter, hint: shape.hint };
}

function segmentFilter(query: ScanFilter): Document {
  return query.segment ? { seg: { $mod: [query.segment.total, query.segment.index] } } : {};
}

export interface IndexSpec {
  readonly key: Record<string, 1>;
  readonly name: string;
  readonly unique?: boolean;
  readonly partialFilterExpression?: Document;
  readonly expireAfterSeconds?: number;
}

/**
 * The indexes of every environment's items collection, created idempotently
 * at start. No index on `seg`: a segment is a modulus, which no index can
 * bound, and segmented scans still need key order, which the key index gives.
 */
export function itemIndexes(): IndexSpec[] {
  const labels = LABEL_NUMBERS.map((label) => {
    const fields = labelFields(label);
    return {
      key: { [fields.ns]: 1, [fields.part]: 1, ns: 1, part: 1 } as Record<string, 1>,
      name: labelIndexName(label),
      // Items without the label stay out of its index: five label indexes cost only what is labelled.
      partialFilterExpression: { [fields.ns]: { $exists: true } },
    };
  });
  return [
    { key: { ns: 1, part: 1 }, name: KEY_INDEX, unique: true },
    ...labels,
    // T7: the TTL monitor deletes expired items in the background, about once a minute.
    { key: { expires: 1 }, name: TTL_INDEX, expireAfterSeconds: 0 },
  ];
}
