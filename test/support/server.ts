import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join, resolve } from "node:path";
import type { ChildProcess } from "node:child_process";
import { REPO_ROOT, spawnLarder, startLarder } from "../../scripts/larder-process.js";

export { REPO_ROOT };

export interface RunningServer {
  readonly url: string;
  readonly port: number;
  readonly process: ChildProcess;
  readonly dataDir: string;
  /** Everything the server printed, for assertions on logs and for failure reports. */
  output(): string;
  /** SIGTERM, then wait for the exit; resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface StartOptions {
  readonly env?: Record<string, string>;
  /** Reuse a data directory (restart tests); default: a fresh temporary one, removed on stop. */
  readonly dataDir?: string;
}

/**
 * Starts the real server (`services/main.ts`) in its own process on
 * 127.0.0.1 with an OS-chosen port, and resolves once it says where it listens.
 */
export async function startServer({ env = {}, dataDir }: StartOptions = {}): Promise<RunningServer> {
  const directory = dataDir ?? mkdtempSync(join(tmpdir(), "larder-test-"));
  const { child, exited, output, port, url } = await startLarder({
    env: { LARDER_DATA_DIR: directory, LARDER_LOG_LEVEL: "warn", ...env },
  }).catch((error: unknown) => {
    if (!dataDir) rmSync(directory, { recursive: true, force: true });
    throw error;
  });
  return {
    url,
    port,
    process: child,
    dataDir: directory,
    output,
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const code = await exited;
      if (!dataDir) rmSync(directory, { recursive: true, force: true });
      return code;
    },
  };
}

/** Runs the server process to its exit (for configurations it must refuse). */
export async function runServerToExit(env: Record<string, string>, timeoutMs = 30_000): Promise<{ code: number | null; output: string }> {
  const directory = mkdtempSync(join(tmpdir(), "larder-test-"));
  const { child, exited, output } = spawnLarder({ env: { LARDER_DATA_DIR: directory, ...env } });
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const code = await exited;
  clearTimeout(timer);
  rmSync(directory, { recursive: true, force: true });
  return { code, output: output() };
}

/** A server for one mocha suite: started in `before`, stopped in `after`. */
export function useServer(options: StartOptions = {}): { readonly url: string; readonly server: RunningServer } {
  let running: RunningServer | undefined;
  before(async function () {
    this.timeout(60_000);
    running = await startServer(options);
  });
  after(async function () {
    this.timeout(30_000);
    await running?.stop();
  });
  return {
    get url() {
      if (!running) throw new Error("the server is not running yet (use it inside tests or hooks)");
      return running.url;
    },
    get server() {
      if (!running) throw new Error("the server is not running yet (use it inside tests or hooks)");
      return running;
    },
  };
}

/**
 * grpcurl, looked for in this order: the GRPCURL variable, `grpcurl` on PATH,
 * then the team's shared tools next to the checkout (../shared/tools, or
 * ../../shared/tools from a worktree). Undefined when none is there; `why`
 * says where it looked, for the skipped suite's title.
 */
export function findGrpcurl(): { path?: string; why: string } {
  const fromEnv = process.env.GRPCURL;
  if (fromEnv) return existsSync(fromEnv) ? { path: fromEnv, why: "" } : { why: `GRPCURL=${fromEnv} does not exist` };
  const onPath = (process.env.PATH ?? "")
    .split(delimiter)
    .filter(Boolean)
    .map((directory) => join(directory, "grpcurl"))
    .find((candidate) => existsSync(candidate));
  if (onPath) return { path: onPath, why: "" };
  const shared = ["../shared/tools/grpcurl", "../../shared/tools/grpcurl"]
    .map((relative) => resolve(REPO_ROOT, relative))
    .find((candidate) => existsSync(candidate));
  if (shared) return { path: shared, why: "" };
  return { why: "no grpcurl: set GRPCURL, put grpcurl on PATH, or install it in ../shared/tools" };
}

/** The grpcurl to use, or undefined (findGrpcurl says why). */
export function grpcurlPath(): string | undefined {
  return findGrpcurl().path;
}
