import { on } from "node:events";
import { DomainError, invalidArgument } from "../../domain/errors.js";
import { checkSubscriptionName } from "../../domain/limits.js";
import { feedClosed, type ChangeFeed, type FeedEvent } from "../../feed/change-feed.js";
import type { ChangeRow } from "./change-codec.js";
import type { EmbeddedStore } from "./embedded-store.js";

const BATCH = 256;
/** Recent changes kept decoded in memory: every subscriber at the head shares one read and one decoding. */
const RECENT = 2_048;
/**
 * `2.<incarnation>.<sequence>`; `1.<sequence>`, from before tokens named the
 * database's incarnation, is read as a position in a database that issued
 * such tokens, and refused by any other.
 */
const TOKEN = /^(?:1|2\.(\d+))\.(\d+)$/;

/**
 * The embedded change feed reads the `changes` table, which every write
 * appends to in its own transaction: commit order is the log's order (EV7),
 * and each subscriber reads at its own pace straight from the log, so a slow
 * one costs the server nothing but its position.
 */
export class EmbeddedFeed implements ChangeFeed {
  private readonly recent: (FeedEvent & { readonly sequence: number })[] = [];
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
    // Listen before reading, so a commit between an empty read and the wait is not missed.
    const commits = on(this.store.commits, "commit", { signal });
    try {
      while (!signal.aborted) {
        // A drop ends the history this stream follows; the new database's tokens start over (decode).
        if (!this.store.isOpen) throw feedClosed();
        this.checkRetained(after);
        const events = this.read(after);
        for (const event of events) {
          after = event.sequence;
          yield event;
        }
        if (events.length < BATCH) await commits.next();
      }
    } catch (error) {
      if (signal.aborted && (error as Error).name === "AbortError") return;
      throw error;
    } finally {
      await commits.return?.();
    }
  }

  /** Up to BATCH changes after a sequence: from memory when recent, else from the log. */
  private read(after: number): (FeedEvent & { readonly sequence: number })[] {
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

  private toFeedEvent(row: ChangeRow): FeedEvent & { readonly sequence: number } {
    return { ...row, id: String(row.sequence), token: this.encodeToken(row.sequence) };
  }

  private loadRecent(): void {
    this.stale = false;
    if (this.loadedThrough < 0) this.loadedThrough = Math.max(0, this.store.headSequence() - RECENT);
    for (;;) {
      const rows = this.store.readChanges(this.loadedThrough, BATCH);
      for (const row of rows) this.recent.push(this.toFeedEvent(row));
      if (rows.length > 0) this.loadedThrough = rows[rows.length - 1].sequence;
      if (rows.length < BATCH) break;
    }
    if (this.recent.length > RECENT) this.recent.splice(0, this.recent.length - RECENT);
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
