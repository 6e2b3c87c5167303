import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { DataService, type ChangeEvent } from "../gen/larder/data/v1/data_pb.js";
import { startLarder } from "../scripts/larder-process.js";
import { runBulkRounds, type BulkRound } from "./bulk.js";
import {
  BATCH_SIZE,
  batchKey,
  check,
  checkDelivered,
  counterKey,
  emptyBaseline,
  plainKey,
  RoundLedger,
  type Baseline,
  type Found,
  type LogEvent,
} from "./ledger.js";

/**
 * `npm run chaos [-- --rounds N | --quick] [--durability full] [--writers N] [--seed S] [--self-test]`
 *
 * Each round: start the server (embedded engine) on one data directory kept for
 * the whole run; start Watch subscribers; run concurrent writers (sets with
 * unique values, removes, counters through Add and through Set's `{$add: 1}`,
 * batch sets of 25 that overwrite the writer's 25 batch keys with a new batch
 * id); SIGKILL the server at a random moment; restart it on the same data and
 * check every promise (see ledger.ts): acknowledged values, counter bounds,
 * whole batches, exactly one event per applied change, events delivered before
 * the kill still in the log, resume tokens taken before the kill resuming right
 * after their event, and the first token of the run still resuming.
 *
 * Then `--bulk-rounds N` rounds (default 3 with --quick, 6 otherwise; none
 * with --self-test) kill the server in the middle of a seed with overwrite,
 * an import or a clone that replaces a whole environment, on a data directory
 * of their own, and check that the old content or the new one is found,
 * whole, with all of the replace's events or none (see bulk.ts).
 */
const { values: args } = parseArgs({
  options: {
    rounds: { type: "string" },
    quick: { type: "boolean" },
    durability: { type: "string" },
    writers: { type: "string" },
    seed: { type: "string" },
    "budget-seconds": { type: "string" },
    "self-test": { type: "boolean" },
    keep: { type: "boolean" },
    "bulk-rounds": { type: "string" },
  },
});
const quick = args.quick ?? false;
const selfTest = args["self-test"] ?? false;
const rounds = Number(args.rounds ?? (selfTest ? 1 : quick ? 3 : 20));
const durability = args.durability ?? "normal";
const writerCount = Number(args.writers ?? 12);
const seed = Number(args.seed ?? Math.floor(Math.random() * 2 ** 31));
/** Quick mode must fit CI: the run fails if it takes longer than this. */
const budgetSeconds = Number(args["budget-seconds"] ?? (quick || selfTest ? 85 : 0));
const SLOTS = 16;
const WATCHERS = 2;
const LIFETIME_MS: [number, number] = quick ? [300, 1500] : [300, 3000];
const bulkRounds = Number(args["bulk-rounds"] ?? (selfTest ? 0 : quick ? 3 : 6));
const dataDir = mkdtempSync(join(tmpdir(), "larder-chaos-"));
if (!["normal", "full"].includes(durability) || !(rounds >= 1) || !(writerCount >= 1) || !(bulkRounds >= 0)) {
  console.error(
    "usage: chaos/run.ts [--rounds N | --quick] [--bulk-rounds N] [--durability normal|full] [--writers N] [--seed S] [--budget-seconds S] [--self-test] [--keep]",
  );
  process.exit(2);
}

/** mulberry32: the writers' choices are reproducible from --seed (the kill's timing is not). */
function random(state: number): () => number {
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rng = random(seed);

type DataClient = Client<typeof DataService>;
const text = (value: string) => ({ kind: { case: "stringValue" as const, value } });
const number = (value: number) => ({ kind: { case: "numberValue" as const, value } });

interface Server {
  readonly url: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  /** Error-level lines the server logged (an INTERNAL error, a crash). */
  readonly errors: string[];
}

const children = new Set<ChildProcess>();
process.on("exit", () => children.forEach((child) => child.kill("SIGKILL")));
// Interrupted (Ctrl-C, a CI timeout): no server or data directory is left behind the harness.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(signal, () => {
    const exits = [...children].map((child) => new Promise((done) => child.once("exit", done)));
    children.forEach((child) => child.kill("SIGKILL"));
    // Remove the data only once no server can write to it any more.
    void Promise.race([Promise.all(exits), new Promise((done) => setTimeout(done, 2_000))]).then(() => {
      if (!args.keep) rmSync(dataDir, { recursive: true, force: true });
      process.exit(130);
    });
  });
}

async function startServer(dataDir: string): Promise<Server> {
  const errors: string[] = [];
  const server = await startLarder({
    env: { LARDER_ENGINE: "embedded", LARDER_DATA_DIR: dataDir, LARDER_DURABILITY: durability, LARDER_LOG_LEVEL: "error" },
    onOutput: (chunk) => {
      for (const line of chunk.split("\n")) if (/"level":(50|60)|Error/.test(line)) errors.push(line.slice(0, 500));
    },
    // Known from the start, so an interrupt while it starts still kills it before its data is removed.
    onSpawn: (child) => {
      children.add(child);
      child.once("exit", () => children.delete(child));
    },
  });
  return { url: server.url, child: server.child, exited: server.exited, errors };
}

/** A client on its own HTTP/2 connection, which `close` ends (so a graceful stop has nothing to wait for). */
function connect(url: string): { client: DataClient; close: () => void } {
  const sessionManager = new Http2SessionManager(url);
  return {
    client: createClient(DataService, createGrpcTransport({ baseUrl: url, sessionManager })),
    close: () => sessionManager.abort(),
  };
}

function toLogEvent(event: ChangeEvent): LogEvent {
  return {
    seq: tokenSequence(event.resumeToken),
    token: event.resumeToken,
    name: event.name,
    key: event.item?.key ?? "",
    value: event.item?.value ? toJson(ValueSchema, event.item.value) : undefined,
  };
}

/** The embedded engine's change sequence: the last part of `2.<incarnation>.<sequence>`. */
function tokenSequence(token: string): number {
  const match = /^2\.\d+\.(\d+)$/.exec(token);
  if (!match) throw new Error(`unexpected resume token form: ${token}`);
  return Number(match[1]);
}

interface RunState {
  killed: boolean;
}

async function writer(id: number, client: DataClient, ledger: RoundLedger, state: RunState, round: number): Promise<number> {
  let n = 0;
  while (!state.killed) {
    n++;
    const tag = `${round}.${id}.${n}`;
    const pick = rng();
    let what = "";
    try {
      if (pick < 0.35) {
        const key = plainKey(id, Math.floor(rng() * SLOTS));
        what = `Set ${key}`;
        const write = ledger.begin(key, { kind: "set", value: tag });
        await client.set({ key, value: text(tag), overwrite: rng() < 0.5 });
        write.outcome = "acked";
      } else if (pick < 0.5) {
        const key = plainKey(id, Math.floor(rng() * SLOTS));
        what = `Remove ${key}`;
        const write = ledger.begin(key, { kind: "remove" });
        await client.remove({ keys: [key] });
        write.outcome = "acked";
      } else if (pick < 0.75) {
        const key = counterKey(id);
        const viaAdd = rng() < 0.5;
        what = viaAdd ? `Add ${key}` : `Set ${key} {n: {$add: 1}}`;
        const acknowledge = ledger.beginAdd(key);
        if (viaAdd) await client.add({ key, attribute: "n", amount: 1 });
        else
          await client.set({
            key,
            value: {
              kind: { case: "structValue", value: { fields: { n: { kind: { case: "structValue", value: { fields: { $add: number(1) } } } } } } },
            },
          });
        acknowledge();
      } else {
        what = `BatchSet ${tag}`;
        const batch = ledger.beginBatch(id, tag);
        await client.batchSet({
          items: Array.from({ length: BATCH_SIZE }, (_, i) => ({
            key: batchKey(id, i),
            value: { kind: { case: "structValue" as const, value: { fields: { batch: text(tag), i: number(i) } } } },
          })),
          overwrite: true,
        });
        batch.outcome = "acked";
      }
    } catch (error) {
      // After the kill every call fails: its outcome stays unresolved. Before it, none may.
      if (!state.killed) ledger.unexpected.push(`writer ${id}: ${what} failed while the server was up: ${ConnectError.from(error).message}`);
      return n - 1;
    }
  }
  return n;
}

/** A subscriber from `token` that records every event it is given, until the server dies. */
async function subscribe(
  client: DataClient,
  token: string,
  sink: LogEvent[],
  state: RunState,
  problems: string[],
  name: string,
): Promise<() => Promise<void>> {
  const stream = client.watch({ resumeToken: token })[Symbol.asyncIterator]();
  const first = await stream.next();
  if (first.value?.kind.case !== "started") throw new Error(`${name}: the first Watch message was not 'started'`);
  const done = (async () => {
    try {
      for (let next = await stream.next(); !next.done; next = await stream.next()) {
        if (next.value.kind.case === "event") sink.push(toLogEvent(next.value.kind.value));
      }
      if (!state.killed) problems.push(`${name}: the Watch stream ended while the server was up`);
    } catch (error) {
      if (!state.killed) problems.push(`${name}: the Watch stream failed while the server was up: ${ConnectError.from(error).message}`);
    }
  })();
  return () => done;
}

async function headToken(client: DataClient): Promise<string> {
  for await (const message of client.watch({})) {
    if (message.kind.case === "started") return message.kind.value.resumeToken;
  }
  throw new Error("Watch ended before 'started'");
}

/** Every event after `from` up to the log's head, read through Watch. */
async function readLog(client: DataClient, from: string, head: string, timeoutMs = 20_000): Promise<LogEvent[]> {
  const events: LogEvent[] = [];
  const end = tokenSequence(head);
  if (end <= tokenSequence(from)) return events;
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    for await (const message of client.watch({ resumeToken: from }, { signal: abort.signal })) {
      if (message.kind.case !== "event") continue;
      const event = toLogEvent(message.kind.value);
      events.push(event);
      if (event.seq >= end) break;
    }
  } catch (error) {
    if (abort.signal.aborted)
      throw new Error(`reading the change log from ${from} to ${head} timed out after ${events.length} events`, { cause: error });
    throw error;
  } finally {
    clearTimeout(timer);
  }
  return events;
}

/** Resuming from a token taken before the kill gives the event right after it first. */
async function firstAfter(client: DataClient, token: string, waitMs: number): Promise<{ started?: string; first?: LogEvent; error?: string }> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), waitMs);
  let started: string | undefined;
  try {
    for await (const message of client.watch({ resumeToken: token }, { signal: abort.signal })) {
      if (message.kind.case === "started") started = message.kind.value.resumeToken;
      else if (message.kind.case === "event") return { started, first: toLogEvent(message.kind.value) };
    }
    return { started };
  } catch (error) {
    if (abort.signal.aborted) return { started };
    return { started, error: `${Code[ConnectError.from(error).code]}: ${ConnectError.from(error).rawMessage}` };
  } finally {
    clearTimeout(timer);
  }
}

async function queryAll(client: DataClient, expression: string): Promise<Map<string, unknown>> {
  const found = new Map<string, unknown>();
  let start = "";
  for (;;) {
    const page = await client.query({ expression, limit: 1000, start });
    for (const item of page.items) found.set(item.key, item.value ? toJson(ValueSchema, item.value) : undefined);
    if (!page.lastKey) return found;
    start = page.lastKey;
  }
}

async function readFound(client: DataClient, ledger: RoundLedger): Promise<Found> {
  const plain = await queryAll(client, "s:*");
  const batches = await queryAll(client, "b:*");
  const found: Found = { values: new Map(), counters: new Map(), batches: new Map() };
  for (const key of ledger.writes.keys()) {
    const value = plain.get(key);
    found.values.set(key, value === undefined ? undefined : String(value));
  }
  for (const key of ledger.counters.keys()) {
    const item = (await client.get({ key })).item;
    const value = item?.value ? (toJson(ValueSchema, item.value) as { n?: number }) : undefined;
    found.counters.set(key, value?.n);
  }
  for (const writer of ledger.batches.keys()) {
    found.batches.set(
      writer,
      Array.from({ length: BATCH_SIZE }, (_, i) => (batches.get(batchKey(writer, i)) as { batch?: string } | undefined)?.batch),
    );
  }
  return found;
}

/** --self-test: damage the data behind the server's back; each damage must be reported. */
async function tamper(dataDir: string, ledger: RoundLedger, delivered: readonly LogEvent[]): Promise<string[]> {
  const { default: Database } = await import("better-sqlite3");
  const db = new Database(join(dataDir, "default.sqlite"));
  const targets: string[] = [];
  const settled = [...ledger.writes].filter(([, writes]) => writes.every((write) => write.outcome === "acked"));
  const valueVictim = settled.find(([, writes]) => writes[writes.length - 1].kind === "set")?.[0];
  if (valueVictim) {
    db.prepare("UPDATE items SET value = ? WHERE ns = 's' AND part = ?").run(JSON.stringify("tampered"), valueVictim.slice(2));
    targets.push(valueVictim);
  }
  const eventVictim = delivered.find(
    (event) => event.key.startsWith("s:") && event.key !== valueVictim && settled.some(([key]) => key === event.key),
  );
  if (eventVictim) {
    db.prepare("DELETE FROM changes WHERE seq = ?").run(eventVictim.seq);
    targets.push(eventVictim.key);
  }
  const batchVictim = [...ledger.batches].find(([, batches]) => batches.some((batch) => batch.outcome === "acked"))?.[0];
  if (batchVictim !== undefined) {
    db.prepare("DELETE FROM items WHERE ns = 'b' AND part = ?").run(batchKey(batchVictim, 7).slice(2));
    targets.push(`writer ${batchVictim}`);
  }
  const counterVictim = [...ledger.counters.keys()][0];
  if (counterVictim) {
    db.prepare("UPDATE items SET value = ? WHERE ns = 'c' AND part = ?").run(JSON.stringify({ n: 1e9 }), counterVictim.slice(2));
    targets.push(counterVictim);
  }
  db.close();
  return targets;
}

interface Row {
  round: number;
  lifetimeMs: number;
  acknowledged: number;
  inFlight: number;
  delivered: number;
  eventsChecked: number;
  tokensResumed: number;
  violations: number;
}

async function main(): Promise<void> {
  const began = Date.now();
  if (budgetSeconds > 0) {
    setTimeout(() => {
      console.error(`FAILED: chaos did not finish within its budget of ${budgetSeconds} s`);
      process.exit(1);
    }, budgetSeconds * 1000).unref();
  }
  if (selfTest)
    console.log("self-test: the data directory is damaged on purpose between the kill and the restart; the violations reported below are intended");
  console.log(`chaos: ${rounds} round(s), ${writerCount} writers, ${WATCHERS} subscribers, durability ${durability}, seed ${seed}, data ${dataDir}`);
  let baseline: Baseline = emptyBaseline();
  let firstToken: string | undefined;
  let firstEvent: LogEvent | undefined;
  const rows: Row[] = [];
  const all: string[] = [];
  let selfTestTargets: string[] = [];

  for (let round = 1; round <= rounds; round++) {
    const violations: string[] = [];
    const ledger = new RoundLedger();
    const state: RunState = { killed: false };

    // 1. Up, subscribed, writing.
    let server = await startServer(dataDir);
    const control = connect(server.url);
    const roundStart = await headToken(control.client);
    firstToken ??= roundStart;
    const delivered: LogEvent[][] = Array.from({ length: WATCHERS }, () => []);
    const watchers = await Promise.all(
      delivered.map((sink, i) => subscribe(connect(server.url).client, roundStart, sink, state, violations, `subscriber ${i + 1}`)),
    );
    const connections = Array.from({ length: Math.min(4, writerCount) }, () => connect(server.url));
    const writers = Array.from({ length: writerCount }, (_, id) => writer(id, connections[id % connections.length].client, ledger, state, round));

    // 2. SIGKILL at a random moment.
    const lifetimeMs = LIFETIME_MS[0] + Math.floor(Math.random() * (LIFETIME_MS[1] - LIFETIME_MS[0]));
    await new Promise((wake) => setTimeout(wake, lifetimeMs));
    state.killed = true;
    server.child.kill("SIGKILL");
    await server.exited;
    await Promise.all(writers);
    await Promise.all(watchers.map((finished) => finished()));
    violations.push(...server.errors.map((line) => `the server logged an error before the kill: ${line}`));
    const inFlight = ledger.inFlight();
    const recorded = delivered.flatMap((events) => events);
    // Tokens taken before the kill: the last each subscriber saw, and a few at random.
    const picked = [
      ...delivered.map((events) => events.at(-1)),
      ...Array.from({ length: 3 }, () => recorded[Math.floor(Math.random() * recorded.length)]),
    ];
    const tokens = [...new Map(picked.filter((event) => event !== undefined).map((event) => [event.token, event])).values()];

    if (selfTest) selfTestTargets = await tamper(dataDir, ledger, recorded);

    // 3. Restarted on the same data: check everything.
    server = await startServer(dataDir);
    const { client, close } = connect(server.url);
    const head = await headToken(client);
    const log = await readLog(client, roundStart, head);
    const found = await readFound(client, ledger);
    const outcome = check(baseline, ledger, found, log);
    violations.push(...outcome.violations);
    delivered.forEach((events, i) => violations.push(...checkDelivered(`subscriber ${i + 1}`, events, log)));
    let tokensResumed = 0;
    for (const token of tokens) {
      const at = log.findIndex((event) => event.token === token.token);
      const expected = at >= 0 ? log[at + 1] : undefined;
      // At the head nothing follows: a short wait shows that no phantom event does.
      const resumed = await firstAfter(client, token.token, expected ? 5_000 : 300);
      if (resumed.error) violations.push(`resume token ${token.token} taken before the kill is refused: ${resumed.error}`);
      else if (resumed.started !== token.token) violations.push(`resume token ${token.token}: Watch started at ${resumed.started}`);
      else if (expected && resumed.first?.token !== expected.token) {
        violations.push(`resume token ${token.token}: first event ${resumed.first?.token ?? "none"}, expected ${expected.token}`);
      } else if (!expected && resumed.first)
        violations.push(`resume token ${token.token} is the last in the log, yet ${resumed.first.token} followed`);
      else tokensResumed++;
    }
    // The first position of the whole run still resumes, at the first change ever made.
    firstEvent ??= log[0];
    if (firstToken && firstEvent) {
      const resumed = await firstAfter(client, firstToken, 5_000);
      if (resumed.error || resumed.first?.token !== firstEvent.token) {
        violations.push(
          `the run's first token ${firstToken} no longer resumes at ${firstEvent.token}: ${resumed.error ?? resumed.first?.token ?? "no event"}`,
        );
      } else tokensResumed++;
    }
    baseline = outcome.next;
    violations.push(...server.errors.map((line) => `the server logged an error after the restart: ${line}`));
    close();
    control.close();
    connections.forEach((connection) => connection.close());
    server.child.kill("SIGTERM");
    const code = await Promise.race([server.exited, new Promise<string>((wake) => setTimeout(() => wake("timeout"), 20_000))]);
    if (code !== 0) {
      violations.push(`the restarted server did not exit 0 on SIGTERM (${code})`);
      server.child.kill("SIGKILL");
      await server.exited;
    }

    rows.push({
      round,
      lifetimeMs,
      acknowledged: ledger.acknowledged(),
      inFlight,
      delivered: recorded.length,
      eventsChecked: outcome.eventsChecked,
      tokensResumed,
      violations: violations.length,
    });
    for (const violation of violations) console.error(`round ${round}: ${violation}`);
    all.push(...violations);
    console.log(
      `round ${round}/${rounds}: killed after ${lifetimeMs} ms, ${ledger.acknowledged()} acknowledged, ${inFlight} in flight, ${outcome.eventsChecked} events checked, ${violations.length} violation(s)`,
    );
  }

  console.log(
    `\nchaos: ${rounds} round(s), ${writerCount} writers, durability ${durability}, seed ${seed}, ${Math.round((Date.now() - began) / 1000)} s\n`,
  );
  console.log(
    "| round | killed after ms | acknowledged writes | unresolved at kill | events delivered before kill | log events checked | tokens resumed | violations |",
  );
  console.log("|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const row of rows) {
    console.log(
      `| ${row.round} | ${row.lifetimeMs} | ${row.acknowledged} | ${row.inFlight} | ${row.delivered} | ${row.eventsChecked} | ${row.tokensResumed} | ${row.violations} |`,
    );
  }
  const total = (field: keyof Row) => rows.reduce((sum, row) => sum + row[field], 0);
  console.log(
    `| total | | ${total("acknowledged")} | ${total("inFlight")} | ${total("delivered")} | ${total("eventsChecked")} | ${total("tokensResumed")} | ${total("violations")} |`,
  );

  let bulk: BulkRound[] = [];
  if (bulkRounds > 0) {
    console.log("");
    bulk = await runBulkRounds(
      {
        dataDir: join(dataDir, "bulk"),
        durability,
        rounds: bulkRounds,
        items: 4_000,
        itemBytes: 1_000,
        killWindowMs: [20, 900],
        onSpawn: (child) => {
          children.add(child);
          child.once("exit", () => children.delete(child));
        },
      },
      (line) => console.log(line),
    );
    for (const round of bulk) all.push(...round.violations);
    const landed = (which: BulkRound["landed"]) => bulk.filter((round) => round.landed === which).length;
    console.log(
      `bulk: ${bulk.length} round(s): ${landed("new")} found the new content, ${landed("old")} the old one (killed before the swap), ${landed("neither")} a mix`,
    );
  }
  if (!args.keep) rmSync(dataDir, { recursive: true, force: true });

  if (selfTest) {
    const missed = selfTestTargets.filter((target) => !all.some((violation) => violation.includes(target)));
    if (selfTestTargets.length < 4 || missed.length > 0) {
      console.error(`\nself-test FAILED: damaged ${JSON.stringify(selfTestTargets)}, unreported ${JSON.stringify(missed)}`);
      process.exit(1);
    }
    console.log(`\nself-test OK: all ${selfTestTargets.length} damages were reported (${selfTestTargets.join(", ")})`);
    process.exit(0);
  }
  const acknowledged = total("acknowledged");
  if (acknowledged === 0) {
    console.error("\nFAILED: no write was acknowledged, so nothing was tested");
    process.exit(1);
  }
  console.log(
    all.length > 0
      ? `\nFAILED: ${all.length} violation(s)`
      : `\nOK: all ${acknowledged} acknowledged writes and their events survived ${rounds} SIGKILL(s)`,
  );
  process.exit(all.length > 0 ? 1 : 0);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(2);
});
