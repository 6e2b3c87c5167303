import { setTimeout as sleep } from "node:timers/promises";
import { MongoCursorExhaustedError, MongoServerError, type ChangeStreamDocument, type Document, type ResumeToken } from "mongodb";
import { DomainError, invalidArgument } from "../../../core/errors.js";
import { feedClosed } from "../../feed/change-feed.js";
import type { FeedSink, FeedSource, SourceEntry } from "../../feed/feed-source.js";
import { tokenExpired } from "../../feed/token.js";
import type { Logger } from "../../log.js";
import { fromMongoError, isUnauthorized } from "./errors.js";
import { changeKey, decodePosition, encodePosition, entriesOf, HISTORY, MissingImageError, timeOf, type FeedEntry } from "./feed-events.js";
import { historyDocuments, isQuietItemChange, type HistoryDocument } from "./history.js";

/** A change stream as the feed reads it (the driver's ChangeStream, or a scripted one in unit tests). */
export interface ChangeCursor {
  tryNext(): Promise<ChangeStreamDocument<Document> | null>;
  /** The driver's is null until a stream opened without a position has read its first batch. */
  readonly resumeToken: ResumeToken | null | undefined;
  readonly closed: boolean;
  close(): Promise<void>;
}

/** What the change log needs from the environment's database. */
export interface ChangeSource {
  /** A change stream over the items (and head markers), resuming after a token or starting now. */
  open(resumeAfter?: ResumeToken): ChangeCursor;
  /** Writes a head marker into the stream and returns its number. */
  markHead(): Promise<number>;
  /** Stores and loads the acknowledged positions of named subscriptions. */
  saveSubscription(name: string, position: string): Promise<void>;
  loadSubscription(name: string): Promise<string | undefined>;
  /** Writes history documents, in order (history.ts); absent: the feed keeps no history. */
  writeHistory?(documents: readonly HistoryDocument[]): Promise<void>;
}

export interface MongoChangeLogOptions {
  /** How long changes stay resumable (LARDER_CHANGE_RETENTION_MS): the history documents' lifetime. */
  readonly retentionMs: number;
  readonly log: Logger;
  readonly restartDelayMs?: number;
  /** How long head() waits for the change stream to show its marker. */
  readonly headTimeoutMs?: number;
  /** History documents held while MongoDB does not take them; past this they are dropped and the history starts over. */
  readonly historyQueueLimit?: number;
  /** How long the stream may keep failing before health reports it (a failure retrying cannot mend is reported at once). */
  readonly failingAfterMs?: number;
  /** How long an unused catch-up stream stays open for the next read from where it stopped. */
  readonly catchUpIdleMs?: number;
  readonly clock?: () => number;
  /** Told the commit time (epoch ms) of each change the consumer reads, as it reads it (metrics: the stream's lag). */
  readonly consumed?: (commitTime: number) => void;
}

const DEFAULTS = { restartDelayMs: 1_000, headTimeoutMs: 10_000, historyQueueLimit: 50_000, failingAfterMs: 30_000, catchUpIdleMs: 5_000 };
/** Head markers remembered after they went by, for head() calls whose write raced the stream. */
const RECENT_MARKERS = 1_024;
/** History documents written per bulk write. */
const HISTORY_BATCH = 500;

/** A head marker as the consumer saw it. */
interface SeenMarker {
  readonly position: string;
  /** How many history documents the consumer had queued when it read the marker. */
  readonly historyQueued: number;
}

/** The one catch-up stream: where it has read up to, for the next read that continues from there. */
interface CatchUp {
  readonly cursor: ChangeCursor;
  at: string;
  /** Between the two events of one change (an EV6 pair): that change, and how many of its events to pass over. */
  pass?: { readonly change: string; readonly events: number };
  /** What ended the stream after the entries last returned: the next read from there is told. */
  failure?: unknown;
  idle?: NodeJS.Timeout;
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
 * Failures that retrying does not mend: AuthenticationFailed, change
 * streams on a deployment without them (a standalone server), an unknown
 * pipeline stage (a server too old). With rights (isUnauthorized) they make
 * health NOT_SERVING at once.
 */
const NEVER_MENDS = new Set([18, 40573, 40324]);

/**
 * The MongoDB engine's side of the change feed (services/feed): ONE change
 * stream per environment (the consumer) publishes every change to the hub's
 * ring, and one more at most (the catch-up) reads the oplog for tokens older
 * than the ring, continuing from where it stopped while the hub asks for the
 * next place. Pre- and post-images (enabled on the collection) give
 * `previous` and `item` (EV4); order is the oplog's, commit order (EV7).
 *
 * The consumer reopens itself from its last position after errors (the
 * driver already resumes transparently after network errors and elections);
 * if that position is gone from the oplog, the hub is told the history is
 * lost. A change whose images MongoDB no longer has is a gap at that change
 * only. A failure that retrying cannot mend, or one that lasts, is reported
 * for health.
 */
export class MongoChangeLog implements FeedSource {
  readonly history = HISTORY;
  private readonly options: Required<Omit<MongoChangeLogOptions, "log" | "consumed">> & Pick<MongoChangeLogOptions, "log" | "consumed">;
  private sink?: FeedSink;
  private cursor?: ChangeCursor;
  /** Where the consumer resumes from after an error. */
  private position?: ResumeToken;
  private running?: Promise<void>;
  private stopped = false;
  private readonly stopping = new AbortController();
  private catchUp?: CatchUp;
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
  /** Failures in a row, for the restart backoff, and since when (health). */
  private failures = 0;
  private failingSince?: number;

  constructor(
    private readonly source: ChangeSource,
    options: MongoChangeLogOptions,
  ) {
    this.options = { ...DEFAULTS, clock: Date.now, ...options };
  }

  /** The hub's ring is fed from the consumer's start on (MongoStore starts the hub first). */
  tail(sink: FeedSink): undefined {
    this.sink = sink;
    return undefined;
  }

  /** Opens the consumer; resolves once the stream is established, so head() markers after it are seen. */
  async start(): Promise<void> {
    this.cursor = this.source.open();
    const first = await this.cursor.tryNext();
    if (first) this.publish(first, undefined);
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
    await this.cursor?.close().catch(() => undefined);
    await this.closeCatchUp();
    await this.running;
    this.sink?.closed();
    for (const waiter of [...this.markerWaiters.values()]) waiter.reject(unavailable("The change feed is shutting down"));
    // Queued history is not written after a stop: this server claims nothing before its next start.
    for (const waiter of [...this.historyWaiters]) waiter.resolve();
  }

  /**
   * The position right after every change acknowledged before this call: a
   * marker is written and its position returned once the consumer has seen
   * it, so a Watch that starts here never receives a change that happened before.
   */
  async head(): Promise<string> {
    return (await this.passHead()).position;
  }

  check(position: string): void {
    decodePosition(position);
  }

  /** A position's place is the event it follows: the two spellings of a pair's first event (consumer, catch-up) are one place. */
  placeOf(position: string): string {
    return decodePosition(position).key;
  }

  async saveSubscription(name: string, position: string): Promise<void> {
    await this.source.saveSubscription(name, position);
  }

  async loadSubscription(name: string): Promise<string | undefined> {
    return this.source.loadSubscription(name);
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

  /**
   * Reads the oplog after an old position with the environment's one
   * catch-up stream (the hub asks for one read at a time), which stays open
   * for the next read from where this one stopped. A stream opened anew is
   * preceded by a head marker, so there always is a place ahead that the
   * consumer also publishes to the ring, where the reader joins it.
   */
  async readAfter(position: string, limit: number): Promise<readonly SourceEntry[]> {
    if (this.stopped) throw feedClosed();
    let reader = this.catchUp;
    if (reader?.at !== position) {
      await this.closeCatchUp();
      const from = decodePosition(position);
      if (!from.resume) throw tokenExpired("The resume token can no longer be resumed");
      await this.source.markHead();
      reader = {
        cursor: this.source.open(from.resume),
        at: position,
        pass: from.change ? { change: from.change, events: from.skip ?? 0 } : undefined,
      };
      this.catchUp = reader;
    }
    clearTimeout(reader.idle);
    if (reader.failure !== undefined) {
      const failure = reader.failure;
      await this.closeCatchUp();
      throw failure;
    }
    const entries: SourceEntry[] = [];
    try {
      while (entries.length < limit) {
        const before = reader.cursor.resumeToken;
        const change = await reader.cursor.tryNext();
        if (!change) {
          if (reader.cursor.closed && !this.stopped) throw unavailable("MongoDB closed the change stream; resume from the last token");
          break;
        }
        if (change.operationType === HISTORY_ENDS) {
          throw tokenExpired("The environment was dropped after this token, which ended its change history");
        }
        const read = entriesOf(change, before);
        const passed = reader.pass?.change === changeKey(change._id) ? reader.pass.events : 0;
        reader.pass = undefined;
        for (const entry of read.slice(passed)) if (entry.kind !== "skip") entries.push(sourceEntry(entry));
      }
    } catch (error) {
      if (this.stopped) {
        await this.closeCatchUp();
        throw feedClosed();
      }
      // The entries before the failure are delivered first; the read after them is told.
      reader.failure = error instanceof DomainError ? error : fromChangeStreamError(error);
      if (entries.length === 0) return this.readAfter(position, limit);
    }
    if (entries.length > 0) reader.at = entries[entries.length - 1].position;
    reader.idle = setTimeout(() => void this.closeCatchUp(reader), this.options.catchUpIdleMs);
    reader.idle.unref();
    return entries;
  }

  private async closeCatchUp(only?: CatchUp): Promise<void> {
    const reader = this.catchUp;
    if (!reader || (only && reader !== only)) return;
    this.catchUp = undefined;
    clearTimeout(reader.idle);
    await reader.cursor.close().catch(() => undefined);
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
        this.recovered();
      } catch (error) {
        if (this.stopped) return;
        await this.recover(error);
      }
    }
  }

  private recovered(): void {
    if (this.failures === 0) return;
    this.failures = 0;
    if (this.failingSince !== undefined) this.options.log.info("the change stream reads again");
    this.failingSince = undefined;
    this.sink?.failing(undefined);
  }

  private async recover(error: unknown): Promise<void> {
    const lost = isLostPosition(error);
    if (lost) {
      this.options.log.error(
        { err: error },
        "the change stream's position is gone from MongoDB's oplog; events in between are lost, subscribers must start again",
      );
    }
    this.failingSince ??= this.options.clock();
    const persistent = isPersistentFeedError(error);
    if (persistent || this.options.clock() - this.failingSince >= this.options.failingAfterMs) {
      const reason = `MongoDB's change stream fails${persistent ? "" : ` for ${Math.round((this.options.clock() - this.failingSince) / 1000)} s`}: ${(error as Error).message}`;
      this.options.log.error({ err: error }, `${reason}; health reports NOT_SERVING until it reads again`);
      this.sink?.failing(`MongoDB's change stream fails: ${(error as Error).message}`);
    } else if (!lost) {
      this.options.log.warn({ err: error }, "change stream failed; resuming from its last position");
    }
    await this.cursor?.close().catch(() => undefined);
    // A failure that persists (rights, a dropped database) is retried ever more slowly, up to 30 s.
    const delay = Math.min(this.options.restartDelayMs * 2 ** this.failures++, 30_000);
    await sleep(delay, undefined, { signal: this.stopping.signal }).catch(() => undefined);
    if (this.stopped) return;
    if (lost) {
      this.position = undefined;
      this.sink?.lost();
      // Changes in between are missing from the history too: it holds every change again only from the reopened stream on.
      this.historySince = undefined;
    }
    this.cursor = this.source.open(this.position);
  }

  private publish(change: ChangeStreamDocument<Document>, before: ResumeToken | undefined): void {
    const time = timeOf(change);
    this.options.consumed?.(time);
    let entries: FeedEntry[];
    try {
      entries = entriesOf(change, before);
    } catch (error) {
      if (!(error instanceof MissingImageError)) throw error;
      // Only the subscribers that would cross this change are concerned: it is a gap here, not a lost place.
      this.options.log.error({ err: error }, "a change without its images cannot be told as events; subscribers before it must start again");
      const key = changeKey(change._id);
      const gap = fromChangeStreamError(error) as DomainError;
      this.sink?.publish([{ position: encodePosition({ key, resume: change._id }), place: key, gap: gap.message, bytes: 64 }]);
      this.historySince = time + 1;
      return;
    }
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
    const published: SourceEntry[] = [];
    for (const entry of entries) {
      if (entry.kind === "skip") continue;
      published.push(sourceEntry(entry));
      if (entry.kind === "marker") {
        const seen = { position: entry.position, historyQueued: this.historyQueued };
        this.markers.set(entry.marker, seen);
        if (this.markers.size > RECENT_MARKERS) this.markers.delete(this.markers.keys().next().value!);
        this.markerWaiters.get(entry.marker)?.resolve(seen);
      }
    }
    if (published.length > 0) this.sink?.publish(published);
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
          this.options.log.error(
            { err: error, dropped: this.historyQueue.length },
            "the key history could not be written for too long; it starts over",
          );
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

function sourceEntry(entry: Exclude<FeedEntry, { kind: "skip" }>): SourceEntry {
  if (entry.kind === "marker") return { position: entry.position, place: entry.key, bytes: 64 };
  return { position: entry.position, place: entry.key, change: entry.event, bytes: entry.bytes };
}

function unavailable(message: string): DomainError {
  return new DomainError("UNAVAILABLE", "STORE_UNAVAILABLE", message);
}

function isLostPosition(error: unknown): boolean {
  return error instanceof MongoServerError && (HISTORY_LOST.has(error.code as number) || error.code === INVALID_RESUME_TOKEN);
}

/** A change stream failure that retrying will not mend: health is told at once. */
export function isPersistentFeedError(error: unknown): boolean {
  if (isUnauthorized(error)) return true;
  return error instanceof MongoServerError && NEVER_MENDS.has(error.code as number);
}

/**
 * What a subscriber is told when its catch-up stream fails. The token is the
 * only input of a catch-up, so a stream MongoDB cannot open from it was
 * given a bad one.
 */
export function fromChangeStreamError(error: unknown): unknown {
  if (error instanceof MissingImageError) {
    return tokenExpired("MongoDB no longer keeps the item images of changes this old (changeStreamOptions.preAndPostImages.expireAfterSeconds)");
  }
  if (error instanceof MongoCursorExhaustedError) return unavailable("MongoDB closed the change stream; resume from the last token");
  if (error instanceof MongoServerError) {
    if (HISTORY_LOST.has(error.code as number)) return tokenExpired("The resume token is older than MongoDB's change history (the oplog)");
    if (error.code === INVALID_RESUME_TOKEN || UNREADABLE_TOKEN.has(error.code as number)) {
      return invalidArgument("INVALID_OPTION", "Invalid resume token");
    }
  }
  return fromMongoError(error);
}
