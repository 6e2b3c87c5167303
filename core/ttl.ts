import { invalidArgument } from "./errors.js";

/** How a caller gave the ttl (T1-T4), before it is resolved against now. */
export type TtlInput = { readonly seconds: number } | { readonly date: string } | { readonly at: number } | { readonly remove: true };

export type TtlChange = { readonly op: "keep" } | { readonly op: "set"; readonly expires: number } | { readonly op: "remove" };

/**
 * T2: ISO 8601 dates and date-times, full or partial. Without an offset the
 * time is UTC (unlike Date.parse, which reads date-times as local time).
 */
const ISO_8601 = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?)?)?$/i;

function invalidTtl(): Error {
  return invalidArgument("INVALID_OPTION", "Invalid ttl value.");
}

/**
 * The instants a google.protobuf.Timestamp can carry, 0001-01-01 to
 * 9999-12-31 UTC (and well inside what a Date or a BSON date holds). An
 * expiry outside them could never be shown (T5): Connect's JSON refuses to
 * encode such a Timestamp, so the item would fail every read over JSON.
 */
const FIRST_INSTANT_MS = -62_135_596_800_000;
const LAST_INSTANT_MS = 253_402_300_799_999;

/** Whether a google.protobuf.Timestamp can carry this instant (epoch ms); NaN cannot. */
export function isTimestampInstant(ms: number): boolean {
  return ms >= FIRST_INSTANT_MS && ms <= LAST_INSTANT_MS;
}

function checkedExpiry(expires: number): TtlChange {
  if (!isTimestampInstant(expires)) throw invalidTtl();
  return { op: "set", expires };
}

/** T2: epoch milliseconds of an ISO 8601 string, or undefined if it is not one. */
export function parseIsoDate(text: string): number | undefined {
  const match = ISO_8601.exec(text.trim());
  if (!match) return undefined;
  const [, year, month = "01", day = "01", hour = "00", minute = "00", second = "00", fraction = "", offset] = match;
  const parts = [year, month, day, hour, minute, second].map(Number);
  const [y, mo, d, h, mi, s] = parts;
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return undefined;
  const millis = Number((fraction + "000").slice(0, 3));
  // Not Date.UTC, which reads the years 0 to 99 as 1900 to 1999.
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d);
  date.setUTCHours(h, mi, s, millis);
  // Dates roll 2030-02-31 over into March; a real date round-trips.
  if (date.getUTCDate() !== d) return undefined;
  const shift = offsetMinutes(offset);
  return shift === undefined ? undefined : date.getTime() - shift * 60_000;
}

/** Minutes east of UTC; undefined for an offset no clock has (hours past 23, minutes past 59). */
function offsetMinutes(offset: string | undefined): number | undefined {
  if (!offset || offset.toUpperCase() === "Z") return 0;
  const sign = offset.startsWith("-") ? -1 : 1;
  const digits = offset.slice(1).replace(":", "");
  const [hours, minutes] = [Number(digits.slice(0, 2)), Number(digits.slice(2) || "0")];
  return hours > 23 || minutes > 59 ? undefined : sign * (hours * 60 + minutes);
}

/** T1-T4: what a set does to the expiry, resolved against now (epoch ms). */
export function resolveTtl(input: TtlInput | undefined, now: number): TtlChange {
  if (input === undefined) return { op: "keep" };
  if ("remove" in input) return { op: "remove" };
  if ("at" in input) return checkedExpiry(input.at);
  if ("date" in input) {
    const expires = parseIsoDate(input.date);
    if (expires === undefined) throw invalidTtl();
    return checkedExpiry(expires);
  }
  const seconds = input.seconds;
  if (!Number.isSafeInteger(seconds)) throw invalidTtl();
  // T1: a number past the current epoch second is an absolute time, anything else is relative.
  return checkedExpiry(seconds > Math.floor(now / 1000) ? seconds * 1000 : now + seconds * 1000);
}
