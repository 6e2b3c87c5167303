import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { LoadPlan } from "./load.js";
import { ROOT, startBenchServer } from "./server-process.js";
import { round } from "./stats.js";

/**
 * `npm run bench` (quick) and `npm run bench -- --full`: starts the built
 * server and a load generator in separate processes on loopback, and prints
 * markdown tables (also written as JSON to bench/results/).
 */
const full = process.argv.includes("--full");
const mongo = process.env.MONGODB_URI;

const settings = {
  cellMs: full ? 3_000 : 700,
  concurrency: [1, 16, 64],
  protocols: ["grpc", "connect"] as const,
  subscribers: full ? [1, 100, 1000] : [1, 100],
  scale: full ? [10_000, 100_000, 1_000_000] : [10_000],
};

interface OperationResult {
  protocol: string;
  operation: string;
  concurrency: number;
  throughput: number;
  p50: number;
  p99: number;
  p999: number;
}

async function main(): Promise<void> {
  const server = await startBenchServer(mongo ? { LARDER_ENGINE: "mongodb", MONGODB_URI: mongo } : {});
  const memory: Record<string, number> = { start: round(server.rssMiB(), 1) };
  const results: { operations: OperationResult[]; events: unknown[]; scale: unknown[] } = { operations: [], events: [], scale: [] };
  try {
    const plan: LoadPlan = { url: server.url, ...settings };
    const load = spawn(process.execPath, ["--import", "tsx", join(ROOT, "bench/load.ts"), JSON.stringify(plan)], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "inherit"],
    });
    for await (const line of createInterface({ input: load.stdout! })) {
      const message = JSON.parse(line) as { type: string; name?: string } & Record<string, unknown>;
      if (message.type === "mark") memory[message.name!] = round(server.rssMiB(), 1);
      else if (message.type === "operation") {
        results.operations.push(message as unknown as OperationResult);
        process.stderr.write(`  ${message.protocol} ${message.operation} ×${message.concurrency}: ${message.throughput}/s\n`);
      } else if (message.type === "events") results.events.push(message);
      else if (message.type === "scale") results.scale.push(message);
    }
    const code = await new Promise<number | null>((resolve) => load.once("exit", resolve));
    if (code !== 0) throw new Error(`the load generator failed (exit ${code})`);
  } finally {
    await server.stop();
  }

  const machine = {
    cpu: cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    memoryGiB: round(totalmem() / 1024 ** 3, 1),
    node: process.version,
    engine: mongo ? "mongodb" : "embedded",
    mode: full ? "full" : "quick",
    date: new Date().toISOString(),
  };
  const report = { machine, settings, memoryMiB: memory, ...results };
  const directory = join(ROOT, "bench/results");
  mkdirSync(directory, { recursive: true });
  const json = `${JSON.stringify(report, null, 2)}\n`;
  writeFileSync(join(directory, `${machine.date.slice(0, 10)}-${machine.mode}.json`), json);
  writeFileSync(join(directory, "latest.json"), json);
  console.log(markdown(report));
}

function markdown(report: {
  machine: Record<string, unknown>;
  memoryMiB: Record<string, number>;
  operations: OperationResult[];
  events: unknown[];
  scale: unknown[];
}): string {
  const lines: string[] = [];
  const m = report.machine;
  lines.push(`Larder benchmark (${m.mode}, engine ${m.engine}) on ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}, ${m.date}`);
  for (const protocol of ["grpc", "connect"]) {
    const rows = report.operations.filter((r) => r.protocol === protocol);
    if (rows.length === 0) continue;
    lines.push("", `### ${protocol === "grpc" ? "gRPC (HTTP/2)" : "Connect (HTTP/1.1)"}`, "");
    lines.push("| operation | in flight | ops/s | × null RPC | p50 ms | p99 ms | p99.9 ms |", "|---|---:|---:|---:|---:|---:|---:|");
    for (const row of rows) {
      const baseline = rows.find((r) => r.operation.startsWith("null RPC") && r.concurrency === row.concurrency)!;
      lines.push(
        `| ${row.operation} | ${row.concurrency} | ${row.throughput} | ${round(row.throughput / baseline.throughput, 2)} | ${row.p50} | ${row.p99} | ${row.p999} |`,
      );
    }
  }
  lines.push("", "### Events: write to handler", "", "| subscribers | delivered | p50 ms | p99 ms |", "|---:|---:|---:|---:|");
  for (const event of report.events as { subscribers: number; delivered: number; expected: number; p50: number; p99: number }[]) {
    lines.push(`| ${event.subscribers} | ${event.delivered}/${event.expected} | ${event.p50} | ${event.p99} |`);
  }
  lines.push("", "### Scale: one call in flight", "", "| items | get p50 | get p99 | query 100 p50 | query 100 p99 |", "|---:|---:|---:|---:|---:|");
  for (const scale of report.scale as { items: number; get: { p50: number; p99: number }; query: { p50: number; p99: number } }[]) {
    lines.push(`| ${scale.items} | ${scale.get.p50} | ${scale.get.p99} | ${scale.query.p50} | ${scale.query.p99} |`);
  }
  lines.push("", "### Server memory (RSS, MiB)", "", "| when | RSS |", "|---|---:|");
  for (const [when, rss] of Object.entries(report.memoryMiB)) lines.push(`| ${when} | ${rss} |`);
  return lines.join("\n");
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
