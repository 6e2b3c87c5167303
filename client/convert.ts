import { fromJson, toJson, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate, ValueSchema, type Value } from "@bufbuild/protobuf/wkt";
import type { Item, LabelUpdate, Ttl } from "../gen/larder/data/v1/data_pb.js";
import { isTimestampInstant } from "../core/ttl.js";
import { hasLoneSurrogate } from "../core/json.js";
import { LABEL_NAMES, type LabelName } from "../core/item.js";
import { invalidArgument } from "./errors.js";
import type { KeyValue, KeyValueMeta } from "./types.js";

/** Nesting deeper than this is refused (V1); checked here too so a cyclic value fails cleanly. */
export const MAX_DEPTH = 32;

/**
 * A JS value as JSON, the way `JSON.stringify` would see it (V1): `toJSON()` is
 * honoured (a Date becomes its ISO 8601 string), `undefined` in arrays becomes
 * null and is dropped from nested objects. Unlike JSON.stringify, values JSON
 * cannot hold (BigInt, functions, symbols, NaN, ±Infinity) are refused instead of
 * silently turned into null or dropped, since storing them would lose data.
 */
export function toJsonValue(input: unknown, depth = 0, holder = ""): JsonValue {
  const value = applyToJson(input, holder);
  switch (typeof value) {
    case "string":
      return wellFormed(value);
    case "boolean":
      return value;
    case "number":
      if (!Number.isFinite(value)) {
        throw invalidArgument("INVALID_VALUE", `Invalid value: ${value} is not a JSON number`);
      }
      return value;
    case "bigint":
    case "function":
    case "symbol":
      throw invalidArgument("INVALID_VALUE", `Invalid value: a ${typeof value} cannot be stored as JSON`);
    case "undefined":
      return null;
  }
  if (value === null) return null;
  if (depth >= MAX_DEPTH) {
    throw invalidArgument("INVALID_VALUE", `Invalid value: values may be nested at most ${MAX_DEPTH} levels deep`);
  }
  if (Array.isArray(value)) {
    return value.map((element, index) => toJsonValue(element, depth + 1, String(index)));
  }
  const object: JsonObject = {};
  for (const attribute of Object.keys(value as object)) {
    const element = (value as Record<string, unknown>)[attribute];
    if (element === undefined) continue;
    setOwn(object, wellFormed(attribute), toJsonValue(element, depth + 1, attribute));
  }
  return object;
}

/**
 * K1, K5, L1: a key or label value is a string the wire can carry. Protobuf
 * would send String(x) for anything else (so `remove(undefined)` would remove
 * the item "undefined"), and U+FFFD for a lone surrogate.
 */
export function keyText(key: unknown): string {
  if (typeof key !== "string") throw invalidArgument("INVALID_KEY", "Invalid key");
  if (hasLoneSurrogate(key)) throw invalidArgument("INVALID_KEY", "Invalid key: keys must be valid Unicode text");
  return key;
}

/** V2: the wire's UTF-8 would turn a lone surrogate into U+FFFD, so two attribute names could become one. */
export function wellFormed(text: string): string {
  if (hasLoneSurrogate(text)) {
    throw invalidArgument("INVALID_VALUE", "Invalid value: text may not hold a lone surrogate (it is not valid Unicode)");
  }
  return text;
}

function applyToJson(input: unknown, holder: string): unknown {
  if (typeof input === "object" && input !== null) {
    const toJSON = (input as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === "function") return toJSON.call(input, holder);
    // Boxed primitives (new String("x")) serialize as their primitive, as in JSON.stringify.
    if (input instanceof Number || input instanceof String || input instanceof Boolean) return input.valueOf();
  }
  return input;
}

/** V2: `__proto__` is data; a plain assignment would set the prototype instead. */
function setOwn(target: JsonObject, attribute: string, value: JsonValue): void {
  Object.defineProperty(target, attribute, { value, enumerable: true, writable: true, configurable: true });
}

export function isPlainObjectValue(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    typeof (value as { toJSON?: unknown }).toJSON !== "function" &&
    !(value instanceof Number || value instanceof String || value instanceof Boolean)
  );
}

/** The value of a set as the API takes it: the value itself and the root attributes to remove. */
export interface WriteValue {
  value?: Value;
  unsetAttributes: string[];
  /** The value's size as JSON text: what a pipelined call may carry is bounded by it. */
  chars: number;
}

/**
 * Splits a value to write into the JSON value and the root attributes given as
 * `undefined`, which JSON cannot carry but which remove the attribute (V6).
 * An `undefined` value itself stays absent: the service decides about it (V7, D3).
 */
export function toWriteValue(input: unknown): WriteValue {
  if (input === undefined) return { unsetAttributes: [], chars: 0 };
  const unsetAttributes = isPlainObjectValue(input)
    ? Object.keys(input)
        .filter((attribute) => input[attribute] === undefined)
        .map(wellFormed)
    : [];
  const json = toJsonValue(input);
  return { value: fromJson(ValueSchema, json), unsetAttributes, chars: JSON.stringify(json).length };
}

/** A JS value as google.protobuf.Value (V1), built by protobuf-es from its JSON form. */
export function toValue(input: unknown): Value {
  return fromJson(ValueSchema, toJsonValue(input));
}

/** A google.protobuf.Value as a JS value; `__proto__` and other names stay data (V2). */
export function fromValue(value: Value | undefined): unknown {
  if (value === undefined || value.kind.case === undefined) return undefined;
  return toJson(ValueSchema, value);
}

/**
 * `ttl` as the API's Ttl (T1-T4). A number goes as seconds even when it is not an
 * integer, so the service gives its own `Invalid ttl value.`; only what the
 * message cannot carry at all (a boolean, an object, an invalid Date) is refused here.
 */
export function toTtl(ttl: unknown): Ttl["kind"] | undefined {
  if (ttl === undefined) return undefined;
  if (ttl === null) return { case: "remove", value: true };
  if (typeof ttl === "number") return { case: "seconds", value: ttl };
  if (typeof ttl === "string") return { case: "date", value: ttl };
  // A Date no Timestamp can carry would fail in the JSON transport before reaching the service (T4).
  if (ttl instanceof Date && isTimestampInstant(ttl.getTime())) return { case: "at", value: timestampFromDate(ttl) };
  throw invalidArgument("INVALID_OPTION", "Invalid ttl value.");
}

/**
 * A label option of a set (L2): a string sets it, `[value]` sets it only if absent,
 * `null` or a present `undefined` removes it. Anything else cannot be expressed,
 * so it is refused here with the service's reason.
 */
export function toLabelUpdate(name: string, setting: unknown): LabelUpdate["action"] {
  if (setting === null || setting === undefined) return { case: "remove", value: true };
  if (typeof setting === "string") return { case: "set", value: keyText(setting) };
  if (Array.isArray(setting) && setting.length === 1 && typeof setting[0] === "string") {
    return { case: "setIfAbsent", value: keyText(setting[0]) };
  }
  throw invalidArgument("INVALID_LABEL", `Invalid '${name}' value: use a string, a one-element array (set only if absent) or null (remove)`);
}

/** The labels present in an options object or a batch item (L2: present means named). */
export function labelNames(source: object): LabelName[] {
  return LABEL_NAMES.filter((name) => Object.prototype.hasOwnProperty.call(source, name));
}

/**
 * An item's value as a JS value: parsed from `value_json` when the service sent
 * JSON text (which is never empty), else converted from google.protobuf.Value.
 * JSON.parse keeps `__proto__` and other names as data (V2), as toJson does.
 */
export function itemValue(item: Item): unknown {
  return item.valueJson !== "" ? JSON.parse(item.valueJson) : fromValue(item.value);
}

/** M5: the `{ key, value }` form of every multi-item result. */
export function toKeyValue(item: Item): KeyValue<unknown> {
  return { key: item.key, value: itemValue(item) };
}

/**
 * M4: the meta form. Times are Date objects (the published client's types say
 * Date; their JSON form is the documented ISO 8601 UTC string); `ttl` and each
 * label appear only when the item has them.
 */
export function toMetaItem(item: Item): KeyValueMeta<unknown> {
  const result: KeyValueMeta<unknown> = { key: item.key, value: itemValue(item) };
  if (item.created) result.created = timestampDate(item.created);
  if (item.modified) result.modified = timestampDate(item.modified);
  for (const name of LABEL_NAMES) {
    const label = item[name];
    if (label !== undefined) result[name] = label;
  }
  if (item.ttl) result.ttl = timestampDate(item.ttl);
  // 0 only from a server before versions, which has none to give.
  if (item.version > 0n) result.version = Number(item.version);
  return result;
}

/** An item in the shape the caller asked for. */
export function shapeItem(item: Item, meta: boolean): KeyValue<unknown> | KeyValueMeta<unknown> {
  return meta ? toMetaItem(item) : toKeyValue(item);
}
