import { readFileSync } from "node:fs";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import type { JsonValue } from "../../core/json.js";
import { DataOperations } from "../../services/data-operations.js";
import { EmbeddedEngine } from "../../services/stores/embedded/embedded-engine.js";
import { setInput } from "./set-input.js";
import { sleep } from "./async.js";

/**
 * Items that are legal but hostile to a server that decodes before it
 * budgets: ~400 KB of `[{},{},…]` is within V8's 400 KB, and parses to
 * about 8.7 MB of objects (twenty times its text).
 */
export function explosiveValue(): JsonValue {
  return Array.from({ length: 136_000 }, () => ({}));
}

/**
 * Writes `count` such items into an environment's database before the
 * server under test starts, so the test's own process pays for building
 * them, not the server with a small heap.
 */
export async function writeExplosiveItems(dataDir: string, count: number, options: { prefix?: string; ttlAt?: number } = {}): Promise<void> {
  const engine = new EmbeddedEngine({ dataDir, durability: "normal", sweepIntervalMs: 3_600_000, changeRetentionMs: 24 * 3_600_000 });
  try {
    const operations = new DataOperations(await engine.environment("default"));
    const value = explosiveValue();
    for (let i = 0; i < count; i++) {
      const key = `${options.prefix ?? "big"}:${String(i).padStart(4, "0")}`;
      await operations.set(setInput(key, value, options.ttlAt === undefined ? {} : { ttl: { at: options.ttlAt } }));
    }
  } finally {
    await engine.close();
  }
}

/** The resident set size of a process, in MB (Linux /proc). */
export function rssMb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match ? Number(match[1]) / 1024 : NaN;
}

/**
 * Watches a server process while an attack runs: its peak RSS, and health
 * checks in a loop, with the slowest answer. Stop it to read the results.
 */
export function monitor(pid: number, url: string) {
  const health = createClient(Health, createGrpcTransport({ baseUrl: url }));
  let peakRssMb = 0;
  let worstHealthMs = 0;
  let healthAnswers = 0;
  let healthFailure: unknown;
  let running = true;
  const sampler = setInterval(() => {
    try {
      peakRssMb = Math.max(peakRssMb, rssMb(pid));
    } catch {
      // The process is gone: the test's alive check says so.
    }
  }, 50);
  const loop = (async () => {
    while (running) {
      const started = performance.now();
      try {
        await health.check({}, { timeoutMs: 30_000 });
        healthAnswers++;
      } catch (error) {
        healthFailure = error;
        return;
      }
      worstHealthMs = Math.max(worstHealthMs, performance.now() - started);
      await sleep(20);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      clearInterval(sampler);
      try {
        peakRssMb = Math.max(peakRssMb, rssMb(pid));
      } catch {
        // as above
      }
      return { peakRssMb, worstHealthMs, healthAnswers, healthFailure };
    },
  };
}
