import { DomainError } from "../../core/errors.js";
import { checkSubscriptionName } from "../../core/limits.js";
import { feedClosed, type ChangeFeed, type FeedEvent } from "./change-feed.js";
import { FeedRing, type RingEntry } from "./feed-ring.js";
import type { FeedSink, FeedSource, SourceEntry } from "./feed-source.js";
import { decodeToken, encodeToken, tokenExpired } from "./token.js";

export interface FeedHubOptions {
  /**
   * How many changes a subscriber may fall behind the newest before it is
   * ended with SUBSCRIBER_TOO_SLOW (LARDER_WATCH_MAX_LAG): the ring's size.
   */
  readonly maxLag: number;
  /** The ring's bound in bytes of items. */
  readonly maxBytes: number;
  /** How long changes stay resumable (LARDER_CHANGE_RETENTION_MS). */
  readonly retentionMs: number;
  /** Told when the source starts or stops failing (health), with the reason. */
  readonly onHealth?: (failure: string | undefined) => void;
  readonly clock?: () => number;
}

export const DEFAULT_MAX_LAG = 10_000;
export const DEFAULT_RING_BYTES = 8 * 1024 * 1024;
/** Entries a catch-up read asks for at a time. */
const CATCH_UP_BATCH = 256;

/**
 * An environment's change feed, the same on every engine: one reader of the
 * engine's log (FeedSource.tail) fills a ring shared by every subscriber,
 * each a cursor into it. A subscriber more than `maxLag` changes (or the
 * ring's bytes) behind is ended with RESOURCE_EXHAUSTED SUBSCRIBER_TOO_SLOW
 * and resumes exactly with the token of its last event. A token older than
 * the ring is served by a catch-up read of the log (FeedSource.readAfter),
 * one read at a time per environment however many subscribers resume, until
 * it reaches the ring and joins it. A token of another history, or whose
 * next change is past the retention, is refused with OUT_OF_RANGE
 * TOKEN_EXPIRED, never skipped.
 */
export class FeedHub implements ChangeFeed, FeedSink {
  private readonly ring: FeedRing;
  private readonly clock: () => number;
  private tailing = false;
  private isClosed = false;
  private readonly closing = new AbortController();
  /** Catch-up reads go one after another: at most one reads the engine's log at a time. */
  private catchUpTurn: Promise<unknown> = Promise.resolve();
  private failingFor?: string;
  /** Watches following now (counted from follow(), so none is between its place lookup and its first read). */
  private followers = 0;

  constructor(
    private readonly source: FeedSource,
    private readonly options: FeedHubOptions,
  ) {
    this.ring = new FeedRing(options.maxLag, options.maxBytes);
    this.clock = options.clock ?? Date.now;
  }

  /**
   * Starts reading the engine's log into the ring. Sources that must read
   * from the start (MongoDB's) call it at once; otherwise the first
   * subscriber does, so an environment nobody watches decodes nothing.
   */
  start(): void {
    if (this.tailing) return;
    this.tailing = true;
    this.ring.startAfter(this.source.tail(this));
  }

  /** Why the source cannot read its log, while it cannot. */
  get failure(): string | undefined {
    return this.failingFor;
  }

  /** The ring's fill, for metrics. */
  ringFigures(): { events: number; capacity: number } {
    return { events: this.ring.size, capacity: this.options.maxLag };
  }

  async head(): Promise<string> {
    this.start();
    return encodeToken(this.source.history, await this.source.head());
  }

  /** A malformed token, one of another history, or one the ring shows past the retention fails here, before the Watch starts. */
  follow(token: string, signal: AbortSignal): AsyncIterable<FeedEvent> {
    const position = this.positionOf(token);
    this.start();
    const seq = this.ring.seqAfter(this.placeOf(position));
    if (seq !== undefined) this.checkRetained(seq);
    else if (this.source.expired?.(position)) throw tokenExpired();
    // Counted until the stream ends or its signal aborts: a stream its caller drops before the
    // first read never runs deliver()'s finally, and must not leave the hub followed for ever.
    this.followers++;
    let following = true;
    const unfollow = () => {
      if (!following) return;
      following = false;
      this.followers--;
      signal.removeEventListener("abort", unfollow);
    };
    if (signal.aborted) unfollow();
    else signal.addEventListener("abort", unfollow, { once: true });
    return this.deliver(token, position, seq, signal, unfollow);
  }

  get followed(): boolean {
    return this.followers > 0;
  }

  restartAfter(position: string): void {
    if (this.followers > 0) return;
    this.ring.reset();
    this.ring.startAfter(this.placeOf(position));
  }

  async acknowledge(subscription: string, token: string): Promise<void> {
    checkSubscriptionName(subscription);
    await this.source.saveSubscription(subscription, this.positionOf(token));
  }

  async acknowledged(subscription: string): Promise<string | undefined> {
    const position = await this.source.loadSubscription(subscription);
    return position === undefined ? undefined : encodeToken(this.source.history, position);
  }

  private positionOf(token: string): string {
    const { history, position } = decodeToken(token);
    if (history !== this.source.history) {
      throw tokenExpired(
        "The resume token is not of this environment's current database (it was dropped since, or the token is another environment's)",
      );
    }
    this.source.check(position);
    return position;
  }

  private placeOf(position: string): string {
    return this.source.placeOf ? this.source.placeOf(position) : position;
  }

  publish(entries: readonly SourceEntry[]): void {
    this.ring.push(entries.map((entry) => this.ringEntry(entry)));
  }

  lost(): void {
    this.ring.reset();
  }

  failing(reason: string | undefined): void {
    if (this.failingFor === reason) return;
    this.failingFor = reason;
    this.options.onHealth?.(reason);
  }

  closed(): void {
    // A closed environment's feed no longer counts for health (a drop ends its failure too).
    this.failing(undefined);
    this.isClosed = true;
    this.closing.abort();
    this.ring.wake();
  }

  private ringEntry(entry: SourceEntry): RingEntry {
    const place = entry.place ?? entry.position;
    if (!entry.change) return { place, bytes: entry.bytes, gap: entry.gap };
    return { place, bytes: entry.bytes, event: { ...entry.change, token: encodeToken(this.source.history, entry.position) } };
  }

  private async *deliver(
    token: string,
    position: string,
    from: number | undefined,
    callSignal: AbortSignal,
    unfollow: () => void,
  ): AsyncGenerator<FeedEvent> {
    const signal = AbortSignal.any([callSignal, this.closing.signal]);
    // One abort listener for the stream's life, not one per wait: the hot path adds none per event.
    let waiting: (() => void) | undefined;
    const onAbort = () => {
      if (!waiting) return;
      this.ring.forget(waiting);
      waiting();
    };
    signal.addEventListener("abort", onAbort, { once: true });
    const waitFor = (seq: number) =>
      new Promise<void>((resolve) => {
        waiting = resolve;
        if (signal.aborted) resolve();
        else this.ring.onEntry(seq, resolve);
      });
    try {
      let last = token;
      let next = from;
      if (next === undefined) {
        // Older than the ring: read the log until the ring holds the place reached.
        let place = this.placeOf(position);
        let delivered = false;
        while (!signal.aborted) {
          next = this.ring.seqAfter(place);
          if (next !== undefined) {
            if (!delivered) this.checkRetained(next);
            break;
          }
          const generation = this.ring.generation;
          const entries = await this.catchUp(position);
          if (entries.length === 0) {
            // At the log's head before the ring has it: the tail publishes it next.
            if (this.ring.generation === generation) await waitFor(this.ring.nextSeq);
            continue;
          }
          for (const entry of entries) {
            if (this.ring.seqAfter(place) !== undefined || signal.aborted) break;
            if (entry.gap) throw tokenExpired(entry.gap);
            position = entry.position;
            place = entry.place ?? entry.position;
            if (!entry.change) continue;
            if (!delivered) this.checkTime(entry.change.time);
            delivered = true;
            const event: FeedEvent = { ...entry.change, token: encodeToken(this.source.history, entry.position) };
            last = event.token;
            yield event;
          }
        }
      }
      if (next !== undefined) {
        const generation = this.ring.generation;
        while (!signal.aborted) {
          if (this.ring.generation !== generation) {
            throw tokenExpired("Changes were lost while the environment's change log could not be read (its history ran out)");
          }
          if (next < this.ring.firstSeq) throw this.tooSlow(last);
          const entry = this.ring.at(next);
          if (!entry) {
            await waitFor(next);
            continue;
          }
          next++;
          if (entry.gap) throw tokenExpired(entry.gap);
          if (entry.event) {
            last = entry.event.token;
            yield entry.event;
          }
        }
      }
      // The database closed under a caller still reading (a drop, or a stop it did not ask for).
      if (this.isClosed && !callSignal.aborted) throw feedClosed();
    } finally {
      signal.removeEventListener("abort", onAbort);
      unfollow();
    }
  }

  private catchUp(position: string): Promise<readonly SourceEntry[]> {
    const read = this.catchUpTurn.then(() => {
      if (this.isClosed) throw feedClosed();
      return this.source.readAfter(position, CATCH_UP_BATCH);
    });
    this.catchUpTurn = read.catch(() => undefined);
    return read;
  }

  private tooSlow(last: string): DomainError {
    return new DomainError(
      "RESOURCE_EXHAUSTED",
      "SUBSCRIBER_TOO_SLOW",
      `The subscriber fell further behind than the feed keeps in memory (${this.options.maxLag} changes or ${Math.round(this.options.maxBytes / 1024 / 1024)} MiB of items); resume from the token of the last event it received (${last})`,
    );
  }

  /** Resuming before `seq` would deliver its first event next: it must still be within the retention. */
  private checkRetained(seq: number): void {
    const next = this.ring.firstEventFrom(seq);
    if (next) this.checkTime(next.time);
  }

  private checkTime(time: number): void {
    if (time < this.clock() - this.options.retentionMs) throw tokenExpired();
  }
}
