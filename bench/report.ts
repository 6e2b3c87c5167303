import { CLIENT_NAMES, DEFAULT_CLIENT, PROTOCOL_NAMES, type ClientName, type Protocol } from "./messages.js";
import type { MachineFacts } from "./proc.js";
import type { Summary } from "./stats.js";

/** The JSON report of one run, and its markdown form. */

export interface OperationRow extends Summary {
  protocol: Protocol;
  operation: string;
  inFlight: number;
  /** Calls per second. */
  throughput: number;
  /** Throughput as a ratio to Ping's, same protocol and in-flight count, measured in alternating slices. */
  vsPing: number;
  /** Ping's throughput in the slices alternating with this operation's. */
  pingThroughput?: number;
  /** Ping's server CPU per call over this operation's: the throughput ratio of a server with a core to itself. */
  cpuVsPing?: number;
  errors: number;
  firstError?: string;
  /** Calls that found nothing (a get of a missing key, a remove of a removed item, a short page). */
  misses: number;
  /** Server CPU time (all threads) per call: less sensitive than throughput to what else the machine runs. */
  serverCpuUsPerCall: number;
  clientCpuUsPerCall: number;
  /** Cores the server kept busy during the cell. */
  serverBusy: number;
  /** Cores' worth of CPU used by processes other than the server, the load workers and the runner. */
  otherCores: number;
}

export interface EventRow extends Summary {
  subscribers: number;
  connections: number;
  writes: number;
  delivered: number;
  expected: number;
  /** Server CPU during the whole measurement (opening the streams excluded), per event delivered. */
  serverCpuUsPerEvent: number;
  /** The same for the load worker that holds the subscribers and makes the writes. */
  clientCpuUsPerEvent: number;
  otherCores: number;
}

type ScaleCell = Pick<Summary, "p50" | "p99" | "p999" | "count"> & { serverCpuUsPerCall: number };
export interface ScaleRow {
  items: number;
  itemsPerSecondFill: number;
  get?: ScaleCell;
  "key query 100"?: ScaleCell;
  "label query 10"?: ScaleCell;
}

/** One client's figures in a cell of the side-by-side table. */
export interface ClientCell extends Summary {
  throughput: number;
  errors: number;
  firstError?: string;
  misses: number;
  /** CPU of the process that serves this client (Larder's server, or dynalite) per call. */
  serverCpuUsPerCall: number;
  /** CPU of the load worker (the client itself) per call. */
  clientCpuUsPerCall: number;
}

/** One workload at one in-flight count, every client measured in alternating slices. */
export interface PeerRow {
  operation: string;
  inFlight: number;
  clients: Partial<Record<ClientName, ClientCell>>;
  otherCores: number;
}

export interface Report {
  machine: MachineFacts & { loadAverageAfter: readonly number[] };
  run: { date: string; mode: string; engine: string; server: string; command: string; durationS: number; otherCores: number };
  settings: Record<string, unknown>;
  fills: { prefix: string; from: number; to: number; itemsPerSecond: number }[];
  operations: OperationRow[];
  events: EventRow[];
  /** Subscriber counts whose row could not be measured, and why. */
  eventFailures?: string[];
  scale: ScaleRow[];
  /** The side-by-side comparison with the published client, and `uptime` around it. */
  peer: PeerRow[];
  peerUptime?: { before: string; after: string };
  memoryMiB: Record<string, { rss: number; peak: number }>;
}

const table = (header: string[], align: string[], rows: (string | number)[][]) =>
  [`| ${header.join(" | ")} |`, `|${align.join("|")}|`, ...rows.map((row) => `| ${row.join(" | ")} |`)].join("\n");

export function markdown(report: Report): string {
  const { machine: m, run } = report;
  const out: string[] = [];
  out.push(
    `## Larder benchmark (${run.mode}, engine ${run.engine})`,
    "",
    `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}, Linux ${m.kernel}; server ${run.server === "dist" ? "from dist/" : run.server === "esbuild" ? "transpiled by esbuild" : "through tsx"}; ` +
      `load average ${m.loadAverage.join(" ")} before, ${m.loadAverageAfter.join(" ")} after; ` +
      `other processes used ${run.otherCores} cores on average. ${run.date}, ${run.durationS} s.`,
    "",
    `Command: \`${run.command}\``,
  );

  if (report.peer.length > 0) out.push("", ...peerSection(report));

  out.push("", "### Targets", "", targets(report));
  out.push(
    "",
    "Columns: calls/s and × Ping are measured in slices that alternate with slices of Ping at the same in-flight count " +
      "(× Ping = this operation's calls/s over those Ping slices'). Server µs/call is the server process's CPU time " +
      "(all threads) per call; × Ping by CPU is Ping's server µs/call over this operation's, the throughput ratio the " +
      "server would show with a core to itself. Server busy: cores the server used during the cell. Latencies are " +
      "client-side, from call start to response, over every call of the cell.",
  );

  for (const protocol of Object.keys(PROTOCOL_NAMES) as Protocol[]) {
    const rows = report.operations.filter((row) => row.protocol === protocol);
    if (rows.length === 0) continue;
    out.push(
      "",
      `### ${PROTOCOL_NAMES[protocol]}`,
      "",
      table(
        ["operation", "in flight", "calls/s", "× Ping", "p50 ms", "p99 ms", "p99.9 ms", "server µs/call", "× Ping by CPU", "server busy", "errors"],
        ["---", "--:", "--:", "--:", "--:", "--:", "--:", "--:", "--:", "--:", "--:"],
        rows.map((row) => [
          row.operation,
          row.inFlight,
          row.throughput,
          row.vsPing,
          row.p50,
          row.p99,
          row.p999,
          row.serverCpuUsPerCall,
          row.cpuVsPing ?? "",
          row.serverBusy,
          row.errors,
        ]),
      ),
    );
  }

  if (report.events.length > 0) {
    out.push(
      "",
      "### Events: set call start to event arrival at the subscriber",
      "",
      "One write at a time; CPU per event delivered includes the writes (so with 1 subscriber it is the cost of a set and its event).",
      "",
      table(
        ["subscribers", "connections", "delivered", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "server µs/event", "client µs/event"],
        ["--:", "--:", "--:", "--:", "--:", "--:", "--:", "--:", "--:"],
        [
          ...report.events.map((row) => [
            row.subscribers,
            row.connections,
            `${row.delivered}/${row.expected}`,
            row.p50,
            row.p99,
            row.p999,
            row.max,
            row.serverCpuUsPerEvent,
            row.clientCpuUsPerEvent,
          ]),
          ...(report.eventFailures ?? []).map((failure) => [failure, "", "not measured", "", "", "", "", "", ""]),
        ],
      ),
    );
  }

  if (report.scale.length > 0) {
    const cell = (row: ScaleRow, name: "get" | "key query 100" | "label query 10") => (row[name] ? `${row[name]!.p50} / ${row[name]!.p99}` : "");
    out.push(
      "",
      "### Scale: one call in flight over gRPC, p50 / p99 ms",
      "",
      table(
        ["items stored", "get", "key query 100", "label query 10", "fill (Seed) items/s"],
        ["--:", "--:", "--:", "--:", "--:"],
        report.scale.map((row) => [row.items, cell(row, "get"), cell(row, "key query 100"), cell(row, "label query 10"), row.itemsPerSecondFill]),
      ),
    );
  }

  out.push(
    "",
    "### Server memory (RSS, MiB)",
    "",
    table(
      ["when", "RSS MiB"],
      ["---", "--:"],
      Object.entries(report.memoryMiB).map(([when, memory]) => [when, memory.rss]),
    ),
  );
  return out.join("\n");
}

function targets(report: Report): string {
  const op = (operation: string, inFlight: number) =>
    report.operations.find((row) => row.protocol === "grpc" && row.operation === operation && row.inFlight === inFlight);
  const rows: string[][] = [];
  const ratio = (operation: string, wanted: number) => {
    for (const inFlight of [16, 64]) {
      const row = op(operation, inFlight);
      if (row) {
        rows.push([
          `${operation} ≥ ${wanted}× Ping throughput (gRPC, ${inFlight} in flight)`,
          `${row.vsPing}× (by server CPU per call: ${row.cpuVsPing}×)`,
          row.vsPing >= wanted ? "met" : "not met",
        ]);
      }
    }
  };
  ratio("get", 0.7);
  ratio("set", 0.5);
  const query = op("key query 100", 1);
  if (query) rows.push(["key query of 100 items p99 < 5 ms (gRPC, 1 in flight)", `${query.p99} ms`, query.p99 < 5 ? "met" : "not met"]);
  const events = report.events.find((row) => row.subscribers === 100);
  if (events) rows.push(["event latency p99 < 10 ms at 100 subscribers", `${events.p99} ms`, events.p99 < 10 ? "met" : "not met"]);
  if (rows.length === 0) return "(not measured in this run)";
  return table(["target", "measured", ""], ["---", "--:", "---"], rows);
}

/** The throughput targets against the peer, with the default client at 16 in flight (issue 15). */
export const PEER_TARGETS: Record<string, number> = { get: 5, set: 3, "key query 100": 2 };

function peerSection(report: Report): string[] {
  const clients = (Object.keys(CLIENT_NAMES) as ClientName[]).filter((name) => report.peer.some((row) => row.clients[name]));
  const larder = clients.filter((name) => name !== "peer");
  const rows = report.peer.map((row) => {
    const peer = row.clients.peer;
    const cells = clients.map((name) => {
      const cell = row.clients[name];
      if (!cell) return "";
      const ratio = name !== "peer" && peer ? ` (${(cell.throughput / peer.throughput).toFixed(2)}×)` : "";
      const errors = cell.errors ? `, ${cell.errors} errors` : "";
      return `${cell.throughput}${ratio} p99 ${cell.p99}${errors}`;
    });
    const target = PEER_TARGETS[row.operation];
    const chosen = row.clients[DEFAULT_CLIENT];
    let verdict = "";
    if (row.inFlight === 16 && target && chosen && peer) {
      const ratio = chosen.throughput / peer.throughput;
      verdict = `≥ ${target}×: ${ratio >= target ? "met" : `not met (${((ratio / target) * 100).toFixed(0)}% of it)`}`;
    } else if (row.inFlight === 1 && row.operation === "key query 100" && chosen) {
      verdict = `p99 < 5 ms: ${chosen.p99 < 5 ? "met" : `not met (${chosen.p99} ms)`}`;
    }
    return [row.operation, row.inFlight, ...cells, verdict, row.otherCores];
  });
  const cpuRows = report.peer.map((row) => [
    row.operation,
    row.inFlight,
    ...clients.map((name) => {
      const cell = row.clients[name];
      return cell ? `${cell.serverCpuUsPerCall} / ${cell.clientCpuUsPerCall}` : "";
    }),
  ]);
  const uptime = report.peerUptime ? `\`uptime\` before: \`${report.peerUptime.before}\`; after: \`${report.peerUptime.after}\`.` : "";
  return [
    "### Side by side with the published client",
    "",
    "The same `data` calls through each client, in one run, slices of each client alternating so that the machine's drift " +
      "touches all alike: calls/s (ratio to the peer) and client-side p99 ms. The peer is `@ampt/data` over dynalite in a " +
      `process of its own; Larder is the server above. ${larder.length} Larder client${larder.length === 1 ? "" : "s"}; ` +
      "targets apply to the default client. Other cores: CPU other processes used during the row. " +
      uptime,
    "",
    table(
      ["workload", "in flight", ...clients.map((name) => CLIENT_NAMES[name]), "target (default client)", "other cores"],
      ["---", "--:", ...clients.map(() => "--:"), "---", "--:"],
      rows,
    ),
    "",
    "CPU per call, µs (serving process / client process):",
    "",
    table(["workload", "in flight", ...clients.map((name) => CLIENT_NAMES[name])], ["---", "--:", ...clients.map(() => "--:")], cpuRows),
  ];
}
