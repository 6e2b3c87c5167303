/** A JSON value as stored: what google.protobuf.Value can carry. */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export type JsonObject = { [attribute: string]: JsonValue };

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Defines an own property even for names such as `__proto__`, which a plain
 * assignment would treat as the prototype setter (V2: attribute names are data).
 */
export function setOwn(target: JsonObject, attribute: string, value: JsonValue): void {
  Object.defineProperty(target, attribute, { value, enumerable: true, writable: true, configurable: true });
}

export function hasOwn(target: JsonObject, attribute: string): boolean {
  return Object.prototype.hasOwnProperty.call(target, attribute);
}

/**
 * K5, V1: text UTF-8 cannot hold. In a `u` pattern a surrogate pair is one
 * code point, so only a lone surrogate is of category Surrogate.
 */
export function hasLoneSurrogate(text: string): boolean {
  return LONE_SURROGATE.test(text);
}

// No `g` flag, so test() keeps no state between calls.
const LONE_SURROGATE = /\p{Surrogate}/u;

/** Byte length of a string in UTF-8, without allocating a buffer. */
export function utf8Length(text: string): number {
  return Buffer.byteLength(text, "utf8");
}
