import http from "node:http";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type Metric } from "prom-client";
import { DomainError } from "../core/errors.js";
import type { WatchObserver } from "./feed/watch.js";
import type { Logger } from "./log.js";
import type { ConnectionPoolObserver, EngineFigures, EngineObserver, EnvironmentFigures } from "./stores/engine-observer.js";

/**
 * Every Prometheus metric Larder exports (docs/operations.md lists them).
 * Each server has its own registry, never prom-client's global one: tests
 * run several servers in one process. Label values are bounded by the code
 * (services, methods, protocols, codes, operations, reasons) or by the
 * configured environments; keys, namespaces and anything else a request
 * chooses never become a label value.
 */

export type Protocol = "grpc" | "grpc-web" | "connect";
/** Why admission control refused a call (services/overload.ts). */
export type RefusalReason = "in_flight" | "connection_in_flight" | "streams";

/** The label value of every environment outside the configured set (not a valid environment name, so never a real one). */
export const OTHER_ENVIRONMENT = "_other";

export interface MetricsOptions {
  readonly engine: "embedded" | "mongodb";
  /** The environments the keys name (or `default`): the only environment label values besides OTHER_ENVIRONMENT. */
  readonly environments: readonly string[];
  /** LARDER_CHANGE_RETENTION_MS, exported so alerts can compare ages with it. */
  readonly changeRetentionMs: number;
}

/** What the server samples at scrape time instead of counting on every call. */
export interface MetricsSources {
  /** Unary requests being served (admission control's count, from headers to the end of the response). */
  readonly callsInFlight: () => number;
  /** The engine's figures, and those of the environments open now. */
  readonly figures?: () => Promise<EngineFigures>;
}

const CALL_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const STORE_SECONDS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5];
const LAG_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const CHECKOUT_SECONDS = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10];

interface CallSeries {
  readonly service: string;
  readonly method: string;
  readonly protocol: Protocol;
  readonly unary: boolean;
  readonly duration: ReturnType<Histogram<string>["labels"]>;
  readonly byCode: Map<Code | "OK", ReturnType<Counter<string>["labels"]>>;
}

export class LarderMetrics {
  readonly registry = new Registry();
  private readonly environments: ReadonlySet<string>;
  private readonly engine: string;
  private sources?: MetricsSources;
  private figuresRead?: Promise<EngineFigures>;
  /** Per method and protocol, the labelled children: looking labels up by object costs a hash per call. */
  private readonly series = new WeakMap<DescMethod, Map<Protocol, CallSeries>>();
  private readonly storeTimers = new Map<string, ReturnType<Histogram<string>["labels"]>>();

  private readonly calls = new Counter({
    name: "larder_calls_total",
    help: "Calls finished, by service, method, protocol and status code (streams count when they end; refusals by admission control count too).",
    labelNames: ["service", "method", "protocol", "code"],
    registers: [this.registry],
  });
  private readonly callSeconds = new Histogram({
    name: "larder_call_duration_seconds",
    help: "Time from a unary call reaching the handlers to its answer, by service, method and protocol.",
    labelNames: ["service", "method", "protocol"],
    buckets: CALL_SECONDS,
    registers: [this.registry],
  });
  private readonly streamsOpen = new Gauge({
    name: "larder_streams_open",
    help: "Server-streaming calls open now (Watch, health Watch, reflection), by service and method.",
    labelNames: ["service", "method"],
    registers: [this.registry],
  });
  private readonly refused = new Counter({
    name: "larder_admission_refused_total",
    help: "Calls refused with RESOURCE_EXHAUSTED by admission control, by reason (in_flight, connection_in_flight, streams).",
    labelNames: ["reason"],
    registers: [this.registry],
  });
  private readonly watchesOpen = new Gauge({
    name: "larder_watch_streams_open",
    help: "Watch streams open now, by environment.",
    labelNames: ["environment"],
    registers: [this.registry],
  });
  private readonly eventsDelivered = new Counter({
    name: "larder_watch_events_delivered_total",
    help: "Change events written on Watch streams, by environment.",
    labelNames: ["environment"],
    registers: [this.registry],
  });
  private readonly eventLag = new Histogram({
    name: "larder_watch_event_lag_seconds",
    help: "Time from a change's commit to its event being written on a Watch stream, by environment.",
    labelNames: ["environment"],
    buckets: LAG_SECONDS,
    registers: [this.registry],
  });
  private readonly tooSlow = new Counter({
    name: "larder_watch_subscribers_too_slow_total",
    help: "Watch streams ended with RESOURCE_EXHAUSTED (SUBSCRIBER_TOO_SLOW) for falling too far behind, by environment.",
    labelNames: ["environment"],
    registers: [this.registry],
  });
  private readonly swept = new Counter({
    name: "larder_expired_items_swept_total",
    help: "Expired items deleted by the background sweep (each with its deleted event), by environment.",
    labelNames: ["environment"],
    registers: [this.registry],
  });
  private readonly storeSeconds = new Histogram({
    name: "larder_store_operation_duration_seconds",
    help: "Time of an operation at the store port, by operation and engine.",
    labelNames: ["operation", "engine"],
    buckets: STORE_SECONDS,
    registers: [this.registry],
  });
  private readonly changeStreamLag = new Histogram({
    name: "larder_mongodb_change_stream_lag_seconds",
    help: "MongoDB: time from a change's commit to its arrival at Larder's change stream consumer, by environment.",
    labelNames: ["environment"],
    buckets: LAG_SECONDS,
    registers: [],
  });
  private readonly pool = {
    connections: new Gauge({
      name: "larder_mongodb_pool_connections",
      help: "MongoDB: connections the driver's pools hold open, over all servers.",
      registers: [],
    }),
    inUse: new Gauge({
      name: "larder_mongodb_pool_connections_in_use",
      help: "MongoDB: connections checked out of the pools by operations now.",
      registers: [],
    }),
    waiting: new Gauge({
      name: "larder_mongodb_pool_wait_queue",
      help: "MongoDB: operations waiting for a pooled connection now.",
      registers: [],
    }),
    checkOutSeconds: new Histogram({
      name: "larder_mongodb_pool_checkout_duration_seconds",
      help: "MongoDB: time an operation waited for a pooled connection.",
      buckets: CHECKOUT_SECONDS,
      registers: [],
    }),
    failures: new Counter({
      name: "larder_mongodb_pool_checkout_failures_total",
      help: "MongoDB: operations that got no pooled connection, by the driver's reason (timeout, poolClosed, connectionError).",
      labelNames: ["reason"],
      registers: [],
    }),
    cleared: new Counter({
      name: "larder_mongodb_pool_cleared_total",
      help: "MongoDB: times a pool was cleared because its server became unusable.",
      registers: [],
    }),
  };

  constructor(options: MetricsOptions) {
    this.environments = new Set(options.environments);
    this.engine = options.engine;
    // Process metrics: CPU, memory, heap, event loop lag, GC, handles, file descriptors.
    // (Each registry starts its own event loop monitor and GC observer: one per server, for the process's life.)
    collectDefaultMetrics({ register: this.registry });
    // Gauges named like counters, which promtool rejects; the per-type gauges of the same name without _total sum to them.
    for (const misnamed of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) {
      this.registry.removeSingleMetric(misnamed);
    }
    // Each engine's own metrics exist only on that engine, so no metric reads a constant 0 for nothing.
    if (options.engine === "mongodb") {
      for (const metric of [this.changeStreamLag, ...Object.values(this.pool)]) this.registry.registerMetric(metric as Metric);
    }
    new Gauge({
      name: "larder_change_log_retention_seconds",
      help: "How long changes stay resumable (LARDER_CHANGE_RETENTION_MS; on MongoDB the oplog may bound it further).",
      registers: [this.registry],
    }).set(options.changeRetentionMs / 1000);
    this.defineSampledMetrics();
  }

  /** Connects what is sampled at scrape time; until then those metrics read 0 or stay empty. */
  sample(sources: MetricsSources): void {
    this.sources = sources;
  }

  /** The environment as a label value: one of the configured ones, or OTHER_ENVIRONMENT. */
  environmentLabel(environment: string): string {
    return this.environments.has(environment) ? environment : OTHER_ENVIRONMENT;
  }

  /** The text Prometheus scrapes. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * Counts every call that reaches the handler chain, with its final code;
   * times unary calls (a stream's duration is its subscriber's choice, not
   * a latency). Outermost, so refusals by the interceptors inside it count.
   */
  callInterceptor(): Interceptor {
    return (next) => async (request) => {
      const series = this.seriesOf(request.method, protocolOf(request.header.get("content-type")));
      const started = performance.now();
      if (series.unary) {
        try {
          const response = await next(request);
          this.finished(series, "OK", started);
          return response;
        } catch (error) {
          this.finished(series, codeOf(error), started);
          throw error;
        }
      }
      const open = this.streamsOpen.labels(series.service, series.method);
      open.inc();
      let response;
      try {
        response = await next(request);
      } catch (error) {
        open.dec();
        this.finished(series, codeOf(error), started);
        throw error;
      }
      if (!response.stream) {
        open.dec();
        this.finished(series, "OK", started);
        return response;
      }
      return {
        ...response,
        message: countedStream(response.message, (code) => {
          open.dec();
          // A stream its caller left (cancelled, or past its deadline) ends quietly on our side; it is counted as the caller saw it.
          this.finished(series, code === "OK" && request.signal.aborted ? codeOf(request.signal.reason) : code, started);
        }),
      };
    };
  }

  /** A call refused before any handler ran (admission control at the HTTP layer). */
  refusedCall(reason: RefusalReason, method: { service: string; method: string } | undefined, protocol: Protocol): void {
    this.refused.labels(reason).inc();
    if (method) this.calls.labels(method.service, method.method, protocol, Code[Code.ResourceExhausted]).inc();
  }

  /** A call refused inside the handler chain; the call itself is counted by callInterceptor. */
  refusedStream(reason: RefusalReason): void {
    this.refused.labels(reason).inc();
  }

  /** One Watch stream's figures, by its environment. */
  watchOpened(environment: string): WatchObserver {
    const label = this.environmentLabel(environment);
    const open = this.watchesOpen.labels(label);
    const delivered = this.eventsDelivered.labels(label);
    const lag = this.eventLag.labels(label);
    open.inc();
    let ended = false;
    return {
      delivered: (commitTime) => {
        delivered.inc();
        lag.observe(Math.max(0, Date.now() - commitTime) / 1000);
      },
      ended: (error) => {
        if (ended) return;
        ended = true;
        open.dec();
        if (error instanceof DomainError && error.reason === "SUBSCRIBER_TOO_SLOW") this.tooSlow.labels(label).inc();
      },
    };
  }

  /** Records one store operation's time (stores/timed-store.ts). */
  storeOperation(operation: string, seconds: number): void {
    let timer = this.storeTimers.get(operation);
    if (!timer) {
      timer = this.storeSeconds.labels(operation, this.engine);
      this.storeTimers.set(operation, timer);
    }
    timer.observe(seconds);
  }

  /** What engines report (sweeps, MongoDB's pool and change stream). */
  readonly engineObserver: EngineObserver = {
    swept: (environment, items) => {
      if (items > 0) this.swept.labels(this.environmentLabel(environment)).inc(items);
    },
    changeStreamLag: (environment, seconds) => {
      this.changeStreamLag.labels(this.environmentLabel(environment)).observe(Math.max(0, seconds));
    },
    connectionPool: this.poolObserver(),
  };

  private poolObserver(): ConnectionPoolObserver {
    const { connections, inUse, waiting, checkOutSeconds, failures, cleared } = this.pool;
    return {
      created: () => connections.inc(),
      closed: () => connections.dec(),
      checkOutStarted: () => waiting.inc(),
      checkedOut: (seconds) => {
        waiting.dec();
        inUse.inc();
        checkOutSeconds.observe(seconds);
      },
      checkOutFailed: (reason, seconds) => {
        waiting.dec();
        failures.labels(reason).inc();
        checkOutSeconds.observe(seconds);
      },
      checkedIn: () => inUse.dec(),
      cleared: () => cleared.inc(),
    };
  }

  private finished(series: CallSeries, code: Code | "OK", started: number): void {
    let counter = series.byCode.get(code);
    if (!counter) {
      counter = this.calls.labels(series.service, series.method, series.protocol, code === "OK" ? "OK" : Code[code]);
      series.byCode.set(code, counter);
    }
    counter.inc();
    if (series.unary) series.duration.observe((performance.now() - started) / 1000);
  }

  private seriesOf(method: DescMethod, protocol: Protocol): CallSeries {
    let byProtocol = this.series.get(method);
    if (!byProtocol) {
      byProtocol = new Map();
      this.series.set(method, byProtocol);
    }
    let series = byProtocol.get(protocol);
    if (!series) {
      const service = method.parent.typeName;
      series = {
        service,
        method: method.name,
        protocol,
        unary: method.methodKind === "unary",
        duration: this.callSeconds.labels(service, method.name, protocol),
        byCode: new Map(),
      };
      byProtocol.set(protocol, series);
    }
    return series;
  }

  /** Gauges read when Prometheus scrapes: nothing on the call path keeps them. */
  private defineSampledMetrics(): void {
    // prom-client calls collect() with the metric as `this`.
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const metrics = this;
    new Gauge({
      name: "larder_calls_in_flight",
      help: "Unary calls being served now, from their request headers to the end of their answer.",
      registers: [this.registry],
      collect() {
        this.set(metrics.sources?.callsInFlight() ?? 0);
      },
    });
    const perEnvironment = (name: string, help: string, read: (figures: EnvironmentFigures) => number | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ["environment"],
        registers: [this.registry],
        async collect() {
          // Environments come and go (drops): only those open now are reported.
          this.reset();
          for (const figures of (await metrics.figures()).environments) {
            const value = read(figures);
            if (value !== undefined && metrics.environments.has(figures.environment)) this.labels(figures.environment).set(value);
          }
        },
      });
    if (this.engine === "embedded") {
      perEnvironment("larder_change_log_events", "Changes the change log retains (resumable), by environment.", (f) => f.changeLog?.events);
      perEnvironment(
        "larder_change_log_head_sequence",
        "Position of the newest change ever written, by environment (its rate is the rate of changes).",
        (f) => f.changeLog?.headSequence,
      );
      perEnvironment(
        "larder_change_log_oldest_sequence",
        "Position of the oldest change the change log retains, by environment.",
        (f) => f.changeLog?.oldest?.sequence,
      );
      perEnvironment(
        "larder_change_log_oldest_timestamp_seconds",
        "Commit time (Unix seconds) of the oldest change the change log retains, by environment.",
        (f) => (f.changeLog?.oldest ? f.changeLog.oldest.time / 1000 : undefined),
      );
      perEnvironment(
        "larder_subscription_max_lag_seconds",
        "Age of the oldest change a named subscription has not acknowledged (0: all caught up), by environment; past the retention its position is lost.",
        (f) => (f.changeLog ? Math.max(0, Date.now() - (f.changeLog.unacknowledgedSince ?? Date.now())) / 1000 : undefined),
      );
      perEnvironment("larder_embedded_database_bytes", "Size of the SQLite database file, by environment.", (f) => f.files?.databaseBytes);
      perEnvironment("larder_embedded_wal_bytes", "Size of the SQLite write-ahead log, by environment.", (f) => f.files?.walBytes);
    } else {
      // MongoDB's change log is its oplog, shared by every database: its window bounds every environment's.
      const oplog = (name: string, help: string, read: (window: { first: number; last: number }) => number) =>
        new Gauge({
          name,
          help,
          registers: [this.registry],
          async collect() {
            const window = (await metrics.figures()).oplog;
            if (window) this.set(read(window));
            else withoutValue(this);
          },
        });
      oplog(
        "larder_mongodb_oplog_window_seconds",
        "Time between the oplog's first and last entries: how far back a change stream can resume, whatever LARDER_CHANGE_RETENTION_MS says.",
        (window) => (window.last - window.first) / 1000,
      );
      oplog("larder_mongodb_oplog_oldest_timestamp_seconds", "Time (Unix seconds) of the oplog's first entry.", (window) => window.first / 1000);
      perEnvironment("larder_mongodb_feed_ring_events", "Changes held in memory for Watch subscribers, by environment.", (f) => f.feedRing?.events);
      perEnvironment(
        "larder_mongodb_feed_ring_capacity",
        "Changes the in-memory ring holds at most; a subscriber further behind is ended as too slow.",
        (f) => f.feedRing?.capacity,
      );
    }
  }

  private figures(): Promise<EngineFigures> {
    const read = this.sources?.figures;
    if (!read) return Promise.resolve({ environments: [] });
    if (!this.figuresRead) {
      // Every gauge of one scrape collects at once: they share this reading, and the next scrape reads anew.
      // A failed reading (a store closing under the scrape) leaves those gauges empty for this scrape only.
      const reading = read().catch((): EngineFigures => ({ environments: [] }));
      this.figuresRead = reading;
      void reading.then(() => setImmediate(() => (this.figuresRead = undefined)));
    }
    return this.figuresRead;
  }
}

/**
 * An unlabelled gauge with no sample at all: a figure that cannot be read
 * must not read as 0 (a window of 0 s would page). prom-client's reset()
 * puts a 0 back for unlabelled metrics, so its value table is emptied
 * instead (test/unit/mongo-oplog.spec.ts pins this).
 */
function withoutValue(gauge: Gauge): void {
  (gauge as unknown as { hashMap: Record<string, unknown> }).hashMap = {};
}

/** The protocol of a call, by its content type (the same test Connect's router makes). */
export function protocolOf(contentType: string | null | undefined): Protocol {
  if (contentType?.startsWith("application/grpc-web")) return "grpc-web";
  if (contentType?.startsWith("application/grpc")) return "grpc";
  return "connect";
}

function codeOf(error: unknown): Code {
  return ConnectError.from(error).code;
}

async function* countedStream<T>(messages: AsyncIterable<T>, ended: (code: Code | "OK") => void): AsyncIterable<T> {
  let code: Code | "OK" = Code.Canceled;
  try {
    yield* messages;
    code = "OK";
  } catch (error) {
    code = codeOf(error);
    throw error;
  } finally {
    // Neither ended nor failed: the caller went away mid-stream.
    ended(code);
  }
}

/**
 * The metrics port: `GET /metrics` in Prometheus's text format, nothing
 * else. A server of its own, so the API's limits, keys and protocols never
 * apply to scrapes, and metrics are never reachable on the API's port.
 */
export function serveMetrics(metrics: LarderMetrics, log: Logger): http.Server {
  const server = http.createServer({ requestTimeout: 30_000, headersTimeout: 10_000 }, (request, response) => {
    const path = (request.url ?? "").split("?")[0];
    if (path !== "/metrics") {
      response.writeHead(404, { "content-type": "text/plain" }).end("Not found: metrics are at /metrics\n");
      return;
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      response.writeHead(405, { "content-type": "text/plain", allow: "GET, HEAD" }).end("Use GET\n");
      return;
    }
    metrics.text().then(
      (text) => {
        response.writeHead(200, { "content-type": metrics.contentType, "content-length": Buffer.byteLength(text) });
        response.end(request.method === "HEAD" ? undefined : text);
      },
      (error: unknown) => {
        log.error({ err: error }, "metrics could not be collected");
        response.writeHead(500, { "content-type": "text/plain" }).end("Metrics could not be collected; see the server's log\n");
      },
    );
  });
  server.on("clientError", (_error, socket) => socket.destroy());
  return server;
}
