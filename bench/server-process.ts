import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FROM_SOURCES, REPO_ROOT as ROOT, startLarder } from "../scripts/larder-process.js";
import { memoryMiB } from "./proc.js";

export { ROOT };

export interface BenchServerOptions {
  /** Extra environment (LARDER_ENGINE=mongodb, MONGODB_URI, ...). */
  readonly env?: Record<string, string>;
  /** Write a V8 CPU profile of the server to this directory when it stops. */
  readonly cpuProfileDir?: string;
  /**
   * "auto": dist/ when it is newer than every source file, else the sources
   * transpiled by esbuild (file for file, so profiles keep file names);
   * "tsx": the sources through tsx's loader (a loader thread of its own).
   */
  readonly build?: ServerBuild;
}

export type ServerBuild = "auto" | "dist" | "esbuild" | "tsx";

export interface BenchServer {
  readonly url: string;
  readonly pid: number;
  /** How the server was started: `dist` (built JS), `esbuild` (sources transpiled for this run) or `tsx`. */
  readonly runs: "dist" | "esbuild" | "tsx";
  readonly engine: string;
  memory(): { rss: number; peak: number };
  stop(): Promise<void>;
}

/**
 * The Larder server in a process of its own, listening on an OS-chosen
 * loopback port, with a fresh data directory (or a fresh MongoDB database
 * prefix) that is removed when it stops. Ready once it prints its
 * `larder listening on http://HOST:PORT` line.
 */
export async function startBenchServer(options: BenchServerOptions = {}): Promise<BenchServer> {
  const runs = chooseBuild(options.build ?? "auto");
  const transpiled = runs === "esbuild" ? await transpile() : undefined;
  const entry = runs === "dist" ? [join(ROOT, "dist/services/main.js")] : transpiled ? [join(transpiled, "services/main.js")] : FROM_SOURCES;
  const profile = options.cpuProfileDir ? ["--cpu-prof", `--cpu-prof-dir=${options.cpuProfileDir}`] : [];
  if (options.cpuProfileDir) mkdirSync(options.cpuProfileDir, { recursive: true });
  const dataDir = mkdtempSync(join(tmpdir(), "larder-bench-"));
  const env: Record<string, string> = {
    LARDER_ENGINE: "embedded",
    LARDER_DATA_DIR: dataDir,
    LARDER_LOG_LEVEL: "warn",
    LARDER_SHUTDOWN_GRACE_MS: "2000",
    // One fresh database per run when the engine is MongoDB.
    LARDER_MONGODB_DB_PREFIX: `larder_bench_${process.pid}_${Date.now()}_`,
    ...options.env,
  };
  const { child, exited, url } = await startLarder({ command: [...profile, ...entry], env, stderr: "inherit" }).catch((error: unknown) => {
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  });
  return {
    url,
    pid: child.pid!,
    runs,
    engine: env.LARDER_ENGINE,
    memory: () => memoryMiB(child.pid!),
    async stop() {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(killer);
      rmSync(dataDir, { recursive: true, force: true });
      if (transpiled) rmSync(transpiled, { recursive: true, force: true });
      if (env.LARDER_ENGINE === "mongodb" && env.MONGODB_URI) await dropMongoDatabases(env.MONGODB_URI, env.LARDER_MONGODB_DB_PREFIX);
    },
  };
}

/** The built server is used only when it is newer than every source it was built from. */
function chooseBuild(build: ServerBuild): "dist" | "esbuild" | "tsx" {
  const entry = join(ROOT, "dist/services/main.js");
  if (build !== "auto") {
    if (build === "dist" && !existsSync(entry)) throw new Error("--server dist needs `npm run build` first");
    return build;
  }
  if (!existsSync(entry)) return "esbuild";
  const built = statSync(entry).mtimeMs;
  const newest = Math.max(...sources().map((file) => statSync(file).mtimeMs));
  return newest > built ? "esbuild" : "dist";
}

function sources(directory = ROOT, top = ["core", "services", "gen"]): string[] {
  const files: string[] = [];
  for (const name of top) {
    const walk = (path: string) => {
      for (const entry of readdirSync(path, { withFileTypes: true })) {
        const child = join(path, entry.name);
        if (entry.isDirectory()) walk(child);
        else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) files.push(child);
      }
    };
    walk(join(directory, name));
  }
  return files;
}

/**
 * Transpiles core/, services/ and gen/ file for file (no bundling, no type check:
 * a second or so) under node_modules/.cache, where the server's imports of
 * packages resolve to the project's node_modules. Returns the directory.
 */
async function transpile(): Promise<string> {
  const { build } = await import("esbuild");
  // One directory per run: two runs at once (or a checkout sharing node_modules) never share files.
  const outdir = join(ROOT, `node_modules/.cache/larder-bench/${process.pid}`);
  rmSync(outdir, { recursive: true, force: true });
  await build({
    entryPoints: sources(),
    outdir,
    outbase: ROOT,
    format: "esm",
    platform: "node",
    target: "node20",
    sourcemap: false,
    logLevel: "error",
  });
  // Package scopes end at node_modules: say again that these files are ES modules.
  writeFileSync(join(outdir, "package.json"), '{ "type": "module" }\n');
  return outdir;
}

async function dropMongoDatabases(uri: string, prefix: string): Promise<void> {
  const { MongoClient } = await import("mongodb");
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 5_000 });
  try {
    const { databases } = await client.db().admin().listDatabases({ nameOnly: true, authorizedDatabases: true });
    for (const { name } of databases) if (name.startsWith(prefix)) await client.db(name).dropDatabase();
  } catch (error) {
    console.error(`bench: could not drop the bench databases ${prefix}*: ${(error as Error).message}`);
  } finally {
    await client.close();
  }
}
