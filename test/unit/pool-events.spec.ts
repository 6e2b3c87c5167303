import { EventEmitter } from "node:events";
import { expect } from "chai";
import { LarderMetrics } from "../../services/metrics.js";
import { observeConnectionPool } from "../../services/stores/mongodb/pool-events.js";
import { parseExposition } from "../support/in-process.js";

/**
 * The mapping from the driver's CMAP events (names and fields as the MongoDB
 * driver emits them, per the CMAP specification) to the pool's metrics, as
 * data: the events are emitted by hand, no MongoDB is imitated.
 */
describe("MongoDB connection pool metrics (CMAP events)", () => {
  it("counts connections open and in use, the wait queue, check-out time and failures", async () => {
    const metrics = new LarderMetrics({ engine: "mongodb", environments: ["default"], changeRetentionMs: 60_000 });
    const client = new EventEmitter();
    observeConnectionPool(client, metrics.engineObserver.connectionPool);

    for (let i = 0; i < 3; i++) client.emit("connectionCreated", { connectionId: i });
    client.emit("connectionClosed", { connectionId: 0, reason: "stale" });
    for (let i = 0; i < 4; i++) client.emit("connectionCheckOutStarted", {});
    client.emit("connectionCheckedOut", { durationMS: 2 });
    client.emit("connectionCheckedOut", { durationMS: 30 });
    client.emit("connectionCheckOutFailed", { reason: "timeout", durationMS: 10_000 });
    client.emit("connectionCheckedIn", {});
    client.emit("connectionPoolCleared", {});

    const scraped = parseExposition(await metrics.text());
    expect(scraped.get("larder_mongodb_pool_connections")).to.equal(2);
    expect(scraped.get("larder_mongodb_pool_connections_in_use")).to.equal(1);
    expect(scraped.get("larder_mongodb_pool_wait_queue")).to.equal(1);
    expect(scraped.get("larder_mongodb_pool_checkout_duration_seconds_count")).to.equal(3);
    expect(scraped.get("larder_mongodb_pool_checkout_duration_seconds_sum")).to.be.closeTo(10.032, 1e-9);
    expect(scraped.get('larder_mongodb_pool_checkout_failures_total{reason="timeout"}')).to.equal(1);
    expect(scraped.get("larder_mongodb_pool_cleared_total")).to.equal(1);
  });

  it("a failure reason the driver adds later is counted as `other`, keeping the label bounded", async () => {
    const metrics = new LarderMetrics({ engine: "mongodb", environments: ["default"], changeRetentionMs: 60_000 });
    const client = new EventEmitter();
    observeConnectionPool(client, metrics.engineObserver.connectionPool);
    client.emit("connectionCheckOutStarted", {});
    client.emit("connectionCheckOutFailed", { reason: "somethingNew" });
    const scraped = parseExposition(await metrics.text());
    expect(scraped.get('larder_mongodb_pool_checkout_failures_total{reason="other"}')).to.equal(1);
    expect(scraped.get("larder_mongodb_pool_wait_queue")).to.equal(0);
  });

  it("the change stream's lag is a histogram by configured environment; the embedded engine exports none of these", async () => {
    const mongo = new LarderMetrics({ engine: "mongodb", environments: ["prod"], changeRetentionMs: 60_000 });
    mongo.engineObserver.changeStreamLag("prod", 0.02);
    mongo.engineObserver.changeStreamLag("made-later", 0.5);
    const scraped = parseExposition(await mongo.text());
    expect(scraped.get('larder_mongodb_change_stream_lag_seconds_count{environment="prod"}')).to.equal(1);
    expect(scraped.get('larder_mongodb_change_stream_lag_seconds_count{environment="_other"}')).to.equal(1);
    const embedded = await new LarderMetrics({ engine: "embedded", environments: ["prod"], changeRetentionMs: 60_000 }).text();
    expect(embedded).to.not.include("larder_mongodb_");
  });
});
