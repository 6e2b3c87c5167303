import { DomainError, invalidArgument } from "../../../core/errors.js";
import { checkSubscriptionName } from "../../../core/limits.js";
import { feedClosed, type ChangeFeed, type FeedEvent } from "../../feed/change-feed.js";
import type { ChangeRow } from "./change-codec.js";
import type { EmbeddedStore } from "./embedded-store.js";

const BATCH = 256;
/**
 * Recent changes kept decoded in memory: every subscriber at the head shares
 * one read and one decoding. Bounded by the bytes of their stored text as
 * well as by count, so a few huge items cannot fill it (a value's decoded
 * form can be twenty times its text); an older position reads the log, in
 * chunks bounded the same way (EmbeddedStore.readChanges).
 */
const RECENT = 2_048;
const RECENT_BYTES = 1024 * 1024;
/**
 * `2.<incarnation>.<sequence>`; `1.<sequence>`, from before tokens named the
 * database's incarnation, is read as a position in a database that issued
 * such tokens, and refused by any other.
 */
type Recent = FeedEvent & { readonly sequence: number; readonly bytes: number };

const TOKEN = /^(?:1|2\.(\d+))\.(\d+)$/;

/**
 * The embedded change feed reads the `changes` table, which every write
 * appends to in its own transaction: commit order is the log's order (EV7),
 * and each subscriber reads at its own pace straight from the log, so a slow
 * one costs the server nothing but its position.
 */
export class EmbeddedFeed implements ChangeFeed {
  private readonly recent: Recent[] = [];
  private recentBytes = 0;
  /** The newest sequence read into `recent`; a commit makes the log newer than it. */
  private loadedThrough = -1;
  private stale = true;

  constructor(private readonly store: EmbeddedStore) {
    store.commits.on("commit", () => (this.stale = true));
  }

  async head(): Promise<string> {
    return this.encodeToken(this.store.headSequence());
  }

  /** Checks the token at once, so a bad or expired one fails the Watch before it starts. */
  follow(token: string, signal: AbortSignal): AsyncIterable<FeedEvent> {
    const after = this.decode(token);
    this.checkRetained(after);
    return this.changesAfter(after, signal);
  }

  private async *changesAfter(after: number, signal: AbortSignal): AsyncIterable<FeedEvent> {
    // One flag, not a queue of commits: a subscriber far behind costs the same as one at the head.
    // Set before reading, so a commit between an empty read and the wait is not missed.
    let committed: boolean;
    let wake: (() => void) | undefined;
    const onCommit = () => {
      committed = true;
      wake?.();
    };
    this.store.commits.on("commit", onCommit);
    signal.addEventListener("abort", onCommit);
    try {
      while (!signal.aborted) {
        // A drop ends the history this stream follows; the new database's tokens start over (decode).
        if (!this.store.isOpen) throw feedClosed();
        committed = false;
        this.checkRetained(after);
        // Reads are bounded by bytes as well as count: a short read says nothing about what follows.
        const events = this.read(after);
        for (const event of events) {
          after = event.sequence;
          yield event;
        }
        if (events.length === 0 && !committed) await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      this.store.commits.off("commit", onCommit);
      signal.removeEventListener("abort", onCommit);
    }
  }

  /** Up to BATCH changes after a sequence: from memory when recent, else from the log. */
  private read(after: number): Recent[] {
    if (this.stale) this.loadRecent();
    const first = this.recent[0];
    if (first && after >= first.sequence - 1) {
      // Binary search: every subscriber calls this on every commit, and `recent` holds thousands of changes.
      let low = 0;
      let high = this.recent.length;
      while (low < high) {
        const middle = (low + high) >>> 1;
        if (this.recent[middle].sequence > after) high = middle;
        else low = middle + 1;
      }
      return low === this.recent.length ? [] : this.recent.slice(low, low + BATCH);
    }
    return this.store.readChanges(after, BATCH).map((row) => this.toFeedEvent(row));
  }

  private toFeedEvent(row: ChangeRow & { readonly bytes: number }): Recent {
    const { bytes, ...change } = row;
    return { ...change, id: String(row.sequence), token: this.encodeToken(row.sequence), bytes };
  }

  /**
   * Brings `recent` up to the log's head. It starts empty at the head when
   * the first subscriber reads (history before that is read from the log by
   * whoever asks for it), and after a burst larger than it can hold it starts
   * again from the newest changes instead of decoding every change in between.
   */
  private loadRecent(): void {
    this.stale = false;
    const head = this.store.headSequence();
    if (this.loadedThrough < 0 || head - this.loadedThrough > RECENT) {
      this.recent.length = 0;
      this.recentBytes = 0;
      this.loadedThrough = this.loadedThrough < 0 ? head : head - RECENT;
    }
    for (;;) {
      const rows = this.store.readChanges(this.loadedThrough, BATCH);
      for (const row of rows) {
        const event = this.toFeedEvent(row);
        this.recent.push(event);
        this.recentBytes += event.bytes;
        this.loadedThrough = event.sequence;
        while (this.recent.length > 1 && (this.recent.length > RECENT || this.recentBytes > RECENT_BYTES)) {
          this.recentBytes -= this.recent.shift()!.bytes;
        }
      }
      if (rows.length === 0) break;
    }
  }

  async acknowledge(subscription: string, token: string): Promise<void> {
    checkSubscriptionName(subscription);
    this.store.saveSubscription(subscription, this.decode(token), Date.now());
  }

  async acknowledged(subscription: string): Promise<string | undefined> {
    const sequence = this.store.loadSubscription(subscription);
    return sequence === undefined ? undefined : this.encodeToken(sequence);
  }

  private decode(token: string): number {
    const match = TOKEN.exec(token);
    const sequence = match ? Number(match[2]) : NaN;
    if (!Number.isSafeInteger(sequence)) throw invalidArgument("INVALID_OPTION", "Invalid resume token");
    const ours = match![1] === undefined ? this.store.acceptsLegacyTokens : Number(match![1]) === this.store.incarnation;
    if (!ours) {
      throw new DomainError(
        "OUT_OF_RANGE",
        "TOKEN_EXPIRED",
        "The resume token is not of this environment's current database (it was dropped since, or the token is another environment's); start a new subscription",
      );
    }
    if (sequence > this.store.headSequence()) throw invalidArgument("INVALID_OPTION", "Invalid resume token");
    return sequence;
  }

  private encodeToken(sequence: number): string {
    return `2.${this.store.incarnation}.${sequence}`;
  }

  private checkRetained(after: number): void {
    if (after < this.store.prunedThrough()) {
      throw new DomainError(
        "OUT_OF_RANGE",
        "TOKEN_EXPIRED",
        "The resume token is older than the retained change history; start a new subscription",
      );
    }
  }
}
