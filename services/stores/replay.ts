import { DomainError } from "../../core/errors.js";
import { itemFromJson, itemToJson, type ItemJson } from "../../core/item-json.js";
import { parseKey, type Key } from "../../core/keys.js";
import type { SetOutcome } from "../../core/apply-set.js";

/**
 * Idempotency records: a write that carries a key stores its outcome with
 * the write, in the same transaction, so a retry finds either no record (the
 * write did not happen: it runs now) or the record (it did: its outcome is
 * returned and nothing is written again). Every engine keeps outcomes as this
 * JSON text.
 */
export interface OutcomeCodec<T> {
  encode(outcome: T): string;
  decode(text: string): T;
}

/** How long a record answers retries unless LARDER_IDEMPOTENCY_WINDOW_MS says otherwise. */
export const DEFAULT_IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000;

/** A replayed set returns the item as written then; the item before it is not kept. */
export const SET_OUTCOME: OutcomeCodec<SetOutcome> = {
  encode: (outcome) => JSON.stringify(itemToJson(outcome.item)),
  decode: (text) => ({ item: itemFromJson(JSON.parse(text) as ItemJson) }),
};

export const SET_OUTCOMES: OutcomeCodec<SetOutcome[]> = {
  encode: (outcomes) => JSON.stringify(outcomes.map((outcome) => itemToJson(outcome.item))),
  decode: (text) => (JSON.parse(text) as ItemJson[]).map((item) => ({ item: itemFromJson(item) })),
};

export const REMOVED_KEYS: OutcomeCodec<Key[]> = {
  encode: (keys) => JSON.stringify(keys.map((key) => key.full)),
  decode: (text) => (JSON.parse(text) as string[]).map((key) => parseKey(key)),
};

/** The key came back within the window with a request other than the one it first carried. */
export function idempotencyKeyReused(): DomainError {
  return new DomainError(
    "FAILED_PRECONDITION",
    "IDEMPOTENCY_KEY_REUSED",
    "This idempotency key was used for a different request within the idempotency window; use a new key for a new request",
  );
}
