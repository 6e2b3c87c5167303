import { isJsonObject, hasOwn, setOwn, type JsonObject, type JsonValue } from "./json.js";
import type { Key } from "./keys.js";
import type { ItemRecord, LabelSlots } from "./item.js";
import type { CreatedCheck, LabelChange, SetPlan, ValuePlan } from "./set-plan.js";
import { checkItemSize, itemSize } from "./values.js";
import { createdMismatch, itemExists, itemNotFound, notANumber, notASimpleValue, numberOverflow, versionMismatch } from "./write-refusals.js";

/** The outcome of applying a plan to the live item (or none). */
export interface SetOutcome {
  readonly item: ItemRecord;
  /**
   * The live item before the write, where the engine knows it: the embedded
   * engine does (its change log needs it); MongoDB's events take it from the
   * change stream's pre-image instead, so its stores leave it out.
   */
  readonly previous?: ItemRecord;
}

/**
 * Applies a plan to the live item (undefined when there is none, T7) in the
 * order S5 prescribes: exists, then created, then V5/A4/V8. Pure: the
 * embedded engine runs it inside its write transaction, which makes it
 * atomic (S4); the MongoDB engine expresses the same rules as one update.
 */
export function applySet(live: ItemRecord | undefined, plan: SetPlan, now: number): SetOutcome {
  if (plan.exists === false && live) {
    throw itemExists();
  }
  if (plan.exists === true && !live) {
    throw itemNotFound();
  }
  if (plan.created && !(live && createdMatches(live.created, plan.created))) {
    throw createdMismatch();
  }
  if (plan.ifVersion !== undefined && (live?.version ?? 0) !== plan.ifVersion) {
    throw versionMismatch(plan.ifVersion, live?.version ?? 0);
  }
  const value = nextValue(live?.value, live !== undefined, plan.value);
  const base = plan.overwrite ? undefined : live;
  const labels = plan.labels.map((change, slot) => nextLabel(base?.labels[slot], change)) as unknown as LabelSlots;
  const expires = plan.ttl.op === "set" ? plan.ttl.expires : plan.ttl.op === "keep" ? base?.expires : undefined;
  // M1, M2, C1: created survives merges, and an overwrite that passed the created check.
  const created = live && (!plan.overwrite || plan.created) ? live.created : now;
  checkItemSize(itemSize(plan.key, value, labels), "FAILED_PRECONDITION");
  // An overwrite is a change of the same item: its version goes on from the live one.
  const version = live ? live.version + 1 : 1;
  const item: ItemRecord =
    expires === undefined
      ? { key: plan.key, value, created, modified: now, labels, version }
      : { key: plan.key, value, created, modified: now, expires, labels, version };
  return live ? { item, previous: live } : { item };
}

function createdMatches(stored: number, check: CreatedCheck): boolean {
  return check.unit === "millis" ? stored === check.value : Math.floor(stored / 1000) === check.value;
}

function nextLabel(current: Key | undefined, change: LabelChange): Key | undefined {
  switch (change.op) {
    case "keep":
      return current;
    case "set":
      return change.label;
    case "setIfAbsent":
      return current ?? change.label;
    case "remove":
      return undefined;
  }
}

function nextValue(stored: JsonValue | undefined, exists: boolean, plan: ValuePlan): JsonValue {
  switch (plan.kind) {
    case "replace":
      return plan.value;
    case "single":
      if (isJsonObject(stored)) throw notASimpleValue();
      return plan.value;
    case "singleDefault":
      if (!exists) return plan.value;
      if (isJsonObject(stored)) throw notASimpleValue();
      return stored as JsonValue;
    case "addToValue":
      if (!exists) return plan.amount;
      if (isJsonObject(stored)) throw notASimpleValue();
      if (typeof stored !== "number") throw notANumber("value");
      return addTo("value", stored, plan.amount);
    case "merge": {
      // V4: onto a single value (or nothing) the merge starts from an empty object.
      const merged: JsonObject = {};
      if (isJsonObject(stored)) {
        for (const attribute of Object.keys(stored)) setOwn(merged, attribute, stored[attribute]);
      }
      for (const attribute of plan.unset) delete merged[attribute];
      for (const attribute of Object.keys(plan.set)) setOwn(merged, attribute, plan.set[attribute]);
      for (const attribute of Object.keys(plan.add)) {
        const current = hasOwn(merged, attribute) ? merged[attribute] : 0;
        if (typeof current !== "number") throw notANumber(attribute);
        setOwn(merged, attribute, addTo(attribute, current, plan.add[attribute]));
      }
      for (const attribute of Object.keys(plan.fill)) {
        if (!hasOwn(merged, attribute)) setOwn(merged, attribute, plan.fill[attribute]);
      }
      return merged;
    }
  }
}

/** A6: a counter's sum must stay a finite number. */
function addTo(attribute: string, stored: number, amount: number): number {
  const sum = stored + amount;
  if (!Number.isFinite(sum)) throw numberOverflow(attribute, amount);
  return sum;
}
