import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { DataService } from "../../gen/larder/data/v1/data_pb.js";
import { loadConfig } from "../../services/config.js";
import { LarderMetrics, OTHER_ENVIRONMENT } from "../../services/metrics.js";
import { holdCall, series, startInProcess, type InProcessServer } from "../support/in-process.js";
import { eventually, sleep } from "../support/async.js";
import { failureOf } from "../support/errors.js";

const DATA = "larder.data.v1.DataService";

describe("metrics: /metrics on its own port counts what an operator pages on", function () {
  this.timeout(60_000);
  let server: InProcessServer;
  before(async () => {
    server = await startInProcess({ LARDER_SWEEP_INTERVAL_MS: "50" });
  });
  after(async () => {
    await server?.close();
  });

  const protocols: [string, () => Transport][] = [
    ["grpc", () => createGrpcTransport({ baseUrl: server.url })],
    ["grpc-web", () => createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" })],
    ["connect", () => createConnectTransport({ baseUrl: server.url, httpVersion: "2" })],
  ];

  it("counts calls by service, method, protocol and code, and times them", async () => {
    for (const [protocol, transport] of protocols) {
      const data = createClient(DataService, transport());
      await data.set({ key: `m:${protocol}`, value: { kind: { case: "numberValue", value: 1 } } });
      await data.get({ key: `m:${protocol}` });
      await data.get({ key: `m:${protocol}` });
      const refused = await failureOf(data.get({ key: "" }));
      expect(refused.code).to.equal(Code.InvalidArgument);
    }
    const scraped = await server.scrape();
    for (const [protocol] of protocols) {
      const labels = (method: string, code: string) => ({ service: DATA, method, protocol, code });
      expect(scraped.get(series("larder_calls_total", labels("Set", "OK"))), protocol).to.equal(1);
      expect(scraped.get(series("larder_calls_total", labels("Get", "OK"))), protocol).to.equal(2);
      expect(scraped.get(series("larder_calls_total", labels("Get", "InvalidArgument"))), protocol).to.equal(1);
      expect(scraped.get(series("larder_call_duration_seconds_count", { service: DATA, method: "Get", protocol })), protocol).to.equal(3);
      expect(scraped.get(series("larder_call_duration_seconds_sum", { service: DATA, method: "Get", protocol }))).to.be.greaterThan(0);
    }
    // The store port is timed once per operation, whatever the protocol; the refused Get never reached it.
    expect(scraped.get(series("larder_store_operation_duration_seconds_count", { operation: "get", engine: "embedded" }))).to.equal(6);
    expect(scraped.get(series("larder_store_operation_duration_seconds_count", { operation: "set", engine: "embedded" }))).to.equal(3);
    expect(scraped.get("larder_calls_in_flight")).to.equal(0);
    // Node's own: event loop lag, GC, memory.
    for (const name of ["nodejs_eventloop_lag_p99_seconds", "process_resident_memory_bytes", "nodejs_heap_size_used_bytes"]) {
      expect(scraped.has(name), name).to.equal(true);
    }
  });

  it("keeps keys, namespaces and values out of the labels", async () => {
    const text = await (await fetch(server.metricsUrl)).text();
    expect(text).to.not.include("m:grpc");
    expect(text).to.not.match(/\bkey="/);
  });

  it("follows a Watch: open streams, events delivered, their lag, and the stream's end", async () => {
    const data = createClient(DataService, createGrpcTransport({ baseUrl: server.url }));
    const stop = new AbortController();
    const received: string[] = [];
    const watching = (async () => {
      try {
        for await (const message of data.watch({ filters: ["*"] }, { signal: stop.signal })) {
          received.push(message.kind.case!);
          if (message.kind.case === "started") await data.set({ key: "w:1", value: { kind: { case: "boolValue", value: true } } });
        }
      } catch (error) {
        if (ConnectError.from(error).code !== Code.Canceled) throw error;
      }
    })();
    await eventually(async () => received.includes("event"), "the event");
    let scraped = await server.scrape();
    expect(scraped.get(series("larder_watch_streams_open", { environment: "default" }))).to.equal(1);
    expect(scraped.get(series("larder_streams_open", { service: DATA, method: "Watch" }))).to.equal(1);
    expect(scraped.get(series("larder_watch_events_delivered_total", { environment: "default" }))).to.equal(1);
    expect(scraped.get(series("larder_watch_event_lag_seconds_count", { environment: "default" }))).to.equal(1);
    expect(scraped.get(series("larder_watch_event_lag_seconds_bucket", { le: "+Inf", environment: "default" }))).to.equal(1);
    expect(scraped.get(series("larder_change_log_events", { environment: "default" }))).to.be.greaterThan(0);
    expect(scraped.get(series("larder_change_log_head_sequence", { environment: "default" }))).to.be.greaterThan(0);
    const oldest = scraped.get(series("larder_change_log_oldest_timestamp_seconds", { environment: "default" }))!;
    expect(Math.abs(oldest - Date.now() / 1000)).to.be.lessThan(600);
    expect(scraped.get(series("larder_embedded_database_bytes", { environment: "default" }))).to.be.greaterThan(0);
    expect(scraped.has(series("larder_embedded_wal_bytes", { environment: "default" }))).to.equal(true);
    stop.abort();
    await watching;
    await eventually(async () => {
      scraped = await server.scrape();
      return scraped.get(series("larder_watch_streams_open", { environment: "default" })) === 0;
    }, "the Watch to be counted closed");
    expect(scraped.get(series("larder_streams_open", { service: DATA, method: "Watch" }))).to.equal(0);
    expect(scraped.get(series("larder_calls_total", { service: DATA, method: "Watch", protocol: "grpc", code: "Canceled" }))).to.equal(1);
  });

  it("shows how far the slowest named subscription is behind, and the retention to compare it with", async () => {
    const data = createClient(DataService, createGrpcTransport({ baseUrl: server.url }));
    const lag = series("larder_subscription_max_lag_seconds", { environment: "default" });
    const stop = new AbortController();
    const stream = data.watch({ subscription: "metrics-sub", filters: ["*:sub:*"] }, { signal: stop.signal })[Symbol.asyncIterator]();
    expect((await stream.next()).value?.kind.case).to.equal("started");
    expect((await server.scrape()).get(lag)).to.equal(0);
    await data.set({ key: "sub:1", value: { kind: { case: "numberValue", value: 1 } } });
    const event = (await stream.next()).value!;
    expect(event.kind.case).to.equal("event");
    await sleep(50);
    expect((await server.scrape()).get(lag))
      .to.be.greaterThan(0)
      .and.lessThan(600);
    await data.ack({ subscription: "metrics-sub", resumeToken: event.kind.case === "event" ? event.kind.value.resumeToken : "" });
    expect((await server.scrape()).get(lag)).to.equal(0);
    expect((await server.scrape()).get("larder_change_log_retention_seconds")).to.equal(24 * 60 * 60);
    stop.abort();
    await stream.return?.();
  });

  it("counts expired items the sweep deletes", async () => {
    const data = createClient(DataService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    const soon = timestampFromMs(Date.now() + 200);
    for (const key of ["ttl:1", "ttl:2"]) {
      await data.set({ key, value: { kind: { case: "numberValue", value: 1 } }, ttl: { kind: { case: "at", value: soon } } });
    }
    await eventually(
      async () => (await server.scrape()).get(series("larder_expired_items_swept_total", { environment: "default" })) === 2,
      "the sweep to be counted",
    );
  });

  it("answers 404 off /metrics, and promises only GET", async () => {
    const root = new URL("/", server.metricsUrl);
    expect((await fetch(root)).status).to.equal(404);
    expect((await fetch(server.metricsUrl, { method: "POST" })).status).to.equal(405);
  });
});

describe("metrics: admission refusals, by reason", function () {
  this.timeout(60_000);

  it("a Watch past LARDER_MAX_STREAMS counts as a `streams` refusal and a ResourceExhausted call", async () => {
    const server = await startInProcess({ LARDER_MAX_STREAMS: "1" });
    try {
      const data = createClient(DataService, createGrpcTransport({ baseUrl: server.url }));
      const stop = new AbortController();
      const first = data.watch({}, { signal: stop.signal })[Symbol.asyncIterator]();
      await first.next();
      const second = await failureOf(
        (async () => {
          for await (const message of data.watch({})) return message;
        })(),
      );
      expect(second.code).to.equal(Code.ResourceExhausted);
      const scraped = await server.scrape();
      expect(scraped.get(series("larder_admission_refused_total", { reason: "streams" }))).to.equal(1);
      expect(scraped.get(series("larder_calls_total", { service: DATA, method: "Watch", protocol: "grpc", code: "ResourceExhausted" }))).to.equal(1);
      stop.abort();
      await first.return?.().catch(() => undefined);
    } finally {
      await server.close();
    }
  });

  it("a unary call past LARDER_MAX_IN_FLIGHT counts as an `in_flight` refusal, in every protocol", async () => {
    const server = await startInProcess({ LARDER_MAX_IN_FLIGHT: "1" });
    const held = await holdCall(server);
    try {
      for (const transport of [
        createGrpcTransport({ baseUrl: server.url }),
        createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" }),
        createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
      ]) {
        const refused = await failureOf(createClient(DataService, transport).get({ key: "a:1" }));
        expect(refused.code).to.equal(Code.ResourceExhausted);
      }
      const scraped = await server.scrape();
      expect(scraped.get(series("larder_admission_refused_total", { reason: "in_flight" }))).to.equal(3);
      for (const protocol of ["grpc", "grpc-web", "connect"]) {
        expect(scraped.get(series("larder_calls_total", { service: DATA, method: "Get", protocol, code: "ResourceExhausted" })), protocol).to.equal(
          1,
        );
      }
    } finally {
      held.destroy();
      await server.close();
    }
  });
});

describe("metrics: one registry per server", function () {
  this.timeout(60_000);

  it("two servers in one process count apart", async () => {
    const [one, two] = [await startInProcess(), await startInProcess()];
    try {
      const data = createClient(DataService, createConnectTransport({ baseUrl: one.url, httpVersion: "1.1" }));
      await data.ping({});
      await data.ping({});
      const calls = series("larder_calls_total", { service: DATA, method: "Ping", protocol: "connect", code: "OK" });
      expect((await one.scrape()).get(calls)).to.equal(2);
      expect((await two.scrape()).get(calls)).to.equal(undefined);
    } finally {
      await Promise.all([one.close(), two.close()]);
    }
  });

  it("environments outside the configured set share one label value", () => {
    const metrics = new LarderMetrics({ engine: "embedded", environments: ["prod", "staging"], changeRetentionMs: 60_000 });
    expect(metrics.environmentLabel("prod")).to.equal("prod");
    expect(metrics.environmentLabel("a-clone-made-by-admin")).to.equal(OTHER_ENVIRONMENT);
  });

  it("LARDER_METRICS_PORT: unset means no metrics; a bad value stops the start", () => {
    expect(loadConfig({}).metricsPort).to.equal(undefined);
    expect(loadConfig({ LARDER_METRICS_PORT: "9464" })).to.include({ metricsPort: 9464, metricsHost: "127.0.0.1" });
    expect(() => loadConfig({ LARDER_METRICS_PORT: "http" })).to.throw(/LARDER_METRICS_PORT must be a whole number/);
    expect(() => loadConfig({ LARDER_METRICS_HOST: "example.com" })).to.throw(/LARDER_METRICS_HOST must be an IP address/);
  });
});
