import { Code, ConnectError } from "@connectrpc/connect";
import { LarderError } from "./errors.js";
import { idempotencyKeyOf } from "./options.js";

/**
 * Every write (set, batch set, add, remove) carries an idempotency key, its
 * own `idempotencyKey` option or a random one, and is sent again with the
 * same key when it fails UNAVAILABLE: the server applies it at most once and
 * answers a retry of an applied write with its first outcome, so an `add`
 * retried after a dropped connection counts once.
 */
export interface RetryOptions {
  /** Attempts in all, the first included (default 3; 1: no retries, and no key unless the call gives one). */
  readonly attempts?: number;
  /** Wait before the first retry, doubling after each (default 100 ms). */
  readonly initialBackoffMs?: number;
}

/** Sends a write with one idempotency key (the caller's `given` one, or a random one), again while it fails UNAVAILABLE. */
export type Idempotently = <T>(given: unknown, send: (idempotencyKey: string) => Promise<T>) => Promise<T>;

export function idempotentWrites(retries: RetryOptions): Idempotently {
  const attempts = retries.attempts ?? 3;
  const initialBackoffMs = retries.initialBackoffMs ?? 100;
  return async (given, send) => {
    // Without retries a key of our own would buy nothing and cost the server a record.
    const idempotencyKey = given !== undefined ? idempotencyKeyOf(given) : attempts > 1 ? globalThis.crypto.randomUUID() : "";
    for (let attempt = 1; ; attempt++) {
      try {
        return await send(idempotencyKey);
      } catch (error) {
        if (attempt >= attempts || !isUnavailable(error)) throw error;
        await new Promise((resolve) => setTimeout(resolve, initialBackoffMs * 2 ** (attempt - 1)));
      }
    }
  };
}

/** A failed write worth sending again: the whole call failed UNAVAILABLE, or its operation in a pipeline did. */
function isUnavailable(error: unknown): boolean {
  if (error instanceof LarderError) return error.code === "UNAVAILABLE";
  return error instanceof ConnectError && error.code === Code.Unavailable;
}
