import { expect } from "chai";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { planSet } from "../../core/set-plan.js";
import { HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";
import { FeedHealth } from "../../services/feed/feed-health.js";
import { HealthStatus } from "../../services/health.js";
import { EmbeddedEngine } from "../../services/stores/embedded/embedded-engine.js";
import { EmbeddedStore } from "../../services/stores/embedded/embedded-store.js";
import { eventually } from "../support/async.js";
import { setInput } from "../support/set-input.js";

/**
 * A change feed that cannot read its log turns health NOT_SERVING, with the
 * reason in the log, and SERVING again once it reads (on the embedded
 * engine; MongoDB's classification of its stream's failures is in
 * mongo-feed.spec.ts). The embedded store's log read is made to fail, as a
 * disk that cannot be read would.
 */
describe("health follows the change feeds", () => {
  it("a feed that cannot read its log makes health NOT_SERVING with the reason logged; it recovers by itself, nothing lost", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "larder-feed-health-"));
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const feeds = new FeedHealth(log);
    const health = new HealthStatus(new Set(["larder.data.v1.DataService"]), feeds);
    health.setServing(true);
    // Through the engine, as openEngine wires it: its stores report to the server's FeedHealth.
    const engine = new EmbeddedEngine({
      dataDir,
      durability: "normal",
      changeRetentionMs: 60_000,
      sweepIntervalMs: 60_000,
      onFeedHealth: (environment, failure) => feeds.report(environment, failure),
    });
    const store = await engine.environment("prod");
    const abort = new AbortController();
    try {
      const events = store.feed.follow(await store.feed.head(), abort.signal)[Symbol.asyncIterator]();
      const readChanges = store.readChanges.bind(store);
      store.readChanges = () => {
        throw new Error("disk I/O error");
      };
      await store.set(planSet(setInput("h:a", 1), Date.now()), Date.now());
      await eventually(() => health.statusOf("") === Status.NOT_SERVING, "health NOT_SERVING");
      expect(health.statusOf("larder.data.v1.DataService")).to.equal(Status.NOT_SERVING);
      const logged = lines.find((line) => line.level === 50 && line.environment === "prod");
      expect(logged?.reason).to.contain("disk I/O error");

      store.readChanges = readChanges;
      const first = await events.next();
      expect(first.value.item.key.full, "the change is delivered once the log reads again").to.equal("h:a");
      expect(health.statusOf("")).to.equal(Status.SERVING);
      expect(lines.some((line) => line.level === 30 && line.environment === "prod" && line.msg === "the change feed reads again")).to.equal(true);
    } finally {
      abort.abort();
      await engine.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }).timeout(20_000);

  it("a dropped environment's failing feed no longer counts: health is SERVING again", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "larder-feed-health-"));
    const feeds = new FeedHealth(pino({ level: "silent" }));
    const health = new HealthStatus(new Set(), feeds);
    health.setServing(true);
    const store = new EmbeddedStore({
      dataDir,
      environment: "gone",
      durability: "normal",
      changeRetentionMs: 60_000,
      onFeedHealth: (environment, failure) => feeds.report(environment, failure),
    });
    const abort = new AbortController();
    try {
      // Followed: a feed nobody follows does not read its log at all.
      store.feed.follow(await store.feed.head(), abort.signal);
      store.readChanges = () => {
        throw new Error("disk I/O error");
      };
      await store.set(planSet(setInput("h:b", 1), Date.now()), Date.now());
      await eventually(() => health.statusOf("") === Status.NOT_SERVING, "health NOT_SERVING");
    } finally {
      abort.abort();
      await store.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
    await eventually(() => health.statusOf("") === Status.SERVING, "health SERVING once the environment is gone");
  });
});
