import { invalidArgument } from "./errors.js";
import { wellFormed } from "./convert.js";

/** A caller's options object, as the methods of `data` take it. */
export type Options = Record<string, unknown>;

/** P1, S1: `true` is `{ meta: true }`, `false` or nothing is `{}`, anything else but an object is refused. */
export function optionsOf(options: unknown): Options {
  if (options === undefined || options === null || options === false) return {};
  if (options === true) return { meta: true };
  if (typeof options === "object" && !Array.isArray(options)) return options as Options;
  throw invalidArgument("INVALID_OPTION", "'options' must be a boolean or object");
}

/** P2: checked here too, since a negative or fractional limit cannot travel as the API's uint32. */
export function limitOf(options: Options): number {
  const limit = options.limit;
  if (limit === undefined || limit === null || limit === 0) return 0;
  if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1 || limit > 1000) {
    throw invalidArgument("INVALID_OPTION", "'limit' must be between 1 and 1000");
  }
  return limit;
}

/** SC5: segment numbers must fit the API's uint32; the service checks the rest. */
export function segmentOf(value: unknown, name: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw invalidArgument("INVALID_OPTION", `'${name}' must be a whole number`);
  }
  return value;
}

/** A version travels as uint64: checked here, since protobuf would throw a plain Error on a negative or fractional one. */
export function versionOf(version: unknown): bigint {
  if (typeof version !== "number" || !Number.isSafeInteger(version) || version < 0) {
    throw invalidArgument("INVALID_OPTION", "'ifVersion' must be a whole number from 0 (a version an item can have)");
  }
  return BigInt(version);
}

/** `asOf` must be a valid Date: anything else would travel as some other instant, or none. */
export function asOfOf(asOf: unknown): Date | undefined {
  if (asOf === undefined || asOf === null) return undefined;
  if (!(asOf instanceof Date) || Number.isNaN(asOf.getTime())) throw invalidArgument("INVALID_OPTION", "'asOf' must be a valid Date");
  return asOf;
}

/** The caller's own idempotency key: the server checks its length, but a non-string cannot travel. */
export function idempotencyKeyOf(key: unknown): string {
  if (typeof key !== "string" || key === "") throw invalidArgument("INVALID_OPTION", "'idempotencyKey' must be a non-empty string");
  return wellFormed(key);
}
