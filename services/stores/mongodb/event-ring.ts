import type { FeedEvent } from "../../feed/change-feed.js";
import type { FeedEntry } from "./feed-events.js";

/** One entry the ring keeps: an event, or a head() marker (a position with nothing to deliver). */
export interface RingEntry {
  readonly seq: number;
  readonly key: string;
  readonly token: string;
  readonly event?: FeedEvent;
  readonly bytes: number;
}

export interface RingLimits {
  /** Entries kept; a subscriber further behind than this is ended (resumably). */
  readonly entries: number;
  /** Approximate bytes of items kept, so a burst of large items cannot take the memory. */
  readonly bytes: number;
}

/**
 * The recent changes of one environment, shared by every subscriber: each
 * subscriber is a cursor (a sequence number) into it, so memory is bounded
 * by the ring, never by the number or the slowness of subscribers. A
 * subscriber whose next entry has been dropped has fallen too far behind;
 * the feed ends it with a resumable error and it continues from its token.
 */
export class EventRing {
  private readonly entries: RingEntry[] = [];
  private readonly byKey = new Map<string, number>();
  private bytes = 0;
  /** The sequence of entries[0]. */
  private first = 0;
  private waiters = new Set<() => void>();
  /** Changes when the history before the newest entry is no longer continuous (see reset). */
  private epoch = 0;

  constructor(private readonly limits: RingLimits) {}

  get firstSeq(): number {
    return this.first;
  }

  /** The sequence the next pushed entry gets. */
  get nextSeq(): number {
    return this.first + this.entries.length;
  }

  get generation(): number {
    return this.epoch;
  }

  get size(): number {
    return this.entries.length;
  }

  push(entry: Exclude<FeedEntry, { kind: "skip" }>): RingEntry {
    const kept: RingEntry = {
      seq: this.nextSeq,
      key: entry.key,
      token: entry.token,
      event: entry.kind === "event" ? entry.event : undefined,
      bytes: entry.kind === "event" ? entry.bytes : 64,
    };
    this.entries.push(kept);
    this.byKey.set(kept.key, kept.seq);
    this.bytes += kept.bytes;
    while (this.entries.length > 1 && (this.entries.length > this.limits.entries || this.bytes > this.limits.bytes)) {
      const dropped = this.entries.shift()!;
      this.first++;
      this.bytes -= dropped.bytes;
      if (this.byKey.get(dropped.key) === dropped.seq) this.byKey.delete(dropped.key);
    }
    this.wake();
    return kept;
  }

  /** The sequence of the entry with this key, if the ring still holds it. */
  seqOf(key: string): number | undefined {
    return this.byKey.get(key);
  }

  at(seq: number): RingEntry | undefined {
    return seq >= this.first ? this.entries[seq - this.first] : undefined;
  }

  /** The first entry from `seq` on that carries an event. */
  firstEventFrom(seq: number): RingEntry | undefined {
    for (let at = Math.max(seq, this.first); at < this.nextSeq; at++) {
      const entry = this.entries[at - this.first];
      if (entry.event) return entry;
    }
    return undefined;
  }

  /**
   * Forgets everything: the stream behind the ring lost its place (its
   * history ran out while it was away), so no position before now can be
   * continued from memory.
   */
  reset(): void {
    this.first = this.nextSeq;
    this.entries.length = 0;
    this.byKey.clear();
    this.bytes = 0;
    this.epoch++;
    this.wake();
  }

  /** Resolves when an entry at `seq` exists, the ring is reset or closed, or the signal aborts. */
  async waitFor(seq: number, signal: AbortSignal): Promise<void> {
    if (seq < this.nextSeq || signal.aborted) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.waiters.delete(done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.waiters.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  /** Wakes every waiter; used when the feed stops. */
  wake(): void {
    const waiting = this.waiters;
    this.waiters = new Set();
    for (const resolve of waiting) resolve();
  }
}
