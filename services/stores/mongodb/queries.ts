import type { Document, Filter, Sort } from "mongodb";
import { narrowRange, type Bound, type KeyRange } from "../../domain/expressions.js";
import type { Key } from "../../domain/keys.js";
import type { KeyQuery, LabelPosition, LabelQuery, ScanFilter, ScanQuery } from "../store.js";
import { labelFields, type ItemDocument } from "./codec.js";

/** The name MongoDB gives the unique key index, used as the hint of key reads. */
export const KEY_INDEX = "ns_1_part_1";
export const labelIndexName = (label: number) => `label${label}`;

/** What a read sends: one filter, a sort that matches an index exactly, and that index as the hint. */
export interface ReadShape {
  readonly filter: Filter<ItemDocument>;
  readonly sort: Sort;
  readonly hint: string;
}

/**
 * T7: the TTL monitor deletes expired items only about once a minute, so
 * every read excludes them itself.
 */
export function liveFilter(now: number): Filter<ItemDocument> {
  return { $or: [{ expires: { $exists: false } }, { expires: { $gt: new Date(now) } }] };
}

function boundsOfRange(range: KeyRange): Document {
  return boundsOf(range.lower, range.upper);
}

function boundsOf(lower: Bound, upper: Bound | undefined): Document {
  const bounds: Document = { [lower.inclusive ? "$gte" : "$gt"]: lower.value };
  if (upper) bounds[upper.inclusive ? "$lte" : "$lt"] = upper.value;
  return bounds;
}

/**
 * A key range as one index range scan on (ns, part): the namespace is an
 * equality and the key part is bounded on both sides. MongoDB compares
 * strings bytewise in UTF-8 under the default (simple) collation, which is
 * K7's order, so no regex and no in-memory sort is ever needed.
 */
export function keyQueryShape(query: KeyQuery, now: number): ReadShape {
  const filter = {
    ns: query.range.ns,
    part: boundsOfRange(narrowRange(query.range, query.after?.part, query.reverse)),
    ...liveFilter(now),
  } as Filter<ItemDocument>;
  const direction = query.reverse ? -1 : 1;
  return { filter, sort: { ns: direction, part: direction }, hint: KEY_INDEX };
}

/**
 * A label range: the label's partial index (label ns, label part, ns, part)
 * with the label namespace as an equality. Continuing after a position is a
 * tuple comparison, written as the usual disjunction so the planner keeps
 * it on the index.
 */
export function labelQueryShape(query: LabelQuery, now: number): ReadShape {
  const fields = labelFields(query.label);
  const bounds = boundsOf(query.range.lower, query.range.upper);
  const filter: Filter<ItemDocument> = { [fields.ns]: query.range.ns, [fields.part]: bounds, ...liveFilter(now) } as Filter<ItemDocument>;
  if (query.after) {
    const after = query.after;
    const beyond = query.reverse ? "$lt" : "$gt";
    (filter as Document).$and = [
      {
        $or: [
          { [fields.part]: { [beyond]: after.label.part } },
          { [fields.part]: after.label.part, ns: { [beyond]: after.item.ns } },
          { [fields.part]: after.label.part, ns: after.item.ns, part: { [beyond]: after.item.part } },
        ],
      },
    ];
  }
  const d = query.reverse ? -1 : 1;
  return {
    filter,
    sort: { [fields.ns]: d, [fields.part]: d, ns: d, part: d },
    hint: labelIndexName(query.label),
  };
}

/** SC2/SC3/SC5: a whole-environment scan in key order, or in one label's order; segments by the stored hash. */
export function scanShape(query: ScanFilter & Partial<Pick<ScanQuery, "after">>, now: number): ReadShape {
  const and: Document[] = [liveFilter(now)];
  if (query.segment) and.push({ seg: { $mod: [query.segment.total, query.segment.index] } });
  if (query.label) {
    const fields = labelFields(query.label);
    and.push({ [fields.ns]: { $exists: true } });
    if (query.after) {
      const after = query.after as LabelPosition;
      and.push({
        $or: [
          { [fields.ns]: { $gt: after.label.ns } },
          { [fields.ns]: after.label.ns, [fields.part]: { $gt: after.label.part } },
          { [fields.ns]: after.label.ns, [fields.part]: after.label.part, ns: { $gt: after.item.ns } },
          { [fields.ns]: after.label.ns, [fields.part]: after.label.part, ns: after.item.ns, part: { $gt: after.item.part } },
        ],
      });
    }
    return {
      filter: { $and: and } as Filter<ItemDocument>,
      sort: { [fields.ns]: 1, [fields.part]: 1, ns: 1, part: 1 },
      hint: labelIndexName(query.label),
    };
  }
  if (query.after) {
    const after = query.after as Key;
    and.push({ $or: [{ ns: { $gt: after.ns } }, { ns: after.ns, part: { $gt: after.part } }] });
  }
  return { filter: { $and: and } as Filter<ItemDocument>, sort: { ns: 1, part: 1 }, hint: KEY_INDEX };
}

/** The indexes every environment's items collection gets, created idempotently at start. */
export function itemIndexes(): { key: Document; name: string; unique?: boolean; partialFilterExpression?: Document; expireAfterSeconds?: number }[] {
  const labels = [1, 2, 3, 4, 5].map((label) => {
    const fields = labelFields(label as 1 | 2 | 3 | 4 | 5);
    return {
      key: { [fields.ns]: 1, [fields.part]: 1, ns: 1, part: 1 },
      name: labelIndexName(label),
      partialFilterExpression: { [fields.ns]: { $exists: true } },
    };
  });
  return [
    { key: { ns: 1, part: 1 }, name: KEY_INDEX, unique: true },
    ...labels,
    // The TTL monitor deletes expired items in the background (about once a minute).
    { key: { expires: 1 }, name: "expires_ttl", expireAfterSeconds: 0 },
  ];
}
