import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import type { StoredKey } from "../../services/access/api-keys.js";
import { loadConfig } from "../../services/config.js";
import { LarderMetrics } from "../../services/metrics.js";
import { createLarderServer } from "../../services/server.js";
import { openEngine } from "../../services/stores/open-engine.js";
import { eventually } from "./async.js";

export interface InProcessServer {
  readonly url: string;
  /** The metrics port's /metrics URL. */
  readonly metricsUrl: string;
  /** Every log line the server wrote, parsed. */
  readonly logs: Record<string, unknown>[];
  readonly metrics: LarderMetrics;
  /** One scrape, as series (`name{label="value",...}` exactly as printed) to values. */
  scrape(): Promise<Map<string, number>>;
  close(): Promise<void>;
}

/**
 * The server as main.ts wires it, in this process (several at once must not
 * share a metrics registry), with metrics on an OS-chosen port and its log
 * lines kept for assertions.
 */
export async function startInProcess(env: Record<string, string> = {}, keys?: readonly StoredKey[]): Promise<InProcessServer> {
  const dataDir = mkdtempSync(join(tmpdir(), "larder-metrics-"));
  const config = loadConfig({ LARDER_PORT: "0", LARDER_METRICS_PORT: "0", LARDER_DATA_DIR: dataDir, ...env });
  const logs: Record<string, unknown>[] = [];
  const log = pino({ level: "debug" }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const environments = keys ? keys.flatMap((key) => (key.environment === undefined ? [] : [key.environment])) : ["default"];
  const metrics = new LarderMetrics({ engine: config.engine, environments, changeRetentionMs: config.changeRetentionMs });
  const engine = await openEngine(config, log, metrics.engineObserver);
  for (const environment of environments) await engine.environment(environment);
  const server = createLarderServer({ config, engine, log, keys, metrics });
  const address = await server.listen();
  const metricsUrl = `http://127.0.0.1:${address.metrics!.port}/metrics`;
  return {
    url: `http://127.0.0.1:${address.port}`,
    metricsUrl,
    logs,
    metrics,
    async scrape() {
      const response = await fetch(metricsUrl);
      if (response.status !== 200) throw new Error(`GET /metrics answered ${response.status}`);
      return parseExposition(await response.text());
    },
    async close() {
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Holds one call open: a request whose body never ends (admission counts from
 * the headers). Resolves once the server counts it in flight; `destroy()` ends it.
 */
export async function holdCall(server: InProcessServer): Promise<http.ClientRequest> {
  const held = http.request(`${server.url}/larder.data.v1.DataService/Get`, {
    method: "POST",
    headers: { "content-type": "application/json", "content-length": "100" },
  });
  held.on("error", () => undefined);
  held.write("{");
  try {
    await eventually(async () => (await server.scrape()).get("larder_calls_in_flight") === 1, "the held call in flight");
  } catch (error) {
    held.destroy();
    throw error;
  }
  return held;
}

export function parseExposition(text: string): Map<string, number> {
  const series = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    series.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return series;
}

/** The series' name as the exposition prints it, labels in the order given. */
export function series(name: string, labels: Record<string, string> = {}): string {
  const pairs = Object.entries(labels).map(([label, value]) => `${label}="${value}"`);
  return pairs.length === 0 ? name : `${name}{${pairs.join(",")}}`;
}
