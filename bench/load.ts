import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { DataService } from "../gen/larder/data/v1/data_pb.js";
import { round, Samples } from "./stats.js";

/**
 * The load generator, a process of its own (bench/run.ts forks it) so the
 * server's CPU is not shared with the client's event loop. It writes one
 * JSON object per line: results, and `mark` lines at which run.ts samples
 * the server's memory.
 */
export interface LoadPlan {
  readonly url: string;
  readonly cellMs: number;
  readonly concurrency: readonly number[];
  readonly protocols: readonly ("grpc" | "connect")[];
  readonly subscribers: readonly number[];
  readonly scale: readonly number[];
}

const plan = JSON.parse(process.argv[2]) as LoadPlan;
const emit = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`);
const json = (value: unknown) => ({ kind: { case: "stringValue" as const, value: JSON.stringify(value) } });
const objectValue = (fields: Record<string, number | string | { $add: number }>) => ({
  kind: {
    case: "structValue" as const,
    value: {
      fields: Object.fromEntries(
        Object.entries(fields).map(([name, field]) => [
          name,
          typeof field === "number"
            ? { kind: { case: "numberValue" as const, value: field } }
            : typeof field === "string"
              ? { kind: { case: "stringValue" as const, value: field } }
              : { kind: { case: "structValue" as const, value: { fields: { $add: { kind: { case: "numberValue" as const, value: field.$add } } } } } },
        ]),
      ),
    },
  },
});

const STORED = 1_000;
const LABELS = 100;
const key = (i: number) => `bench:k${String(i).padStart(7, "0")}`;
const pick = () => Math.floor(Math.random() * STORED);

function transportFor(protocol: "grpc" | "connect"): Transport {
  return protocol === "grpc"
    ? createGrpcTransport({ baseUrl: plan.url })
    : createConnectTransport({ baseUrl: plan.url, httpVersion: "1.1" });
}

type Operation = (client: Client<typeof DataService>, worker: number, i: number) => Promise<unknown>;

const OPERATIONS: [string, Operation][] = [
  ["null RPC (Ping)", (c) => c.ping({})],
  ["get", (c) => c.get({ key: key(pick()) })],
  ["batch get 25", (c) => c.batchGet({ keys: Array.from({ length: 25 }, () => key(pick())) })],
  ["key query, 100 items", (c) => c.query({ expression: "bench:*", limit: 100, start: key(pick() % (STORED - 100)) })],
  ["label query, 10 items", (c) => c.query({ expression: `lab:${String(pick() % LABELS).padStart(3, "0")}`, label: "label1" })],
  ["set", (c, w, i) => c.set({ key: `w:${w}:${i % 1000}`, value: json({ w, i }) })],
  ["set with merge and $add", (c, w, i) => c.set({ key: `m:${w}`, value: objectValue({ count: { $add: 1 }, last: i }) })],
  ["add", (c, w) => c.add({ key: `c:${w}`, amount: 1 })],
  [
    "batch set 25",
    (c, w, i) =>
      c.batchSet({ items: Array.from({ length: 25 }, (_, j) => ({ key: `b:${w}:${(i * 25 + j) % 5000}`, value: json(j) })), overwrite: true }),
  ],
  ["remove", (c, w, i) => c.remove({ keys: [`w:${w}:${i % 1000}`] })],
];

async function measure(client: Client<typeof DataService>, operation: Operation, concurrency: number, ms: number) {
  const samples = new Samples();
  let warming = true;
  const warmupEnd = performance.now() + Math.min(300, ms / 3);
  const end = warmupEnd + ms;
  let counter = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      while (performance.now() < end) {
        const started = performance.now();
        await operation(client, worker, counter++);
        const finished = performance.now();
        if (started >= warmupEnd) samples.add(finished - started);
        else if (warming && finished >= warmupEnd) warming = false;
      }
    }),
  );
  return { throughput: round(samples.count / (ms / 1000), 0), ...roundAll(samples.summary()) };
}

function roundAll(summary: ReturnType<Samples["summary"]>) {
  return { count: summary.count, p50: round(summary.p50, 3), p99: round(summary.p99, 3), p999: round(summary.p999, 3) };
}

async function fill(client: Client<typeof DataService>, from: number, to: number): Promise<void> {
  let next = from;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < to) {
        const start = next;
        next += 25;
        const items = [];
        for (let i = start; i < Math.min(start + 25, to); i++) {
          items.push({ key: key(i), value: json({ i, text: "some text of a typical item" }), label1: `lab:${String(i % LABELS).padStart(3, "0")}` });
        }
        await client.batchSet({ items, overwrite: true });
      }
    }),
  );
}

async function events(client: Client<typeof DataService>, subscribers: number) {
  const sent = new Map<string, number>();
  const samples = new Samples();
  const abort = new AbortController();
  let started = 0;
  const streams = Array.from({ length: subscribers }, async () => {
    try {
      for await (const message of client.watch({ filters: ["created:ev:*"] }, { signal: abort.signal })) {
        if (message.kind.case === "started") started++;
        if (message.kind.case === "event") {
          const at = sent.get(message.kind.value.item!.key);
          if (at !== undefined) samples.add(performance.now() - at);
        }
      }
    } catch {
      // ended by abort below
    }
  });
  while (started < subscribers) await new Promise((resolve) => setTimeout(resolve, 20));
  emit({ type: "mark", name: `subscribers:${subscribers}` });
  const writes = subscribers >= 1000 ? 50 : 100;
  for (let i = 0; i < writes; i++) {
    const eventKey = `ev:${subscribers}:${i}`;
    sent.set(eventKey, performance.now());
    await client.set({ key: eventKey, value: json(i) });
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const deadline = Date.now() + 10_000;
  while (samples.count < writes * subscribers && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  abort.abort();
  await Promise.all(streams);
  return { subscribers, delivered: samples.count, expected: writes * subscribers, ...roundAll(samples.summary()) };
}

async function main(): Promise<void> {
  const setup = createClient(DataService, transportFor("grpc"));
  await fill(setup, 0, STORED);
  for (const protocol of plan.protocols) {
    const client = createClient(DataService, transportFor(protocol));
    for (const [name, operation] of OPERATIONS) {
      for (const concurrency of plan.concurrency) {
        const result = await measure(client, operation, concurrency, plan.cellMs);
        emit({ type: "operation", protocol, operation: name, concurrency, ...result });
      }
    }
  }
  for (const subscribers of plan.subscribers) emit({ type: "events", ...(await events(setup, subscribers)) });
  let stored = STORED;
  for (const size of plan.scale) {
    await fill(setup, stored, size);
    stored = Math.max(stored, size);
    emit({ type: "mark", name: `items:${size}` });
    const get = await measure(setup, (c) => c.get({ key: key(Math.floor(Math.random() * size)) }), 1, plan.cellMs);
    const query = await measure(
      setup,
      (c) => c.query({ expression: "bench:*", limit: 100, start: key(Math.floor(Math.random() * (size - 100))) }),
      1,
      plan.cellMs,
    );
    emit({ type: "scale", items: size, get, query });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
