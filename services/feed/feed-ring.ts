import type { FeedEvent } from "./change-feed.js";

/** One entry the ring keeps: an event, or a position with nothing to deliver. */
export interface RingEntry {
  /** What finds the entry (SourceEntry.place). */
  readonly place: string;
  readonly event?: FeedEvent;
  /** Lost history here (SourceEntry.gap). */
  readonly gap?: string;
  readonly bytes: number;
}

/**
 * The recent entries of one environment's log, shared by every subscriber:
 * each is a cursor (a sequence number) into it, so memory is bounded by the
 * ring, never by the number or the slowness of subscribers. Bounded in
 * entries and in bytes (a value's decoded form can be twenty times its
 * text, so a few huge items must not fill the memory). Entries are numbered
 * from 0 since the ring was made, and kept in a circular buffer: dropping
 * the oldest costs nothing per subscriber.
 */
export class FeedRing {
  private readonly slots: (RingEntry | undefined)[];
  /** The sequence of the oldest entry kept; entries first … next-1 are held. */
  private first = 0;
  private next = 0;
  private bytes = 0;
  private readonly seqByPlace = new Map<string, number>();
  /** The place right before the oldest entry, when known: a subscriber there starts at `first`. */
  private base?: string;
  private waiters = new Set<() => void>();
  /** Changes when the history before the newest entry stops being continuous (reset). */
  private epoch = 0;

  constructor(
    private readonly maxEntries: number,
    private readonly maxBytes: number,
  ) {
    this.slots = new Array<RingEntry | undefined>(maxEntries);
  }

  get firstSeq(): number {
    return this.first;
  }

  /** The sequence the next pushed entry gets. */
  get nextSeq(): number {
    return this.next;
  }

  get generation(): number {
    return this.epoch;
  }

  get size(): number {
    return this.next - this.first;
  }

  /** Where an empty ring starts: the place its first entry will follow. */
  startAfter(place: string | undefined): void {
    if (this.size === 0) this.base = place;
  }

  push(entries: readonly RingEntry[]): void {
    for (const entry of entries) {
      if (this.size === this.maxEntries) this.dropOldest();
      this.slots[this.next % this.maxEntries] = entry;
      this.seqByPlace.set(entry.place, this.next);
      this.next++;
      this.bytes += entry.bytes;
      while (this.size > 1 && this.bytes > this.maxBytes) this.dropOldest();
    }
    if (entries.length > 0) this.wake();
  }

  private dropOldest(): void {
    const index = this.first % this.maxEntries;
    const dropped = this.slots[index]!;
    this.slots[index] = undefined;
    this.bytes -= dropped.bytes;
    if (this.seqByPlace.get(dropped.place) === this.first) this.seqByPlace.delete(dropped.place);
    this.base = dropped.place;
    this.first++;
  }

  /** The sequence of the entry right after `place`, if the ring holds that place. */
  seqAfter(place: string): number | undefined {
    if (place === this.base) return this.first;
    const seq = this.seqByPlace.get(place);
    return seq === undefined ? undefined : seq + 1;
  }

  at(seq: number): RingEntry | undefined {
    return seq >= this.first && seq < this.next ? this.slots[seq % this.maxEntries] : undefined;
  }

  /** The first entry from `seq` on that carries an event. */
  firstEventFrom(seq: number): FeedEvent | undefined {
    for (let at = Math.max(seq, this.first); at < this.next; at++) {
      const { event, gap } = this.slots[at % this.maxEntries]!;
      if (event) return event;
      if (gap) return undefined;
    }
    return undefined;
  }

  /** Forgets everything: no position before now can be continued from memory. */
  reset(): void {
    for (let seq = this.first; seq < this.next; seq++) this.slots[seq % this.maxEntries] = undefined;
    this.first = this.next;
    this.seqByPlace.clear();
    this.bytes = 0;
    this.base = undefined;
    this.epoch++;
    this.wake();
  }

  /**
   * Calls `wake` once an entry at `seq` exists, the ring is reset or woken
   * (at once if one exists). A subscriber's one registration per wait: no
   * listener is added or removed per event.
   */
  onEntry(seq: number, wake: () => void): void {
    if (seq < this.next) wake();
    else this.waiters.add(wake);
  }

  /** Takes back a registration whose subscriber stopped waiting (it went away). */
  forget(wake: () => void): void {
    this.waiters.delete(wake);
  }

  wake(): void {
    const waiting = this.waiters;
    this.waiters = new Set();
    for (const resolve of waiting) resolve();
  }
}
