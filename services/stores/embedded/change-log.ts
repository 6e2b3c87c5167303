import type { EventEmitter } from "node:events";
import { feedClosed } from "../../feed/change-feed.js";
import type { FeedSink, FeedSource, SourceEntry } from "../../feed/feed-source.js";
import { invalidToken, tokenExpired } from "../../feed/token.js";
import type { ChangeRow } from "./change-codec.js";

/** What the change log needs of the store that writes it (embedded-store.ts). */
export interface ChangeLogTable {
  /** Emits "commit" after each transaction that appended changes, and once at close. */
  readonly commits: EventEmitter;
  /** Drawn when the database file is made: the history's name in tokens. */
  readonly incarnation: number;
  readonly isOpen: boolean;
  readChanges(afterSequence: number, limit: number): (ChangeRow & { readonly bytes: number })[];
  headSequence(): number;
  prunedThrough(): number;
  saveSubscription(name: string, sequence: number, now: number): void;
  loadSubscription(name: string): number | undefined;
}

const BATCH = 256;
/** How soon a failed read of the log is tried again. */
const RETRY_MS = 1_000;

/**
 * The embedded engine's side of the change feed (services/feed): the
 * `changes` table, which every write appends to in its own transaction, so
 * the log's order is commit order (EV7). A position is a change's sequence.
 */
export class EmbeddedChangeLog implements FeedSource {
  readonly history: string;

  constructor(private readonly table: ChangeLogTable) {
    this.history = String(table.incarnation);
  }

  async head(): Promise<string> {
    return String(this.table.headSequence());
  }

  check(position: string): void {
    const sequence = Number(position);
    if (!/^\d+$/.test(position) || !Number.isSafeInteger(sequence) || sequence > this.table.headSequence()) throw invalidToken();
  }

  expired(position: string): boolean {
    return Number(position) < this.table.prunedThrough();
  }

  async readAfter(position: string, limit: number): Promise<readonly SourceEntry[]> {
    if (!this.table.isOpen) throw feedClosed();
    if (this.expired(position)) throw tokenExpired();
    return this.read(Number(position), limit);
  }

  /**
   * Every commit wakes one read of what it appended, after the writes of the
   * same turn (a pipeline's): one read and one decoding per change, whatever
   * the number of subscribers.
   */
  tail(sink: FeedSink): string {
    let after = this.table.headSequence();
    let scheduled = false;
    const drain = () => {
      scheduled = false;
      if (!this.table.isOpen) {
        this.table.commits.off("commit", onCommit);
        sink.closed();
        return;
      }
      try {
        if (!sink.followed) {
          // Nobody watches: no change is decoded for nobody; the ring starts over at the head.
          after = this.table.headSequence();
          sink.restartAfter(String(after));
          sink.failing(undefined);
          return;
        }
        for (;;) {
          const entries = this.read(after, BATCH);
          if (entries.length === 0) break;
          after = Number(entries[entries.length - 1].position);
          sink.publish(entries);
        }
        sink.failing(undefined);
      } catch (error) {
        // The log stays where it was: read again shortly, from the same place, until it answers.
        sink.failing(`the change log cannot be read: ${(error as Error).message}`);
        setTimeout(onCommit, RETRY_MS).unref();
      }
    };
    const onCommit = () => {
      if (scheduled) return;
      scheduled = true;
      queueMicrotask(drain);
    };
    this.table.commits.on("commit", onCommit);
    return String(after);
  }

  async saveSubscription(name: string, position: string): Promise<void> {
    this.table.saveSubscription(name, Number(position), Date.now());
  }

  async loadSubscription(name: string): Promise<string | undefined> {
    const sequence = this.table.loadSubscription(name);
    return sequence === undefined ? undefined : String(sequence);
  }

  /** Reads are bounded by bytes as well as count (readChanges): a short read says nothing about what follows. */
  private read(after: number, limit: number): SourceEntry[] {
    return this.table.readChanges(after, limit).map(({ bytes, sequence, ...change }) => {
      const position = String(sequence);
      return { position, bytes, change: { ...change, id: position } };
    });
  }
}
