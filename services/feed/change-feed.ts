import type { Change } from "../domain/item.js";

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
   * `signal` aborts. A token older than the retained history is refused with
   * OUT_OF_RANGE, never silently skipped. A token the engine can check
   * without I/O should be refused when follow is called, so the Watch fails
   * before its `started` message.
   */
  follow(token: string, signal: AbortSignal): AsyncIterable<FeedEvent>;
  /** Stores the position a named subscription has processed up to. */
  acknowledge(subscription: string, token: string): Promise<void>;
  /** The acknowledged position of a named subscription, if any. */
  acknowledged(subscription: string): Promise<string | undefined>;
}
