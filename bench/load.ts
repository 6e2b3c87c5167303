import { setMaxListeners } from "node:events";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema, type Value } from "@bufbuild/protobuf/wkt";
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { DataService } from "../gen/larder/data/v1/data_pb.js";
import {
  ITEMS,
  itemKey,
  labelOf,
  LABELS_PER_ITEM_GROUP,
  PEER_ITEMS,
  peerItemKey,
  REMOVABLE,
  type ClientName,
  type Protocol,
  type Reply,
  type Task,
} from "./messages.js";
import { createData } from "../client/index.js";
import { peerData } from "./peer.js";
import { Samples } from "./stats.js";

/**
 * A load worker: a process of its own (bench/run.ts forks it), so the
 * server's event loop never shares a thread with the client's. It does what
 * the runner asks over IPC, one task at a time, and answers with raw samples
 * that the runner merges across workers.
 */

type Data = Client<typeof DataService>;
interface Lane {
  readonly worker: number;
  readonly workers: number;
  /** Calls made by this worker for this operation so far (all cells, warm-up included). */
  readonly n: number;
  /** Items `bench:k…` stored. */
  readonly stored: number;
}
/** One call; resolves to false when it found nothing to act on (remove of a key already gone). */
type Operation = (client: Data, lane: Lane) => Promise<unknown>;

const CALL_TIMEOUT_MS = 30_000;
const typical = (i: number): JsonValue => ({
  name: `user ${i}`,
  email: `user${i}@example.com`,
  age: 20 + (i % 50),
  active: i % 2 === 0,
  tags: ["alpha", "beta"],
  text: "some text of a typical item",
});
const TYPICAL: Value = fromJson(ValueSchema, typical(1));
const pick = (lane: Lane) => Math.floor(Math.random() * lane.stored);

export const OPERATIONS: Record<string, Operation> = {
  ping: (c) => c.ping({}, { timeoutMs: CALL_TIMEOUT_MS }),
  get: async (c, l) => (await c.get({ key: itemKey(pick(l)) }, { timeoutMs: CALL_TIMEOUT_MS })).item !== undefined,
  "batch get 25": (c, l) => c.batchGet({ keys: Array.from({ length: 25 }, () => itemKey(pick(l))) }, { timeoutMs: CALL_TIMEOUT_MS }),
  "key query 100": async (c, l) =>
    (
      await c.query(
        { expression: "bench:*", limit: 100, start: itemKey(Math.floor(Math.random() * (l.stored - 100))) },
        { timeoutMs: CALL_TIMEOUT_MS },
      )
    ).items.length === 100,
  "label query 10": async (c, l) =>
    (
      await c.query(
        { expression: labelOf(Math.floor(Math.random() * (l.stored / LABELS_PER_ITEM_GROUP)) * LABELS_PER_ITEM_GROUP), label: "label1" },
        { timeoutMs: CALL_TIMEOUT_MS },
      )
    ).items.length === LABELS_PER_ITEM_GROUP,
  set: (c, l) => c.set({ key: `w:${l.worker}:${l.n % 1000}`, value: TYPICAL }, { timeoutMs: CALL_TIMEOUT_MS }),
  // The same write with an idempotency key of its own: what the records cost (the client sends one on every write).
  "set idempotent": (c, l) =>
    c.set(
      { key: `w:${l.worker}:${l.n % 1000}`, value: TYPICAL, idempotencyKey: `${l.worker}:${l.n}:${Math.random()}` },
      { timeoutMs: CALL_TIMEOUT_MS },
    ),
  "set merge $add": (c, l) =>
    c.set({ key: `m:${l.worker}:${l.n % 100}`, value: fromJson(ValueSchema, { count: { $add: 1 }, last: l.n }) }, { timeoutMs: CALL_TIMEOUT_MS }),
  add: (c, l) => c.add({ key: `c:${l.worker}:${l.n % 100}`, amount: 1 }, { timeoutMs: CALL_TIMEOUT_MS }),
  "batch set 25": (c, l) =>
    c.batchSet(
      { items: Array.from({ length: 25 }, (_, j) => ({ key: `b:${l.worker}:${(l.n * 25 + j) % 5000}`, value: TYPICAL })), overwrite: true },
      { timeoutMs: CALL_TIMEOUT_MS },
    ),
  // Each call removes one stored item (the runner stores enough of them first).
  remove: async (c, l) =>
    (await c.remove({ keys: [itemKey(l.worker + l.workers * l.n, REMOVABLE)] }, { timeoutMs: CALL_TIMEOUT_MS })).removedKeys.length === 1,
};

/** The `data` API both clients share, as far as the side-by-side workloads use it. */
interface DataApi {
  get(key: string | string[], options?: unknown): Promise<unknown>;
  set(key: string, value: unknown, options?: unknown): Promise<unknown>;
  seed(items: { key: string; value: unknown }[], options?: unknown): Promise<unknown>;
}
/** ~60 bytes of JSON. */
const small = (i: number) => ({ name: `user ${i}`, email: `user${i}@example.com`, age: 20 + (i % 50) });
const SMALL = small(1);

export const CLIENT_OPERATIONS_BY_NAME: Record<string, (data: DataApi, lane: { worker: number; n: number }) => Promise<unknown>> = {
  get: async (data) => (await data.get(peerItemKey(Math.floor(Math.random() * PEER_ITEMS)))) !== undefined,
  set: (data, l) => data.set(`cmpw:${l.worker}:${l.n % 1000}`, SMALL),
  // 25 consecutive keys from a random start: DynamoDB refuses a batch that names a key twice.
  "batch get 25": async (data) => {
    const first = Math.floor(Math.random() * (PEER_ITEMS - 25));
    const keys = Array.from({ length: 25 }, (_, i) => peerItemKey(first + i));
    return ((await data.get(keys)) as { items: unknown[] }).items.length === 25;
  },
  "key query 100": async (data) =>
    ((await data.get("cmp:*", { limit: 100, start: peerItemKey(Math.floor(Math.random() * (PEER_ITEMS - 101))) })) as { items: unknown[] }).items
      .length === 100,
};

let peerEndpoint: string | undefined;
const dataClients = new Map<ClientName, DataApi>();

async function dataClientFor(name: ClientName): Promise<DataApi> {
  let data = dataClients.get(name);
  if (!data) {
    if (name === "peer") {
      if (!peerEndpoint) throw new Error("no peer endpoint");
      data = await peerData(peerEndpoint);
    } else if (name === "larder-connect-values") {
      // The default client, its pipelines asking for google.protobuf.Value instead of JSON text.
      const valuesAsProtobuf: Interceptor = (next) => (request) => {
        if (request.method.name === "Pipeline") (request.message as unknown as { jsonValues: boolean }).jsonValues = false;
        return next(request);
      };
      data = createData({
        url,
        transport: createConnectTransport({ baseUrl: url, httpVersion: "1.1", interceptors: [valuesAsProtobuf] }),
      }) as unknown as DataApi;
    } else {
      data = createData({
        url,
        transport: name === "larder-connect" ? "connect" : "grpc",
        pipeline: name !== "larder-grpc-unpipelined",
      }) as unknown as DataApi;
    }
    dataClients.set(name, data);
  }
  return data;
}

async function clientFill(task: Extract<Task, { kind: "client-fill" }>): Promise<Reply> {
  const data = await dataClientFor(task.client);
  const started = performance.now();
  await data.seed(Array.from({ length: PEER_ITEMS }, (_, i) => ({ key: peerItemKey(i), value: small(i) })));
  return { kind: "fill", items: PEER_ITEMS, elapsedMs: performance.now() - started };
}

async function clientCell(task: Extract<Task, { kind: "client-cell" }>): Promise<Reply> {
  const operation = CLIENT_OPERATIONS_BY_NAME[task.operation];
  if (!operation) throw new Error(`unknown client operation ${task.operation}`);
  const data = await dataClientFor(task.client);
  return measure(task, (n) => operation(data, { worker, n }));
}

let url = "";
let worker = 0;
let workers = 1;
const clients = new Map<Protocol, Data>();
const counters = new Map<string, number>();

function transportFor(protocol: Protocol, sessionManager?: Http2SessionManager): Transport {
  switch (protocol) {
    case "grpc":
      return createGrpcTransport({ baseUrl: url, sessionManager });
    case "connect-h2":
      return createConnectTransport({ baseUrl: url, httpVersion: "2", sessionManager });
    case "connect-h1":
      // Node's global agent keeps connections alive (one per call in flight).
      return createConnectTransport({ baseUrl: url, httpVersion: "1.1" });
  }
}

function clientFor(protocol: Protocol): Data {
  let client = clients.get(protocol);
  if (!client) {
    client = createClient(DataService, transportFor(protocol));
    clients.set(protocol, client);
  }
  return client;
}

async function cell(task: Extract<Task, { kind: "cell" }>): Promise<Reply> {
  const operation = OPERATIONS[task.operation];
  if (!operation) throw new Error(`unknown operation ${task.operation}`);
  const client = clientFor(task.protocol);
  return measure(task, (n) => operation(client, { worker, workers, n, stored: task.stored }));
}

/** `inFlight` lanes (this worker's share) calling one after another until `ms` have passed. */
async function measure(
  task: { readonly operation: string; readonly inFlight: number; readonly ms: number; readonly record: boolean },
  call: (n: number) => Promise<unknown>,
): Promise<Reply> {
  const lanes = Math.floor(task.inFlight / workers) + (worker < task.inFlight % workers ? 1 : 0);
  const samples = new Samples();
  let errors = 0;
  let misses = 0;
  let firstError: string | undefined;
  const started = performance.now();
  const end = started + task.ms;
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (performance.now() < end) {
        const n = counters.get(task.operation) ?? 0;
        counters.set(task.operation, n + 1);
        const callStarted = performance.now();
        try {
          const found = await call(n);
          if (task.record) samples.add(performance.now() - callStarted);
          if (found === false) misses++;
        } catch (error) {
          errors++;
          firstError ??= (error as Error).message;
        }
      }
    }),
  );
  return { kind: "cell", samples: samples.values(), errors, firstError, misses, elapsedMs: performance.now() - started };
}

async function fill(task: Extract<Task, { kind: "fill" }>): Promise<Reply> {
  const client = clientFor("grpc");
  const started = performance.now();
  const PER_REQUEST = 2_000;
  let next = task.from;
  await Promise.all(
    Array.from({ length: 2 }, async () => {
      while (next < task.to) {
        const from = next;
        const to = Math.min(task.to, from + PER_REQUEST);
        next = to;
        const items = [];
        for (let i = from; i < to; i++) {
          items.push({
            key: itemKey(i, task.prefix),
            value: fromJson(ValueSchema, typical(i)),
            // Only the items that queries read carry labels: each label names exactly LABELS_PER_ITEM_GROUP items.
            label1: task.prefix === ITEMS ? labelOf(i) : undefined,
          });
        }
        await client.seed({ items }, { timeoutMs: 120_000 });
      }
    }),
  );
  return { kind: "fill", items: task.to - task.from, elapsedMs: performance.now() - started };
}

/**
 * Write-to-handler latency: each set's start to the arrival of its event at
 * every subscriber. One write at a time: the next starts once every
 * subscriber has the previous event (or after 5 s), so the figure is the
 * fan-out time of one change, not a queue built by writing faster than the
 * fan-out.
 */
async function events(task: Extract<Task, { kind: "events" }>): Promise<Reply> {
  const writer = clientFor("grpc");
  const managers = Array.from({ length: Math.ceil(task.subscribers / task.perConnection) }, () => new Http2SessionManager(url));
  const subscriberClients = managers.map((manager) => createClient(DataService, transportFor("grpc", manager)));
  const sent = new Map<string, number>();
  const received = new Map<string, number>();
  const samples = new Samples();
  const abort = new AbortController();
  // Every subscriber's stream listens to this one signal.
  setMaxListeners(0, abort.signal);
  let started = 0;
  let wake: (() => void) | undefined;
  const prefix = `ev${task.subscribers}x`;
  const openedAt = performance.now();
  const streams = Array.from({ length: task.subscribers }, async (_, s) => {
    try {
      const client = subscriberClients[Math.floor(s / task.perConnection)];
      for await (const message of client.watch({ filters: [`created:${prefix}:*`] }, { signal: abort.signal })) {
        if (message.kind.case === "started") {
          started++;
          wake?.();
        } else if (message.kind.case === "event") {
          const key = message.kind.value.item!.key;
          const at = sent.get(key);
          if (at === undefined) continue;
          samples.add(performance.now() - at);
          received.set(key, (received.get(key) ?? 0) + 1);
          wake?.();
        }
      }
    } catch (error) {
      // A stream the server ended (a reset connection, a refusal past LARDER_MAX_STREAMS) is counted, not fatal:
      // the row then says how many subscribers it lost instead of the whole run stopping.
      if (!abort.signal.aborted) {
        streamErrors++;
        firstStreamError ??= (error as Error).message;
      }
    }
  });
  let streamErrors = 0;
  let firstStreamError: string | undefined;
  const until = async (done: () => boolean, ms: number) => {
    const deadline = performance.now() + ms;
    while (!done() && performance.now() < deadline) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 50);
      });
    }
  };
  await until(() => started === task.subscribers, 60_000);
  if (started < task.subscribers) {
    abort.abort();
    for (const manager of managers) manager.abort();
    throw new Error(
      `only ${started} of ${task.subscribers} Watch streams started${firstStreamError ? ` (${streamErrors} failed: ${firstStreamError})` : ""}`,
    );
  }
  send({ kind: "subscribed", subscribers: task.subscribers, openMs: performance.now() - openedAt });
  for (let i = 0; i < task.writes; i++) {
    const key = `${prefix}:${i}`;
    sent.set(key, performance.now());
    await writer.set({ key, value: TYPICAL }, { timeoutMs: CALL_TIMEOUT_MS });
    await until(() => received.get(key) === task.subscribers, 5_000);
    await new Promise((resolve) => setTimeout(resolve, 2 + Math.random() * 3));
  }
  abort.abort();
  await Promise.all(streams);
  for (const manager of managers) manager.abort();
  return { kind: "events", samples: samples.values(), expected: task.writes * task.subscribers, streamErrors, firstStreamError };
}

function send(reply: Reply): void {
  process.send!(reply);
}

process.on("message", (task: Task) => {
  const run = async (): Promise<Reply | undefined> => {
    switch (task.kind) {
      case "init":
        ({ url, worker, workers, peerEndpoint } = task);
        return { kind: "ready" };
      case "client-fill":
        return clientFill(task);
      case "client-cell":
        return clientCell(task);
      case "cell":
        return cell(task);
      case "fill":
        return fill(task);
      case "events":
        return events(task);
      case "exit":
        process.disconnect();
        setImmediate(() => process.exit(0));
        return undefined;
    }
  };
  run().then(
    (reply) => reply && send(reply),
    (error: unknown) => send({ kind: "error", message: (error as Error).stack ?? String(error) }),
  );
});
