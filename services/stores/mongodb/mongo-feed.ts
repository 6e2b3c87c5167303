import { setTimeout as sleep } from "node:timers/promises";
import { MongoCursorExhaustedError, MongoServerError, type ChangeStreamDocument, type Document, type ResumeToken } from "mongodb";
import { DomainError, invalidArgument } from "../../../core/errors.js";
import { checkSubscriptionName } from "../../../core/limits.js";
import { feedClosed, type ChangeFeed, type FeedEvent } from "../../feed/change-feed.js";
import type { Logger } from "../../log.js";
import { fromMongoError } from "./errors.js";
import { EventRing } from "./event-ring.js";
import { changeKey, decodeFeedToken, entriesOf, MissingImageError, timeOf, type FeedPosition } from "./feed-events.js";
import { historyDocuments, isQuietItemChange, type HistoryDocument } from "./history.js";

/** A change stream as the feed reads it (the driver's ChangeStream, or a scripted one in unit tests). */
export interface ChangeCursor {
  tryNext(): Promise<ChangeStreamDocument<Document> | null>;
  /** The driver's is null until a stream opened without a position has read its first batch. */
  readonly resumeToken: ResumeToken | null | undefined;
  readonly closed: boolean;
  close(): Promise<void>;
}

/** What the feed needs from the environment's database. */
export interface ChangeSource {
  /** A change stream over the items (and head markers), resuming after a token or starting now. */
  open(resumeAfter?: ResumeToken): ChangeCursor;
  /** Writes a head marker into the stream and returns its number. */
  markHead(): Promise<number>;
  /** Stores and loads the acknowledged positions of named subscriptions. */
  saveSubscription(name: string, token: string): Promise<void>;
  loadSubscription(name: string): Promise<string | undefined>;
  /** Writes history documents, in order (history.ts); absent: the feed keeps no history. */
  writeHistory?(documents: readonly HistoryDocument[]): Promise<void>;
}

export interface MongoFeedOptions {
  /** How long changes stay resumable (LARDER_CHANGE_RETENTION_MS), as on the embedded engine. */
  readonly retentionMs: number;
  readonly log: Logger;
  /** Entries kept in memory for subscribers (the bound on how far one may fall behind). */
  readonly ringEntries?: number;
  readonly ringBytes?: number;
  readonly restartDelayMs?: number;
  /** How long head() waits for the change stream to show its marker. */
  readonly headTimeoutMs?: number;
  /** History documents held while MongoDB does not take them; past this they are dropped and the history starts over. */
  readonly historyQueueLimit?: number;
  readonly clock?: () => number;
  /** Told the commit time (epoch ms) of each change the consumer reads, as it reads it (metrics: the stream's lag). */
  readonly consumed?: (commitTime: number) => void;
}

const DEFAULTS = { ringEntries: 10_000, ringBytes: 8 * 1024 * 1024, restartDelayMs: 1_000, headTimeoutMs: 10_000, historyQueueLimit: 50_000 };
/** Head markers remembered after they went by, for head() calls whose write raced the stream. */
const RECENT_MARKERS = 1_024;
/** History documents written per bulk write. */
const HISTORY_BATCH = 500;


/** A head marker as the consumer saw it. */
interface SeenMarker {
  readonly token: string;
  /** How many history documents the consumer had queued when it read the marker. */
  readonly historyQueued: number;
}

/** MongoDB's codes for a resume point that is gone: ChangeStreamHistoryLost, ChangeStreamFatalError. */
const HISTORY_LOST = new Set([286, 280]);
/** InvalidResumeToken: not a token of this stream at all. */
const INVALID_RESUME_TOKEN = 260;
/**
 * The change that ends an environment's history: its collection was dropped
 * with its database (DropEnvironment) after the token. A catch-up from such
 * a token must not go on into whatever the name holds now. (dropDatabase and
 * invalidate have no `ns.coll`, so STREAM_PIPELINE never lets them through;
 * the drop of `items` or `heads` comes before them.)
 */
const HISTORY_ENDS = "drop";
/** BadValue, FailedToParse: a token whose `_data` MongoDB cannot read (a tampered one). */
const UNREADABLE_TOKEN = new Set([2, 9]);

/**
 * Change events of one environment from ONE change stream, fanned out in
 * process. The consumer appends every change to a ring shared by all
 * subscribers (each is a cursor into it), so a slow subscriber costs only
 * its position; one more than the ring behind is ended with
 * RESOURCE_EXHAUSTED (SUBSCRIBER_TOO_SLOW) and resumes with its token. The
 * consumer reopens itself from its last position after errors (the driver
 * already resumes transparently after network errors and elections).
 *
 * Pre- and post-images (enabled on the collection) give `previous` and
 * `item` (EV4). Order is the oplog's, which is commit order (EV7).
 *
 * A token the ring still holds resumes from memory. An older one (or one
 * from before a restart) reads from the oplog with a catch-up stream of its
 * own until it reaches what the ring holds, then joins the ring; a token
 * whose next change is older than the retention, or older than the oplog,
 * is refused with OUT_OF_RANGE (TOKEN_EXPIRED), never skipped.
 */
export class MongoFeed implements ChangeFeed {
  private readonly ring: EventRing;
  private readonly options: Required<Omit<MongoFeedOptions, "log" | "consumed">> & Pick<MongoFeedOptions, "log" | "consumed">;
  private cursor?: ChangeCursor;
  /** Where the consumer resumes from after an error. */
  private position?: ResumeToken;
  private running?: Promise<void>;
  private stopped = false;
  private readonly stopping = new AbortController();
  private readonly markers = new Map<number, SeenMarker>();
  private readonly markerWaiters = new Map<number, { resolve(seen: SeenMarker): void; reject(error: Error): void }>();
  /** History documents read from the stream and not yet written, in stream order. */
  private historyQueue: HistoryDocument[] = [];
  private historyQueued = 0;
  private historyWritten = 0;
  private historyWriting?: Promise<void>;
  private readonly historyWaiters = new Set<{ through: number; resolve(): void }>();
  /**
   * From when (MongoDB's clock) the history holds every change: the first
   * change this consumer read since it opened its stream without a gap.
   * Undefined until it has read one; reset when its position was lost.
   */
  private historySince?: number;
  /** Failures in a row, for the restart backoff. */
  private failures = 0;

  constructor(
    private readonly source: ChangeSource,
    options: MongoFeedOptions,
  ) {
    this.options = { ...DEFAULTS, clock: Date.now, ...options };
    this.ring = new EventRing({ entries: this.options.ringEntries, bytes: this.options.ringBytes });
  }

  /** Opens the consumer; resolves once the stream is established, so head() markers after it are seen. */
  async start(): Promise<void> {
    this.cursor = this.source.open();
    const first = await this.cursor.tryNext();
    try {
      if (first) this.publish(first, undefined);
    } catch (error) {
      // Nobody follows yet, and an old token meets this change in its own catch-up: nothing to tell here.
      if (!(error instanceof MissingImageError)) throw error;
      this.options.log.warn({ err: error }, "the first change after start has no images; passed over");
    }
    this.position = this.cursor.resumeToken ?? undefined;
    this.running = this.consume();
    // A first change to read marks when the history starts to hold every change (historySince).
    if (this.source.writeHistory && this.historySince === undefined) {
      this.source.markHead().catch((error: unknown) => this.options.log.warn({ err: error }, "could not write a head marker at start"));
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.stopping.abort();
    this.ring.wake();
    await this.cursor?.close().catch(() => undefined);
    await this.running;
    for (const waiter of [...this.markerWaiters.values()]) waiter.reject(unavailable("The change feed is shutting down"));
    // Queued history is not written after a stop: this server claims nothing before its next start.
    for (const waiter of [...this.historyWaiters]) waiter.resolve();
  }

  /**
   * The position right after every change acknowledged before this call: a
   * marker is written and its token returned once the consumer has seen it,
   * so a Watch that starts here never receives a change that happened before.
   */
  async head(): Promise<string> {
    return (await this.passHead()).token;
  }

  /**
   * Once the history holds every change committed before this call (a head
   * marker went by, and the history documents queued before it are
   * written): from when it holds them all, on MongoDB's clock.
   */
  async historySynced(): Promise<number> {
    const seen = await this.passHead();
    if (this.historyWritten < seen.historyQueued) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.historyWaiters.delete(waiter);
          reject(unavailable("MongoDB did not take the key history in time; retry"));
        }, this.options.headTimeoutMs);
        const waiter = { through: seen.historyQueued, resolve: () => (clearTimeout(timer), this.historyWaiters.delete(waiter), resolve()) };
        this.historyWaiters.add(waiter);
      });
    }
    if (this.stopped) throw unavailable("The change feed is shutting down");
    // The marker itself was read, so a start is known; Infinity only if the position was lost since.
    return this.historySince ?? Number.POSITIVE_INFINITY;
  }

  private async passHead(): Promise<SeenMarker> {
    if (this.stopped) throw unavailable("The change feed is shutting down");
    const marker = await this.source.markHead();
    const seen = this.markers.get(marker);
    if (seen) return seen;
    return new Promise<SeenMarker>((resolve, reject) => {
      const settle = () => {
        clearTimeout(timer);
        this.markerWaiters.delete(marker);
      };
      const timer = setTimeout(() => {
        settle();
        reject(unavailable("MongoDB's change stream did not catch up in time; retry"));
      }, this.options.headTimeoutMs);
      this.markerWaiters.set(marker, {
        resolve: (seen) => (settle(), resolve(seen)),
        reject: (error) => (settle(), reject(error)),
      });
    });
  }

  /** A malformed token, or one the ring shows to be past the retention, fails here, before the Watch starts. */
  follow(token: string, signal: AbortSignal): AsyncIterable<FeedEvent> {
    const position = decodeFeedToken(token);
    const seq = this.ring.seqOf(position.key);
    if (seq !== undefined) this.checkRetained(seq + 1);
    return this.deliver(token, position, seq === undefined ? undefined : seq + 1, signal);
  }

  async acknowledge(subscription: string, token: string): Promise<void> {
    checkSubscriptionName(subscription);
    decodeFeedToken(token);
    await this.source.saveSubscription(subscription, token);
  }

  async acknowledged(subscription: string): Promise<string | undefined> {
    return this.source.loadSubscription(subscription);
  }

  private async *deliver(
    token: string,
    position: FeedPosition,
    from: number | undefined,
    callSignal: AbortSignal,
  ): AsyncGenerator<FeedEvent> {
    yield* this.deliverUntilStopped(token, position, from, callSignal);
    // The store closed under a caller still reading (a drop, or a stop it did not ask for).
    if (this.stopped && !callSignal.aborted) throw feedClosed();
  }

  private async *deliverUntilStopped(
    token: string,
    position: FeedPosition,
    from: number | undefined,
    callSignal: AbortSignal,
  ): AsyncGenerator<FeedEvent> {
    const signal = AbortSignal.any([callSignal, this.stopping.signal]);
    const generation = this.ring.generation;
    let last = token;
    let next = from;
    if (next === undefined) {
      let delivered = false;
      for await (const step of this.catchUp(position, signal)) {
        if ("ring" in step) {
          if (!delivered) this.checkRetained(step.ring);
          next = step.ring;
          break;
        }
        delivered = true;
        last = step.event.token;
        yield step.event;
      }
      if (next === undefined) return;
    }
    while (!signal.aborted) {
      if (this.ring.generation !== generation) {
        throw new DomainError(
          "OUT_OF_RANGE",
          "TOKEN_EXPIRED",
          "Changes were lost while MongoDB's change stream was unavailable (its history ran out); start a new subscription",
        );
      }
      if (next < this.ring.firstSeq) {
        throw new DomainError(
          "RESOURCE_EXHAUSTED",
          "SUBSCRIBER_TOO_SLOW",
          `The subscriber fell further behind than the feed keeps in memory (${this.options.ringEntries} changes or ${Math.round(this.options.ringBytes / 1024 / 1024)} MiB of items); resume from the token of the last event it received (${last})`,
        );
      }
      const entry = this.ring.at(next);
      if (!entry) {
        await this.ring.waitFor(next, signal);
        continue;
      }
      next++;
      if (entry.event) {
        last = entry.token;
        yield entry.event;
      }
    }
  }

  /**
   * Reads the oplog from an old position until it meets an entry the ring
   * holds. A head marker is written first, so there always is one ahead to
   * meet even when nothing else is being written.
   */
  private async *catchUp(position: FeedPosition, signal: AbortSignal): AsyncGenerator<{ event: FeedEvent } | { ring: number }> {
    if (!position.resume) {
      throw new DomainError("OUT_OF_RANGE", "TOKEN_EXPIRED", "The resume token can no longer be resumed; start a new subscription");
    }
    await this.source.markHead();
    const cursor = this.source.open(position.resume);
    const close = () => void cursor.close().catch(() => undefined);
    signal.addEventListener("abort", close, { once: true });
    let checked = false;
    try {
      while (!signal.aborted) {
        const before = cursor.resumeToken;
        const change = await cursor.tryNext();
        if (!change) {
          if (cursor.closed && !signal.aborted) throw unavailable("MongoDB closed the change stream; resume from the last token");
          continue;
        }
        if (change.operationType === HISTORY_ENDS) {
          throw new DomainError(
            "OUT_OF_RANGE",
            "TOKEN_EXPIRED",
            "The environment was dropped after this token, which ended its change history; start a new subscription",
          );
        }
        const entries = entriesOf(change, before);
        const skip = position.change !== undefined && changeKey(change._id) === position.change ? (position.skip ?? 0) : 0;
        for (let index = skip; index < entries.length; index++) {
          const entry = entries[index];
          if (entry.kind === "skip") continue;
          const seq = this.ring.seqOf(entry.key);
          if (seq !== undefined) {
            yield { ring: seq };
            return;
          }
          if (entry.kind !== "event") continue;
          if (!checked) {
            checked = true;
            this.checkTime(entry.event.time);
          }
          yield { event: entry.event };
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      throw fromChangeStreamError(error);
    } finally {
      signal.removeEventListener("abort", close);
      await cursor.close().catch(() => undefined);
    }
  }

  /** Resuming before `seq` would deliver its first event next: it must still be within the retention. */
  private checkRetained(seq: number): void {
    const next = this.ring.firstEventFrom(seq);
    if (next?.event) this.checkTime(next.event.time);
  }

  private checkTime(time: number): void {
    if (time < this.options.clock() - this.options.retentionMs) {
      throw new DomainError(
        "OUT_OF_RANGE",
        "TOKEN_EXPIRED",
        "The resume token is older than the retained change history; start a new subscription",
      );
    }
  }

  /** The one consumer: reads, publishes, and reopens itself from its last position after errors. */
  private async consume(): Promise<void> {
    while (!this.stopped) {
      try {
        const cursor = this.cursor!;
        const before = cursor.resumeToken;
        const change = await cursor.tryNext();
        if (change) this.publish(change, before);
        else if (cursor.closed && !this.stopped) throw new Error("MongoDB closed the change stream");
        this.position = cursor.resumeToken ?? this.position;
        this.failures = 0;
      } catch (error) {
        if (this.stopped) return;
        await this.recover(error);
      }
    }
  }

  private async recover(error: unknown): Promise<void> {
    const lost = isLostPosition(error);
    if (lost) {
      this.options.log.error(
        { err: error },
        "the change stream's position is gone from MongoDB's oplog; events in between are lost, subscribers must start again",
      );
    } else {
      this.options.log.warn({ err: error }, "change stream failed; resuming from its last position");
    }
    await this.cursor?.close().catch(() => undefined);
    // A failure that persists (rights, a dropped database) is retried ever more slowly, up to 30 s.
    const delay = Math.min(this.options.restartDelayMs * 2 ** this.failures++, 30_000);
    await sleep(delay, undefined, { signal: this.stopping.signal }).catch(() => undefined);
    if (this.stopped) return;
    if (lost) {
      this.position = undefined;
      this.ring.reset();
      // Changes in between are missing from the history too: it holds every change again only from the reopened stream on.
      this.historySince = undefined;
    }
    this.cursor = this.source.open(this.position);
  }

  /** The ring's fill, for metrics. */
  ringFigures(): { events: number; capacity: number } {
    return { events: this.ring.size, capacity: this.options.ringEntries };
  }

  private publish(change: ChangeStreamDocument<Document>, before: ResumeToken | undefined): void {
    const time = timeOf(change);
    this.options.consumed?.(time);
    const entries = entriesOf(change, before);
    // Every change after the stream's first is read, and none before it has a later commit time
    // (the same millisecond excepted, hence the +1).
    this.historySince ??= time + 1;
    if (isQuietItemChange(change)) this.historySince = Math.max(this.historySince, time + 1);
    if (this.source.writeHistory) {
      const events = entries.flatMap((entry) => (entry.kind === "event" ? [entry.event] : []));
      if (events.length > 0) {
        this.historyQueue.push(...historyDocuments(changeKey(change._id), events, this.options.retentionMs));
        this.historyQueued += events.length;
        this.historyWriting ??= this.writeHistory();
      }
    }
    for (const entry of entries) {
      if (entry.kind === "skip") continue;
      this.ring.push(entry);
      if (entry.kind === "marker") {
        const seen = { token: entry.token, historyQueued: this.historyQueued };
        this.markers.set(entry.marker, seen);
        if (this.markers.size > RECENT_MARKERS) this.markers.delete(this.markers.keys().next().value!);
        this.markerWaiters.get(entry.marker)?.resolve(seen);
      }
    }
  }

  /**
   * Writes the queued history in order, one batch at a time, retrying a
   * failed batch (reads wait meanwhile, up to their deadline) rather than
   * leaving a gap.
   */
  private async writeHistory(): Promise<void> {
    let failures = 0;
    while (this.historyQueue.length > 0 && !this.stopped) {
      const batch = this.historyQueue.slice(0, HISTORY_BATCH);
      try {
        await this.source.writeHistory!(batch);
      } catch (error) {
        if (this.historyQueue.length > this.options.historyQueueLimit) {
          // Memory stays bounded: the history has a gap now, so it counts as complete only from the next change on.
          this.options.log.error({ err: error, dropped: this.historyQueue.length }, "the key history could not be written for too long; it starts over");
          this.historyWritten += this.historyQueue.length;
          this.historyQueue = [];
          this.historySince = undefined;
          for (const waiter of [...this.historyWaiters]) if (waiter.through <= this.historyWritten) waiter.resolve();
          break;
        }
        this.options.log.warn({ err: error }, "writing the key history failed; retrying");
        const delay = Math.min(this.options.restartDelayMs * 2 ** failures++, 30_000);
        await sleep(delay, undefined, { signal: this.stopping.signal }).catch(() => undefined);
        continue;
      }
      failures = 0;
      this.historyQueue = this.historyQueue.slice(batch.length);
      this.historyWritten += batch.length;
      for (const waiter of [...this.historyWaiters]) if (waiter.through <= this.historyWritten) waiter.resolve();
    }
    this.historyWriting = undefined;
  }
}

function unavailable(message: string): DomainError {
  return new DomainError("UNAVAILABLE", "STORE_UNAVAILABLE", message);
}

function isLostPosition(error: unknown): boolean {
  if (error instanceof MissingImageError) return true;
  return error instanceof MongoServerError && (HISTORY_LOST.has(error.code as number) || error.code === INVALID_RESUME_TOKEN);
}

/**
 * What a subscriber is told when its catch-up stream fails. The token is the
 * only input of a catch-up, so a stream MongoDB cannot open from it was
 * given a bad one.
 */
export function fromChangeStreamError(error: unknown): unknown {
  if (error instanceof MissingImageError) {
    return new DomainError(
      "OUT_OF_RANGE",
      "TOKEN_EXPIRED",
      "MongoDB no longer keeps the item images of changes this old (changeStreamOptions.preAndPostImages.expireAfterSeconds); start a new subscription",
    );
  }
  if (error instanceof MongoCursorExhaustedError) return unavailable("MongoDB closed the change stream; resume from the last token");
  if (error instanceof MongoServerError) {
    if (HISTORY_LOST.has(error.code as number)) {
      return new DomainError(
        "OUT_OF_RANGE",
        "TOKEN_EXPIRED",
        "The resume token is older than MongoDB's change history (the oplog); start a new subscription",
      );
    }
    if (error.code === INVALID_RESUME_TOKEN || UNREADABLE_TOKEN.has(error.code as number)) {
      return invalidArgument("INVALID_OPTION", "Invalid resume token");
    }
  }
  return fromMongoError(error);
}
