import type { UnaryRequest, UnaryResponse } from "@connectrpc/connect";
import { DataService } from "../gen/larder/data/v1/data_pb.js";
import { LarderMetrics } from "../services/metrics.js";
import { requestIdOf } from "../services/request-id.js";
import type { Engine } from "../services/stores/engine.js";
import type { Store } from "../services/stores/store.js";
import { timedEngine } from "../services/stores/timed-store.js";

/**
 * The CPU each call pays for metrics, without the network or the machine's
 * other load in the figure: `npx tsx bench/metrics-hooks.ts`. Runs the
 * three things a unary call goes through when metrics are on (the counting
 * interceptor, the store timing proxy, the request id) around a call that
 * does nothing, against the same call without them, in alternating rounds,
 * and prints CPU ns per call (median of rounds). Compare with the server's
 * CPU per call in bench/results (`server µs/call`).
 */

const CALLS = 200_000;
const ROUNDS = 9;

const method = DataService.method.get;
const request = {
  service: DataService,
  method,
  header: new Headers({ "content-type": "application/grpc", "x-request-id": "7f3c9a2e-1b4d-4e8f-9a0b-2c3d4e5f6a7b" }),
  signal: new AbortController().signal,
} as unknown as UnaryRequest;
const response = { stream: false } as unknown as UnaryResponse;

const store = { get: async () => undefined, describe: () => "bench", feed: undefined } as unknown as Store;
const engine = { environment: async () => store } as unknown as Engine;

const metrics = new LarderMetrics({ engine: "embedded", environments: ["default"], changeRetentionMs: 60_000 });
const timedStoreEngine = timedEngine(engine, (operation, seconds) => metrics.storeOperation(operation, seconds));
const counted = metrics.callInterceptor()(async (call) => {
  const timed = await timedStoreEngine.environment("default");
  await timed.get(undefined as never, 0);
  return call && response;
});
const bare = async () => {
  await (await engine.environment("default")).get(undefined as never, 0);
  return response;
};

async function round(withMetrics: boolean, header: string | undefined): Promise<number> {
  const started = process.cpuUsage();
  for (let i = 0; i < CALLS; i++) {
    if (withMetrics) {
      requestIdOf(header);
      await counted(request);
    } else {
      await bare();
    }
  }
  const used = process.cpuUsage(started);
  return ((used.user + used.system) * 1000) / CALLS;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1];

async function main(): Promise<void> {
  for (const [name, header] of [
    ["caller's id kept", "7f3c9a2e-1b4d-4e8f-9a0b-2c3d4e5f6a7b"],
    ["id made (no header)", undefined],
  ] as const) {
    await round(true, header);
    await round(false, header);
    const on: number[] = [];
    const off: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      on.push(await round(true, header));
      off.push(await round(false, header));
    }
    console.log(
      `${name}: ${median(on).toFixed(0)} ns/call with metrics, ${median(off).toFixed(0)} without: ${(median(on) - median(off)).toFixed(0)} ns of CPU per unary call`,
    );
  }
}

void main();
