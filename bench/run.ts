import { fork, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { execFileSync } from "node:child_process";
import {
  CLIENT_NAMES,
  CLIENT_OPERATIONS,
  ITEMS,
  MORE_CLIENT_OPERATIONS,
  REMOVABLE,
  type ClientName,
  type Protocol,
  type Reply,
  type Task,
} from "./messages.js";
import { startPeerServer, type PeerServer } from "./peer.js";
import { CpuMeter, machineFacts } from "./proc.js";
import { markdown, type ClientCell, type Report, type OperationRow, type EventRow, type PeerRow, type ScaleRow } from "./report.js";
import { ROOT, startBenchServer, type BenchServer, type ServerBuild } from "./server-process.js";
import { round, summarize } from "./stats.js";

/**
 * Larder's benchmark: `npx tsx bench/run.ts [--quick|--full] [--out FILE]`.
 * Starts the server (embedded engine on a fresh data directory; MongoDB when
 * MONGODB_URI is set) and load workers in processes of their own on
 * loopback, then measures every operation against Ping (the null RPC) on
 * the same server, event fan-out latency, get/query latency by store size
 * and the server's memory. Prints markdown; writes JSON to bench/results/.
 * `--help` lists the options.
 */

const OPERATION_NAMES = [
  "ping",
  "get",
  "batch get 25",
  "key query 100",
  "label query 10",
  "set",
  "set idempotent",
  "set merge $add",
  "add",
  "batch set 25",
  "remove",
] as const;

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    full: { type: "boolean", default: false },
    out: { type: "string" },
    workers: { type: "string", default: "1" },
    protocols: { type: "string" },
    ops: { type: "string" },
    "in-flight": { type: "string" },
    sections: { type: "string", default: "peer,ops,events,scale" },
    clients: { type: "string" },
    "client-ops": { type: "string" },
    "cell-ms": { type: "string" },
    profile: { type: "string" },
    server: { type: "string", default: "auto" },
    help: { type: "boolean", default: false },
  },
});

if (args.help) {
  console.log(`npx tsx bench/run.ts [options]
  --quick              about a minute: gRPC and Connect/HTTP1.1, short cells, 10k items (the default)
  --full               everything: also Connect over HTTP/2, 3 s cells, 10k/100k/1M items
  --out FILE           also write the JSON report here (bench/results/<date>-<mode>.json and latest.json always)
  --workers N          load worker processes (default 1; in-flight calls are split among them)
  --protocols LIST     grpc,connect-h1,connect-h2
  --ops LIST           e.g. ping,get,set (names as in the table)
  --in-flight LIST     e.g. 1,16,64
  --sections LIST      peer,ops,events,scale (peer: the side-by-side table with the published @ampt/data over dynalite)
  --clients LIST       for peer: peer,larder-grpc,larder-connect,larder-grpc-unpipelined (default all but the last)
  --client-ops LIST    for peer: get,set,key query 100,batch get 25 (default the first three)
  --cell-ms MS         measured time per cell
  --profile DIR        write a V8 CPU profile of the server to DIR (summarize: npx tsx bench/profile.ts DIR/*.cpuprofile)
  --server auto|dist|esbuild|tsx  the server as built in dist/, as transpiled now by esbuild, or through tsx;
                       auto: dist/ when newer than every source, else esbuild
Environment: MONGODB_URI runs the MongoDB engine (a fresh database prefix, dropped afterwards).`);
  process.exit(0);
}

const full = args.full;
const list = (value: string | undefined) =>
  value
    ?.split(",")
    .map((entry) => entry.trim())
    .filter(Boolean);
const settings = {
  mode: full ? "full" : "quick",
  protocols: (list(args.protocols) ?? (full ? ["grpc", "connect-h1", "connect-h2"] : ["grpc", "connect-h1"])) as Protocol[],
  operations: list(args.ops) ?? [...OPERATION_NAMES],
  inFlight: (list(args["in-flight"]) ?? ["1", "16", "64"]).map(Number),
  warmupMs: full ? 500 : 150,
  cellMs: Number(args["cell-ms"] ?? (full ? 3_000 : 450)),
  /** Each operation's cell is cut in this many slices, each after a slice of Ping as long. */
  slices: 3,
  stored: 10_000,
  subscribers: [1, 100, 1_000, 10_000],
  eventWrites: full ? 100 : 20,
  streamsPerConnection: 100,
  scale: full ? [10_000, 100_000, 1_000_000] : [10_000],
  scaleCellMs: full ? 2_000 : 600,
  workers: Number(args.workers),
  sections: list(args.sections)!,
  clients: (list(args.clients) ?? ["peer", "larder-connect", "larder-grpc"]) as ClientName[],
  clientOperations: list(args["client-ops"]) ?? [...CLIENT_OPERATIONS],
  clientInFlight: list(args["in-flight"])?.map(Number) ?? [1, 16],
  /** Per client and cell, cut in `slices` slices that alternate between the clients. */
  clientCellMs: full ? 6_000 : 1_500,
};
if (!settings.operations.includes("ping")) settings.operations.unshift("ping");
for (const name of settings.operations) {
  if (!(OPERATION_NAMES as readonly string[]).includes(name)) throw new Error(`unknown operation '${name}'`);
}
for (const name of settings.clients) if (!(name in CLIENT_NAMES)) throw new Error(`unknown client '${name}'`);
for (const name of settings.clientOperations) {
  if (![...CLIENT_OPERATIONS, ...MORE_CLIENT_OPERATIONS].includes(name as never)) throw new Error(`unknown client operation '${name}'`);
}

class Worker {
  private waiting?: { resolve: (reply: Reply) => void; reject: (error: Error) => void };
  onSubscribed?: (reply: Extract<Reply, { kind: "subscribed" }>) => void;

  constructor(readonly process: ChildProcess) {
    process.on("message", (reply: Reply) => {
      if (reply.kind === "subscribed") return this.onSubscribed?.(reply);
      const waiting = this.waiting;
      this.waiting = undefined;
      if (reply.kind === "error") waiting?.reject(new Error(`load worker: ${reply.message}`));
      else waiting?.resolve(reply);
    });
    process.once("exit", (code) => this.waiting?.reject(new Error(`load worker exited (${code})`)));
  }

  ask<K extends Reply["kind"]>(task: Task): Promise<Extract<Reply, { kind: K }>> {
    return new Promise((resolve, reject) => {
      this.waiting = { resolve: resolve as (reply: Reply) => void, reject };
      this.process.send(task);
    });
  }
}

function startWorkers(url: string, count: number, peerEndpoint?: string): Promise<Worker[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, index) => {
      const child = fork(join(ROOT, "bench/load.ts"), [], {
        cwd: ROOT,
        execArgv: ["--import", "tsx"],
        serialization: "advanced",
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      });
      const worker = new Worker(child);
      await worker.ask({ kind: "init", url, worker: index, workers: count, peerEndpoint });
      return worker;
    }),
  );
}

const progress = (line: string) => process.stderr.write(`${line}\n`);

async function main(): Promise<void> {
  const mongo = process.env.MONGODB_URI;
  const machineBefore = machineFacts();
  const runMeter = new CpuMeter([]);
  const startedAt = new Date();
  const server = await startBenchServer({
    env: mongo ? { LARDER_ENGINE: "mongodb", MONGODB_URI: mongo } : {},
    cpuProfileDir: args.profile && resolve(args.profile),
    build: args.server as ServerBuild,
  });
  progress(`bench: server pid ${server.pid} (${server.runs}, engine ${server.engine}) at ${server.url}`);
  const memory: Record<string, { rss: number; peak: number }> = { "at start": server.memory() };
  const peer = settings.sections.includes("peer") && settings.clients.includes("peer") ? await startPeerServer() : undefined;
  if (peer) progress(`bench: peer dynalite pid ${peer.pid} at ${peer.endpoint}`);
  const workers = await startWorkers(server.url, settings.workers, peer?.endpoint);
  const lead = workers[0];
  const pids = [server.pid, ...workers.map((worker) => worker.process.pid!)];
  const report: Report = {
    machine: { ...machineBefore, loadAverageAfter: [] },
    run: {
      date: startedAt.toISOString(),
      mode: settings.mode,
      engine: server.engine,
      server: server.runs,
      command: `npx tsx bench/run.ts ${process.argv.slice(2).join(" ")}`.trim(),
      durationS: 0,
      otherCores: 0,
    },
    settings,
    fills: [],
    operations: [],
    events: [],
    scale: [],
    peer: [],
    memoryMiB: memory,
  };

  try {
    let stored = 0;
    let itemsFillRate = NaN;
    const fillTo = async (prefix: string, from: number, to: number) => {
      const reply = await lead.ask<"fill">({ kind: "fill", prefix, from, to });
      const rate = round(reply.items / (reply.elapsedMs / 1000), 0);
      report.fills.push({ prefix, from, to, itemsPerSecond: rate });
      if (prefix === ITEMS) itemsFillRate = rate;
      progress(`bench: stored ${prefix}… ${from}..${to} (${rate} items/s through Seed)`);
    };
    if (settings.sections.includes("peer")) await sideBySide(workers, server, peer, report);

    if (settings.sections.some((section) => section !== "peer")) {
      await fillTo(ITEMS, 0, settings.stored);
      stored = settings.stored;
      memory[`${stored} items stored`] = server.memory();
    }

    if (settings.sections.includes("ops")) {
      let removable = 0;
      for (const protocol of settings.protocols) {
        // JIT and connections warm before anything is recorded.
        for (const operation of settings.operations.filter((name) => name !== "remove")) {
          await cell(workers, server, { protocol, operation, inFlight: 16, ms: settings.warmupMs, record: false, stored });
        }
        for (const operation of settings.operations) {
          if (operation === "remove") {
            // Every remove call removes an item: store enough of them for this protocol's calls.
            const set = report.operations.filter((row) => row.protocol === protocol && row.operation === "set");
            const perSecond = Math.max(3_000, ...set.map((row) => row.throughput));
            const needed = Math.ceil(perSecond * 1.5 * ((settings.cellMs + settings.warmupMs) / 1000) * settings.inFlight.length);
            await fillTo(REMOVABLE, removable, removable + needed);
            removable += needed;
          }
          for (const inFlight of settings.inFlight) {
            const task = { protocol, operation, inFlight, ms: settings.cellMs, record: true, stored };
            await cell(workers, server, { ...task, ms: settings.warmupMs, record: false });
            let row: OperationRow;
            if (operation === "ping") {
              row = await cell(workers, server, task);
              row.vsPing = 1;
              row.pingThroughput = row.throughput;
              row.cpuVsPing = 1;
            } else {
              row = (await pairedWithPing(workers, server, task, settings.slices)).row;
            }
            report.operations.push(row);
            progress(
              `  ${protocol} ${operation} ×${inFlight}: ${row.throughput}/s (${row.vsPing}× ping) p50 ${row.p50} p99 ${row.p99} ms, server ${row.serverCpuUsPerCall} µs/call${row.errors ? `, ${row.errors} errors: ${row.firstError}` : ""}`,
            );
          }
        }
      }
      memory["after the operations"] = server.memory();
    }

    if (settings.sections.includes("events")) {
      for (const subscribers of settings.subscribers) {
        // The previous row's streams are closed: give the server a moment to count them out (LARDER_MAX_STREAMS is 10,000).
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        lead.onSubscribed = () => (memory[`${subscribers} subscribers open`] = server.memory());
        const meter = new CpuMeter(pids);
        // 10,000 subscribers: a few writes give tens of thousands of deliveries already.
        const writes = subscribers >= 10_000 ? 5 : settings.eventWrites;
        let reply: Extract<Reply, { kind: "events" }>;
        try {
          reply = await lead.ask<"events">({
            kind: "events",
            subscribers,
            writes,
            perConnection: settings.streamsPerConnection,
          });
        } catch (error) {
          // One row that cannot be held (streams refused or reset) says so; the rest of the run goes on.
          progress(`  events, ${subscribers} subscribers: not measured: ${(error as Error).message}`);
          report.eventFailures = [...(report.eventFailures ?? []), `${subscribers} subscribers: ${(error as Error).message}`];
          continue;
        }
        const cpu = meter.read();
        const row: EventRow = {
          subscribers,
          connections: Math.ceil(subscribers / settings.streamsPerConnection),
          writes,
          delivered: reply.samples.length,
          expected: reply.expected,
          ...summarize(reply.samples),
          serverCpuUsPerEvent: round((cpu.byPid.get(server.pid)! * 1000) / Math.max(1, reply.samples.length), 1),
          clientCpuUsPerEvent: round((cpu.byPid.get(lead.process.pid!)! * 1000) / Math.max(1, reply.samples.length), 1),
          otherCores: cpu.otherCores,
        };
        report.events.push(row);
        progress(
          `  events, ${subscribers} subscribers: ${row.delivered}/${row.expected} delivered, p50 ${row.p50} p99 ${row.p99} ms` +
            (reply.streamErrors ? `, ${reply.streamErrors} streams failed: ${reply.firstStreamError}` : ""),
        );
      }
    }

    if (settings.sections.includes("scale")) {
      for (const size of settings.scale) {
        if (size > stored) {
          await fillTo(ITEMS, stored, size);
          stored = size;
        }
        memory[`${size} items stored`] = server.memory();
        const measured: ScaleRow = { items: size, itemsPerSecondFill: itemsFillRate };
        for (const operation of ["get", "key query 100", "label query 10"] as const) {
          await cell(workers, server, { protocol: "grpc", operation, inFlight: 1, ms: settings.warmupMs, record: false, stored: size });
          const row = await cell(workers, server, { protocol: "grpc", operation, inFlight: 1, ms: settings.scaleCellMs, record: true, stored: size });
          measured[operation] = { p50: row.p50, p99: row.p99, p999: row.p999, count: row.count, serverCpuUsPerCall: row.serverCpuUsPerCall };
        }
        report.scale.push(measured);
        progress(`  scale ${size}: get p50 ${measured.get?.p50} ms, key query p50 ${measured["key query 100"]?.p50} ms`);
      }
    }
  } finally {
    for (const worker of workers) if (worker.process.connected) worker.process.send({ kind: "exit" } satisfies Task);
    memory["peak (VmHWM)"] = { rss: server.memory().peak, peak: server.memory().peak };
    await server.stop();
    await peer?.stop();
  }

  report.run.durationS = round((Date.now() - startedAt.getTime()) / 1000, 0);
  report.run.otherCores = runMeter.read().otherCores;
  report.machine.loadAverageAfter = machineFacts().loadAverage;
  const json = `${JSON.stringify(report, null, 2)}\n`;
  const directory = join(ROOT, "bench/results");
  mkdirSync(directory, { recursive: true });
  writeFileSync(join(directory, `${report.run.date.slice(0, 10)}-${settings.mode}.json`), json);
  writeFileSync(join(directory, "latest.json"), json);
  const table = `${markdown(report)}\n`;
  writeFileSync(join(directory, `${report.run.date.slice(0, 10)}-${settings.mode}.md`), table);
  writeFileSync(join(directory, "latest.md"), table);
  if (args.out) {
    mkdirSync(dirname(resolve(args.out)), { recursive: true });
    writeFileSync(resolve(args.out), json);
  }
  console.log(table);
}

function uptime(): string {
  try {
    return execFileSync("uptime", { encoding: "utf8" }).trim();
  } catch {
    return `load average ${machineFacts().loadAverage.join(", ")}`;
  }
}

/**
 * The side-by-side table: each workload through every client, in slices that
 * alternate between them (three rounds), so a change in what else the shared
 * machine runs touches every client alike and the ratios stay comparable.
 */
async function sideBySide(workers: Worker[], server: BenchServer, peer: PeerServer | undefined, report: Report): Promise<void> {
  const before = uptime();
  const lead = workers[0];
  const larderFill = settings.clients.find((name) => name !== "peer");
  for (const client of settings.clients.filter((name) => name === "peer" || name === larderFill)) {
    const reply = await lead.ask<"fill">({ kind: "client-fill", client });
    progress(`bench: stored the side-by-side items through ${CLIENT_NAMES[client]} (${round(reply.elapsedMs, 0)} ms)`);
  }
  const servingPid = (client: ClientName) => (client === "peer" ? peer!.pid : server.pid);
  for (const operation of settings.clientOperations) {
    for (const inFlight of settings.clientInFlight) {
      const slices = new Map<ClientName, Slice[]>(settings.clients.map((name) => [name, []]));
      const meter = new CpuMeter([server.pid, ...(peer ? [peer.pid] : []), ...workers.map((worker) => worker.process.pid!)]);
      for (const client of settings.clients) {
        await clientSlice(workers, servingPid(client), { client, operation, inFlight, ms: settings.warmupMs * 2, record: false });
      }
      for (let round = 0; round < settings.slices; round++) {
        for (const client of settings.clients) {
          const ms = settings.clientCellMs / settings.slices;
          slices.get(client)!.push(await clientSlice(workers, servingPid(client), { client, operation, inFlight, ms, record: true }));
        }
      }
      const row: PeerRow = { operation, inFlight, clients: {}, otherCores: meter.read().otherCores };
      for (const [client, taken] of slices) row.clients[client] = clientCell(taken);
      report.peer.push(row);
      const peerThroughput = row.clients.peer?.throughput;
      progress(
        `  side by side, ${operation} ×${inFlight}: ` +
          settings.clients
            .map((client) => {
              const cell = row.clients[client]!;
              const ratio = client !== "peer" && peerThroughput ? ` (${round(cell.throughput / peerThroughput, 2)}×)` : "";
              return `${client} ${cell.throughput}/s${ratio} p99 ${cell.p99} ms${cell.errors ? ` ${cell.errors} errors: ${cell.firstError}` : ""}`;
            })
            .join(", "),
      );
    }
  }
  report.peerUptime = { before, after: uptime() };
}

async function clientSlice(workers: Worker[], servingPid: number, task: Omit<Extract<Task, { kind: "client-cell" }>, "kind">): Promise<Slice> {
  const meter = new CpuMeter([servingPid, ...workers.map((worker) => worker.process.pid!)]);
  const replies = await Promise.all(workers.map((worker) => worker.ask<"cell">({ kind: "client-cell", ...task })));
  return sliceOf(replies, meter, servingPid, workers);
}

function clientCell(slices: Slice[]): ClientCell {
  const sum = (field: "elapsedMs" | "errors" | "misses" | "serverCpuMs" | "clientCpuMs") => slices.reduce((total, slice) => total + slice[field], 0);
  const summary = summarize(concat(slices.map((slice) => slice.samples)));
  const calls = Math.max(1, summary.count);
  return {
    ...summary,
    throughput: round(summary.count / (sum("elapsedMs") / 1000), 0),
    errors: sum("errors"),
    firstError: slices.find((slice) => slice.firstError)?.firstError,
    misses: sum("misses"),
    serverCpuUsPerCall: round((sum("serverCpuMs") * 1000) / calls, 1),
    clientCpuUsPerCall: round((sum("clientCpuMs") * 1000) / calls, 1),
  };
}

interface Slice {
  samples: Float64Array;
  elapsedMs: number;
  errors: number;
  firstError?: string;
  misses: number;
  serverCpuMs: number;
  clientCpuMs: number;
  wallMs: number;
  otherCoresMs: number;
}

/** One stretch of calls: the in-flight calls split among the workers, their samples merged, CPU read around it. */
async function slice(workers: Worker[], server: BenchServer, task: Omit<Extract<Task, { kind: "cell" }>, "kind">): Promise<Slice> {
  const meter = new CpuMeter([server.pid, ...workers.map((worker) => worker.process.pid!)]);
  const replies = await Promise.all(workers.map((worker) => worker.ask<"cell">({ kind: "cell", ...task })));
  return sliceOf(replies, meter, server.pid, workers);
}

function sliceOf(replies: Extract<Reply, { kind: "cell" }>[], meter: CpuMeter, servingPid: number, workers: Worker[]): Slice {
  const cpu = meter.read();
  return {
    samples: concat(replies.map((reply) => reply.samples)),
    elapsedMs: Math.max(...replies.map((reply) => reply.elapsedMs)),
    errors: replies.reduce((sum, reply) => sum + reply.errors, 0),
    firstError: replies.find((reply) => reply.firstError)?.firstError,
    misses: replies.reduce((sum, reply) => sum + reply.misses, 0),
    serverCpuMs: cpu.byPid.get(servingPid)!,
    clientCpuMs: workers.reduce((sum, worker) => sum + cpu.byPid.get(worker.process.pid!)!, 0),
    wallMs: cpu.wallMs,
    otherCoresMs: cpu.otherCores * cpu.wallMs,
  };
}

function concat(arrays: Float64Array[]): Float64Array {
  const all = new Float64Array(arrays.reduce((sum, array) => sum + array.length, 0));
  let offset = 0;
  for (const array of arrays) {
    all.set(array, offset);
    offset += array.length;
  }
  return all;
}

function row(task: Omit<Extract<Task, { kind: "cell" }>, "kind">, slices: Slice[]): OperationRow {
  const sum = (field: "elapsedMs" | "errors" | "misses" | "serverCpuMs" | "clientCpuMs" | "wallMs" | "otherCoresMs") =>
    slices.reduce((total, slice) => total + slice[field], 0);
  const summary = summarize(concat(slices.map((slice) => slice.samples)));
  const calls = Math.max(1, summary.count);
  return {
    protocol: task.protocol,
    operation: task.operation,
    inFlight: task.inFlight,
    throughput: round(summary.count / (sum("elapsedMs") / 1000), 0),
    vsPing: NaN,
    ...summary,
    errors: sum("errors"),
    firstError: slices.find((slice) => slice.firstError)?.firstError,
    misses: sum("misses"),
    serverCpuUsPerCall: round((sum("serverCpuMs") * 1000) / calls, 1),
    clientCpuUsPerCall: round((sum("clientCpuMs") * 1000) / calls, 1),
    serverBusy: round(sum("serverCpuMs") / sum("wallMs"), 2),
    otherCores: round(sum("otherCoresMs") / sum("wallMs"), 2),
  };
}

/** A measurement of one operation alone (after a warm-up that is not recorded). */
async function cell(workers: Worker[], server: BenchServer, task: Omit<Extract<Task, { kind: "cell" }>, "kind">): Promise<OperationRow> {
  return row(task, [await slice(workers, server, task)]);
}

/**
 * An operation measured in slices that alternate with slices of Ping at
 * the same in-flight count: on a machine whose other load drifts, each
 * ratio compares measurements taken within a second of each other.
 */
async function pairedWithPing(
  workers: Worker[],
  server: BenchServer,
  task: Omit<Extract<Task, { kind: "cell" }>, "kind">,
  slices: number,
): Promise<{ row: OperationRow; ping: OperationRow }> {
  const pingTask = { ...task, operation: "ping" };
  const own: Slice[] = [];
  const pings: Slice[] = [];
  for (let i = 0; i < slices; i++) {
    pings.push(await slice(workers, server, { ...pingTask, ms: task.ms / slices }));
    own.push(await slice(workers, server, { ...task, ms: task.ms / slices }));
  }
  const measured = row(task, own);
  const ping = row(pingTask, pings);
  measured.vsPing = round(measured.throughput / ping.throughput, 2);
  measured.pingThroughput = ping.throughput;
  measured.cpuVsPing = round(ping.serverCpuUsPerCall / measured.serverCpuUsPerCall, 2);
  return { row: measured, ping };
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
