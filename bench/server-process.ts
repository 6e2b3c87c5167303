import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

export interface BenchServer {
  readonly url: string;
  readonly pid: number;
  rssMiB(): number;
  stop(): Promise<void>;
}

/** The built server (`npm run build`) in its own process, on loopback, with a fresh data directory. */
export async function startBenchServer(env: Record<string, string> = {}): Promise<BenchServer> {
  const entry = join(ROOT, "dist/services/main.js");
  if (!existsSync(entry)) throw new Error("run `npm run build` first (npm run bench does)");
  const dataDir = mkdtempSync(join(tmpdir(), "larder-bench-"));
  const child: ChildProcess = spawn(process.execPath, [entry], {
    cwd: ROOT,
    env: { ...process.env, LARDER_HOST: "127.0.0.1", LARDER_PORT: "0", LARDER_DATA_DIR: dataDir, LARDER_LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let output = "";
  const port = await new Promise<number>((resolvePort, reject) => {
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
      const match = /listening on http:\/\/[^:]+:(\d+)/.exec(output);
      if (match) resolvePort(Number(match[1]));
    });
    child.once("exit", (code) => reject(new Error(`the server exited (${code}) before listening: ${output}`)));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    rssMiB() {
      const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
      return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) / 1024;
    },
    async stop() {
      child.kill("SIGTERM");
      await new Promise((done) => child.once("exit", done));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
