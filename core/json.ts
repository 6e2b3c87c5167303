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

/**
 * Byte length of a string in UTF-8, without allocating a buffer: Node's
 * native count where there is one, else counted here, so the domain's checks
 * also run in a browser (the console validates drafts with planSet).
 */
export function utf8Length(text: string): number {
  return NODE_BUFFER ? NODE_BUFFER.byteLength(text, "utf8") : countUtf8Bytes(text);
}

const NODE_BUFFER = (globalThis as { Buffer?: { byteLength(text: string, encoding: "utf8"): number } }).Buffer;

/** What UTF-8 needs for each UTF-16 unit: a lone surrogate counts 3 bytes (U+FFFD), as Buffer.byteLength counts it. */
export function countUtf8Bytes(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}
