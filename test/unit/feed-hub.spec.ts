import { expect } from "chai";
import { DomainError } from "../../core/errors.js";
import { NO_LABELS } from "../../core/item.js";
import { parseKey } from "../../core/keys.js";
import type { FeedEvent } from "../../services/feed/change-feed.js";
import { FeedHub, type FeedHubOptions } from "../../services/feed/feed-hub.js";
import type { FeedSink, FeedSource, SourceEntry } from "../../services/feed/feed-source.js";
import { decodeToken, encodeToken, tokenExpired } from "../../services/feed/token.js";

/**
 * The shared change feed (services/feed) over a log kept in an array: the
 * hub's own rules (ring, cursors, retention, the slow-subscriber policy, one
 * catch-up read at a time) without an engine. The engines' sources are
 * pinned by the contract suite (test/contract), which runs on both.
 */
const T0 = Date.UTC(2026, 0, 1);

class ArrayLog implements FeedSource {
  readonly history = "7";
  readonly entries: SourceEntry[] = [];
  /** Positions below this are pruned. */
  pruned = 0;
  /** Whether the log tells pruned positions without reading (FeedSource.expired), as the embedded one does. */
  tellsPruned = false;
  expired = (position: string): boolean => this.tellsPruned && Number(position) < this.pruned;
  sink?: FeedSink;
  reading = 0;
  mostAtOnce = 0;
  reads = 0;

  append(count: number, time = T0): void {
    const added: SourceEntry[] = [];
    for (let i = 0; i < count; i++) {
      const position = String(this.entries.length + i + 1);
      const item = { key: parseKey(`k:${position}`), value: Number(position), created: time, modified: time, labels: NO_LABELS, version: 1 };
      added.push({ position, bytes: 100, change: { id: position, time, name: "created", item } });
    }
    this.entries.push(...added);
    this.sink?.publish(added);
  }

  async head(): Promise<string> {
    return String(this.entries.length);
  }

  check(position: string): void {
    if (!/^\d+$/.test(position) || Number(position) > this.entries.length)
      throw new DomainError("INVALID_ARGUMENT", "INVALID_OPTION", "Invalid resume token");
  }

  async readAfter(position: string, limit: number): Promise<readonly SourceEntry[]> {
    this.reads++;
    this.mostAtOnce = Math.max(this.mostAtOnce, ++this.reading);
    try {
      await new Promise((resolve) => setImmediate(resolve));
      if (Number(position) < this.pruned) throw tokenExpired();
      return this.entries.slice(Number(position), Number(position) + limit);
    } finally {
      this.reading--;
    }
  }

  tail(sink: FeedSink): string {
    this.sink = sink;
    return String(this.entries.length);
  }

  readonly saved = new Map<string, string>();
  async saveSubscription(name: string, position: string): Promise<void> {
    this.saved.set(name, position);
  }
  async loadSubscription(name: string): Promise<string | undefined> {
    return this.saved.get(name);
  }
}

function hubOver(log: ArrayLog, options: Partial<FeedHubOptions> = {}): FeedHub {
  return new FeedHub(log, { maxLag: 100, maxBytes: 1024 * 1024, retentionMs: 60_000, clock: () => T0, ...options });
}

/** Reads `count` events, or up to the failure that ends the stream. */
async function read(events: AsyncIterable<FeedEvent>, count: number): Promise<{ events: FeedEvent[]; failure?: DomainError }> {
  const got: FeedEvent[] = [];
  if (count === 0) return { events: got };
  try {
    for await (const event of events) {
      got.push(event);
      if (got.length === count) break;
    }
  } catch (error) {
    return { events: got, failure: error as DomainError };
  }
  return { events: got };
}

const keysOf = (events: readonly FeedEvent[]) => events.map((event) => event.item.key.full);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `k:${from + i}`);

function refusal(run: () => unknown): DomainError {
  try {
    run();
  } catch (error) {
    return error as DomainError;
  }
  throw new Error("expected a refusal");
}

describe("the change feed every engine shares (services/feed)", () => {
  describe("the token envelope", () => {
    it("is 2.<history>.<position> and decodes back; anything else is INVALID_ARGUMENT (INVALID_OPTION)", () => {
      expect(encodeToken("123", "45")).to.equal("2.123.45");
      expect(decodeToken("2.123.45")).to.deep.equal({ history: "123", position: "45" });
      expect(decodeToken("2.m.gqs-_A")).to.deep.equal({ history: "m", position: "gqs-_A" });
      for (const token of ["", "1.5", "2.123", "2..5", "2.1.", "3.1.5", "2.1.5.6", "2.1.5 ", "2.1.a=b"]) {
        const error = refusal(() => decodeToken(token));
        expect([error.code, error.reason], token).to.deep.equal(["INVALID_ARGUMENT", "INVALID_OPTION"]);
      }
    });
  });

  describe("the hub", () => {
    it("every event's token resumes right after it, from the ring and from the log, nothing lost or repeated", async () => {
      const log = new ArrayLog();
      log.append(50);
      const hub = hubOver(log);
      const head = await hub.head();
      const live = hub.follow(head, new AbortController().signal);
      log.append(30);
      const first = await read(live, 30);
      expect(keysOf(first.events)).to.deep.equal(range(51, 80));
      expect(first.events[9].token).to.equal(encodeToken("7", "60"));
      expect(keysOf((await read(hub.follow(first.events[9].token, new AbortController().signal), 20)).events)).to.deep.equal(range(61, 80));
      // Older than the ring (it began at 50): a catch-up read of the log, then the ring.
      expect(keysOf((await read(hub.follow(encodeToken("7", "10"), new AbortController().signal), 70)).events)).to.deep.equal(range(11, 80));
    });

    it("a subscriber more than maxLag behind is ended SUBSCRIBER_TOO_SLOW, resumably; one that keeps up is never ended", async () => {
      const log = new ArrayLog();
      const hub = hubOver(log, { maxLag: 20 });
      const head = await hub.head();
      const slow = hub.follow(head, new AbortController().signal)[Symbol.asyncIterator]();
      const fast = hub.follow(head, new AbortController().signal);
      const fastRead = read(fast, 60);
      log.append(1);
      const first = await slow.next();
      expect(first.value.item.key.full).to.equal("k:1");
      for (let batch = 0; batch < 6; batch++) {
        log.append(10);
        await new Promise((resolve) => setImmediate(resolve));
      }
      const fastResult = await fastRead;
      expect(fastResult.failure).to.equal(undefined);
      expect(keysOf(fastResult.events)).to.deep.equal(range(1, 60));
      const ended = await slow.next().then(
        () => undefined,
        (error: DomainError) => error,
      );
      expect([ended?.code, ended?.reason]).to.deep.equal(["RESOURCE_EXHAUSTED", "SUBSCRIBER_TOO_SLOW"]);
      expect(ended?.message).to.contain(first.value.token);
      const resumed = await read(hub.follow(first.value.token, new AbortController().signal), 60);
      expect(keysOf(resumed.events)).to.deep.equal(range(2, 61));
      expect(resumed.failure).to.equal(undefined);
    });

    it("a token of another history is TOKEN_EXPIRED; a malformed or future position is INVALID_ARGUMENT, at once", async () => {
      const log = new ArrayLog();
      log.append(3);
      const hub = hubOver(log);
      const signal = new AbortController().signal;
      const other = refusal(() => hub.follow(encodeToken("8", "1"), signal));
      expect([other.code, other.reason]).to.deep.equal(["OUT_OF_RANGE", "TOKEN_EXPIRED"]);
      for (const token of [encodeToken("7", "4"), "7.1", "2.7.x"]) {
        const error = refusal(() => hub.follow(token, signal));
        expect([error.code, error.reason], token).to.deep.equal(["INVALID_ARGUMENT", "INVALID_OPTION"]);
      }
    });

    it("a token whose next change is past the retention is TOKEN_EXPIRED, from the ring at once and from the log, never skipped", async () => {
      const log = new ArrayLog();
      let now = T0;
      const hub = hubOver(log, { retentionMs: 1_000, clock: () => now });
      const head = await hub.head();
      log.append(5, T0);
      log.append(5, T0 + 5_000);
      now = T0 + 5_500;
      const error = refusal(() => hub.follow(head, new AbortController().signal));
      expect([error.code, error.reason]).to.deep.equal(["OUT_OF_RANGE", "TOKEN_EXPIRED"]);
      // Its next change (k:6) is retained.
      expect(keysOf((await read(hub.follow(encodeToken("7", "5"), new AbortController().signal), 5)).events)).to.deep.equal(range(6, 10));
      // Pruned from the log: the catch-up read refuses it.
      log.pruned = 3;
      const stale = await read(hubOver(log).follow(encodeToken("7", "2"), new AbortController().signal), 1);
      expect([stale.failure?.code, stale.failure?.reason]).to.deep.equal(["OUT_OF_RANGE", "TOKEN_EXPIRED"]);
      expect(stale.events).to.deep.equal([]);
      // A log that knows what it pruned has the Watch refused before it starts.
      log.tellsPruned = true;
      const atOnce = refusal(() => hubOver(log).follow(encodeToken("7", "2"), new AbortController().signal));
      expect([atOnce.code, atOnce.reason]).to.deep.equal(["OUT_OF_RANGE", "TOKEN_EXPIRED"]);
    });

    it("subscribers resuming from old tokens share one catch-up reader: one read of the log at a time per environment", async () => {
      const log = new ArrayLog();
      log.append(2_000);
      const hub = hubOver(log);
      await hub.head();
      const readers = Array.from({ length: 8 }, (_, i) =>
        read(hub.follow(encodeToken("7", String(i * 100)), new AbortController().signal), 2_000 - i * 100),
      );
      const results = await Promise.all(readers);
      results.forEach((result, i) => expect(keysOf(result.events), `reader ${i}`).to.deep.equal(range(i * 100 + 1, 2_000)));
      expect(log.reads).to.be.greaterThan(8);
      expect(log.mostAtOnce).to.equal(1);
    });

    it("a source that lost its place ends the ring's followers TOKEN_EXPIRED; a closed one ends them UNAVAILABLE; a caller that leaves ends cleanly", async () => {
      const log = new ArrayLog();
      const hub = hubOver(log);
      const head = await hub.head();
      const lost = read(hub.follow(head, new AbortController().signal), 10);
      log.append(1);
      await new Promise((resolve) => setImmediate(resolve));
      log.sink!.lost();
      const lostResult = await lost;
      expect(keysOf(lostResult.events)).to.deep.equal(["k:1"]);
      expect([lostResult.failure?.code, lostResult.failure?.reason]).to.deep.equal(["OUT_OF_RANGE", "TOKEN_EXPIRED"]);

      const leaving = new AbortController();
      const left = read(hub.follow(await hub.head(), leaving.signal), 10);
      const closing = read(hub.follow(await hub.head(), new AbortController().signal), 10);
      leaving.abort();
      expect(await left).to.deep.equal({ events: [] });
      log.sink!.closed();
      const closed = await closing;
      expect([closed.failure?.code, closed.failure?.reason]).to.deep.equal(["UNAVAILABLE", "STORE_UNAVAILABLE"]);
    });

    it("while nobody follows, a source may restart the ring at its head: an older token then catches up through the log, nothing lost", async () => {
      const log = new ArrayLog();
      const hub = hubOver(log);
      const head = await hub.head();
      const abort = new AbortController();
      const following = hub.follow(head, abort.signal)[Symbol.asyncIterator]();
      const pending = following.next();
      expect(log.sink!.followed).to.equal(true);
      const generation = hub["ring"].generation;
      log.sink!.restartAfter("0");
      expect(hub["ring"].generation, "refused while someone follows").to.equal(generation);
      abort.abort();
      expect((await pending).done).to.equal(true);
      expect(log.sink!.followed).to.equal(false);
      // Five commits nobody follows: the source reads none of them and restarts the ring after them.
      const sink = log.sink!;
      log.sink = undefined;
      log.append(5);
      log.sink = sink;
      sink.restartAfter("5");
      log.append(3);
      const resumed = await read(hub.follow(head, new AbortController().signal), 8);
      expect(keysOf(resumed.events)).to.deep.equal(range(1, 8));
    });

    it("a stream dropped before its first read stops counting as a follower once its signal aborts", async () => {
      const log = new ArrayLog();
      const hub = hubOver(log);
      const head = await hub.head();
      const dropped = new AbortController();
      hub.follow(head, dropped.signal); // never iterated, as when a Watch fails or is left before it starts reading
      expect(log.sink!.followed).to.equal(true);
      dropped.abort();
      expect(log.sink!.followed).to.equal(false);
      const aborted = new AbortController();
      aborted.abort();
      hub.follow(head, aborted.signal);
      expect(log.sink!.followed).to.equal(false);
      // A stream that runs to its end is counted once, not twice.
      const reading = new AbortController();
      const events = read(hub.follow(head, reading.signal), 2);
      log.append(2);
      expect(keysOf((await events).events)).to.deep.equal(range(1, 2));
      expect(log.sink!.followed).to.equal(false);
      reading.abort();
      expect(hub["followers"]).to.equal(0);
    });

    it("tells health when the source starts and stops failing, once each, with the reason", () => {
      const log = new ArrayLog();
      const told: (string | undefined)[] = [];
      const hub = hubOver(log, { onHealth: (failure) => told.push(failure) });
      hub.start();
      log.sink!.failing(undefined);
      log.sink!.failing("the change log cannot be read: disk I/O error");
      log.sink!.failing("the change log cannot be read: disk I/O error");
      expect(hub.failure).to.equal("the change log cannot be read: disk I/O error");
      log.sink!.failing(undefined);
      expect(told).to.deep.equal(["the change log cannot be read: disk I/O error", undefined]);
      expect(hub.failure).to.equal(undefined);
    });

    it("named subscriptions store the position, and give back a token of this history", async () => {
      const log = new ArrayLog();
      log.append(3);
      const hub = hubOver(log);
      await hub.acknowledge("mailer", encodeToken("7", "2"));
      expect(log.saved.get("mailer")).to.equal("2");
      expect(await hub.acknowledged("mailer")).to.equal(encodeToken("7", "2"));
      expect(await hub.acknowledged("nobody")).to.equal(undefined);
      const error = await hub.acknowledge("mailer", encodeToken("8", "2")).catch((failure: DomainError) => failure);
      expect((error as DomainError).reason).to.equal("TOKEN_EXPIRED");
    });
  });
});
