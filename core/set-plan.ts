import { DomainError, failedPrecondition, invalidArgument, quote } from "./errors.js";
import { sizedRuns } from "./runs.js";
import { hasOwn, isJsonObject, setOwn, type JsonObject, type JsonValue } from "./json.js";
import { parseWritableKey, type Key } from "./keys.js";
import { LABEL_COUNT, type ItemRecord, type LabelSlots } from "./item.js";
import { badSeedMessage, checkBatchSize } from "./limits.js";
import { resolveTtl, type TtlChange, type TtlInput } from "./ttl.js";
import { addAmount, checkItemSize, checkText, itemSize, validateValue, withoutNegativeZero } from "./values.js";

/**
 * Set planning: a SetInput (what a caller asked, already decoded from the
 * wire) is validated once into a SetPlan, a pure description of the write
 * that every engine executes atomically: the embedded engine by applySet
 * inside a transaction, the MongoDB engine as one update pipeline.
 */

/** How a caller changes one label (L2), before the label value is validated. */
export type LabelInput =
  | { readonly set: string }
  | { readonly setIfAbsent: string }
  | { readonly remove: true };

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
  readonly labels: readonly [LabelChange, LabelChange, LabelChange, LabelChange, LabelChange];
  readonly exists?: boolean;
  readonly created?: CreatedCheck;
  /** The live item's version must be this (0: no live item), checked after exists and created. */
  readonly ifVersion?: number;
}

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

/** The live item's version does not match a write's ifVersion (0 stands for "no live item"). */
export function versionMismatch(expected: number, actual: number): DomainError {
  return failedPrecondition(
    "VERSION_MISMATCH",
    actual === 0
      ? `The version check failed: expected version ${expected}, but there is no live item`
      : expected === 0
        ? `The version check failed: expected no item, but the item exists at version ${actual}`
        : `The version check failed: expected version ${expected}, but the item is at version ${actual}`,
  );
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
  const value: JsonValue =
    input.attribute === undefined ? { $add: input.amount } : objectOf([[input.attribute, { $add: input.amount }]]);
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
  const changes: LabelChange[] = [];
  for (let slot = 0; slot < LABEL_COUNT; slot++) {
    const input = inputs[slot];
    if (input === undefined) changes.push({ op: "keep" });
    else if ("remove" in input) changes.push({ op: "remove" });
    else if ("set" in input) changes.push({ op: "set", label: parseWritableKey(input.set) });
    else changes.push({ op: "setIfAbsent", label: parseWritableKey(input.setIfAbsent) });
  }
  return changes as unknown as LabelChanges;
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

/** The most a bulk write (seed, import, clone) stages or commits at once: items, and their bytes (V8's measure). */
export const BULK_CHUNK = { items: 100, bytes: 4 * 1024 * 1024 } as const;

/**
 * Consecutive runs of plans of at most BULK_CHUNK items and bytes, each run
 * at least one plan: a chunk is what one transaction of a bulk write holds,
 * so its size (and a MongoDB transaction's) stays bounded however large the
 * items are.
 */
export function bulkChunks(plans: Iterable<SetPlan>): Generator<SetPlan[]> {
  return sizedRuns(plans, (plan) => requestSize(plan.key, plan.value, plan.labels), BULK_CHUNK);
}

/** V8: the size of what the request itself would write, `$add` amounts counted as numbers. */
function requestSize(key: Key, plan: ValuePlan, labels: LabelChanges): number {
  const written: (Key | undefined)[] = labels.map((change) =>
    change.op === "set" || change.op === "setIfAbsent" ? change.label : undefined,
  );
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

const NOT_A_SIMPLE_VALUE = "Cannot convert an existing object to a simple value.";

/** E1: what a write with `exists: false` gets when a live item is there. */
export function itemExists(): DomainError {
  return new DomainError("ALREADY_EXISTS", "ITEM_EXISTS", "Item already exists");
}

function notANumber(attribute: string): DomainError {
  return failedPrecondition("NOT_A_NUMBER", `'${quote(attribute)}' is not a number`);
}

/**
 * A6: a counter adds in doubles, and a sum past Number.MAX_VALUE is Infinity,
 * which JSON cannot hold (it would be stored as null, or fail every read).
 * OUT_OF_RANGE rather than FAILED_PRECONDITION: the same call succeeds again
 * once the stored number is smaller.
 */
function addTo(attribute: string, stored: number, amount: number): number {
  const sum = stored + amount;
  if (!Number.isFinite(sum)) {
    throw new DomainError("OUT_OF_RANGE", "NUMBER_OVERFLOW", `Adding ${amount} to '${quote(attribute)}' overflows the largest number`);
  }
  return sum;
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
    throw new DomainError("NOT_FOUND", "ITEM_NOT_FOUND", "Item does not exist");
  }
  if (plan.created && !(live && createdMatches(live.created, plan.created))) {
    throw failedPrecondition(
      "CREATED_MISMATCH",
      "The 'created' date integrity check failed. The dates must match.",
    );
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
  const item: ItemRecord = expires === undefined
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
      if (isJsonObject(stored)) throw failedPrecondition("NOT_A_SIMPLE_VALUE", NOT_A_SIMPLE_VALUE);
      return plan.value;
    case "singleDefault":
      if (!exists) return plan.value;
      if (isJsonObject(stored)) throw failedPrecondition("NOT_A_SIMPLE_VALUE", NOT_A_SIMPLE_VALUE);
      return stored as JsonValue;
    case "addToValue":
      if (!exists) return plan.amount;
      if (isJsonObject(stored)) throw failedPrecondition("NOT_A_SIMPLE_VALUE", NOT_A_SIMPLE_VALUE);
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
