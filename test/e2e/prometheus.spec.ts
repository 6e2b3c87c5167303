import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { DataService } from "../../gen/larder/data/v1/data_pb.js";
import { LarderMetrics } from "../../services/metrics.js";
import { startServer, type RunningServer } from "../support/server.js";
import { sleep } from "../support/async.js";

/** An executable on PATH (Debian's `prometheus` package puts both in /usr/bin), or undefined. */
function onPath(name: string): string | undefined {
  for (const directory of (process.env.PATH ?? "").split(delimiter).concat("/usr/bin")) {
    const candidate = join(directory, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

async function freeLoopbackPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface Sample {
  readonly metric: Record<string, string>;
  readonly value: [number, string];
}

/**
 * The real thing: Debian's Prometheus scrapes a running Larder (its own
 * process, metrics on an OS-chosen port) every second under a small, bounded
 * load with a Watch open, and PromQL gives the answers an operator's
 * dashboards and alerts would ask for. promtool lints the exposition.
 */
const prometheusPath = onPath("prometheus");
const promtoolPath = onPath("promtool");
const missing = [prometheusPath ? undefined : "prometheus", promtoolPath ? undefined : "promtool"].filter(Boolean);
const unavailable = missing.length === 0 ? "" : ` (skipped: ${missing.join(" and ")} not installed; Debian: apt-get install prometheus)`;

describe(`e2e: a real Prometheus scrapes Larder${unavailable}`, function () {
  this.timeout(90_000);
  let larder: RunningServer | undefined;
  let prometheus: ChildProcess | undefined;
  let prometheusLog = "";
  let workDir: string | undefined;
  let metricsUrl = "";
  let prometheusUrl = "";

  before(async function () {
    if (missing.length > 0) {
      console.log(`    ${unavailable.trim()}`);
      this.skip(); // .ci/run installs prometheus (with promtool), so CI never skips this
    }
    larder = await startServer({ env: { LARDER_METRICS_PORT: "0", LARDER_LOG_LEVEL: "warn" } });
    const printed = /larder metrics on (http:\/\/127\.0\.0\.1:(\d+)\/metrics)/.exec(larder.output());
    if (!printed) throw new Error(`the server did not print its metrics port:\n${larder.output()}`);
    metricsUrl = printed[1];
    workDir = mkdtempSync(join(tmpdir(), "larder-prometheus-"));
    writeFileSync(
      join(workDir, "prometheus.yml"),
      [
        "global:",
        "  scrape_interval: 1s",
        "  scrape_timeout: 1s",
        "  evaluation_interval: 1s",
        "scrape_configs:",
        "  - job_name: larder",
        "    static_configs:",
        `      - targets: ["127.0.0.1:${printed[2]}"]`,
        "",
      ].join("\n"),
    );
    const port = await freeLoopbackPort();
    prometheusUrl = `http://127.0.0.1:${port}`;
    prometheus = spawn(
      prometheusPath!,
      [
        `--config.file=${join(workDir, "prometheus.yml")}`,
        `--storage.tsdb.path=${join(workDir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
        "--log.level=warn",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    prometheus.stdout!.setEncoding("utf8").on("data", (chunk: string) => (prometheusLog += chunk));
    prometheus.stderr!.setEncoding("utf8").on("data", (chunk: string) => (prometheusLog += chunk));
    const deadline = Date.now() + 30_000;
    for (;;) {
      const ready = await fetch(`${prometheusUrl}/-/ready`).then(
        (response) => response.status === 200,
        () => false,
      );
      if (ready) break;
      if (prometheus.exitCode !== null || Date.now() > deadline) throw new Error(`Prometheus did not become ready:\n${prometheusLog}`);
      await sleep(200);
    }
  });

  after(async function () {
    this.timeout(30_000);
    if (prometheus && prometheus.exitCode === null) {
      const exited = new Promise((resolve) => prometheus!.once("exit", resolve));
      prometheus.kill("SIGTERM");
      await exited;
    }
    await larder?.stop();
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  async function query(promql: string): Promise<Sample[]> {
    const response = await fetch(`${prometheusUrl}/api/v1/query?${new URLSearchParams({ query: promql })}`);
    const body = (await response.json()) as { status: string; error?: string; data?: { resultType: string; result: Sample[] } };
    if (body.status !== "success") throw new Error(`PromQL ${promql} failed: ${body.error}`);
    expect(body.data!.resultType).to.equal("vector");
    return body.data!.result;
  }

  it("answers PromQL for request rate by method, p99 latency and Watch event lag", async () => {
    const grpc = createClient(DataService, createGrpcTransport({ baseUrl: larder!.url }));
    const connect = createClient(DataService, createConnectTransport({ baseUrl: larder!.url, httpVersion: "1.1" }));
    const watching = new AbortController();
    let events = 0;
    let watchFailure: unknown;
    const watch = (async () => {
      try {
        for await (const message of grpc.watch({ filters: ["*"] }, { signal: watching.signal })) if (message.kind.case === "event") events++;
      } catch (error) {
        if (ConnectError.from(error).code !== Code.Canceled) watchFailure = error;
      }
    })();
    // A small load, bounded in time and calls: a few dozen calls a second until the answers are in (at most 45 s).
    let loading = true;
    let calls = 0;
    let loadFailure: unknown;
    const load = (async () => {
      for (let round = 0; loading && round < 450; round++) {
        await grpc.set({ key: `load:${round % 10}`, value: { kind: { case: "numberValue", value: round } } });
        await Promise.all([grpc.get({ key: `load:${round % 10}` }), connect.get({ key: `load:${round % 10}` }), connect.ping({})]);
        calls += 4;
        await sleep(100);
      }
    })().catch((error: unknown) => (loadFailure = error));

    const rateByMethod = 'sum by (method) (rate(larder_calls_total{service="larder.data.v1.DataService",code="OK"}[10s]))';
    const p99 = 'histogram_quantile(0.99, sum by (le) (rate(larder_call_duration_seconds_bucket{method="Get"}[10s])))';
    const eventLag = "histogram_quantile(0.99, sum by (le) (rate(larder_watch_event_lag_seconds_bucket[10s])))";
    let answers: { rates: Sample[]; latency: Sample[]; lag: Sample[]; watches: Sample[] } | undefined;
    const deadline = Date.now() + 45_000;
    try {
      for (;;) {
        const [rates, latency, lag, watches] = await Promise.all([
          query(rateByMethod),
          query(p99),
          query(eventLag),
          query("larder_watch_streams_open"),
        ]);
        const methods = new Set(rates.map((sample) => sample.metric.method));
        const finite = (samples: Sample[]) => samples.length === 1 && Number.isFinite(Number(samples[0].value[1]));
        // Rates need two scrapes inside the window; quantiles need the buckets to have grown between them.
        if (["Get", "Set", "Ping"].every((method) => methods.has(method)) && finite(latency) && finite(lag)) {
          answers = { rates, latency, lag, watches };
          break;
        }
        if (loadFailure || watchFailure) break;
        if (Date.now() > deadline) {
          throw new Error(
            `Prometheus gave no full answers in time (${calls} calls, ${events} events): ${JSON.stringify({ rates, latency, lag })}\n${prometheusLog}`,
          );
        }
        await sleep(1_000);
      }
    } finally {
      loading = false;
      await load;
      watching.abort();
      await watch;
    }
    if (loadFailure || watchFailure) throw loadFailure ?? watchFailure;
    if (!answers) throw new Error("no answers");

    if (process.env.LARDER_TEST_VERBOSE) console.log(JSON.stringify(answers));
    const rate = (method: string) => Number(answers.rates.find((sample) => sample.metric.method === method)!.value[1]);
    // About 10 rounds a second at most (each waits 100 ms), Get twice per round.
    expect(rate("Get")).to.be.greaterThan(0).and.lessThan(100);
    expect(rate("Get")).to.be.greaterThan(rate("Set"));
    const latency = Number(answers.latency[0].value[1]);
    expect(latency, "p99 of Get, seconds").to.be.greaterThan(0).and.at.most(10);
    const lag = Number(answers.lag[0].value[1]);
    expect(lag, "p99 of event lag, seconds").to.be.at.least(0).and.at.most(300);
    expect(events).to.be.greaterThan(0);
    expect(answers.watches.map((sample) => [sample.metric.environment, sample.value[1]])).to.deep.equal([["default", "1"]]);
    const up = await query('up{job="larder"}');
    expect(up.map((sample) => sample.value[1])).to.deep.equal(["1"]);
  });

  it("`promtool check metrics` passes on the MongoDB engine's exposition too (made from driver events here; no MongoDB)", async () => {
    const metrics = new LarderMetrics({ engine: "mongodb", environments: ["prod"], changeRetentionMs: 86_400_000 });
    metrics.sample({
      callsInFlight: () => 0,
      figures: async () => ({
        environments: [{ environment: "prod", feedRing: { events: 5, capacity: 10_000 } }],
        oplog: { first: 1_700_000_000_000, last: 1_700_003_600_000 },
      }),
    });
    metrics.engineObserver.changeStreamLag("prod", 0.012);
    metrics.engineObserver.connectionPool.created();
    metrics.engineObserver.connectionPool.checkOutStarted();
    metrics.engineObserver.connectionPool.checkedOut(0.001);
    const text = await metrics.text();
    expect(text).to.include("larder_mongodb_oplog_window_seconds 3600");
    const checked = spawnSync(promtoolPath!, ["check", "metrics"], { input: text, encoding: "utf8", timeout: 30_000 });
    expect(checked.stdout + checked.stderr, "promtool's findings").to.equal("");
    expect(checked.status).to.equal(0);
  });

  it("`promtool check metrics` passes on the exposition", async () => {
    const text = await (await fetch(metricsUrl)).text();
    expect(text).to.include("larder_calls_total");
    const checked = spawnSync(promtoolPath!, ["check", "metrics"], { input: text, encoding: "utf8", timeout: 30_000 });
    expect(checked.stdout + checked.stderr, "promtool's findings").to.equal("");
    expect(checked.status).to.equal(0);
  });
});
