import type { ChildProcess } from "node:child_process";
import { toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { AdminService, type ExportedItem } from "../gen/larder/admin/v1/admin_pb.js";
import { DataService } from "../gen/larder/data/v1/data_pb.js";
import { startLarder } from "../scripts/larder-process.js";

/**
 * Bulk rounds (issue 16): a seed with overwrite, an ImportEnvironment with
 * overwrite or a CloneEnvironment replaces environment `default` with a new
 * generation of items, and the server is SIGKILLed at a random moment of it.
 * After the restart `default` must hold one generation, whole: the old one
 * (every old item, nothing new) or the new one (every new item, nothing
 * old); the new one whenever the call was acknowledged before the kill. Its
 * change log must hold none of the replace's events or all of them: a
 * `deleted` for each old item, then a `created` for each new one.
 */

export type BulkKind = "seed" | "import" | "clone";

export interface BulkRound {
  readonly round: number;
  readonly kind: BulkKind;
  readonly killedAfterMs: number;
  /** Whether the call was answered before the kill. */
  readonly acknowledged: boolean;
  /** The generation found after the restart: the old one or the new one. */
  readonly landed: "old" | "new" | "neither";
  readonly violations: string[];
}

export interface BulkOptions {
  readonly dataDir: string;
  readonly durability: string;
  readonly rounds: number;
  /** Items per generation, and the size of each item's filler text. */
  readonly items: number;
  readonly itemBytes: number;
  readonly killWindowMs: readonly [number, number];
  readonly onSpawn: (child: ChildProcess) => void;
}

const ENVIRONMENT = "default";
const SOURCE = "bulk-source";

interface Generation {
  readonly gen: number;
  readonly count: number;
}

const key = (i: number) => `bulk:${String(i).padStart(6, "0")}`;

function items(generation: Generation, itemBytes: number) {
  const filler = "x".repeat(itemBytes);
  return Array.from({ length: generation.count }, (_, i) => ({
    key: key(i),
    value: {
      kind: {
        case: "structValue" as const,
        value: {
          fields: {
            gen: { kind: { case: "numberValue" as const, value: generation.gen } },
            filler: { kind: { case: "stringValue" as const, value: filler } },
          },
        },
      },
    },
  }));
}

async function start(options: BulkOptions) {
  const server = await startLarder({
    env: { LARDER_ENGINE: "embedded", LARDER_DATA_DIR: options.dataDir, LARDER_DURABILITY: options.durability, LARDER_LOG_LEVEL: "error" },
    onSpawn: options.onSpawn,
  });
  const sessionManager = new Http2SessionManager(server.url);
  const transport = createGrpcTransport({ baseUrl: server.url, sessionManager });
  return {
    server,
    data: createClient(DataService, transport),
    admin: createClient(AdminService, transport),
    close: () => sessionManager.abort(),
  };
}

async function head(data: Client<typeof DataService>): Promise<string> {
  for await (const message of data.watch({})) if (message.kind.case === "started") return message.kind.value.resumeToken;
  throw new Error("Watch ended before 'started'");
}

const sequenceOf = (token: string) => Number(/\.(\d+)$/.exec(token)![1]);

/** The events after `from` up to `to`, as (name, key) pairs. */
async function eventsBetween(data: Client<typeof DataService>, from: string, to: string): Promise<[string, string][]> {
  const events: [string, string][] = [];
  const end = sequenceOf(to);
  if (end <= sequenceOf(from)) return events;
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 60_000);
  try {
    for await (const message of data.watch({ resumeToken: from }, { signal: abort.signal })) {
      if (message.kind.case !== "event") continue;
      events.push([message.kind.value.name, message.kind.value.item?.key ?? ""]);
      if (sequenceOf(message.kind.value.resumeToken) >= end) break;
    }
  } finally {
    clearTimeout(timer);
  }
  return events;
}

async function generationsFound(admin: Client<typeof AdminService>): Promise<Map<number, number>> {
  const found = new Map<number, number>();
  const exported: ExportedItem[] = [];
  for await (const chunk of admin.exportEnvironment({ name: ENVIRONMENT })) exported.push(...chunk.items);
  for (const item of exported) {
    const gen = (item.value ? (toJson(ValueSchema, item.value) as { gen?: number }) : {}).gen ?? -1;
    found.set(gen, (found.get(gen) ?? 0) + 1);
  }
  return found;
}

export async function runBulkRounds(options: BulkOptions, log: (line: string) => void): Promise<BulkRound[]> {
  const kinds: BulkKind[] = ["seed", "import", "clone"];
  const results: BulkRound[] = [];
  let old: Generation = { gen: 0, count: 0 };
  for (let round = 1; round <= options.rounds; round++) {
    const kind = kinds[(round - 1) % kinds.length];
    // Each generation has a different size, so a mix of two would also show in the counts.
    const next: Generation = { gen: round, count: options.items - (round % 3) * 7 };
    const violations: string[] = [];
    let { server, data, admin, close } = await start(options);
    if (kind === "clone") await admin.importEnvironment({ name: SOURCE, items: items(next, options.itemBytes), overwrite: true, skipEvents: true });
    const before = await head(data);
    const killedAfterMs = options.killWindowMs[0] + Math.floor(Math.random() * (options.killWindowMs[1] - options.killWindowMs[0]));
    let acknowledged = false;
    let failure: string | undefined;
    let killed = false;
    const call =
      kind === "seed"
        ? data.seed({ items: items(next, options.itemBytes), overwrite: true })
        : kind === "import"
          ? admin.importEnvironment({ name: ENVIRONMENT, items: items(next, options.itemBytes), overwrite: true })
          : admin.cloneEnvironment({ source: SOURCE, target: ENVIRONMENT });
    const settled = call.then(
      () => void (acknowledged = !killed),
      (error: unknown) => void (killed || (failure = ConnectError.from(error).message)),
    );
    await new Promise((wake) => setTimeout(wake, killedAfterMs));
    killed = true;
    server.child.kill("SIGKILL");
    await server.exited;
    await settled;
    close();
    if (failure) violations.push(`the ${kind} failed while the server was up: ${failure}`);

    ({ server, data, admin, close } = await start(options));
    const found = await generationsFound(admin);
    const after = await head(data);
    const events = await eventsBetween(data, before, after);
    let landed: BulkRound["landed"] = "neither";
    const only = (generation: Generation) =>
      generation.count === 0 ? found.size === 0 : found.size === 1 && found.get(generation.gen) === generation.count;
    if (only(next)) landed = "new";
    else if (only(old)) landed = "old";
    if (landed === "neither") {
      violations.push(
        `${kind}: found ${JSON.stringify([...found])} (generation: items), neither all of ${JSON.stringify(old)} nor all of ${JSON.stringify(next)}`,
      );
    }
    if (acknowledged && landed !== "new") violations.push(`${kind}: acknowledged before the kill, yet the new generation did not land`);
    const expected: [string, string][] =
      landed === "new"
        ? [
            ...Array.from({ length: old.count }, (_, i): [string, string] => ["deleted", key(i)]),
            ...Array.from({ length: next.count }, (_, i): [string, string] => ["created", key(i)]),
          ]
        : [];
    if (JSON.stringify(events) !== JSON.stringify(expected)) {
      violations.push(`${kind}: ${events.length} events after the kill, expected ${expected.length} (every deleted, then every created, or none)`);
    }
    if (landed === "new") old = next;
    close();
    server.child.kill("SIGTERM");
    await server.exited;
    results.push({ round, kind, killedAfterMs, acknowledged, landed, violations });
    for (const violation of violations) log(`bulk round ${round}: ${violation}`);
    log(
      `bulk round ${round}/${options.rounds}: ${kind} of ${next.count} items, killed after ${killedAfterMs} ms, ${acknowledged ? "acknowledged" : "not acknowledged"}, ${landed} content found, ${violations.length} violation(s)`,
    );
  }
  return results;
}
