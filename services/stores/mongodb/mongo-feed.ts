import type { ChangeStream, ChangeStreamDocument, Collection, Db, ResumeToken } from "mongodb";
import { MongoServerError } from "mongodb";
import { DomainError, invalidArgument } from "../../domain/errors.js";
import { isLive, type Change } from "../../domain/item.js";
import type { ChangeFeed, FeedEvent } from "../../feed/change-feed.js";
import type { Logger } from "../../log.js";
import { decodeItem, type ItemDocument } from "./codec.js";
import { HISTORY_LOST } from "./errors.js";

/** Recent events kept in memory, so reconnecting subscribers resume without a stream of their own. */
const RING_SIZE = 10_000;
/** Events a live subscriber may have waiting; past that it is ended, resumably (SUBSCRIBER_TOO_SLOW). */
const SUBSCRIBER_BUFFER = 5_000;
const RESTART_DELAY_MS = 1_000;
const TOKEN_PREFIX = "m.";

interface Subscriber {
  readonly queue: FeedEvent[];
  wake?: () => void;
  failure?: Error;
}

/**
 * Change events of one environment from ONE change stream, fanned out in
 * process: each subscriber gets its own bounded queue, and the stream
 * restarts itself from its last token after transient errors. Pre- and
 * post-images (enabled on the collection) give `previous` and `item` (EV4).
 * A subscriber that resumes from a token older than the in-memory ring reads
 * its own catch-up stream from that token; the oplog bounds how far back that
 * can go, and a token past it is OUT_OF_RANGE (TOKEN_EXPIRED).
 */
export class MongoFeed implements ChangeFeed {
  private stream?: ChangeStream<ItemDocument>;
  private readonly ring: FeedEvent[] = [];
  private readonly subscribers = new Set<Subscriber>();
  private position?: ResumeToken;
  private stopped = false;
  private running?: Promise<void>;

  constructor(
    private readonly db: Db,
    private readonly items: Collection<ItemDocument>,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.open();
    // The initial aggregate gives the position new subscribers start from.
    await this.stream!.tryNext().then((change) => change && this.publish(change));
    this.position = this.stream!.resumeToken;
    this.running = this.consume();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.stream?.close();
    await this.running;
    for (const subscriber of this.subscribers) subscriber.wake?.();
  }

  async head(): Promise<string> {
    const newest = this.ring.at(-1);
    return newest ? newest.token : encodeToken(this.position ?? this.stream?.resumeToken);
  }

  follow(token: string, signal: AbortSignal): AsyncIterable<FeedEvent> {
    const resumeAfter = decodeToken(token);
    return this.deliver(token, resumeAfter, signal);
  }

  async acknowledge(subscription: string, token: string): Promise<void> {
    if (subscription === "") throw invalidArgument("INVALID_OPTION", "Ack needs the subscription name given to Watch");
    decodeToken(token);
    await this.db
      .collection<{ _id: string; token: string; at: Date }>("subscriptions")
      .updateOne({ _id: subscription }, { $set: { token, at: new Date() } }, { upsert: true });
  }

  async acknowledged(subscription: string): Promise<string | undefined> {
    const stored = await this.db.collection<{ _id: string; token: string }>("subscriptions").findOne({ _id: subscription });
    return stored?.token;
  }

  private async *deliver(token: string, resumeAfter: ResumeToken, signal: AbortSignal): AsyncIterable<FeedEvent> {
    const subscriber: Subscriber = { queue: [] };
    // Join the live fan-out first, so nothing published while catching up is missed.
    this.subscribers.add(subscriber);
    try {
      let last = token;
      const index = this.ring.findIndex((event) => event.token === token);
      const atHead = token === (await this.head());
      if (index >= 0 || atHead) {
        const backlog = index >= 0 ? this.ring.slice(index + 1) : [];
        const seen = new Set(backlog.map((event) => event.token));
        subscriber.queue.splice(0, subscriber.queue.length, ...backlog, ...subscriber.queue.filter((e) => !seen.has(e.token)));
      } else {
        // Older than the ring: read from the oplog until the live fan-out has what comes next.
        for await (const event of this.catchUp(resumeAfter, signal)) {
          last = event.token;
          yield event;
          if (subscriber.queue.some((queued) => queued.token === last)) break;
        }
        const at = subscriber.queue.findIndex((queued) => queued.token === last);
        if (at >= 0) subscriber.queue.splice(0, at + 1);
      }
      while (!signal.aborted && !this.stopped) {
        if (subscriber.failure) throw subscriber.failure;
        const next = subscriber.queue.shift();
        if (next) {
          yield next;
          continue;
        }
        await new Promise<void>((resolve) => {
          subscriber.wake = resolve;
          signal.addEventListener("abort", () => resolve(), { once: true });
        });
        subscriber.wake = undefined;
      }
    } finally {
      this.subscribers.delete(subscriber);
    }
  }

  private async *catchUp(resumeAfter: ResumeToken, signal: AbortSignal): AsyncIterable<FeedEvent> {
    const stream = this.items.watch([], { ...STREAM_OPTIONS, resumeAfter });
    const close = () => void stream.close();
    signal.addEventListener("abort", close, { once: true });
    try {
      while (!signal.aborted) {
        const change = await stream.tryNext();
        if (!change) continue;
        for (const event of toFeedEvents(change)) yield event;
      }
    } catch (error) {
      if (error instanceof MongoServerError && error.code === HISTORY_LOST) {
        throw new DomainError(
          "OUT_OF_RANGE",
          "TOKEN_EXPIRED",
          "The resume token is older than MongoDB's oplog; start a new subscription",
        );
      }
      if (!signal.aborted) throw error;
    } finally {
      signal.removeEventListener("abort", close);
      await stream.close();
    }
  }

  private open(): void {
    this.stream = this.items.watch([], { ...STREAM_OPTIONS, ...(this.position ? { resumeAfter: this.position } : {}) });
  }

  /** The one consumer: reads, publishes, and reopens itself from its last position after errors. */
  private async consume(): Promise<void> {
    while (!this.stopped) {
      try {
        const change = await this.stream!.tryNext();
        if (change) this.publish(change);
        this.position = this.stream!.resumeToken ?? this.position;
      } catch (error) {
        if (this.stopped) return;
        this.log.warn({ err: error }, "change stream failed; resuming from the last position");
        await this.stream?.close().catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, RESTART_DELAY_MS));
        if (!this.stopped) this.open();
      }
    }
  }

  private publish(change: ChangeStreamDocument<ItemDocument>): void {
    for (const event of toFeedEvents(change)) {
      this.ring.push(event);
      if (this.ring.length > RING_SIZE) this.ring.shift();
      for (const subscriber of this.subscribers) {
        if (subscriber.failure) continue;
        if (subscriber.queue.length >= SUBSCRIBER_BUFFER) {
          subscriber.failure = new DomainError(
            "RESOURCE_EXHAUSTED",
            "SUBSCRIBER_TOO_SLOW",
            "The subscriber fell too far behind; resume from the last event's token",
          );
        } else {
          subscriber.queue.push(event);
        }
        subscriber.wake?.();
      }
    }
  }
}

const STREAM_OPTIONS = {
  fullDocument: "whenAvailable",
  fullDocumentBeforeChange: "whenAvailable",
  maxAwaitTimeMS: 1_000,
} as const;

/**
 * One change as EV5/EV6 names it. A write onto an expired item that the TTL
 * monitor has not removed yet is, to users, that item's expiry followed by a
 * new item: `deleted` (expired) then `created`.
 */
export function toFeedEvents(change: ChangeStreamDocument<ItemDocument>): FeedEvent[] {
  const token = encodeToken(change._id);
  const time = "wallTime" in change && change.wallTime instanceof Date ? change.wallTime.getTime() : Date.now();
  const post = "fullDocument" in change && change.fullDocument ? decodeItem(change.fullDocument) : undefined;
  const pre =
    "fullDocumentBeforeChange" in change && change.fullDocumentBeforeChange
      ? decodeItem(change.fullDocumentBeforeChange)
      : undefined;
  const changes: Change[] = [];
  switch (change.operationType) {
    case "insert":
      if (post) changes.push({ name: "created", item: post });
      break;
    case "update":
    case "replace":
      if (!post) break;
      if (pre && isLive(pre, time)) {
        changes.push({ name: "updated", item: post, previous: pre });
      } else {
        if (pre) changes.push({ name: "deleted", item: pre, expired: true });
        changes.push({ name: "created", item: post });
      }
      break;
    case "delete":
      if (pre) changes.push({ name: "deleted", item: pre, expired: !isLive(pre, time) });
      break;
    default:
      return [];
  }
  // Two events from one change share its token; the first may only be resumed as part of the pair.
  return changes.map((each, index) => ({ ...each, id: `${token}#${index}`, token, time }));
}

function encodeToken(token: ResumeToken | undefined): string {
  return TOKEN_PREFIX + Buffer.from(JSON.stringify(token ?? null)).toString("base64url");
}

function decodeToken(token: string): ResumeToken {
  if (!token.startsWith(TOKEN_PREFIX)) throw invalidArgument("INVALID_OPTION", "Invalid resume token");
  try {
    const decoded = JSON.parse(Buffer.from(token.slice(TOKEN_PREFIX.length), "base64url").toString("utf8")) as unknown;
    if (typeof decoded !== "object" || decoded === null) throw new Error("not a resume token");
    return decoded as ResumeToken;
  } catch {
    throw invalidArgument("INVALID_OPTION", "Invalid resume token");
  }
}
