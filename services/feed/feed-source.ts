import type { Change } from "../../core/item.js";

/** One change as the engine reads it from its log: the event minus its token, which the hub adds. */
export interface SourceChange extends Change {
  /** Stable across deliveries, for de-duplication. */
  readonly id: string;
  /** When the change was applied, epoch ms. */
  readonly time: number;
}

/** One place in an environment's change log. */
export interface SourceEntry {
  /** Resumes right after this entry (the `position` of a token). */
  readonly position: string;
  /**
   * Names the place where one place can be spelled as several positions
   * (FeedSource.placeOf); absent: the position itself.
   */
  readonly place?: string;
  /** Absent: a position with nothing to deliver (MongoDB's head markers). */
  readonly change?: SourceChange;
  /**
   * A change whose events cannot be told (MongoDB no longer has its images):
   * a subscriber that would cross it is ended with TOKEN_EXPIRED and this
   * reason, never let past it in silence; those after it are not concerned.
   */
  readonly gap?: string;
  /** About how much memory the entry takes, so the ring can bound its bytes too. */
  readonly bytes: number;
}

/** What a source tells the hub once it tails (FeedSource.tail). */
export interface FeedSink {
  /** New entries in commit order, each right after the one before. */
  publish(entries: readonly SourceEntry[]): void;
  /** The source lost its place: changes between the last entry published and the next are gone. */
  lost(): void;
  /** The source cannot read its log (a reason for the log and health), or reads it again (undefined). */
  failing(reason: string | undefined): void;
  /** The environment's database closed (a drop, a stop): every follower ends, resumably. */
  closed(): void;
  /** Whether any Watch follows: while none does, a source may skip its reads and restart at its head. */
  readonly followed: boolean;
  /** Nobody followed what came since: the ring starts over, empty, right after `position`. */
  restartAfter(position: string): void;
}

/**
 * The engine's side of a change feed (the port the hub is written against):
 * its change log, read after a position, tailed, and its head marked.
 * Positions are the engine's own text ([0-9A-Za-z_-]); the hub wraps them in
 * the one token envelope (token.ts).
 */
export interface FeedSource {
  /** Names this change history: another database under the same environment name is another history. */
  readonly history: string;
  /** The position right after every change committed before the call. */
  head(): Promise<string>;
  /** Refuses (INVALID_OPTION) a position this history never gave, without I/O where it can. */
  check(position: string): void;
  /**
   * Whether the log no longer holds what follows `position`, when the source
   * can tell without I/O (the embedded log knows what it pruned): the Watch
   * is then refused before it starts, not after.
   */
  expired?(position: string): boolean;
  /** The place a position names (SourceEntry.place), for sources whose positions are not unique spellings. */
  placeOf?(position: string): string;
  /**
   * Up to `limit` entries after `position` in commit order, fewer (none) when
   * no more are committed yet. A position whose next change is no longer
   * retained is refused with TOKEN_EXPIRED, never skipped.
   */
  readAfter(position: string, limit: number): Promise<readonly SourceEntry[]>;
  /**
   * Starts sending every new entry to `sink`; called once. Returns the
   * position the first published entry follows, when the source knows it.
   */
  tail(sink: FeedSink): string | undefined;
  /** The acknowledged positions of named subscriptions. */
  saveSubscription(name: string, position: string): Promise<void>;
  loadSubscription(name: string): Promise<string | undefined>;
}
