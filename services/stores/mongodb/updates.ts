import type { Document } from "mongodb";
import type { JsonObject } from "../../domain/json.js";
import { LABEL_COUNT } from "../../domain/item.js";
import { segmentHash } from "../../domain/segments.js";
import type { LabelChange, SetPlan, ValuePlan } from "../../domain/set-plan.js";
import { MAX_ITEM_BYTES } from "../../domain/values.js";
import type { LabelNumber } from "../store.js";
import { encodeCell, encodeValue, labelFields } from "./codec.js";

/**
 * A SetPlan as ONE atomic MongoDB update (S4): the filter carries the
 * existence and created checks (E1, E2, C1), and an update pipeline applies
 * the plan to the stored document in the same step — merge, `$add`, defaults,
 * labels, ttl and metadata — with no read-modify-write in the service.
 *
 * The value checks that depend on what is stored (V5, A4, V8) cannot stop a
 * pipeline, so the pipeline computes them and, when one fails, replaces the
 * document with itself as it was: nothing changes. The write id `_w` tells
 * the store whether its write was applied; if not, it reads the unchanged
 * document and lets the pure applySet name the error.
 */
export interface SetUpdate {
  readonly filter: Document;
  readonly pipeline: Document[];
  readonly upsert: boolean;
}

const HELPERS = ["_old", "_live", "_fail", "_size"];
const NUMERIC_TYPES = ["double", "int", "long", "decimal"];
const REMOVE = "$$REMOVE";

/** Every user-given string goes in $literal: a leading `$` would otherwise read as a field path. */
const literal = (value: unknown) => ({ $literal: value });

export function liveExpression(now: Date): Document {
  return {
    $and: [
      { $ne: [{ $type: "$created" }, "missing"] },
      { $or: [{ $eq: [{ $type: "$expires" }, "missing"] }, { $gt: ["$expires", now] }] },
    ],
  };
}

function liveFilter(now: Date): Document {
  return { created: { $exists: true }, $or: [{ expires: { $exists: false } }, { expires: { $gt: now } }] };
}

export function setUpdate(plan: SetPlan, now: number, writeId: string): SetUpdate {
  const at = new Date(now);
  const conditions: Document[] = [];
  let upsert = true;
  if (plan.exists === false) {
    // No live item may exist: a live one fails the match, the upsert's insert then hits the unique index (E1).
    conditions.push({ $or: [{ created: { $exists: false } }, { expires: { $lte: at } }] });
  }
  if (plan.exists === true || plan.created) {
    conditions.push(liveFilter(at));
    upsert = false;
  }
  if (plan.created) {
    const { unit, value } = plan.created;
    conditions.push(
      unit === "millis"
        ? { created: new Date(value) }
        : { created: { $gte: new Date(value * 1000), $lt: new Date(value * 1000 + 1000) } },
    );
  }
  const filter: Document = { ns: plan.key.ns, part: plan.key.part };
  if (conditions.length > 0) filter.$and = conditions;

  const pipeline: Document[] = [
    { $set: { _old: "$$ROOT", _live: liveExpression(at) } },
    { $set: valueStage(plan.value) },
    { $set: metadataStage(plan, at, writeId) },
    { $set: { _size: sizeExpression(plan) } },
    {
      $set: {
        _fail: {
          $cond: [
            { $ne: [{ $ifNull: ["$_fail", null] }, null] },
            "$_fail",
            { $cond: [{ $and: ["$_live", { $gt: ["$_size", MAX_ITEM_BYTES] }] }, "V8", null] },
          ],
        },
      },
    },
    { $replaceWith: { $cond: [{ $eq: ["$_fail", null] }, "$$ROOT", "$_old"] } },
    { $unset: HELPERS },
  ];
  return { filter, pipeline, upsert };
}

const isObjectStored = { $and: ["$_live", { $eq: ["$vt", "o"] }] };

function valueStage(plan: ValuePlan): Document {
  switch (plan.kind) {
    case "replace": {
      const encoded = encodeValue(plan.value);
      return { vt: encoded.vt, vo: encoded.vo ? literal(encoded.vo) : REMOVE, vs: encoded.vs ? literal(encoded.vs) : REMOVE, _fail: null };
    }
    case "single":
      return {
        _fail: { $cond: [isObjectStored, "V5", null] },
        vt: "s",
        vs: literal(encodeCell(plan.value)),
        vo: REMOVE,
      };
    case "singleDefault":
      return {
        _fail: { $cond: [isObjectStored, "V5", null] },
        vt: "s",
        // D3: written only where there is no live item; a live single value stays.
        vs: { $cond: ["$_live", "$vs", literal(encodeCell(plan.value))] },
        vo: REMOVE,
      };
    case "addToValue":
      return {
        _fail: {
          $cond: [
            isObjectStored,
            "V5",
            { $cond: [{ $and: ["$_live", { $not: [{ $in: [{ $type: "$vs.n" }, NUMERIC_TYPES] }] }] }, "A4", null] },
          ],
        },
        vt: "s",
        vs: { $cond: ["$_live", { n: { $add: ["$vs.n", plan.amount] } }, { n: plan.amount }] },
        vo: REMOVE,
      };
    case "merge":
      return mergeStage(plan);
  }
}

/**
 * V4, V6, A1, D2: the stored root attributes (none if the item is not live
 * or holds a single value) minus the removed ones, with set attributes
 * replaced in place, counters incremented in place, then new set, added and
 * default attributes appended in that order, as a JavaScript merge orders them.
 */
function mergeStage(plan: Extract<ValuePlan, { kind: "merge" }>): Document {
  const setEntries = Object.keys(plan.set).map((k) => ({ k, ...encodeCell(plan.set[k]) }));
  const addEntries = Object.keys(plan.add).map((k) => ({ k, a: plan.add[k] }));
  const fillEntries = Object.keys(plan.fill).map((k) => ({ k, ...encodeCell((plan.fill as JsonObject)[k]) }));
  const base = { $cond: [isObjectStored, { $ifNull: ["$vo", []] }, []] };
  const kept = { $filter: { input: base, as: "e", cond: { $not: [{ $in: ["$$e.k", literal(plan.unset)] }] } } };
  const lookup = (entries: unknown[], key: string) => ({
    $arrayElemAt: [{ $filter: { input: literal(entries), as: "x", cond: { $eq: ["$$x.k", key] } } }, 0],
  });
  const updated = {
    $map: {
      input: "$$kept",
      as: "e",
      in: {
        $switch: {
          branches: [
            { case: { $in: ["$$e.k", literal(setEntries.map((e) => e.k))] }, then: lookup(setEntries, "$$e.k") },
            {
              case: { $in: ["$$e.k", literal(addEntries.map((e) => e.k))] },
              then: { $let: { vars: { m: lookup(addEntries, "$$e.k") }, in: { k: "$$e.k", n: { $add: ["$$e.n", "$$m.a"] } } } },
            },
          ],
          default: "$$e",
        },
      },
    },
  };
  const absent = (entries: unknown[]) => ({
    $filter: { input: literal(entries), as: "x", cond: { $not: [{ $in: ["$$x.k", "$$keptKeys"] }] } },
  });
  const appendedAdds = { $map: { input: absent(addEntries), as: "x", in: { k: "$$x.k", n: "$$x.a" } } };
  const counterOnNonNumber = {
    $anyElementTrue: [
      {
        $map: {
          input: "$$kept",
          as: "e",
          in: {
            $and: [
              { $in: ["$$e.k", literal(addEntries.map((e) => e.k))] },
              { $not: [{ $in: [{ $type: "$$e.n" }, NUMERIC_TYPES] }] },
            ],
          },
        },
      },
    ],
  };
  return {
    vt: "o",
    vs: REMOVE,
    _fail: { $let: { vars: { kept }, in: { $cond: [counterOnNonNumber, "A4", null] } } },
    vo: {
      $let: {
        vars: { kept },
        in: {
          $let: {
            vars: { keptKeys: { $map: { input: "$$kept", as: "e", in: "$$e.k" } } },
            in: { $concatArrays: [updated, absent(setEntries), appendedAdds, absent(fillEntries)] },
          },
        },
      },
    },
  };
}

function labelExpression(change: LabelChange, field: string, part: "ns" | "part", overwrite: boolean): unknown {
  switch (change.op) {
    case "keep":
      return overwrite ? REMOVE : { $cond: ["$_live", `$${field}`, REMOVE] };
    case "set":
      return literal(change.label[part]);
    case "setIfAbsent": {
      if (overwrite) return literal(change.label[part]);
      // Both halves of the label follow the namespace's presence, so a label is never half-set.
      const nsField = field.replace(/part$/, "ns");
      return {
        $cond: [{ $and: ["$_live", { $ne: [{ $type: `$${nsField}` }, "missing"] }] }, `$${field}`, literal(change.label[part])],
      };
    }
    case "remove":
      return REMOVE;
  }
}

function metadataStage(plan: SetPlan, at: Date, writeId: string): Document {
  const stage: Document = {
    ns: literal(plan.key.ns),
    part: literal(plan.key.part),
    seg: segmentHash(plan.key),
    modified: at,
    _w: writeId,
    // M1, M2, C1: created survives merges, and an overwrite that passed the created check.
    created: plan.overwrite && !plan.created ? at : { $cond: ["$_live", "$created", at] },
  };
  for (let slot = 0; slot < LABEL_COUNT; slot++) {
    const fields = labelFields((slot + 1) as LabelNumber);
    stage[fields.ns] = labelExpression(plan.labels[slot], fields.ns, "ns", plan.overwrite);
    stage[fields.part] = labelExpression(plan.labels[slot], fields.part, "part", plan.overwrite);
  }
  switch (plan.ttl.op) {
    case "set":
      stage.expires = new Date(plan.ttl.expires);
      break;
    case "remove":
      stage.expires = REMOVE;
      break;
    case "keep":
      stage.expires = plan.overwrite ? REMOVE : { $cond: ["$_live", "$expires", REMOVE] };
  }
  return stage;
}

/**
 * V8 after a merge, in JSON bytes of { key, value, labels }: each attribute
 * is its name, its JSON text (or the number's text) and four bytes of
 * punctuation. Numbers are printed by MongoDB rather than JavaScript, so the
 * figure can differ from the embedded engine's by a few bytes per counter.
 */
function sizeExpression(plan: SetPlan): Document {
  const cellLength = (cell: string) => ({
    $cond: [
      { $in: [{ $type: `${cell}.n` }, NUMERIC_TYPES] },
      { $strLenBytes: { $toString: `${cell}.n` } },
      { $strLenBytes: { $ifNull: [`${cell}.j`, "null"] } },
    ],
  });
  const labels = Array.from({ length: LABEL_COUNT }, (_, slot) => {
    const fields = labelFields((slot + 1) as LabelNumber);
    return {
      $cond: [
        { $eq: [{ $type: `$${fields.ns}` }, "missing"] },
        0,
        { $add: [12, { $strLenBytes: `$${fields.ns}` }, { $strLenBytes: { $ifNull: [`$${fields.part}`, ""] } }] },
      ],
    };
  });
  return {
    $add: [
      24 + Buffer.byteLength(JSON.stringify(plan.key.full)),
      {
        $cond: [
          { $eq: ["$vt", "o"] },
          {
            $add: [
              2,
              {
                $sum: {
                  $map: {
                    input: { $ifNull: ["$vo", []] },
                    as: "a",
                    in: { $add: [4, { $strLenBytes: "$$a.k" }, cellLength("$$a")] },
                  },
                },
              },
            ],
          },
          cellLength("$vs"),
        ],
      },
      ...labels,
    ],
  };
}
