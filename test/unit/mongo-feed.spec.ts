import { expect } from "chai";
import { MongoCursorExhaustedError, MongoServerError, type ChangeStreamDocument, type Document, type ResumeToken } from "mongodb";
import pino from "pino";
import { DomainError } from "../../core/errors.js";
import { NO_LABELS } from "../../core/item.js";
import type { JsonValue } from "../../core/json.js";
import { parseKey } from "../../core/keys.js";
import type { FeedEvent } from "../../services/feed/change-feed.js";
import { FeedHub } from "../../services/feed/feed-hub.js";
import { encodeItem, type ItemDocument } from "../../services/stores/mongodb/codec.js";
import { decodePosition, encodePosition, entriesOf, MissingImageError } from "../../services/stores/mongodb/feed-events.js";
import {
  fromChangeStreamError,
  isPersistentFeedError,
  MongoChangeLog,
  type ChangeCursor,
  type ChangeSource,
  type MongoChangeLogOptions,
} from "../../services/stores/mongodb/change-log.js";
import type { HistoryDocument } from "../../services/stores/mongodb/history.js";
import { sleep } from "../support/async.js";

/**
 * The MongoDB change feed without a server: change stream documents as
 * MongoDB documents them, fed through a scripted stream (an ordered list of
 * changes that cursors read from a resume point). It checks what Larder
 * does with them: event names (EV5, EV6), tokens that resume right after
 * their event, the one consumer and the one catch-up stream under the feed
 * hub (services/feed), retention, restarts and what health is told. That
 * MongoDB produces these documents is for `npm run test:mongo`.
 */
const T0 = Date.UTC(2026, 0, 1);
const log = pino({ level: "silent" });
let counter = 0;
const nextId = (): ResumeToken => ({ _data: `82${(++counter).toString(16).padStart(16, "0").toUpperCase()}` });

function stored(key: string, value: JsonValue, options: { expires?: number; fresh?: boolean; quiet?: "w" | "d" } = {}): ItemDocument {
  const document = encodeItem(
    { key: parseKey(key), value, created: T0, modified: T0, labels: NO_LABELS, version: 1, ...(options.expires ? { expires: options.expires } : {}) },
    { writeId: "w", created: options.fresh ?? true },
  );
  return options.quiet ? { ...document, _q: options.quiet } : document;
}

type Change = ChangeStreamDocument<Document>;
const ns = (coll: string) => ({ db: "larder_test", coll });
const insert = (post: ItemDocument, time = T0): Change =>
  ({
    _id: nextId(),
    operationType: "insert",
    ns: ns("items"),
    documentKey: { _id: 1 },
    fullDocument: post,
    wallTime: new Date(time),
  }) as unknown as Change;
const update = (pre: ItemDocument | undefined, post: ItemDocument, time = T0): Change =>
  ({
    _id: nextId(),
    operationType: "update",
    ns: ns("items"),
    documentKey: { _id: 1 },
    updateDescription: { updatedFields: {}, removedFields: [] },
    fullDocument: post,
    fullDocumentBeforeChange: pre,
    wallTime: new Date(time),
  }) as unknown as Change;
const remove = (pre: ItemDocument, time = T0): Change =>
  ({
    _id: nextId(),
    operationType: "delete",
    ns: ns("items"),
    documentKey: { _id: 1 },
    fullDocumentBeforeChange: pre,
    wallTime: new Date(time),
  }) as unknown as Change;
const marker = (n: number): Change =>
  ({
    _id: nextId(),
    operationType: "update",
    ns: ns("heads"),
    documentKey: { _id: "head" },
    updateDescription: { updatedFields: { n } },
    wallTime: new Date(T0),
  }) as unknown as Change;

/** The change stream as an ordered list; cursors resume after a token, as MongoDB's do. */
class ScriptedStream implements ChangeSource {
  readonly changes: Change[] = [];
  readonly saved = new Map<string, string>();
  /** Changes before this index are gone from the "oplog": resuming before them fails with 286. */
  oplogStart = 0;
  failNext?: Error;
  heads = 0;
  opened = 0;
  /** The most change streams open at once. */
  mostOpen = 0;
  readonly cursors: ScriptedCursor[] = [];

  append(...changes: Change[]): void {
    this.changes.push(...changes);
  }

  open(resumeAfter?: ResumeToken): ChangeCursor {
    this.opened++;
    const cursor = new ScriptedCursor(this, resumeAfter);
    this.cursors.push(cursor);
    this.mostOpen = Math.max(this.mostOpen, this.cursors.filter((each) => !each.closed).length);
    return cursor;
  }

  async markHead(): Promise<number> {
    this.heads++;
    this.append(marker(this.heads));
    return this.heads;
  }

  async saveSubscription(name: string, position: string): Promise<void> {
    this.saved.set(name, position);
  }

  async loadSubscription(name: string): Promise<string | undefined> {
    return this.saved.get(name);
  }
}

/** A position between changes, hex like MongoDB's own tokens: every change before `next` has been read. */
const highWaterMark = (next: number): ResumeToken => ({ _data: `FFFF${next.toString(16).toUpperCase()}` });

class ScriptedCursor implements ChangeCursor {
  private next: number;
  private token: ResumeToken | undefined;
  closed = false;

  constructor(
    private readonly stream: ScriptedStream,
    resumeAfter: ResumeToken | undefined,
  ) {
    if (resumeAfter === undefined) {
      this.next = stream.changes.length;
    } else {
      // A change's own token, or a high-water mark ("FFFF" + N in hex: every change before N has been read).
      const data = (resumeAfter as { _data: string })._data;
      const at = stream.changes.findIndex((change) => (change._id as { _data: string })._data === data);
      this.next = data.startsWith("FFFF") ? parseInt(data.slice(4), 16) : at < 0 ? -1 : at + 1;
    }
    this.token = highWaterMark(this.next);
  }

  get resumeToken(): ResumeToken | undefined {
    return this.token;
  }

  async tryNext(): Promise<Change | null> {
    if (this.closed) return null;
    if (this.stream.failNext) {
      const failure = this.stream.failNext;
      this.stream.failNext = undefined;
      throw failure;
    }
    if (this.next < 0 || this.next < this.stream.oplogStart) {
      throw new MongoServerError({ message: "Resume of change stream was not possible", code: 286 });
    }
    const change = this.stream.changes[this.next];
    if (!change) {
      await sleep(2);
      this.token = highWaterMark(this.next);
      return null;
    }
    this.next++;
    this.token = change._id;
    return change;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

async function take(events: AsyncIterator<FeedEvent>, count: number): Promise<FeedEvent[]> {
  const taken: FeedEvent[] = [];
  while (taken.length < count) {
    const next = await Promise.race([
      events.next(),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`only ${taken.length} of ${count} events arrived`)), 2_000)),
    ]);
    if (next.done) break;
    taken.push(next.value);
  }
  return taken;
}

/** The error a feed's stream ends with (the feed's own, not a call's: test/support's failureOf is for calls). */
async function feedFailure(events: AsyncIterator<FeedEvent>): Promise<DomainError> {
  for (;;) {
    try {
      const next = await events.next();
      if (next.done) throw new Error("the feed ended without an error");
    } catch (error) {
      if (error instanceof DomainError) return error;
      throw error;
    }
  }
}

const settle = () => sleep(20);

/** The MongoDB change log under the hub every engine uses, as MongoStore puts them together. */
async function feedOver(
  stream: ChangeSource,
  options: Partial<MongoChangeLogOptions> & { ringEntries?: number; onHealth?: (failure: string | undefined) => void } = {},
): Promise<{ feed: FeedHub; changeLog: MongoChangeLog }> {
  const { ringEntries, onHealth, ...logOptions } = options;
  const changeLog = new MongoChangeLog(stream, { retentionMs: 60_000, log, restartDelayMs: 1, ...logOptions });
  const feed = new FeedHub(changeLog, {
    maxLag: ringEntries ?? 10_000,
    maxBytes: 8 * 1024 * 1024,
    retentionMs: logOptions.retentionMs ?? 60_000,
    clock: logOptions.clock,
    onHealth,
  });
  feed.start();
  await changeLog.start();
  return { feed, changeLog };
}

describe("MongoDB engine: change events (EV4-EV7)", () => {
  describe("change stream documents → events", () => {
    it("EV5: insert → created; update of a live item → updated with previous; delete → deleted with the item", () => {
      const created = entriesOf(insert(stored("ev:a", 1)), undefined);
      expect(created.map((entry) => entry.kind === "event" && [entry.event.name, entry.event.item.value])).to.deep.equal([["created", 1]]);
      const updated = entriesOf(update(stored("ev:a", 1), stored("ev:a", 2, { fresh: false })), undefined);
      expect(updated.map((entry) => entry.kind === "event" && [entry.event.name, entry.event.item.value, entry.event.previous?.value])).to.deep.equal(
        [["updated", 2, 1]],
      );
      const deleted = entriesOf(remove(stored("ev:a", 2)), undefined);
      expect(deleted.map((entry) => entry.kind === "event" && [entry.event.name, entry.event.item.value, entry.event.expired])).to.deep.equal([
        ["deleted", 2, false],
      ]);
    });

    it("EV6: a write that found no live item over an expired one is that item's expiry, then a new item", () => {
      const before = nextId();
      const change = update(stored("x:b", 1, { expires: T0 - 1 }), stored("x:b", 2, { fresh: true }));
      const entries = entriesOf(change, before);
      expect(
        entries.map((entry) => entry.kind === "event" && [entry.event.name, entry.event.expired ?? false, entry.event.item.value]),
      ).to.deep.equal([
        ["deleted", true, 1],
        ["created", false, 2],
      ]);
      const [first, second] = entries.map((entry) => (entry.kind === "event" ? entry : undefined)!);
      expect(first.event.id).not.to.equal(second.event.id);
      // The first resumes at the change (from the position before it) and skips one event; the second after the change.
      expect(decodePosition(first.position)).to.deep.equal({ key: first.key, resume: before, change: second.key, skip: 1 });
      expect(decodePosition(second.position)).to.deep.equal({ key: second.key, resume: change._id });
    });

    it("EV6: a delete of an item whose expiry had passed (TTL monitor, sweeper, remove) is marked expired", () => {
      const [ttl] = entriesOf(remove(stored("x:a", 1, { expires: T0 - 5 }), T0), undefined);
      expect(ttl.kind === "event" && [ttl.event.name, ttl.event.expired]).to.deep.equal(["deleted", true]);
    });

    it("EV6: a delete is marked expired by one clock at a time: MongoDB's at the delete, or the item's own write (written already expired)", () => {
      // Written with ttl 0 (expires == modified) and deleted at once by a MongoDB whose clock is 5 ms behind Larder's.
      const [deadOnArrival] = entriesOf(remove(stored("x:z", 1, { expires: T0 }), T0 - 5), undefined);
      expect(deadOnArrival.kind === "event" && deadOnArrival.event.expired).to.equal(true);
      const [removed] = entriesOf(remove(stored("x:y", 1, { expires: T0 + 10_000 }), T0), undefined);
      expect(removed.kind === "event" && removed.event.expired, "a remove before the expiry is a plain delete").to.equal(false);
    });

    it("a stream reopened without a position reports null before its first batch: the positions of an EV6 pair still decode", () => {
      const change = update(stored("x:n", 1, { expires: T0 - 1 }), stored("x:n", 2, { fresh: true }));
      const entries = entriesOf(change, null);
      expect(entries.map((entry) => entry.kind)).to.deep.equal(["event", "event"]);
      for (const entry of entries) if (entry.kind === "event") expect(() => decodePosition(entry.position)).not.to.throw();
    });

    it("a change whose pre- or post-image MongoDB no longer has is lost history (MissingImageError), never a silent skip", () => {
      const post = stored("img:a", 2, { fresh: false });
      expect(() => entriesOf(update(undefined, post), undefined)).to.throw(MissingImageError, "no pre-image");
      const noPost = { ...update(stored("img:a", 1), post), fullDocument: null } as unknown as Change;
      expect(() => entriesOf(noPost, undefined)).to.throw(MissingImageError, "no post-image");
      const noPre = { ...remove(stored("img:a", 1)), fullDocumentBeforeChange: null } as unknown as Change;
      expect(() => entriesOf(noPre, undefined)).to.throw(MissingImageError, "no pre-image");
      expect(
        entriesOf(update(undefined, stored("img:q", 1, { quiet: "w" })), undefined).map((entry) => entry.kind),
        "a quiet write needs no pre-image",
      ).to.deep.equal(["skip"]);
    });

    it("writes without events are passed over; a delete of an item written quietly is not", () => {
      expect(entriesOf(insert(stored("q:a", 1, { quiet: "w" })), undefined).map((entry) => entry.kind)).to.deep.equal(["skip"]);
      expect(entriesOf(update(stored("q:a", 1), stored("q:a", 1, { quiet: "d" })), undefined).map((entry) => entry.kind)).to.deep.equal(["skip"]);
      expect(entriesOf(remove(stored("q:a", 1, { quiet: "d" })), undefined).map((entry) => entry.kind)).to.deep.equal(["skip"]);
      expect(entriesOf(remove(stored("q:a", 1, { quiet: "w" })), undefined).map((entry) => entry.kind)).to.deep.equal(["event"]);
    });

    it("head markers are positions, other collections and stream events are nothing", () => {
      const [mark] = entriesOf(marker(7), undefined);
      expect(mark.kind === "marker" && mark.marker).to.equal(7);
      const other = { ...insert(stored("a", 1)), ns: ns("subscriptions") } as Change;
      expect(entriesOf(other, undefined).map((entry) => entry.kind)).to.deep.equal(["skip"]);
      const invalidate = { _id: nextId(), operationType: "invalidate" } as unknown as Change;
      expect(entriesOf(invalidate, undefined).map((entry) => entry.kind)).to.deep.equal(["skip"]);
    });

    it("positions are opaque text that decodes back; anything else is INVALID_ARGUMENT", () => {
      const position = { key: "82AB", resume: { _data: "82AB" } };
      expect(decodePosition(encodePosition(position))).to.deep.equal(position);
      const pair = { key: "82AB:0", resume: { _data: "82AA" }, change: "82AB", skip: 1 };
      expect(decodePosition(encodePosition(pair))).to.deep.equal(pair);
      expect(encodePosition(position)).to.match(/^[0-9A-Za-z_-]+$/);
      const text = (body: object) => Buffer.from(JSON.stringify(body)).toString("base64url");
      for (const bad of [
        "",
        "1.5",
        "bm90IGpzb24",
        text({ k: "" }),
        text({ k: "a", c: "b", s: 0 }),
        text({ k: "a", r: null }),
        text({ k: "a", r: { _data: "zz" } }),
        text({ k: "a", r: { other: "82AB" } }),
      ]) {
        expect(() => decodePosition(bad), bad).to.throw(DomainError, "Invalid resume token");
      }
    });
  });

  describe("one consumer, fanned out by the hub", () => {
    let stream: ScriptedStream;
    let feed: FeedHub;
    let changeLog: MongoChangeLog | undefined;
    let clock: number;
    const open = async (
      options: Partial<MongoChangeLogOptions> & { ringEntries?: number; onHealth?: (failure: string | undefined) => void } = {},
    ) => {
      stream = new ScriptedStream();
      clock = T0;
      ({ feed, changeLog } = await feedOver(stream, { clock: () => clock, ...options }));
    };
    afterEach(async () => changeLog?.stop());

    it("head() returns once the consumer has seen its marker: a Watch from it sees only later changes", async () => {
      await open();
      stream.append(insert(stored("h:old", 1)));
      const head = await feed.head();
      stream.append(insert(stored("h:new", 2)));
      const events = feed.follow(head, new AbortController().signal)[Symbol.asyncIterator]();
      expect((await take(events, 1)).map((event) => event.item.key.full)).to.deep.equal(["h:new"]);
      expect(stream.opened).to.equal(1);
    });

    it("every event's token resumes right after it, nothing lost or repeated, from memory", async () => {
      await open();
      const head = await feed.head();
      for (let i = 0; i < 5; i++) stream.append(insert(stored(`r:${i}`, i)));
      const first = await take(feed.follow(head, new AbortController().signal)[Symbol.asyncIterator](), 5);
      const rest = await take(feed.follow(first[2].token, new AbortController().signal)[Symbol.asyncIterator](), 2);
      expect(rest.map((event) => event.item.key.full)).to.deep.equal(["r:3", "r:4"]);
      expect(stream.opened).to.equal(1);
    });

    it("EV6: resuming between the two events of one change delivers the second, from memory and from the oplog", async () => {
      await open({ ringEntries: 3 });
      const head = await feed.head();
      stream.append(update(stored("x:b", 1, { expires: T0 - 1 }), stored("x:b", 2, { fresh: true })), insert(stored("x:c", 3)));
      const [expiry] = await take(feed.follow(head, new AbortController().signal)[Symbol.asyncIterator](), 1);
      expect([expiry.name, expiry.expired]).to.deep.equal(["deleted", true]);
      const fromRing = await take(feed.follow(expiry.token, new AbortController().signal)[Symbol.asyncIterator](), 2);
      expect(fromRing.map((event) => [event.name, event.item.key.full])).to.deep.equal([
        ["created", "x:b"],
        ["created", "x:c"],
      ]);
      // Push the pair out of memory: the token then resumes from the oplog and skips the expiry.
      for (let i = 0; i < 5; i++) stream.append(insert(stored(`x:f${i}`, i)));
      await settle();
      expect(feed["ring"].seqAfter(expiry.id)).to.equal(undefined);
      const fromOplog = await take(feed.follow(expiry.token, new AbortController().signal)[Symbol.asyncIterator](), 7);
      expect(fromOplog.map((event) => event.item.key.full)).to.deep.equal(["x:b", "x:c", "x:f0", "x:f1", "x:f2", "x:f3", "x:f4"]);
      expect(new Set(fromOplog.map((event) => event.id)).size).to.equal(7);
    });

    it("a subscriber that falls more than the ring behind is ended resumably, and its token continues exactly", async () => {
      await open({ ringEntries: 4 });
      const head = await feed.head();
      const slow = feed.follow(head, new AbortController().signal)[Symbol.asyncIterator]();
      stream.append(insert(stored("s:0", 0)));
      const [first] = await take(slow, 1);
      for (let i = 1; i < 10; i++) stream.append(insert(stored(`s:${i}`, i)));
      await settle();
      const failure = await feedFailure(slow);
      expect([failure.code, failure.reason]).to.deep.equal(["RESOURCE_EXHAUSTED", "SUBSCRIBER_TOO_SLOW"]);
      expect(failure.message).to.contain(first.token);
      const resumed = await take(feed.follow(first.token, new AbortController().signal)[Symbol.asyncIterator](), 9);
      expect(resumed.map((event) => event.item.key.full)).to.deep.equal(Array.from({ length: 9 }, (_, i) => `s:${i + 1}`));
    });

    it("a token whose next change is past the retention is refused at once (OUT_OF_RANGE TOKEN_EXPIRED), never skipped", async () => {
      await open({ retentionMs: 1_000 });
      const head = await feed.head();
      stream.append(insert(stored("old:a", 1), T0), insert(stored("old:b", 2), T0 + 2_500));
      const [a] = await take(feed.follow(head, new AbortController().signal)[Symbol.asyncIterator](), 1);
      clock = T0 + 4_000;
      expect(() => feed.follow(a.token, new AbortController().signal))
        .to.throw(DomainError)
        .with.property("reason", "TOKEN_EXPIRED");
      clock = T0 + 3_000;
      expect(() => feed.follow(a.token, new AbortController().signal)).not.to.throw();
    });

    it("an old token is checked against the retention on its catch-up too, and one older than the oplog is TOKEN_EXPIRED", async () => {
      await open({ ringEntries: 2, retentionMs: 1_000 });
      const head = await feed.head();
      stream.append(insert(stored("o:a", 1), T0), insert(stored("o:b", 2), T0), insert(stored("o:c", 3), T0), insert(stored("o:d", 4), T0));
      const [a] = await take(feed.follow(head, new AbortController().signal)[Symbol.asyncIterator](), 1);
      await settle();
      clock = T0 + 5_000;
      const stale = feed.follow(a.token, new AbortController().signal)[Symbol.asyncIterator]();
      expect((await feedFailure(stale)).reason).to.equal("TOKEN_EXPIRED");
      clock = T0;
      stream.oplogStart = stream.changes.length;
      const lost = feed.follow(a.token, new AbortController().signal)[Symbol.asyncIterator]();
      const failure = await feedFailure(lost);
      expect([failure.code, failure.reason]).to.deep.equal(["OUT_OF_RANGE", "TOKEN_EXPIRED"]);
    });

    it("the consumer reopens itself from its last position after an error: nothing lost, nothing repeated", async () => {
      await open();
      const head = await feed.head();
      const events = feed.follow(head, new AbortController().signal)[Symbol.asyncIterator]();
      stream.append(insert(stored("c:1", 1)));
      await take(events, 1);
      stream.failNext = new Error("connection reset");
      await settle();
      stream.append(insert(stored("c:2", 2)), insert(stored("c:3", 3)));
      expect((await take(events, 2)).map((event) => event.item.key.full)).to.deep.equal(["c:2", "c:3"]);
      expect(stream.opened).to.equal(2);
    });

    it("when the consumer's own position is gone from the oplog, following subscribers are told (TOKEN_EXPIRED)", async () => {
      await open();
      const head = await feed.head();
      const events = feed.follow(head, new AbortController().signal)[Symbol.asyncIterator]();
      stream.failNext = new MongoServerError({ message: "history lost", code: 286 });
      const failure = await feedFailure(events);
      expect([failure.code, failure.reason]).to.deep.equal(["OUT_OF_RANGE", "TOKEN_EXPIRED"]);
    });

    it("a change without its images is lost history: the consumer's followers and an old token's catch-up get TOKEN_EXPIRED", async () => {
      await open({ ringEntries: 2 });
      const head = await feed.head();
      stream.append(insert(stored("i:a", 1)), insert(stored("i:b", 2)), insert(stored("i:c", 3)), insert(stored("i:x", 4)));
      const [a] = await take(feed.follow(head, new AbortController().signal)[Symbol.asyncIterator](), 1);
      await settle();
      expect(feed["ring"].seqAfter(a.id)).to.equal(undefined);
      // The token of i:a is out of the ring: its catch-up reads the oplog, where a change has lost its pre-image.
      stream.changes.splice(
        stream.changes.indexOf(
          stream.changes.find((change) => change.operationType === "insert" && (change.fullDocument as ItemDocument).part === "b")!,
        ),
        1,
        update(undefined, stored("i:b", 2, { fresh: false })),
      );
      const catchUp = await feedFailure(feed.follow(a.token, new AbortController().signal)[Symbol.asyncIterator]());
      expect([catchUp.code, catchUp.reason]).to.deep.equal(["OUT_OF_RANGE", "TOKEN_EXPIRED"]);
      expect(catchUp.message).to.contain("preAndPostImages.expireAfterSeconds");

      // The consumer meets a change without images: a gap there, for those who would cross it only.
      const generation = feed["ring"].generation;
      const following = feed.follow(await feed.head(), new AbortController().signal)[Symbol.asyncIterator]();
      const imageless = remove(stored("i:c", 3));
      (imageless as { fullDocumentBeforeChange?: unknown }).fullDocumentBeforeChange = null;
      stream.append(imageless);
      const consumer = await feedFailure(following);
      expect([consumer.code, consumer.reason]).to.deep.equal(["OUT_OF_RANGE", "TOKEN_EXPIRED"]);
      expect(consumer.message).to.contain("preAndPostImages.expireAfterSeconds");
      expect(feed["ring"].generation, "the ring is not reset for everyone").to.equal(generation);
      const after = feed.follow(await feed.head(), new AbortController().signal)[Symbol.asyncIterator]();
      stream.append(insert(stored("i:d", 4)));
      expect((await take(after, 1)).map((event) => event.item.key.full)).to.deep.equal(["i:d"]);
    });

    it("old tokens resuming at once are caught up by one catch-up stream, never one each", async () => {
      await open({ ringEntries: 4 });
      const head = await feed.head();
      for (let i = 0; i < 40; i++) stream.append(insert(stored(`u:${String(i).padStart(2, "0")}`, i)));
      await settle();
      const all = await take(feed.follow(head, new AbortController().signal)[Symbol.asyncIterator](), 40);
      // Ten Watches resume after a restart from tokens long out of the ring.
      const resumed = await Promise.all(
        [0, 3, 7, 11, 15, 19, 23, 27, 30, 33].map((from) =>
          take(feed.follow(all[from].token, new AbortController().signal)[Symbol.asyncIterator](), 39 - from),
        ),
      );
      resumed.forEach((events, index) =>
        expect(
          events.map((event) => event.id),
          `watch ${index}`,
        ).to.deep.equal(all.slice([0, 3, 7, 11, 15, 19, 23, 27, 30, 33][index] + 1).map((event) => event.id)),
      );
      expect(stream.mostOpen, "the consumer's stream and one catch-up at most").to.equal(2);
    });

    it("a failure retrying cannot mend (Unauthorized) turns health at once, with the reason; a passing one only once it lasts", async () => {
      const told: (string | undefined)[] = [];
      const until = async (count: number) => {
        for (let i = 0; i < 200 && told.length < count; i++) await sleep(10);
        expect(told, "what health was told").to.have.length.at.least(count);
      };
      await open({ failingAfterMs: 10_000, onHealth: (failure) => told.push(failure) });
      stream.failNext = new Error("connection reset");
      await settle();
      await settle();
      expect(told, "a failure that the next read mends").to.deep.equal([]);
      stream.failNext = new MongoServerError({
        message: "not authorized on larder_test to execute command { aggregate: 1 }",
        code: 13,
        codeName: "Unauthorized",
      });
      await until(1);
      expect(told[0]).to.contain("not authorized");
      // The stream reads again: health is told it recovered.
      await until(2);
      expect(told[1]).to.equal(undefined);
      expect(feed.failure).to.equal(undefined);

      // A failure that passes, but keeps coming back on every reopened stream while MongoDB's clock runs past failingAfterMs.
      const failing = new MongoServerError({ message: "connection pool cleared", code: 9001 });
      const open_ = stream.open.bind(stream);
      let reopened = 0;
      stream.open = (resumeAfter) => {
        const cursor = open_(resumeAfter);
        if (reopened++ < 5) {
          stream.failNext = failing;
          clock += 3_000;
        }
        return cursor;
      };
      stream.failNext = failing;
      await until(3);
      expect(told[2]).to.contain("connection pool cleared");
      expect(reopened, "told only once it had lasted").to.be.at.least(4);
      await until(4);
      expect(told[3], "recovered once the stream reads again").to.equal(undefined);
    });

    it("failures that retrying cannot mend: rights, authentication, a deployment without change streams; not elections or networks", () => {
      const server = (code: number, codeName?: string) => new MongoServerError({ message: "failed", code, codeName });
      for (const error of [server(13, "Unauthorized"), server(8000), server(18), server(40573)])
        expect(isPersistentFeedError(error), String(error.code)).to.equal(true);
      for (const error of [server(286), server(91), server(189), server(6), new Error("connection reset"), new MongoCursorExhaustedError()]) {
        expect(isPersistentFeedError(error), String((error as { code?: number }).code ?? error.message)).to.equal(false);
      }
    });

    it("a catch-up stream MongoDB cannot open from a token is INVALID_ARGUMENT; one it closed is UNAVAILABLE", () => {
      for (const code of [260, 2, 9]) {
        const mapped = fromChangeStreamError(new MongoServerError({ message: "bad token", code })) as DomainError;
        expect([mapped.code, mapped.message], String(code)).to.deep.equal(["INVALID_ARGUMENT", "Invalid resume token"]);
      }
      const closed = fromChangeStreamError(new MongoCursorExhaustedError()) as DomainError;
      expect([closed.code, closed.reason]).to.deep.equal(["UNAVAILABLE", "STORE_UNAVAILABLE"]);
      const lost = fromChangeStreamError(new MongoServerError({ message: "history lost", code: 286 })) as DomainError;
      expect([lost.code, lost.reason]).to.deep.equal(["OUT_OF_RANGE", "TOKEN_EXPIRED"]);
    });

    it("stopping (a drop, or a stop no caller asked for) ends every follower UNAVAILABLE, resumably, and fails a pending head()", async () => {
      await open();
      const head = await feed.head();
      const events = feed.follow(head, new AbortController().signal)[Symbol.asyncIterator]();
      const ended = feedFailure(events);
      await changeLog!.stop();
      const failure = await ended;
      expect([failure.code, failure.reason]).to.deep.equal(["UNAVAILABLE", "STORE_UNAVAILABLE"]);
      expect(failure.message).to.contain("resume from the last token");
      await feed.head().then(
        () => expect.fail("head() after stop should fail"),
        (error: DomainError) => expect(error.code).to.equal("UNAVAILABLE"),
      );
    });

    it("a token from before a drop catches up to the drop and ends there (TOKEN_EXPIRED), after the events before it", async () => {
      await open();
      const head = await feed.head();
      stream.append(insert(stored("d:a", 1)), insert(stored("d:b", 2)));
      const [a] = await take(feed.follow(head, new AbortController().signal)[Symbol.asyncIterator](), 1);
      // What the environment's stream (STREAM_PIPELINE: items and heads only) shows of dropDatabase.
      const dropped = (coll: string) => ({ _id: nextId(), operationType: "drop", ns: ns(coll), wallTime: new Date(T0) }) as unknown as Change;
      stream.append(dropped("items"), dropped("heads"));
      await changeLog!.stop();
      // The environment's next use opens a new store and feed, whose consumer starts after the drop.
      ({ feed, changeLog } = await feedOver(stream, { clock: () => clock }));
      stream.append(insert(stored("d:new", 3)));
      const events = feed.follow(a.token, new AbortController().signal)[Symbol.asyncIterator]();
      expect((await take(events, 1)).map((event) => event.item.key.full)).to.deep.equal(["d:b"]);
      const failure = await feedFailure(events);
      expect([failure.code, failure.reason]).to.deep.equal(["OUT_OF_RANGE", "TOKEN_EXPIRED"]);
      expect(failure.message).to.contain("dropped");
    });

    it("a caller that goes away stops its delivery", async () => {
      await open();
      const abort = new AbortController();
      const events = feed.follow(await feed.head(), abort.signal)[Symbol.asyncIterator]();
      const pending = events.next();
      abort.abort();
      expect((await pending).done).to.equal(true);
    });

    it("named subscriptions store their acknowledged token; an empty name or a bad token is INVALID_ARGUMENT", async () => {
      await open();
      const head = await feed.head();
      await feed.acknowledge("mailer", head);
      expect(await feed.acknowledged("mailer")).to.equal(head);
      expect(await feed.acknowledged("nobody")).to.equal(undefined);
      for (const [name, token] of [
        ["", head],
        ["mailer", "1.5"],
      ]) {
        await feed.acknowledge(name, token).then(
          () => expect.fail("should be refused"),
          (error: DomainError) => expect([error.code, error.reason]).to.deep.equal(["INVALID_ARGUMENT", "INVALID_OPTION"]),
        );
      }
    });
  });
  describe("the key history the consumer writes (history.ts)", () => {
    /** A scripted stream that also takes history writes, which a test can hold back or fail. */
    class HistoryStream extends ScriptedStream {
      readonly written: HistoryDocument[] = [];
      markerTime = T0;
      failures = 0;
      gate?: Promise<void>;
      override async markHead(): Promise<number> {
        this.heads++;
        this.append({ ...marker(this.heads), wallTime: new Date(this.markerTime) } as Change);
        return this.heads;
      }
      async writeHistory(documents: readonly HistoryDocument[]): Promise<void> {
        await this.gate;
        if (this.failures > 0) {
          this.failures--;
          throw new Error("write failed");
        }
        this.written.push(...documents);
      }
    }
    let stream: HistoryStream;
    let feed: MongoChangeLog;
    const open = async () => {
      stream = new HistoryStream();
      ({ changeLog: feed } = await feedOver(stream, { headTimeoutMs: 2_000 }));
    };
    afterEach(async () => feed?.stop());

    it("every event read is written in stream order, and historySynced() returns only once all before it is written", async () => {
      await open();
      let release!: () => void;
      stream.gate = new Promise((resolve) => (release = resolve));
      const expired = stored("hk:a", 1, { expires: T0 + 5 });
      stream.append(
        insert(expired, T0 + 1),
        update(expired, { ...stored("hk:a", 2), _n: true } as ItemDocument, T0 + 10),
        remove(stored("hk:a", 2), T0 + 20),
      );
      let synced: number | undefined;
      const syncing = feed.historySynced().then((since) => (synced = since));
      await settle();
      expect(synced, "still waiting for the history write").to.equal(undefined);
      release();
      await syncing;
      // The start marker (at T0) was the first change read: the history holds every change after it.
      expect(synced).to.equal(T0 + 1);
      expect(stream.written.map((document) => [document.k, document.i, document.at.getTime(), JSON.parse(document.c).name])).to.deep.equal([
        ["hk:a", 0, T0 + 1, "created"],
        ["hk:a", 0, T0 + 10, "deleted"],
        ["hk:a", 1, T0 + 10, "created"],
        ["hk:a", 0, T0 + 20, "deleted"],
      ]);
      const ids = stream.written.map((document) => document._id);
      expect(new Set(ids).size).to.equal(4);
      expect(stream.written[1].o).to.equal(stream.written[2].o);
      expect(stream.written[1]._id < stream.written[2]._id).to.equal(true);
      expect(stream.written[0].expireAt.getTime()).to.equal(T0 + 1 + 60_000);
    });

    it("a write without events (an import or clone that skips them) starts the history over after it", async () => {
      await open();
      stream.append(insert(stored("hk:q", 1, { quiet: "w" }), T0 + 100), remove(stored("hk:q", 1, { quiet: "d" }), T0 + 200));
      stream.markerTime = T0 + 300;
      expect(await feed.historySynced()).to.equal(T0 + 201);
      expect(stream.written).to.deep.equal([]);
    });

    it("a failed history write is retried, never skipped", async () => {
      await open();
      stream.failures = 2;
      stream.append(insert(stored("hk:b", 1), T0 + 1));
      await feed.historySynced();
      expect(stream.written.map((document) => document.k)).to.deep.equal(["hk:b"]);
    });

    it("history MongoDB will not take is held up to a bound, then dropped: the history then counts as complete only from the next change", async () => {
      stream = new HistoryStream();
      ({ changeLog: feed } = await feedOver(stream, { headTimeoutMs: 2_000, historyQueueLimit: 2 }));
      expect(await feed.historySynced()).to.equal(T0 + 1);
      stream.failures = 1_000_000;
      stream.append(insert(stored("hk:c", 1), T0 + 1), insert(stored("hk:d", 1), T0 + 2), insert(stored("hk:e", 1), T0 + 3));
      await sleep(100);
      stream.failures = 0;
      stream.markerTime = T0 + 9_000;
      expect(await feed.historySynced()).to.equal(T0 + 9_001);
      expect(stream.written).to.deep.equal([]);
      stream.append(insert(stored("hk:f", 1), T0 + 9_500));
      await feed.historySynced();
      expect(stream.written.map((document) => document.k)).to.deep.equal(["hk:f"]);
    });

    it("when the consumer's position is lost, the history counts as complete only from the reopened stream on", async () => {
      await open();
      expect(await feed.historySynced()).to.equal(T0 + 1);
      stream.markerTime = T0 + 5_000;
      stream.failNext = new MongoServerError({ message: "history lost", code: 286 });
      await sleep(50);
      expect(await feed.historySynced()).to.equal(T0 + 5_001);
    });
  });
});
