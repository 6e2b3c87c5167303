import { DomainError, invalidArgument, quote } from "./errors.js";
import { hasOwn, isJsonObject, setOwn, type JsonObject, type JsonValue } from "./json.js";
import { parseWritableKey, type Key } from "./keys.js";
import { perLabel, type LabelSlots, type PerLabel } from "./item.js";
import { badSeedMessage, checkBatchSize } from "./limits.js";
import { resolveTtl, type TtlChange, type TtlInput } from "./ttl.js";
import { addAmount, checkItemSize, checkText, itemSize, validateValue, withoutNegativeZero } from "./values.js";

/**
 * Set planning: a SetInput (what a caller asked, already decoded from the
 * wire) is validated once into a SetPlan, a pure description of the write
 * that every engine executes atomically: the embedded engine by applySet
 * (apply-set.ts) inside a transaction, the MongoDB engine as one update pipeline.
 */

/** How a caller changes one label (L2), before the label value is validated. */
export type LabelInput = { readonly set: string } | { readonly setIfAbsent: string } | { readonly remove: true };

export interface SetInput {
  readonly key: string;
  /** undefined: the caller gave no value (V7, D3). */
  readonly value: JsonValue | undefined;
  /** Root attributes given as `undefined` (V6). */
  readonly unsetAttributes: readonly string[];
  readonly overwrite: boolean;
  readonly ttl?: TtlInput;
  readonly exists?: boolean;
  readonly defaultValue?: JsonValue;
  /** One slot per label; undefined leaves that label as it is. */
  readonly labels: readonly (LabelInput | undefined)[];
  readonly created?: number;
  readonly removeNulls: boolean;
  /** Write only over the live item of this version; 0: only where there is none. */
  readonly ifVersion?: number;
}

export type LabelChange =
  | { readonly op: "keep" }
  | { readonly op: "set"; readonly label: Key }
  | { readonly op: "setIfAbsent"; readonly label: Key }
  | { readonly op: "remove" };

/** What the write does to the value, decided before the stored item is known. */
export type ValuePlan =
  /** overwrite (M2, A5, D3): the value as written, whatever was stored. */
  | { readonly kind: "replace"; readonly value: JsonValue }
  /** A single value without overwrite (V3); onto an object it is V5's error. */
  | { readonly kind: "single"; readonly value: JsonValue }
  /** A whole-value `{ $add: n }` (A1, AD1): onto a number adds, onto nothing is n, onto an object V5, else A4. */
  | { readonly kind: "addToValue"; readonly amount: number }
  /** D3: a single-value default with no value: written only where there is no live item. */
  | { readonly kind: "singleDefault"; readonly value: JsonValue }
  /**
   * An object merged at the root (V4, V6, A1, D2, D5). Onto a single value or
   * nothing it starts from {}.
   */
  | {
      readonly kind: "merge";
      /** Root attributes written as given. */
      readonly set: JsonObject;
      /** Root attributes incremented (a missing one counts as 0; a non-number is A4). */
      readonly add: Readonly<Record<string, number>>;
      /** Root attributes removed (null with removeNulls, or undefined). */
      readonly unset: readonly string[];
      /** Root attributes written only where the stored object lacks them (D2). */
      readonly fill: JsonObject;
    };

/** C2: seconds match the stored created truncated to the second; milliseconds match exactly. */
export type CreatedCheck = { readonly unit: "seconds" | "millis"; readonly value: number };

export interface SetPlan {
  readonly key: Key;
  readonly overwrite: boolean;
  readonly value: ValuePlan;
  readonly ttl: TtlChange;
  readonly labels: PerLabel<LabelChange>;
  readonly exists?: boolean;
  readonly created?: CreatedCheck;
  /** The live item's version must be this (0: no live item), checked after exists and created. */
  readonly ifVersion?: number;
}

type LabelChanges = SetPlan["labels"];

/** C2: above this a `created` is epoch milliseconds, below it epoch seconds. */
const MILLIS_THRESHOLD = 1e11;

/**
 * Validates a set (S5: every INVALID_ARGUMENT before anything is read) and
 * decides everything that does not depend on the stored item.
 */
export function planSet(input: SetInput, now: number): SetPlan {
  const key = parseWritableKey(input.key);
  const labels = planLabels(input.labels);
  const ttl = resolveTtl(input.ttl, now);
  const created = planCreatedCheck(input.created);
  const ifVersion = checkIfVersion(input.ifVersion, 0);
  const value = planValue({
    ...input,
    value: input.value === undefined ? undefined : withoutNegativeZero(input.value),
    defaultValue: input.defaultValue === undefined ? undefined : withoutNegativeZero(input.defaultValue),
  });
  checkItemSize(requestSize(key, value, labels), "INVALID_ARGUMENT");
  const plan: SetPlan = { key, overwrite: input.overwrite, value, ttl, labels, exists: input.exists, created };
  return ifVersion === undefined ? plan : { ...plan, ifVersion };
}

/** A version precondition is a whole number from `lowest` (0 means "no live item", where that makes sense). */
export function checkIfVersion(ifVersion: number | undefined, lowest: 0 | 1): number | undefined {
  if (ifVersion === undefined) return undefined;
  if (typeof ifVersion !== "number" || !Number.isSafeInteger(ifVersion) || ifVersion < lowest) {
    throw invalidArgument("INVALID_OPTION", `'ifVersion' must be a whole number from ${lowest} (a version an item can have)`);
  }
  return ifVersion;
}

/** AD1-AD4: `add(key, n)` and `add(key, attr, n)` as set plans (`$add` on the value or one attribute). */
export function planAdd(
  input: {
    readonly key: string;
    readonly attribute?: string;
    readonly amount: number;
    readonly overwrite: boolean;
    readonly ifVersion?: number;
  },
  now: number,
): SetPlan {
  if (typeof input.amount !== "number" || !Number.isFinite(input.amount)) {
    throw invalidArgument("INVALID_VALUE", "Values must be numeric");
  }
  if (input.attribute === "$add") {
    // A2: `{ $add: { $add: n } }` would otherwise be reported as a whole-value counter of a non-number.
    throw invalidArgument("INVALID_VALUE", "'$add' is a reserved keyword and cannot be the name of a counter");
  }
  const value: JsonValue = input.attribute === undefined ? { $add: input.amount } : objectOf([[input.attribute, { $add: input.amount }]]);
  return planSet(
    { key: input.key, value, unsetAttributes: [], overwrite: input.overwrite, labels: [], removeNulls: true, ifVersion: input.ifVersion },
    now,
  );
}

/** BS1-BS3: 1 to 25 items, all valid and with distinct keys, each written as an overwrite. */
export function planBatchSet(
  items: readonly SetInput[],
  options: { readonly overwrite?: boolean; readonly removeNulls: boolean },
  now: number,
): SetPlan[] {
  checkBatchSize(items.length, "items", "batch set");
  if (options.overwrite === false) {
    throw invalidArgument(
      "INVALID_OPTION",
      "Batch set only supports 'overwrite: true': batch updates are not supported, set items one by one to merge",
    );
  }
  const plans = items.map((item) => planSet(batchItem(item, options.removeNulls), now));
  const seen = new Set<string>();
  for (const plan of plans) {
    if (seen.has(plan.key.full)) {
      throw invalidArgument("INVALID_KEY", `The key '${plan.key.full}' appears more than once in one batch set request`);
    }
    seen.add(plan.key.full);
  }
  return plans;
}

/**
 * SE1, SE3: any number of items, each an overwrite; every invalid item is
 * named by its index. Plans keep the request order, so of two items with one
 * key the later one wins; each counts as written (SE1's `{ items: N }`).
 */
export function planSeed(items: readonly SetInput[], now: number): SetPlan[] {
  const plans: SetPlan[] = [];
  const problems: { index: number; message: string }[] = [];
  let firstProblem: DomainError | undefined;
  items.forEach((item, index) => {
    try {
      plans.push(planSet(batchItem(item, item.removeNulls), now));
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      firstProblem ??= error;
      problems.push({ index, message: error.message });
    }
  });
  if (firstProblem) throw invalidArgument(firstProblem.reason, badSeedMessage(problems));
  return plans;
}

function batchItem(item: SetInput, removeNulls: boolean): SetInput {
  if (item.key.trim() === "") {
    throw invalidArgument("INVALID_KEY", "A string value of 'key' must be provided in each item");
  }
  if (item.value === undefined && item.defaultValue === undefined) {
    throw invalidArgument("INVALID_VALUE", "A 'value' must be provided in each item");
  }
  return { ...item, overwrite: true, exists: undefined, created: undefined, ifVersion: undefined, removeNulls };
}

function planLabels(inputs: readonly (LabelInput | undefined)[]): LabelChanges {
  return perLabel((_, slot): LabelChange => {
    const input = inputs[slot];
    if (input === undefined) return { op: "keep" };
    if ("remove" in input) return { op: "remove" };
    if ("set" in input) return { op: "set", label: parseWritableKey(input.set) };
    return { op: "setIfAbsent", label: parseWritableKey(input.setIfAbsent) };
  });
}

function planCreatedCheck(created: number | undefined): CreatedCheck | undefined {
  if (created === undefined) return undefined;
  if (typeof created !== "number" || !Number.isFinite(created)) {
    throw invalidArgument("INVALID_OPTION", "'created' value must be a number");
  }
  return created > MILLIS_THRESHOLD ? { unit: "millis", value: created } : { unit: "seconds", value: created };
}

type Kind = "object" | "array" | "string" | "number" | "boolean" | "null";

function kindOf(value: JsonValue): Kind {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value as Kind;
}

function sameKindOrThrow(value: JsonValue, defaultValue: JsonValue): void {
  if (kindOf(value) !== kindOf(defaultValue)) {
    throw invalidArgument("INVALID_OPTION", "'default' must be of the same type as the value");
  }
}

/** D1: a default gives values; it may not add to anything. */
function validateDefault(defaultValue: JsonValue): void {
  if (isJsonObject(defaultValue)) {
    if (hasOwn(defaultValue, "$add")) throw invalidArgument("INVALID_OPTION", "'default' cannot use the $add keyword");
    for (const attribute of Object.keys(defaultValue)) {
      const nested = defaultValue[attribute];
      if (isJsonObject(nested) && hasOwn(nested, "$add")) {
        throw invalidArgument("INVALID_OPTION", `'$add' cannot be used as a default (${quote(attribute)})`);
      }
      checkText(attribute, "default");
      validateValue(nested, "default", 1);
    }
    return;
  }
  validateValue(defaultValue, "default");
}

function planValue(input: SetInput): ValuePlan {
  const { overwrite, removeNulls, defaultValue } = input;
  if (defaultValue !== undefined) validateDefault(defaultValue);
  // V7, D3: no value (or null while nulls remove) means "use the default".
  const noValue = input.value === undefined || (input.value === null && (removeNulls || defaultValue !== undefined));
  if (noValue) {
    if (defaultValue === undefined) {
      throw invalidArgument("INVALID_VALUE", "Value can not be undefined without setting a 'default'");
    }
    if (overwrite) return { kind: "replace", value: withoutRootNulls(defaultValue, removeNulls) };
    if (isJsonObject(defaultValue)) {
      return {
        kind: "merge",
        set: {},
        add: {},
        unset: [...input.unsetAttributes],
        fill: withoutRootNulls(defaultValue, removeNulls) as JsonObject,
      };
    }
    return { kind: "singleDefault", value: defaultValue };
  }
  const value = input.value as JsonValue;
  if (isJsonObject(value) && hasOwn(value, "$add")) {
    // A1: a whole-value counter; A5: with overwrite there is nothing to add to.
    const amount = addAmount(value, "value")!;
    return overwrite ? { kind: "replace", value: amount } : { kind: "addToValue", amount };
  }
  if (!isJsonObject(value)) {
    validateValue(value);
    if (defaultValue !== undefined) sameKindOrThrow(value, defaultValue);
    return overwrite ? { kind: "replace", value } : { kind: "single", value };
  }
  if (defaultValue !== undefined) sameKindOrThrow(value, defaultValue);
  const merge = planMerge(value, input.unsetAttributes, removeNulls, defaultValue as JsonObject | undefined);
  if (!overwrite) return merge;
  // M2, A5: an overwrite writes the merged input as it is, `$add` amounts as plain numbers.
  const written: JsonObject = {};
  for (const [attribute, fill] of Object.entries(merge.fill)) setOwn(written, attribute, fill);
  for (const [attribute, set] of Object.entries(merge.set)) setOwn(written, attribute, set);
  for (const [attribute, amount] of Object.entries(merge.add)) setOwn(written, attribute, amount);
  return { kind: "replace", value: written };
}

function planMerge(
  value: JsonObject,
  unsetAttributes: readonly string[],
  removeNulls: boolean,
  defaultValue: JsonObject | undefined,
): Extract<ValuePlan, { kind: "merge" }> {
  const set: JsonObject = {};
  const add: Record<string, number> = {};
  const unset = new Set(unsetAttributes);
  for (const attribute of Object.keys(value)) {
    checkText(attribute, "value");
    const given = value[attribute];
    const amount = addAmount(given, attribute);
    if (amount !== undefined) {
      setOwn(add as JsonObject, attribute, amount);
    } else if (given === null && removeNulls) {
      unset.add(attribute);
    } else {
      validateValue(given, "value", 1);
      const fromDefault = defaultValue && hasOwn(defaultValue, attribute) ? defaultValue[attribute] : undefined;
      setOwn(set, attribute, fromDefault === undefined ? given : deepMerge(given, fromDefault));
    }
  }
  const fill: JsonObject = {};
  if (defaultValue) {
    for (const attribute of Object.keys(defaultValue)) {
      const filler = defaultValue[attribute];
      if (hasOwn(value, attribute) || unset.has(attribute) || (filler === null && removeNulls)) continue;
      setOwn(fill, attribute, filler);
    }
  }
  return { kind: "merge", set, add, unset: [...unset], fill };
}

/** D2: objects merge deeply with the value winning; arrays and single values are never merged. */
function deepMerge(value: JsonValue, defaultValue: JsonValue): JsonValue {
  if (!isJsonObject(value) || !isJsonObject(defaultValue)) return value;
  const merged: JsonObject = {};
  for (const attribute of Object.keys(defaultValue)) setOwn(merged, attribute, defaultValue[attribute]);
  for (const attribute of Object.keys(value)) {
    const fromDefault = hasOwn(defaultValue, attribute) ? defaultValue[attribute] : undefined;
    setOwn(merged, attribute, fromDefault === undefined ? value[attribute] : deepMerge(value[attribute], fromDefault));
  }
  return merged;
}

/** V6: root nulls are removed unless removeNulls is off; nested nulls always stay. */
function withoutRootNulls(value: JsonValue, removeNulls: boolean): JsonValue {
  if (!removeNulls || !isJsonObject(value)) return value;
  const kept: JsonObject = {};
  for (const attribute of Object.keys(value)) {
    if (value[attribute] !== null) setOwn(kept, attribute, value[attribute]);
  }
  return kept;
}

/** V8: the size of what the request itself would write, `$add` amounts counted as numbers. */
export function requestSize(key: Key, plan: ValuePlan, labels: LabelChanges): number {
  const written: (Key | undefined)[] = labels.map((change) => (change.op === "set" || change.op === "setIfAbsent" ? change.label : undefined));
  return itemSize(key, requestedValue(plan), written as unknown as LabelSlots);
}

function requestedValue(plan: ValuePlan): JsonValue {
  switch (plan.kind) {
    case "replace":
    case "single":
    case "singleDefault":
      return plan.value;
    case "addToValue":
      return plan.amount;
    case "merge": {
      const value: JsonObject = {};
      for (const part of [plan.fill, plan.set, plan.add as JsonObject]) {
        for (const attribute of Object.keys(part)) setOwn(value, attribute, part[attribute]);
      }
      return value;
    }
  }
}

function objectOf(entries: readonly (readonly [string, JsonValue])[]): JsonObject {
  const object: JsonObject = {};
  for (const [attribute, value] of entries) setOwn(object, attribute, value);
  return object;
}
