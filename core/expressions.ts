import { invalidArgument } from "./errors.js";
import { utf8Length } from "./json.js";
import { compareUtf8, isSimpleKey, keyTooLong, MAX_KEY_BYTES, parseKeyWithPartLimit, type Key } from "./keys.js";

/** One end of a range of key parts. */
export interface Bound {
  readonly value: string;
  readonly inclusive: boolean;
}

/**
 * A set of keys within one namespace as a range of key parts, in bytewise
 * UTF-8 order. Every engine answers it with one index range scan on
 * (ns, part). A simple key is the range [""..""] of its own namespace; every
 * collection range starts strictly after "" so it never includes the simple
 * key of the same name (K8).
 */
export interface KeyRange {
  readonly ns: string;
  readonly lower: Bound;
  readonly upper?: Bound;
  /** The range names one key: results keep the exact-key shape (Q6). */
  readonly exact: boolean;
}

const AFTER_SIMPLE_KEY: Bound = { value: "", inclusive: false };
const COMPARISONS = ["<=", ">=", "<", ">"] as const;

/**
 * An expression's key part can name two keys of up to 256 bytes each (`A|B`,
 * and a `*` Q2 ignores), with the whitespace Q2 trims around them; K4 then
 * holds for each key it names (checkedKey). The bound on the whole only
 * keeps absurd input from being parsed.
 */
const MAX_EXPRESSION_PART_BYTES = 4 * MAX_KEY_BYTES;

/** Parses a key expression or an exact key (Q1-Q5). */
export function parseKeyExpression(raw: string): KeyRange {
  const key = parseKeyWithPartLimit(raw, MAX_EXPRESSION_PART_BYTES);
  if (isSimpleKey(key)) {
    // Q1: a simple key is always matched literally, `*` and all.
    return { ns: key.ns, lower: { value: "", inclusive: true }, upper: { value: "", inclusive: true }, exact: true };
  }
  const { ns, part } = key;
  const star = part.indexOf("*");
  if (star !== -1 && star !== part.length - 1) {
    throw invalidArgument("INVALID_EXPRESSION", "Wildcards ('*') can only be used at the end of a key expression");
  }
  for (const operator of COMPARISONS) {
    if (part.startsWith(operator)) {
      const operand = operandOf(part.slice(operator.length), `You must supply a key name after '${operator}'`);
      switch (operator) {
        case "<":
          return { ns, lower: AFTER_SIMPLE_KEY, upper: { value: operand, inclusive: false }, exact: false };
        case "<=":
          return { ns, lower: AFTER_SIMPLE_KEY, upper: { value: operand, inclusive: true }, exact: false };
        case ">":
          return { ns, lower: { value: operand, inclusive: false }, exact: false };
        case ">=":
          return { ns, lower: { value: operand, inclusive: true }, exact: false };
      }
    }
  }
  if (part.includes("|")) {
    const pieces = part.split("|");
    const message = "You must supply a key name before and after '|'";
    if (pieces.length > 2) {
      // Q4 [L]: the published client silently drops everything after a second `|`.
      throw invalidArgument("INVALID_EXPRESSION", "A range takes exactly one '|' between two key names");
    }
    const from = operandOf(pieces[0], message);
    const to = operandOf(pieces[1], message);
    if (compareUtf8(from, to) > 0) {
      throw invalidArgument("INVALID_EXPRESSION", "The start of a range must not sort after its end");
    }
    return { ns, lower: { value: from, inclusive: true }, upper: { value: to, inclusive: true }, exact: false };
  }
  if (star === part.length - 1) {
    const prefix = checkedKey(part.slice(0, -1));
    if (prefix === "") return { ns, lower: AFTER_SIMPLE_KEY, exact: false };
    const end = prefixEnd(prefix);
    return {
      ns,
      lower: { value: prefix, inclusive: true },
      upper: end === undefined ? undefined : { value: end, inclusive: false },
      exact: false,
    };
  }
  checkedKey(part);
  return { ns, lower: { value: part, inclusive: true }, upper: { value: part, inclusive: true }, exact: true };
}

/** Q2: operands are trimmed, and a `*` that ends the whole expression is ignored on them. */
function operandOf(text: string, emptyMessage: string): string {
  let operand = text.trim();
  if (operand.endsWith("*")) operand = operand.slice(0, -1).trim();
  if (operand === "") throw invalidArgument("INVALID_EXPRESSION", emptyMessage);
  return checkedKey(operand);
}

/** K4 for each key an expression names: no key is longer, so a longer one could only be a typo. */
function checkedKey(part: string): string {
  if (utf8Length(part) > MAX_KEY_BYTES) throw keyTooLong();
  return part;
}

/**
 * The smallest string that sorts after every string starting with `prefix`,
 * in code point (= UTF-8 byte) order: the prefix with its last code point
 * incremented, skipping the surrogate block, dropping code points that are
 * already the maximum. Undefined when no such string exists (all U+10FFFF).
 */
export function prefixEnd(prefix: string): string | undefined {
  const codePoints = Array.from(prefix, (c) => c.codePointAt(0)!);
  while (codePoints.length > 0) {
    const last = codePoints.pop()!;
    if (last < 0x10ffff) {
      const next = last === 0xd7ff ? 0xe000 : last + 1;
      return String.fromCodePoint(...codePoints, next);
    }
  }
  return undefined;
}

/** Whether a key part lies in a range; the reference that engines' queries must agree with. */
export function rangeIncludes(range: KeyRange, key: Key): boolean {
  if (key.ns !== range.ns) return false;
  const low = compareUtf8(key.part, range.lower.value);
  if (low < 0 || (low === 0 && !range.lower.inclusive)) return false;
  if (range.upper) {
    const high = compareUtf8(key.part, range.upper.value);
    if (high > 0 || (high === 0 && !range.upper.inclusive)) return false;
  }
  return true;
}

/**
 * P4: the range left after an exclusive `start`, in the query's direction.
 * One bound per side is what lets an engine answer with a single index range
 * scan; given two lower bounds, SQLite seeks to one and filters by the
 * other, which turns a late page into a scan of everything before it.
 */
export function narrowRange(range: KeyRange, after: string | undefined, reverse: boolean): KeyRange {
  if (after === undefined) return range;
  if (!reverse && compareUtf8(after, range.lower.value) >= 0) return { ...range, lower: { value: after, inclusive: false } };
  if (reverse && (!range.upper || compareUtf8(after, range.upper.value) <= 0)) {
    return { ...range, upper: { value: after, inclusive: false } };
  }
  return range;
}
