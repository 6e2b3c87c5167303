import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { DataService } from "../gen/larder/data/v1/data_pb.js";

/**
 * `npm run chaos`: concurrent writers record every acknowledged result, the
 * server is killed with SIGKILL at a random moment and restarted on the same
 * data directory, and the harness checks that nothing acknowledged was lost:
 * values, counters, whole batches, the change log and resume tokens.
 */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values: args } = parseArgs({
  options: {
    rounds: { type: "string" },
    quick: { type: "boolean" },
    durability: { type: "string" },
    writers: { type: "string" },
    "self-test": { type: "boolean" },
  },
});
const rounds = Number(args.rounds ?? (args.quick ? 3 : 20));
const durability = args.durability ?? "normal";
const writerCount = Number(args.writers ?? 6);
const dataDir = mkdtempSync(join(tmpdir(), "larder-chaos-"));

type DataClient = Client<typeof DataService>;
const text = (value: string) => ({ kind: { case: "stringValue" as const, value } });

interface KeyState {
  /** The value of the last acknowledged write ("" when the last acknowledged write was a remove). */
  acked?: string;
  /** A write sent but not acknowledged when the server died: its result may or may not be there. */
  inFlight?: string;
}

interface Ledger {
  keys: Map<string, KeyState>;
  counters: Map<string, { acked: number; attempted: number }>;
  batches: Map<string, "acked" | "attempted">;
  /** Keys whose acknowledged writes need an event in the change log. */
  changed: Set<string>;
  acknowledged: number;
}

async function startServer(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ["--import", "tsx", "services/main.ts"], {
    cwd: ROOT,
    env: { ...process.env, LARDER_PORT: "0", LARDER_HOST: "127.0.0.1", LARDER_DATA_DIR: dataDir, LARDER_DURABILITY: durability, LARDER_LOG_LEVEL: "error" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let output = "";
  const port = await new Promise<number>((resolvePort, reject) => {
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
      const match = /listening on http:\/\/[^:]+:(\d+)/.exec(output);
      if (match) resolvePort(Number(match[1]));
    });
    child.once("exit", (code) => reject(new Error(`server exited (${code}): ${output}`)));
  });
  return { url: `http://127.0.0.1:${port}`, child };
}

async function writer(client: DataClient, id: number, ledger: Ledger, stop: { dead: boolean }): Promise<void> {
  let n = 0;
  while (!stop.dead) {
    n++;
    const choice = n % 5;
    try {
      if (choice === 0 || choice === 1) {
        const key = `s:${id}:${n % 40}`;
        const value = `${id}-${n}-${Math.random()}`;
        const state = ledger.keys.get(key) ?? {};
        ledger.keys.set(key, { ...state, inFlight: value });
        await client.set({ key, value: text(value) });
        ledger.keys.set(key, { acked: value });
        ledger.changed.add(key);
        ledger.acknowledged++;
      } else if (choice === 2) {
        const counter = `c:${id}`;
        const entry = ledger.counters.get(counter) ?? { acked: 0, attempted: 0 };
        entry.attempted++;
        ledger.counters.set(counter, entry);
        if (n % 2) await client.add({ key: counter, attribute: "n", amount: 1 });
        else await client.set({ key: counter, value: { kind: { case: "structValue", value: { fields: { n: { kind: { case: "structValue", value: { fields: { $add: { kind: { case: "numberValue", value: 1 } } } } } } } } } } });
        entry.acked++;
        ledger.changed.add(counter);
        ledger.acknowledged++;
      } else if (choice === 3) {
        const batch = `${id}-${n}`;
        ledger.batches.set(batch, "attempted");
        await client.batchSet({
          items: Array.from({ length: 25 }, (_, i) => ({ key: `b:${batch}:${String(i).padStart(2, "0")}`, value: text(batch) })),
          overwrite: true,
        });
        ledger.batches.set(batch, "acked");
        ledger.acknowledged++;
      } else {
        const key = `s:${id}:${(n + 17) % 40}`;
        const state = ledger.keys.get(key) ?? {};
        ledger.keys.set(key, { ...state, inFlight: "" });
        await client.remove({ keys: [key] });
        ledger.keys.set(key, { acked: "" });
        ledger.acknowledged++;
      }
    } catch {
      return; // the server died under this call: its outcome stays "in flight"
    }
  }
}

async function verify(client: DataClient, ledger: Ledger, resumeToken: string | undefined): Promise<string[]> {
  const violations: string[] = [];
  for (const [key, state] of ledger.keys) {
    const item = (await client.get({ key })).item;
    const found = item ? (toJson(ValueSchema, item.value!) as string) : "";
    const allowed = [state.acked ?? "", ...(state.inFlight !== undefined ? [state.inFlight] : [])];
    if (!allowed.includes(found)) violations.push(`${key}: found ${JSON.stringify(found)}, acknowledged ${JSON.stringify(state.acked)}`);
    // What is stored now becomes the acknowledged state for the next round.
    ledger.keys.set(key, { acked: found });
  }
  for (const [counter, entry] of ledger.counters) {
    const item = (await client.get({ key: counter })).item;
    const value = item ? ((toJson(ValueSchema, item.value!) as { n?: number }).n ?? 0) : 0;
    if (value < entry.acked || value > entry.attempted) {
      violations.push(`${counter}: ${value} outside [${entry.acked} acknowledged, ${entry.attempted} attempted]`);
    }
    ledger.counters.set(counter, { acked: value, attempted: value });
  }
  for (const [batch, state] of ledger.batches) {
    const page = await client.query({ expression: `b:${batch}:*` });
    if (page.items.length !== 0 && page.items.length !== 25) violations.push(`batch ${batch}: half written (${page.items.length} of 25)`);
    if (state === "acked" && page.items.length !== 25) violations.push(`batch ${batch}: acknowledged but ${page.items.length} of 25 found`);
  }
  ledger.batches.clear();
  if (resumeToken) {
    // Every acknowledged change since the round began is in the change log, and the old token still resumes.
    const seen = new Set<string>();
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 5_000);
    try {
      for await (const message of client.watch({ resumeToken }, { signal: abort.signal })) {
        if (message.kind.case === "event") seen.add(message.kind.value.item!.key);
        if ([...ledger.changed].every((key) => seen.has(key))) break;
      }
    } catch (error) {
      if (!abort.signal.aborted) violations.push(`resume from the token taken before the crash failed: ${String(error)}`);
    }
    clearTimeout(timer);
    for (const key of ledger.changed) if (!seen.has(key)) violations.push(`${key}: acknowledged change has no event`);
  }
  ledger.changed.clear();
  return violations;
}

async function main(): Promise<void> {
  const ledger: Ledger = { keys: new Map(), counters: new Map(), batches: new Map(), changed: new Set(), acknowledged: 0 };
  const summary: { round: number; ms: number; writes: number; violations: number }[] = [];
  let failed = false;
  for (let round = 1; round <= rounds; round++) {
    let server = await startServer();
    let client = createClient(DataService, createGrpcTransport({ baseUrl: server.url }));
    let token: string | undefined;
    for await (const message of client.watch({})) {
      if (message.kind.case === "started") token = message.kind.value.resumeToken;
      break;
    }
    const stop = { dead: false };
    const before = ledger.acknowledged;
    const writers = Array.from({ length: writerCount }, (_, id) => writer(client, id, ledger, stop));
    const lifetime = 300 + Math.floor(Math.random() * 1500);
    await new Promise((resolveWait) => setTimeout(resolveWait, lifetime));
    server.child.kill("SIGKILL");
    stop.dead = true;
    await Promise.all(writers);
    await new Promise((resolveExit) => server.child.once("exit", resolveExit));
    server = await startServer();
    client = createClient(DataService, createGrpcTransport({ baseUrl: server.url }));
    if (args["self-test"]) {
      // Proves the checks can fail: lose one acknowledged value on purpose; verify must report it.
      const [victim] = [...ledger.keys].find(([, state]) => state.acked) ?? [];
      if (victim) await client.set({ key: victim, value: text("tampered"), overwrite: true });
    }
    const violations = await verify(client, ledger, token);
    server.child.kill("SIGTERM");
    await new Promise((resolveExit) => server.child.once("exit", resolveExit));
    summary.push({ round, ms: lifetime, writes: ledger.acknowledged - before, violations: violations.length });
    for (const violation of violations) console.error(`round ${round}: ${violation}`);
    if (violations.length > 0) failed = true;
  }
  console.log(`\nchaos: ${rounds} rounds, ${writerCount} writers, durability ${durability}\n`);
  console.log("| round | killed after ms | acknowledged writes | violations |\n|---:|---:|---:|---:|");
  for (const row of summary) console.log(`| ${row.round} | ${row.ms} | ${row.writes} | ${row.violations} |`);
  if (args["self-test"]) console.log("\n(self-test: one acknowledged value was overwritten on purpose; the check must report it)");
  else console.log(failed ? "\nFAILED: acknowledged writes were lost or torn" : "\nOK: every acknowledged write survived SIGKILL");
  rmSync(dataDir, { recursive: true, force: true });
  if (args["self-test"]) {
    console.log(failed ? "self-test OK: the tampered value was reported" : "self-test FAILED: tampering went unnoticed");
    process.exit(failed ? 0 : 1);
  }
  process.exit(failed ? 1 : 0);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(2);
});
