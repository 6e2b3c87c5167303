import { Double, type Document } from "mongodb";
import { utf8Length, type JsonObject } from "../../../core/json.js";
import { LABEL_NUMBERS, perLabel, type LabelNumber } from "../../../core/item.js";
import { segmentHash } from "../../../core/segments.js";
import type { CreatedCheck, LabelChange, SetPlan, ValuePlan } from "../../../core/set-plan.js";
import { MAX_ITEM_BYTES } from "../../../core/values.js";
import { encodeAttribute, encodeCell, encodeLabel, encodeValue, labelFields } from "./codec.js";

/**
 * A SetPlan as ONE atomic MongoDB update (S4): `findOneAndUpdate(filter,
 * pipeline, { upsert })`, or `$inc` for a counter on a live number
 * (incrementUpdate). The filter carries the existence and created checks
 * (E1, E2, C1), so they hold at the instant of the write; the update pipeline
 * applies the plan to the stored document in the same step (merge, `$add`,
 * defaults, labels, ttl, metadata), the way applySet (core/apply-set.ts)
 * applies it to the live item.
 *
 * Checks that depend on the stored value (V5, A4, A6, V8) cannot abort a
 * pipeline, so the pipeline computes them and, when one fails, replaces the
 * document with itself as it was: MongoDB sees a byte-identical document and
 * writes nothing (no oplog entry, no change event). The write id `_w` then
 * tells the store its write did not apply, and the store answers exactly
 * with applySet (see mongo-store.ts).
 *
 * User data (keys, labels, attribute names, values) only ever appears inside
 * `$literal`, so a leading `$` is never read as a field path or an operator.
 */
export interface SetUpdate {
  readonly filter: Document;
  readonly pipeline: Document[];
  readonly upsert: boolean;
}

export interface SetUpdateOptions {
  /** Written without change events (WriteOptions.events === false): marks the document for the feed. */
  readonly quiet?: boolean;
}

/** Fields that exist only while the pipeline runs. */
export const PIPELINE_FIELDS = ["_old", "_live", "_fail"] as const;
const NUMERIC_TYPES = ["double", "int", "long", "decimal"];
const REMOVE = "$$REMOVE";
/** The longest JSON text of a double ("-0.0000012345678901234567", "-1.2345678901234567e-123"). */
export const MAX_NUMBER_TEXT = 25;

const literal = (value: unknown) => ({ $literal: value });
/** The first cell of a list whose name `k` equals `name` (missing when none). */
const cellNamed = (cells: unknown, name: unknown) => ({
  $arrayElemAt: [{ $filter: { input: cells, as: "x", cond: { $eq: ["$$x.k", name] } } }, 0],
});
/** A6: a double sum past Number.MAX_VALUE is Infinity, which JSON cannot hold; the domain refuses it (NUMBER_OVERFLOW). */
const staysFinite = (sum: unknown) => ({ $lte: [{ $abs: sum }, Number.MAX_VALUE] });

/** T7: a stored document is the live item only if it has not expired at `now`. */
export function liveExpression(now: Date): Document {
  return {
    $and: [{ $ne: [{ $type: "$created" }, "missing"] }, { $or: [{ $eq: [{ $type: "$expires" }, "missing"] }, { $gt: ["$expires", now] }] }],
  };
}

/** Batch writes (BS2, SE1, imports) are overwrites without conditions: their result does not depend on what is stored. */
export function isUnconditionalOverwrite(plan: SetPlan): boolean {
  return plan.overwrite && plan.value.kind === "replace" && plan.exists === undefined && plan.created === undefined;
}

/** EV6: an item written with a ttl already past is created and expires at once. */
export function expiresAtWrite(plan: SetPlan, now: number): boolean {
  return plan.ttl.op === "set" && plan.ttl.expires <= now;
}

/** A live item's version as a filter condition; a document from before versions is at 1. */
export function versionCondition(version: number): Document {
  return { ver: version === 1 ? { $in: [1, null] } : version };
}

/**
 * The next version inside the pipeline: one more than the live item's (a
 * document from before versions counts as 1), or 1 where no live item was.
 */
const nextVersion = { $cond: ["$_live", { $add: [{ $ifNull: ["$ver", 1] }, 1] }, 1] };

/** The C2 check as a filter condition; a value no stored `created` can equal matches nothing. */
export function createdCondition(check: CreatedCheck): Document {
  const base = check.unit === "seconds" ? check.value * 1000 : check.value;
  if (!Number.isInteger(check.value) || Math.abs(base) > 8.64e15 - 1000) return { created: { $in: [] } };
  return check.unit === "millis" ? { created: new Date(base) } : { created: { $gte: new Date(base), $lt: new Date(base + 1000) } };
}

/**
 * The counter fast path (AD1, A1): `add` onto a live number, and `$add` onto
 * live numeric attributes with nothing else changing, is MongoDB's own `$inc`,
 * its cheapest atomic update. The filter states all that the pipeline would
 * find out (the item is live and passes the checks, the targets are numbers,
 * the result stays a finite double within V8), so a match writes exactly
 * what applySet computes. No match (no item yet, an expired one, a
 * non-number, an overflow, a failed check, V8 too close) writes nothing,
 * and the store goes on to setUpdate's pipeline, which creates the item or
 * names the error. undefined: the plan changes more than counters, which
 * only the pipeline can apply.
 */
export interface IncrementUpdate {
  readonly filter: Document;
  readonly update: Document;
  readonly arrayFilters?: Document[];
}

export function incrementUpdate(plan: SetPlan, now: number, writeId: string): IncrementUpdate | undefined {
  const keepsTheRest = plan.ttl.op === "keep" && plan.labels.every((change) => change.op === "keep");
  if (plan.overwrite || plan.exists === false || plan.ifVersion === 0 || !keepsTheRest) return undefined;
  const at = new Date(now);
  const live: Document = { ns: plan.key.ns, part: plan.key.part, expires: { $not: { $lte: at } } };
  if (plan.created) Object.assign(live, createdCondition(plan.created));
  // $inc of a missing version would make it 1, where a document from before versions is at 1 already:
  // such a document takes the pipeline once, which writes its version.
  Object.assign(live, plan.ifVersion ? { ver: plan.ifVersion } : { ver: { $exists: true } });
  // EV5: the write found a live item, so its event is `updated`; a quiet marker of an earlier batch goes.
  const stamp = { $set: { modified: at, _w: writeId, _n: false }, $unset: { _q: "" } };
  const value = plan.value;
  if (value.kind === "addToValue") {
    // A6: a double amount makes MongoDB add in doubles, as JavaScript does (int32 + int32 would become int64),
    // and $add in the filter is the very sum $inc writes. No V8 guard: a single number with a key and five
    // labels is a few KB at most.
    const amount = new Double(value.amount);
    return {
      filter: { ...live, vt: "s", "vs.n": { $type: "number" }, $expr: staysFinite({ $add: ["$vs.n", amount] }) },
      update: { $inc: { "vs.n": amount, ver: 1 }, ...stamp },
    };
  }
  if (value.kind !== "merge" || Object.keys(value.set).length + value.unset.length + Object.keys(value.fill).length > 0) {
    return undefined;
  }
  const names = Object.keys(value.add);
  if (names.length === 0) return undefined;
  const increments: Document = {};
  const amounts = names.map((name) => new Double(value.add[name]));
  names.forEach((_, index) => (increments[`vo.$[c${index}].n`] = amounts[index]));
  increments.ver = 1;
  const storedNumber = (name: string) => ({ $let: { vars: { a: cellNamed("$vo", literal(name)) }, in: "$$a.n" } });
  return {
    filter: {
      ...live,
      vt: "o",
      vo: { $all: names.map((name) => ({ $elemMatch: { k: name, n: { $type: "number" } } })) },
      $expr: {
        $and: [
          // V8: each sum's JSON text is at most MAX_NUMBER_TEXT bytes, and sizeExpression never undercounts.
          { $lte: [sizeExpression(plan), MAX_ITEM_BYTES - MAX_NUMBER_TEXT * names.length] },
          ...names.map((name, index) => staysFinite({ $add: [storedNumber(name), amounts[index]] })),
        ],
      },
    },
    update: { $inc: increments, ...stamp },
    arrayFilters: names.map((name, index) => ({ [`c${index}.k`]: name })),
  };
}

export function setUpdate(plan: SetPlan, now: number, writeId: string, options: SetUpdateOptions = {}): SetUpdate {
  const at = new Date(now);
  const filter: Document = { ns: plan.key.ns, part: plan.key.part };
  let upsert = true;
  const wantsNone = plan.exists === false || plan.ifVersion === 0;
  if (wantsNone) {
    // E1 (and ifVersion 0): only an expired document may be written over; a live one fails the
    // match, and the upsert's insert then collides on the unique (ns, part) index.
    filter.expires = { $lte: at };
  }
  if (plan.exists === true || plan.created || (plan.ifVersion ?? 0) > 0) {
    // E2, C1, ifVersion: a live item must be there (with that created, at that version); nothing
    // is inserted. Wanting no live item too, no stored state passes both checks: the filter
    // matches nothing, and the store's exact path names the error applySet gives (S5).
    filter.expires = wantsNone ? { $in: [] } : { $not: { $lte: at } };
    if (plan.created) Object.assign(filter, createdCondition(plan.created));
    if (plan.ifVersion) Object.assign(filter, versionCondition(plan.ifVersion));
    upsert = false;
  }

  const checked = plan.value.kind !== "replace";
  const pipeline: Document[] = [
    { $set: { _old: "$$ROOT", _live: liveExpression(at) } },
    { $set: valueStage(plan.value) },
    { $set: metadataStage(plan, now, writeId, options) },
  ];
  if (checked) {
    // V8 after the merge; a replace was measured whole by planSet, and its labels all come from the request.
    pipeline.push(
      { $set: { _fail: { $cond: [{ $and: [isOk, "$_live", { $gt: [sizeExpression(plan), MAX_ITEM_BYTES] }] }, "V8", "$_fail"] } } },
      { $replaceWith: { $cond: [isOk, "$$ROOT", "$_old"] } },
    );
  }
  pipeline.push({ $unset: [...PIPELINE_FIELDS] });
  return { filter, pipeline, upsert };
}

const isOk = { $eq: [{ $ifNull: ["$_fail", null] }, null] };
const isObjectStored = { $and: ["$_live", { $eq: ["$vt", "o"] }] };
const isNumber = (path: string) => ({ $in: [{ $type: path }, NUMERIC_TYPES] });
/** A6: arithmetic in doubles, as JavaScript does; an int32 sum would otherwise overflow into int64. */
const plus = (path: string, amount: unknown) => ({ $add: [{ $toDouble: path }, amount] });

function valueStage(plan: ValuePlan): Document {
  switch (plan.kind) {
    case "replace": {
      const encoded = encodeValue(plan.value);
      return {
        vt: encoded.vt,
        vo: encoded.vo ? literal(encoded.vo) : REMOVE,
        vs: encoded.vs ? literal(encoded.vs) : REMOVE,
      };
    }
    case "single":
      // V5: a single value onto an object is refused; onto anything else it replaces (V3).
      return { _fail: { $cond: [isObjectStored, "V5", null] }, vt: "s", vs: literal(encodeCell(plan.value)), vo: REMOVE };
    case "singleDefault":
      // D3: written only where there is no live item; a live single value stays.
      return {
        _fail: { $cond: [isObjectStored, "V5", null] },
        vt: "s",
        vs: { $cond: ["$_live", "$vs", literal(encodeCell(plan.value))] },
        vo: REMOVE,
      };
    case "addToValue": {
      // A1, AD2, AD5: onto nothing it is the amount; onto an object V5; onto a non-number A4; A6 past the largest double.
      const sum = plus("$vs.n", plan.amount);
      return {
        _fail: {
          $switch: {
            branches: [
              { case: isObjectStored, then: "V5" },
              { case: { $and: ["$_live", { $not: [isNumber("$vs.n")] }] }, then: "A4" },
              { case: { $and: ["$_live", { $not: [staysFinite(sum)] }] }, then: "A6" },
            ],
            default: null,
          },
        },
        vt: "s",
        vs: { $cond: ["$_live", { n: sum }, { n: plan.amount }] },
        vo: REMOVE,
      };
    }
    case "merge":
      return mergeStage(plan);
  }
}

/**
 * V4, V6, A1, D2: the stored root attributes (none when the item is not live
 * or holds a single value) minus the removed ones, with set attributes
 * replaced in place and counters incremented in place, then the new set,
 * added and default attributes appended in that order: the order applySet
 * builds its object in.
 */
function mergeStage(plan: Extract<ValuePlan, { kind: "merge" }>): Document {
  const sets = Object.keys(plan.set).map((k) => encodeAttribute(k, plan.set[k]));
  const adds = Object.keys(plan.add).map((k) => encodeAttribute(k, plan.add[k]));
  const fills = Object.keys(plan.fill).map((k) => encodeAttribute(k, (plan.fill as JsonObject)[k]));
  const setNames = literal(sets.map((cell) => cell.k));
  const addNames = literal(adds.map((cell) => cell.k));
  const stored = { $cond: [isObjectStored, { $ifNull: ["$vo", []] }, []] };
  const kept = plan.unset.length === 0 ? stored : { $filter: { input: stored, as: "e", cond: { $not: [{ $in: ["$$e.k", literal(plan.unset)] }] } } };
  const given = (cells: unknown[]) => cellNamed(literal(cells), "$$e.k");
  const counted = { $let: { vars: { g: given(adds) }, in: plus("$$e.n", "$$g.n") } };
  const branches: Document[] = [];
  if (sets.length > 0) branches.push({ case: { $in: ["$$e.k", setNames] }, then: given(sets) });
  if (adds.length > 0) {
    branches.push({ case: { $in: ["$$e.k", addNames] }, then: { $mergeObjects: ["$$e", { n: counted }] } });
  }
  const updated = branches.length === 0 ? "$$kept" : { $map: { input: "$$kept", as: "e", in: { $switch: { branches, default: "$$e" } } } };
  const absent = (cells: unknown[]) => ({
    $filter: { input: literal(cells), as: "x", cond: { $not: [{ $in: ["$$x.k", "$$keptKeys"] }] } },
  });
  const appended = [sets, adds, fills].filter((cells) => cells.length > 0).map(absent);
  const stage: Document = {
    vt: "o",
    vs: REMOVE,
    vo: {
      $let: {
        vars: { kept },
        in: {
          $let: {
            vars: { keptKeys: { $map: { input: "$$kept", as: "e", in: "$$e.k" } } },
            in: { $concatArrays: [updated, ...appended] },
          },
        },
      },
    },
    _fail: null,
  };
  if (adds.length > 0) {
    // A4: a counter onto a stored attribute that is not a number (a removed one counts as missing, so 0);
    // A6: a sum past the largest double.
    const anyCounter = (test: Document) => ({
      $anyElementTrue: [{ $map: { input: kept, as: "e", in: { $and: [{ $in: ["$$e.k", addNames] }, test] } } }],
    });
    stage._fail = {
      $switch: {
        branches: [
          { case: anyCounter({ $not: [isNumber("$$e.n")] }), then: "A4" },
          { case: anyCounter({ $not: [staysFinite(counted)] }), then: "A6" },
        ],
        default: null,
      },
    };
  }
  return stage;
}

function labelStage(change: LabelChange, label: LabelNumber, overwrite: boolean): Document {
  const fields = labelFields(label);
  const removed = { [fields.ns]: REMOVE, [fields.part]: REMOVE, [fields.escape]: REMOVE };
  const kept = (when: unknown) => ({
    [fields.ns]: { $cond: [when, `$${fields.ns}`, REMOVE] },
    [fields.part]: { $cond: [when, `$${fields.part}`, REMOVE] },
    [fields.escape]: { $cond: [when, `$${fields.escape}`, REMOVE] },
  });
  const written = (value: ReturnType<typeof encodeLabel>) => ({
    [fields.ns]: literal(value.ns),
    [fields.part]: literal(value.part),
    [fields.escape]: value.e === undefined ? REMOVE : value.e,
  });
  switch (change.op) {
    case "keep":
      // L2, M2: kept on a merge of a live item; gone on an overwrite or when nothing live is there.
      return overwrite ? removed : kept("$_live");
    case "set":
      return written(encodeLabel(change.label));
    case "setIfAbsent": {
      if (overwrite) return written(encodeLabel(change.label));
      // Every field of the slot follows the stored namespace's presence, so a label is never half-set.
      const present = { $and: ["$_live", { $ne: [{ $type: `$${fields.ns}` }, "missing"] }] };
      const value = encodeLabel(change.label);
      return {
        [fields.ns]: { $cond: [present, `$${fields.ns}`, literal(value.ns)] },
        [fields.part]: { $cond: [present, `$${fields.part}`, literal(value.part)] },
        [fields.escape]: { $cond: [present, `$${fields.escape}`, value.e === undefined ? REMOVE : value.e] },
      };
    }
    case "remove":
      return removed;
  }
}

function metadataStage(plan: SetPlan, now: number, writeId: string, options: SetUpdateOptions): Document {
  const at = new Date(now);
  // No ns or part: an upsert seeds them from the filter's equalities, and a pipeline that leaves the
  // unique index's fields alone lets MongoDB retry two racing upserts of a new key by itself.
  const stage: Document = {
    seg: segmentHash(plan.key),
    // M1: every successful write moves modified, even one that changes nothing else.
    modified: at,
    // M1, M2, C1: created survives merges, and an overwrite that passed the created check.
    created: plan.overwrite && !plan.created ? at : { $cond: ["$_live", "$created", at] },
    // An overwrite is a change of the same item: its version goes on too (as in applySet).
    ver: nextVersion,
    _w: writeId,
    // EV5: the feed names the change `created` when the write found no live item.
    _n: { $not: ["$_live"] },
    _q: options.quiet ? (expiresAtWrite(plan, now) ? "d" : "w") : REMOVE,
  };
  LABEL_NUMBERS.forEach((label, slot) => Object.assign(stage, labelStage(plan.labels[slot], label, plan.overwrite)));
  switch (plan.ttl.op) {
    case "set":
      stage.expires = new Date(plan.ttl.expires);
      break;
    case "remove":
      stage.expires = REMOVE;
      break;
    case "keep":
      // T3: a merge keeps the live item's expiry; an overwrite or a fresh item has none.
      stage.expires = plan.overwrite ? REMOVE : { $cond: ["$_live", "$expires", REMOVE] };
  }
  return stage;
}

/**
 * V8 on the document the pipeline built: the UTF-8 bytes of the JSON of
 * `{ key, value, label1..label5 }`, as core/values.ts itemSize measures it.
 * Names, strings and labels are exact (string cells hold their JSON text;
 * `e` fields hold what escaping adds to names and labels). Numbers are exact
 * when they are integers below 2^53; any other number counts as the longest
 * text a double can have, so the figure is never below the true size. A
 * refusal past the limit is therefore confirmed or overturned by the store's
 * exact path (applySet in a transaction), and both engines draw the line at
 * the same byte.
 */
export function sizeExpression(plan: SetPlan): Document {
  const numberBytes = (path: string) => ({
    $cond: [
      { $and: [{ $eq: [path, { $trunc: path }] }, { $lt: [{ $abs: path }, 2 ** 53] }] },
      { $strLenBytes: { $toString: { $toLong: path } } },
      MAX_NUMBER_TEXT,
    ],
  });
  const cellBytes = (cell: string) => ({
    $cond: [isNumber(`${cell}.n`), numberBytes(`${cell}.n`), { $strLenBytes: { $ifNull: [`${cell}.j`, "null"] } }],
  });
  const objectBytes = {
    $let: {
      vars: { cells: { $ifNull: ["$vo", []] } },
      in: {
        $add: [
          2,
          { $max: [{ $subtract: [{ $size: "$$cells" }, 1] }, 0] },
          {
            $sum: {
              $map: {
                input: "$$cells",
                as: "a",
                // "name": value
                in: { $add: [3, { $strLenBytes: "$$a.k" }, { $ifNull: ["$$a.e", 0] }, cellBytes("$$a")] },
              },
            },
          },
        ],
      },
    },
  };
  const labels = perLabel((label) => {
    const fields = labelFields(label);
    const part = { $ifNull: [`$${fields.part}`, ""] };
    return {
      $cond: [
        { $eq: [{ $type: `$${fields.ns}` }, "missing"] },
        0,
        {
          // ,"labelN":"ns:part"
          $add: [
            12,
            { $strLenBytes: { $ifNull: [`$${fields.ns}`, ""] } },
            { $cond: [{ $eq: [part, ""] }, 0, { $add: [1, { $strLenBytes: part }] }] },
            { $ifNull: [`$${fields.escape}`, 0] },
          ],
        },
      ],
    };
  });
  // {"key":"…","value": and the closing brace, known here.
  const keyBytes = utf8Length(JSON.stringify({ key: plan.key.full, value: null })) - "null".length;
  return { $add: [keyBytes, { $cond: [{ $eq: ["$vt", "o"] }, objectBytes, cellBytes("$vs")] }, ...labels] };
}
