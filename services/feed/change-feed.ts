import { DomainError } from "../../core/errors.js";
import type { Change } from "../../core/item.js";

/**
 * What a follower gets when its environment's database closes under it (a
 * drop, or a stop that its own caller did not ask for): resumable, and a
 * token of a dropped history is then refused as TOKEN_EXPIRED by the new one.
 */
export function feedClosed(): DomainError {
  return new DomainError(
    "UNAVAILABLE",
    "STORE_UNAVAILABLE",
    "The environment's database was closed (dropped, or the server is stopping); resume from the last token",
  );
}

/** One change as a subscriber sees it: with its place in the log (EV4). */
export interface FeedEvent extends Change {
  /** Stable across deliveries, for de-duplication. */
  readonly id: string;
  /** Resumes right after this event. */
  readonly token: string;
  /** When the change was applied, epoch ms. */
  readonly time: number;
}

/**
 * An environment's change log as subscribers read it: in commit order (EV7),
 * resumable from any token still retained. Engines implement it; Watch
 * streams and durable subscriptions are built on it.
 */
export interface ChangeFeed {
  /** The token of the newest change: where a new subscription starts. */
  head(): Promise<string>;
  /**
   * Every change after `token`, in commit order, waiting for new ones until
   * `signal` aborts, or ends with feedClosed() when the environment's
   * database closes. A token older than the retained history, or of a
   * dropped one, is refused with OUT_OF_RANGE, never silently skipped. A token the engine can check
   * without I/O should be refused when follow is called, so the Watch fails
   * before its `started` message.
   */
  follow(token: string, signal: AbortSignal): AsyncIterable<FeedEvent>;
  /** Stores the position a named subscription has processed up to. */
  acknowledge(subscription: string, token: string): Promise<void>;
  /** The acknowledged position of a named subscription, if any. */
  acknowledged(subscription: string): Promise<string | undefined>;
}
