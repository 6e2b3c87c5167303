import { invalidArgument } from "./errors.js";
import { hasLoneSurrogate, utf8Length } from "./json.js";

/**
 * A parsed, trimmed key (K1-K2). A simple key has `ns` = the whole key and
 * `part` = "": collection key parts are never empty (K3), so the pair
 * (ns, part) orders a simple key right before the collection of the same name
 * (SC2) and keeps it apart from every member of that collection (K8).
 */
export interface Key {
  readonly full: string;
  readonly ns: string;
  readonly part: string;
}

export const MAX_KEY_BYTES = 256;

/** Splits at every colon, trims each piece and validates the shape (K1-K5). */
export function parseKey(raw: string): Key {
  return parseKeyWithPartLimit(raw, MAX_KEY_BYTES);
}

/** parseKey for a key part that may be longer than a key's: an expression's can name two keys (expressions.ts). */
export function parseKeyWithPartLimit(raw: string, maxPartBytes: number): Key {
  if (typeof raw !== "string") throw invalidArgument("INVALID_KEY", "Invalid key");
  const pieces = raw.split(":").map((piece) => piece.trim());
  if (hasLoneSurrogate(raw)) {
    throw invalidArgument("INVALID_KEY", "Invalid key: keys must be valid Unicode text");
  }
  if (pieces.length === 1) {
    const full = pieces[0];
    if (full === "") throw invalidArgument("INVALID_KEY", "Invalid key");
    if (utf8Length(full) > MAX_KEY_BYTES) throw keyTooLong();
    return { full, ns: full, part: "" };
  }
  const [ns, second] = pieces;
  if (ns === "" || second === "") throw invalidArgument("INVALID_KEY", "Invalid key");
  const part = pieces.slice(1).join(":");
  if (utf8Length(ns) > MAX_KEY_BYTES) {
    throw invalidArgument("INVALID_KEY", "Invalid key: Maximum collection name size is 256 bytes");
  }
  if (utf8Length(part) > maxPartBytes) throw keyTooLong();
  return { full: `${ns}:${part}`, ns, part };
}

/** K4 over a key, or over each key an expression names. */
export function keyTooLong(): Error {
  return invalidArgument("INVALID_KEY", "Invalid key: Maximum Key size is 256 bytes");
}

export function isSimpleKey(key: Key): boolean {
  return key.part === "";
}

/** A key that is written (set, batch set, seed, label values) may not look like an expression (K6). */
export function parseWritableKey(raw: string): Key {
  const key = parseKey(raw);
  if (!isSimpleKey(key)) {
    if (hasWildcardOrRange(key.part)) {
      throw invalidArgument("INVALID_KEY", "Invalid key: Key names in collections cannot contain the '|' or the '*' characters.");
    }
    if (startsWithComparison(key.part)) {
      throw invalidArgument("INVALID_KEY", "Invalid key: Key names in collections cannot start with the '>' or '<' characters.");
    }
  }
  return key;
}

/** Whether a key part would be read as an expression (Q1). Simple keys never are. */
export function looksLikeExpression(key: Key): boolean {
  return !isSimpleKey(key) && isExpressionPart(key.part);
}

/**
 * looksLikeExpression over a caller's text, without validating it as a key
 * (the service does that): the client's choice between get and query. The
 * part is what follows the first colon; trimming its pieces one by one, as
 * parseKey does, changes neither its characters nor its first one.
 */
export function textLooksLikeExpression(raw: string): boolean {
  const colon = raw.indexOf(":");
  return colon >= 0 && isExpressionPart(raw.slice(colon + 1).trim());
}

/** Q1, K6: a collection key part is an expression when it holds `*` or `|`, or starts with `<` or `>`. */
function isExpressionPart(part: string): boolean {
  return hasWildcardOrRange(part) || startsWithComparison(part);
}

function hasWildcardOrRange(part: string): boolean {
  return part.includes("*") || part.includes("|");
}

function startsWithComparison(part: string): boolean {
  return part.startsWith("<") || part.startsWith(">");
}

export function keyFromParts(ns: string, part: string): Key {
  return { full: part === "" ? ns : `${ns}:${part}`, ns, part };
}

/**
 * Orders keys as every engine stores them (K7, SC2): namespace, then key part,
 * by UTF-8 bytes. JavaScript's `<` on strings is UTF-16 order and puts
 * U+1F600 before U+FF5E, which is wrong here.
 */
export function compareKeys(a: Key, b: Key): number {
  return compareUtf8(a.ns, b.ns) || compareUtf8(a.part, b.part);
}

export function compareUtf8(a: string, b: string): number {
  if (a === b) return 0;
  const shorter = Math.min(a.length, b.length);
  for (let i = 0; i < shorter; i++) {
    const unitA = a.charCodeAt(i);
    const unitB = b.charCodeAt(i);
    if (unitA !== unitB) return codePointRank(unitA) < codePointRank(unitB) ? -1 : 1;
  }
  return a.length < b.length ? -1 : 1;
}

/**
 * UTF-8 bytes sort as code points do. UTF-16 units sort the same way except
 * that a surrogate (half of a code point above U+FFFF) must rank after
 * U+E000..U+FFFF: shift the two ranges past each other. Buffer-free, so the
 * client and browsers order keys exactly as the engines do.
 */
function codePointRank(unit: number): number {
  if (unit >= 0xe000) return unit - 0x800;
  if (unit >= 0xd800) return unit + 0x2000;
  return unit;
}
