import { spawn, type ChildProcess } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The one place that knows how to run the Larder server in a process of its
 * own and read where it listens: the tests, the benchmark and the crash
 * harness all start it through here.
 */

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Node arguments that run the TypeScript sources (no build step). */
export const FROM_SOURCES: readonly string[] = ["--import", "tsx", "services/main.ts"];

export interface LarderProcessOptions {
  /** LARDER_* settings and anything else the server should see; LARDER_HOST and LARDER_PORT default to 127.0.0.1 and 0. */
  readonly env?: Record<string, string>;
  /** Node arguments that run the server, relative to the repository; default: the sources through tsx. */
  readonly command?: readonly string[];
  /** "inherit" shows the server's stderr live (the benchmark); by default it is collected with stdout. */
  readonly stderr?: "collect" | "inherit";
  /** Sees every chunk the server prints, as it arrives. */
  readonly onOutput?: (chunk: string) => void;
  /** Sees the process as soon as it exists (to kill it on an interrupt, say, even before it listens). */
  readonly onSpawn?: (child: ChildProcess) => void;
}

export interface LarderProcess {
  readonly child: ChildProcess;
  /** Resolves with the exit code (null when a signal ended it). */
  readonly exited: Promise<number | null>;
  /** Everything the server printed so far. */
  output(): string;
}

export interface ListeningLarder extends LarderProcess {
  readonly port: number;
  readonly url: string;
}

/** Starts the server process without waiting for it (for configurations it must refuse, say). */
export function spawnLarder({ env = {}, command = FROM_SOURCES, stderr = "collect", onOutput, onSpawn }: LarderProcessOptions = {}): LarderProcess {
  const child = spawn(process.execPath, [...command], {
    cwd: REPO_ROOT,
    env: { ...withoutLarderSettings(process.env), LARDER_HOST: "127.0.0.1", LARDER_PORT: "0", ...env },
    stdio: ["ignore", "pipe", stderr === "inherit" ? "inherit" : "pipe"],
  });
  onSpawn?.(child);
  let output = "";
  const collect = (chunk: string) => {
    output += chunk;
    onOutput?.(chunk);
  };
  child.stdout!.setEncoding("utf8").on("data", collect);
  child.stderr?.setEncoding("utf8").on("data", collect);
  // Registered at once, so an exit before anyone awaits it is not missed.
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  return { child, exited, output: () => output };
}

/** Starts the server process and resolves once it prints `larder listening on http://HOST:PORT`. */
export async function startLarder(options: LarderProcessOptions & { readonly startTimeoutMs?: number } = {}): Promise<ListeningLarder> {
  const started = spawnLarder(options);
  const timeoutMs = options.startTimeoutMs ?? 30_000;
  const port = await new Promise<number>((found, fail) => {
    const timer = setTimeout(() => {
      started.child.kill("SIGKILL");
      fail(new Error(`the server did not start listening within ${timeoutMs / 1000} s:\n${started.output()}`));
    }, timeoutMs);
    const check = () => {
      const port = listeningPort(started.output());
      if (port === undefined) return;
      clearTimeout(timer);
      started.child.stdout!.off("data", check);
      found(port);
    };
    started.child.stdout!.on("data", check);
    void started.exited.then((code) => {
      clearTimeout(timer);
      fail(new Error(`the server exited with code ${code} before listening:\n${started.output()}`));
    });
  });
  return { ...started, port, url: `http://127.0.0.1:${port}` };
}

/** The port from the server's start-up line, once it has printed it. */
export function listeningPort(output: string): number | undefined {
  const match = /larder listening on https?:\/\/(?:\[[^\]]+\]|[^\s:/]+):(\d+)/.exec(output);
  return match ? Number(match[1]) : undefined;
}

/** A developer's own LARDER_KEYS_FILE or LARDER_DATA_DIR must not change what a harness starts. */
function withoutLarderSettings(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !name.startsWith("LARDER_")));
}
