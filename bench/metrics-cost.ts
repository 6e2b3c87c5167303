import { fork, type ChildProcess } from "node:child_process";
import net from "node:net";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ITEMS, type Protocol, type Reply, type Task } from "./messages.js";
import { CpuMeter } from "./proc.js";
import { ROOT, startBenchServer, type BenchServer, type ServerBuild } from "./server-process.js";

/**
 * What metrics cost: `npx tsx bench/metrics-cost.ts`. Two servers of the same
 * build run side by side, one without metrics and one with
 * LARDER_METRICS_PORT (scraped every second, far more often than a usual
 * 15 s, so the scrape's own cost is in the figures). Each takes the same
 * calls from a load worker of its own, in short slices that alternate
 * (A B, B A, A B, ...) so both see the same moments of a shared, busy
 * machine. Reports throughput and server CPU per call, each the median of
 * its slices, and their ratio.
 */

const { values: args } = parseArgs({
  options: {
    ops: { type: "string", default: "get,set" },
    protocol: { type: "string", default: "grpc" },
    "in-flight": { type: "string", default: "16" },
    rounds: { type: "string", default: "8" },
    "slice-ms": { type: "string", default: "1500" },
    "scrape-ms": { type: "string", default: "1000" },
    server: { type: "string", default: "auto" },
    help: { type: "boolean", default: false },
  },
});
if (args.help) {
  console.log(`npx tsx bench/metrics-cost.ts [--ops get,set] [--protocol grpc|connect-h1|connect-h2] [--in-flight 16]
  [--rounds 8] [--slice-ms 1500] [--scrape-ms 1000] [--server auto|dist|esbuild|tsx]`);
  process.exit(0);
}

interface Side {
  readonly name: "metrics off" | "metrics on";
  readonly server: BenchServer;
  readonly worker: ChildProcess;
  readonly metricsUrl?: string;
}

interface Measured {
  readonly callsPerSecond: number;
  readonly serverUsPerCall: number;
  readonly errors: number;
}

function ask<K extends Reply["kind"]>(worker: ChildProcess, task: Task): Promise<Extract<Reply, { kind: K }>> {
  return new Promise((resolve, reject) => {
    worker.once("message", (reply: Reply) =>
      reply.kind === "error" ? reject(new Error(reply.message)) : resolve(reply as Extract<Reply, { kind: K }>),
    );
    worker.send(task);
  });
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function startSide(name: Side["name"], build: ServerBuild): Promise<Side> {
  const port = name === "metrics on" ? await freePort() : undefined;
  const server = await startBenchServer({ build, env: port ? { LARDER_METRICS_PORT: String(port) } : {} });
  const worker = fork(join(ROOT, "bench/load.ts"), [], {
    cwd: ROOT,
    execArgv: ["--import", "tsx"],
    serialization: "advanced",
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  await ask(worker, { kind: "init", url: server.url, worker: 0, workers: 1 });
  await ask(worker, { kind: "fill", prefix: ITEMS, from: 0, to: 10_000 });
  return { name, server, worker, metricsUrl: port ? `http://127.0.0.1:${port}/metrics` : undefined };
}

async function measure(side: Side, operation: string, protocol: Protocol, inFlight: number, ms: number): Promise<Measured> {
  let scraping: NodeJS.Timeout | undefined;
  if (side.metricsUrl) {
    const url = side.metricsUrl;
    scraping = setInterval(() => void fetch(url).then((response) => response.text()), Number(args["scrape-ms"]));
  }
  const meter = new CpuMeter([side.server.pid]);
  const reply = await ask<"cell">(side.worker, { kind: "cell", protocol, operation, inFlight, ms, record: true, stored: 10_000 });
  const cpu = meter.read();
  clearInterval(scraping);
  const calls = reply.samples.length;
  return {
    callsPerSecond: calls / (reply.elapsedMs / 1000),
    serverUsPerCall: (cpu.byPid.get(side.server.pid)! * 1000) / Math.max(1, calls),
    errors: reply.errors,
  };
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

async function main(): Promise<void> {
  const build = args.server as ServerBuild;
  // Started one after the other: a build transpiled for one run is not shared while the other starts.
  const off = await startSide("metrics off", build);
  const on = await startSide("metrics on", build);
  const protocol = args.protocol as Protocol;
  const inFlight = Number(args["in-flight"]);
  const sliceMs = Number(args["slice-ms"]);
  const rounds = Number(args.rounds);
  const lines = [
    `Metrics cost: ${protocol}, ${inFlight} calls in flight, ${rounds} alternating slices of ${sliceMs} ms per side, metrics scraped every ${args["scrape-ms"]} ms (server: ${off.server.runs})`,
    "",
    "| operation | calls/s off | calls/s on | on/off | server µs/call off | on | on/off | rounds where on was faster |",
    "|---|---|---|---|---|---|---|---|",
  ];
  try {
    for (const operation of args.ops!.split(",")) {
      for (const side of [off, on]) await measure(side, operation, protocol, inFlight, 500);
      const results = new Map<Side, Measured[]>([
        [off, []],
        [on, []],
      ]);
      for (let round = 0; round < rounds; round++) {
        for (const side of round % 2 === 0 ? [off, on] : [on, off]) {
          results.get(side)!.push(await measure(side, operation, protocol, inFlight, sliceMs));
        }
      }
      const [a, b] = [results.get(off)!, results.get(on)!];
      const errors = [...a, ...b].reduce((sum, each) => sum + each.errors, 0);
      if (errors > 0) throw new Error(`${errors} calls failed during ${operation}`);
      const throughput = [median(a.map((m) => m.callsPerSecond)), median(b.map((m) => m.callsPerSecond))];
      const cpu = [median(a.map((m) => m.serverUsPerCall)), median(b.map((m) => m.serverUsPerCall))];
      // Paired by round: how often the metrics side was faster in the same moment.
      const wins = a.filter((m, index) => b[index].callsPerSecond > m.callsPerSecond).length;
      lines.push(
        `| ${operation} | ${throughput[0].toFixed(0)} | ${throughput[1].toFixed(0)} | ${(throughput[1] / throughput[0]).toFixed(3)} | ${cpu[0].toFixed(1)} | ${cpu[1].toFixed(1)} | ${(cpu[1] / cpu[0]).toFixed(3)} | ${wins}/${rounds} |`,
      );
      process.stderr.write(`${lines[lines.length - 1]}\n`);
    }
    // The scrape's own price, apart: the metrics server's CPU per /metrics rendered, with no calls running.
    const scrapes = 20;
    const meter = new CpuMeter([on.server.pid]);
    let bytes = 0;
    for (let i = 0; i < scrapes; i++) bytes = (await (await fetch(on.metricsUrl!)).text()).length;
    const perScrape = meter.read().byPid.get(on.server.pid)! / scrapes;
    lines.push("", `One scrape: ${perScrape.toFixed(1)} ms of server CPU, ${(bytes / 1024).toFixed(0)} KiB of text.`);
  } finally {
    for (const side of [off, on]) {
      side.worker.send({ kind: "exit" } satisfies Task);
      await side.server.stop();
    }
  }
  console.log(lines.join("\n"));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
