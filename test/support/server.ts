import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

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

/** The server process (`services/main.ts`) on 127.0.0.1 with an OS-chosen port, its output collected. */
function spawnServerProcess(env: Record<string, string>): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, ["--import", "tsx", "services/main.ts"], {
    cwd: REPO_ROOT,
    env: { ...inherited(), LARDER_HOST: "127.0.0.1", LARDER_PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  return { child, output: () => output };
}

/**
 * Starts the real server (`services/main.ts`) in its own process on
 * 127.0.0.1 with an OS-chosen port, and resolves once it says where it listens.
 */
export async function startServer({ env = {}, dataDir }: StartOptions = {}): Promise<RunningServer> {
  const directory = dataDir ?? mkdtempSync(join(tmpdir(), "larder-test-"));
  const { child, output } = spawnServerProcess({ LARDER_DATA_DIR: directory, LARDER_LOG_LEVEL: "warn", ...env });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));

  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start within 30 s:\n${output()}`)), 30_000);
    const check = () => {
      const match = /larder listening on https?:\/\/(?:\[[^\]]+\]|[^:/]+):(\d+)/.exec(output());
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    child.stdout!.on("data", check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited with code ${code} before listening:\n${output()}`));
    });
  });

  return {
    url: `http://127.0.0.1:${port}`,
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
  const { child, output } = spawnServerProcess({ LARDER_DATA_DIR: directory, ...env });
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  clearTimeout(timer);
  rmSync(directory, { recursive: true, force: true });
  return { code, output: output() };
}

/**
 * The test runner's environment without its LARDER_* settings: a developer's
 * own LARDER_KEYS_FILE or LARDER_HOST must not change what a test starts.
 */
function inherited(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("LARDER_")));
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

/** ../shared/tools/grpcurl next to the project, where the team's machines have it; undefined elsewhere. */
export function grpcurlPath(): string | undefined {
  const path = resolve(REPO_ROOT, "../shared/tools/grpcurl");
  return existsSync(path) ? path : undefined;
}
