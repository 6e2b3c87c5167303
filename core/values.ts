import { DomainError, invalidArgument, quote, type ErrorCodeName } from "./errors.js";
import { hasLoneSurrogate, isJsonObject, setOwn, utf8Length, type JsonObject, type JsonValue } from "./json.js";
import type { LabelSlots } from "./item.js";
import type { Key } from "./keys.js";

/** V1: containers may nest this deep; deeper values are refused before anything is read. */
export const MAX_DEPTH = 32;
/** V8: 400 KB of JSON for { key, value, label1..label5 }. */
export const MAX_ITEM_BYTES = 400 * 1024;

const ADD = "$add";

/**
 * V1, V2: text must be well-formed UTF-16, which is what UTF-8 storage and
 * the protobuf wire can carry: a lone surrogate (which Connect's JSON lets
 * through inside a google.protobuf.Value) would be stored as it came and then
 * read back over gRPC as U+FFFD, so two attribute names could become one.
 */
export function checkText(text: string, what: string): void {
  if (hasLoneSurrogate(text)) {
    throw invalidArgument("INVALID_VALUE", `'${quote(what)}' may only hold well-formed Unicode text (no lone surrogates)`);
  }
}

/**
 * V1, A3: a value must be finite JSON no deeper than MAX_DEPTH, and `$add`
 * may only appear as a whole root attribute (or the whole value), which the
 * set planner takes apart before this check sees the rest. A root attribute's
 * value is checked from depth 1, so objects and arrays nest equally deep;
 * the caller checks that attribute's name.
 */
export function validateValue(value: JsonValue, what = "value", startDepth = 0): void {
  visit(value, startDepth);

  function visit(node: JsonValue, depth: number): void {
    if (typeof node === "number") {
      if (!Number.isFinite(node)) throw invalidArgument("INVALID_VALUE", `'${quote(what)}' may only hold finite numbers`);
      return;
    }
    if (typeof node === "string") return checkText(node, what);
    if (node === null || typeof node !== "object") return;
    if (depth >= MAX_DEPTH) {
      throw invalidArgument("INVALID_VALUE", `'${quote(what)}' is nested deeper than ${MAX_DEPTH} levels`);
    }
    if (Array.isArray(node)) {
      for (const element of node) visit(element, depth + 1);
      return;
    }
    for (const attribute of Object.keys(node)) {
      if (attribute === ADD) {
        throw invalidArgument("INVALID_VALUE", "'$add' can only be used on a root attribute or on the whole value");
      }
      checkText(attribute, what);
      visit(node[attribute], depth + 1);
    }
  }
}

/**
 * V1: JSON has no negative zero, so -0 is 0 at any depth before anything is
 * planned: the reply of the set that writes it, every read and every event
 * then agree on every engine (the embedded one writes JSON text, which has
 * no -0; MongoDB stores doubles, which do). Copies only what holds a -0;
 * nesting past MAX_DEPTH is left for validateValue to refuse.
 */
export function withoutNegativeZero(value: JsonValue, depth = 0): JsonValue {
  if (typeof value === "number") return Object.is(value, -0) ? 0 : value;
  if (value === null || typeof value !== "object" || depth > MAX_DEPTH) return value;
  if (Array.isArray(value)) {
    let copy: JsonValue[] | undefined;
    value.forEach((element, index) => {
      const normalized = withoutNegativeZero(element, depth + 1);
      // Object.is: 0 === -0, so === would see no change.
      if (!Object.is(normalized, element)) (copy ??= [...value])[index] = normalized;
    });
    return copy ?? value;
  }
  let copy: JsonObject | undefined;
  for (const attribute of Object.keys(value)) {
    const normalized = withoutNegativeZero(value[attribute], depth + 1);
    if (Object.is(normalized, value[attribute])) continue;
    if (!copy) {
      copy = {};
      for (const each of Object.keys(value)) setOwn(copy, each, value[each]);
    }
    setOwn(copy, attribute, normalized);
  }
  return copy ?? value;
}

/**
 * A2: `{ $add: n }` and nothing else. Returns the amount, or undefined when
 * the object is not an `$add` at all.
 */
export function addAmount(value: JsonValue, attribute: string): number | undefined {
  if (!isJsonObject(value) || !Object.prototype.hasOwnProperty.call(value, ADD)) return undefined;
  if (Object.keys(value).length !== 1) {
    throw invalidArgument("INVALID_VALUE", "'$add' is a reserved keyword and must be in an object with a single key of $add");
  }
  const amount = value[ADD];
  if (typeof amount !== "number" || !Number.isFinite(amount)) {
    throw invalidArgument("INVALID_VALUE", `'${quote(attribute)}' must be a number when using $add`);
  }
  return amount;
}

/** V8: the UTF-8 bytes of the JSON of { key, value, label1..label5 }. */
export function itemSize(key: Key, value: JsonValue, labels: LabelSlots): number {
  let size = utf8Length(JSON.stringify({ key: key.full, value }));
  for (const label of labels) {
    // `,"labelN":"…"` around the label's own JSON string.
    if (label) size += utf8Length(JSON.stringify(label.full)) + 10;
  }
  return size;
}

/** V8: refuses an item over the limit, with INVALID_ARGUMENT for a request and FAILED_PRECONDITION for a merge. */
export function checkItemSize(size: number, code: Extract<ErrorCodeName, "INVALID_ARGUMENT" | "FAILED_PRECONDITION">): void {
  if (size <= MAX_ITEM_BYTES) return;
  throw new DomainError(code, "ITEM_TOO_LARGE", `Item size of ${(size / 1024).toFixed(2)} KB is greater than the maximum size of 400 KB.`);
}
