import { DomainError, invalidArgument } from "./errors.js";
import { utf8Length } from "./json.js";
import { LABEL_NUMBERS, labelName, type LabelNumber } from "./item.js";

/** The limits of spec §13, in one place. */
export const MAX_BATCH = 25;
export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 1000;
/** P7: a page ends early rather than carry more than this many bytes of JSON values. */
export const MAX_PAGE_BYTES = 1024 * 1024;
export const MAX_SEGMENTS = 1000;

/** SE3: what a seed with bad items says: each by its index (the first ten, then how many more). */
export function badSeedMessage(problems: readonly { readonly index: number; readonly message: string }[]): string {
  const shown = problems
    .slice(0, 10)
    .map(({ index, message }) => `item ${index}: ${message}`)
    .join("; ");
  const more = problems.length > 10 ? `; and ${problems.length - 10} more` : "";
  return `Invalid items in seed, nothing was written: ${shown}${more}`;
}

/** P2: 1 to 1000; 0 (proto3's unset value, and the published client's) means the default. */
export function resolveLimit(limit: number | undefined): number {
  if (limit === undefined || limit === 0) return DEFAULT_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    throw invalidArgument("INVALID_OPTION", "'limit' must be between 1 and 1000");
  }
  return limit;
}

/** L4: `label1`..`label5` or the bare digits `1`..`5`. */
export function parseLabelName(name: string): LabelNumber {
  const label = LABEL_NUMBERS.find((number) => name === String(number) || name === labelName(number));
  if (label === undefined) throw invalidArgument("INVALID_LABEL", "Labels must be specified as 'label1' through 'label5'.");
  return label;
}

/** B1, R2, BS1: between 1 and 25 entries, with the published client's messages. */
export function checkBatchSize(count: number, what: "keys" | "items", request: string): void {
  if (count === 0) {
    throw invalidArgument("BATCH_SIZE", `You must provide at least one ${what === "keys" ? "key" : "item"}`);
  }
  if (count > MAX_BATCH) {
    throw invalidArgument("BATCH_SIZE", `You may only provide a maximum of 25 ${what} in one ${request} request`);
  }
}

/** The most operations one Pipeline call carries: enough to carry a busy client's tick, small enough to bound one call's work. */
export const MAX_PIPELINE_OPERATIONS = 100;

export function checkPipelineSize(count: number): void {
  if (count === 0) throw invalidArgument("BATCH_SIZE", "A pipeline must carry at least one operation");
  if (count > MAX_PIPELINE_OPERATIONS) {
    throw invalidArgument("BATCH_SIZE", `A pipeline may carry at most ${MAX_PIPELINE_OPERATIONS} operations`);
  }
}

/**
 * What a Pipeline's answer may hold in items (their JSON, counted as UTF-8
 * bytes): each operation alone stays within its own bounds, but 100 of them
 * (100 batch gets of 25 items of 400 KB) would build gigabytes for one call.
 * Well below the smallest LARDER_MAX_MESSAGE_BYTES (11 MiB), with room for
 * one operation's answer past it.
 */
export const MAX_PIPELINE_ANSWER_BYTES = 4 * 1024 * 1024;

/** The answer of an operation a full pipeline did not run (nothing read or written): the caller sends it again. */
export function pipelineAnswerFull(): DomainError {
  return new DomainError(
    "RESOURCE_EXHAUSTED",
    "PIPELINE_ANSWER_FULL",
    `Not run: this pipeline's answer already holds ${MAX_PIPELINE_ANSWER_BYTES / (1024 * 1024)} MiB of items; send this operation and those after it in another call`,
  );
}

/**
 * Bounds on what a Watch or Ack names, so a caller's lists and names cost
 * bounded memory (in the stream, and in the environment's database).
 * A filter's longest useful form is `deleted:` + a 256-byte namespace + `:` +
 * a 256-byte key part (K4); the list is what `data.on()` registrations need.
 */
export const MAX_WATCH_FILTERS = 100;
export const MAX_FILTER_BYTES = 1024;
export const MAX_FILTERS_TOTAL_BYTES = 16 * 1024;
/** A subscription name, like a key, is at most 256 bytes of UTF-8 (and is never empty). */
export const MAX_SUBSCRIPTION_NAME_BYTES = 256;
/** Named subscriptions per environment; past it a new name takes the place of one unacknowledged for the change retention. */
export const MAX_SUBSCRIPTIONS = 1000;

/** EV1: the filters of one Watch, within their bounds. */
export function checkWatchFilters(filters: readonly string[]): void {
  if (filters.length > MAX_WATCH_FILTERS) {
    throw invalidArgument("INVALID_FILTER", `A Watch takes at most ${MAX_WATCH_FILTERS} filters, not ${filters.length}`);
  }
  let total = 0;
  for (const filter of filters) {
    const bytes = utf8Length(filter);
    if (bytes > MAX_FILTER_BYTES) throw invalidArgument("INVALID_FILTER", `A filter is at most ${MAX_FILTER_BYTES} bytes`);
    total += bytes;
  }
  if (total > MAX_FILTERS_TOTAL_BYTES) {
    throw invalidArgument("INVALID_FILTER", `A Watch's filters are at most ${MAX_FILTERS_TOTAL_BYTES} bytes together`);
  }
}

/** Subscription names: 1 to 256 bytes (the empty name of a Watch means no subscription, and Ack needs one). */
export function checkSubscriptionName(name: string): void {
  if (name === "") throw invalidArgument("INVALID_OPTION", "Ack needs the subscription name given to Watch");
  if (utf8Length(name) > MAX_SUBSCRIPTION_NAME_BYTES) {
    throw invalidArgument("INVALID_OPTION", `A subscription name is at most ${MAX_SUBSCRIPTION_NAME_BYTES} bytes of UTF-8`);
  }
}

export function tooManySubscriptions(): DomainError {
  return new DomainError(
    "RESOURCE_EXHAUSTED",
    "TOO_MANY_SUBSCRIPTIONS",
    `This environment has ${MAX_SUBSCRIPTIONS} named subscriptions; reuse a name; a new one can take the place of one not acknowledged for LARDER_CHANGE_RETENTION_MS`,
  );
}
