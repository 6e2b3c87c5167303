import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "chai";
import { WatchRequestSchema } from "../../gen/larder/data/v1/data_pb.js";
import { DomainError } from "../../core/errors.js";
import { keyFromParts } from "../../core/keys.js";
import type { ChangeFeed, FeedEvent } from "../../services/feed/change-feed.js";
import { watchChanges } from "../../services/feed/watch.js";
import { LarderMetrics } from "../../services/metrics.js";
import { parseExposition } from "../support/in-process.js";

/** A feed that delivers the given events, then fails with `failure` (as the MongoDB feed ends a subscriber too far behind). */
function feedOf(events: FeedEvent[], failure?: Error): ChangeFeed {
  return {
    head: async () => "h",
    async *follow() {
      yield* events;
      if (failure) throw failure;
    },
    acknowledge: async () => undefined,
    acknowledged: async () => undefined,
  };
}

const event = (time: number): FeedEvent => ({
  id: String(time),
  token: `t${time}`,
  time,
  name: "created",
  item: {
    key: keyFromParts("a", String(time)),
    value: 1,
    created: time,
    modified: time,
    version: 1,
    labels: [undefined, undefined, undefined, undefined, undefined],
  },
});

describe("Watch metrics", () => {
  it("counts delivered events with their lag, and a subscriber ended as too slow, by environment", async () => {
    const metrics = new LarderMetrics({ engine: "mongodb", environments: ["prod"], changeRetentionMs: 60_000 });
    const tooSlow = new DomainError("RESOURCE_EXHAUSTED", "SUBSCRIBER_TOO_SLOW", "fell behind");
    const stream = watchChanges(
      feedOf([event(Date.now() - 2_000), event(Date.now())], tooSlow),
      create(WatchRequestSchema, {}),
      new AbortController().signal,
      new AbortController().signal,
      metrics.watchOpened("prod"),
    );
    const kinds: string[] = [];
    const failure = await (async () => {
      for await (const message of stream) kinds.push(message.kind!.case!);
    })().catch((error: unknown) => error);
    expect(kinds).to.deep.equal(["started", "event", "event"]);
    expect((failure as ConnectError).code).to.equal(Code.ResourceExhausted);
    const scraped = parseExposition(await metrics.text());
    expect(scraped.get('larder_watch_events_delivered_total{environment="prod"}')).to.equal(2);
    expect(scraped.get('larder_watch_event_lag_seconds_count{environment="prod"}')).to.equal(2);
    expect(scraped.get('larder_watch_event_lag_seconds_sum{environment="prod"}')).to.be.within(1.9, 60);
    expect(scraped.get('larder_watch_event_lag_seconds_bucket{le="1",environment="prod"}')).to.equal(1);
    expect(scraped.get('larder_watch_subscribers_too_slow_total{environment="prod"}')).to.equal(1);
    expect(scraped.get('larder_watch_streams_open{environment="prod"}')).to.equal(0);
  });

  it("another failure, or a stream the caller leaves, is not counted as too slow, and closes once", async () => {
    const metrics = new LarderMetrics({ engine: "embedded", environments: ["prod"], changeRetentionMs: 60_000 });
    const failing = watchChanges(
      feedOf([], new DomainError("OUT_OF_RANGE", "TOKEN_EXPIRED", "gone")),
      create(WatchRequestSchema, {}),
      new AbortController().signal,
      new AbortController().signal,
      metrics.watchOpened("prod"),
    );
    await (async () => {
      for await (const _ of failing);
    })().catch(() => undefined);
    const left = watchChanges(
      feedOf([event(Date.now())]),
      create(WatchRequestSchema, {}),
      new AbortController().signal,
      new AbortController().signal,
      metrics.watchOpened("staging"),
    );
    await left.next();
    await left.return(undefined);
    const scraped = parseExposition(await metrics.text());
    expect(scraped.get('larder_watch_subscribers_too_slow_total{environment="prod"}')).to.equal(undefined);
    expect(scraped.get('larder_watch_streams_open{environment="prod"}')).to.equal(0);
    expect(scraped.get('larder_watch_streams_open{environment="_other"}')).to.equal(0);
  });
});
