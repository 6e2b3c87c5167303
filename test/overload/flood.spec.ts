import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { DataService } from "../../gen/larder/data/v1/data_pb.js";
import { useServer } from "../support/server.js";
import { sleep } from "../support/async.js";

describe("overload: bounded work in flight, health answers through a flood, recovery after it", () => {
  const running = useServer({
    env: { LARDER_MAX_IN_FLIGHT: "8", LARDER_MAX_IN_FLIGHT_PER_CONNECTION: "4", LARDER_MAX_STREAMS: "3" },
  });

  interface FloodResult {
    codes: Map<string, number>;
    healthAnswers: number;
    healthWorstMs: number;
  }

  /** `calls` concurrent 50 KB batch sets over 4 connections, with a health check loop running throughout. */
  async function flood(calls: number): Promise<FloodResult> {
    const clients = Array.from({ length: 4 }, () => createClient(DataService, createGrpcTransport({ baseUrl: running.url })));
    const health = createClient(Health, createGrpcTransport({ baseUrl: running.url }));
    const items = Array.from({ length: 25 }, (_, i) => ({
      key: `flood:${i}`,
      value: { kind: { case: "stringValue" as const, value: "x".repeat(2000) } },
    }));
    const codes = new Map<string, number>();
    const count = (code: string) => codes.set(code, (codes.get(code) ?? 0) + 1);
    let healthAnswers = 0;
    let healthWorstMs = 0;
    let flooding = true;
    const healthLoop = (async () => {
      while (flooding) {
        const started = performance.now();
        expect((await health.check({})).status).to.equal(1);
        healthWorstMs = Math.max(healthWorstMs, performance.now() - started);
        healthAnswers++;
      }
    })();
    await Promise.all(
      Array.from({ length: calls }, async (_, i) => {
        try {
          await clients[i % clients.length].batchSet({ items, overwrite: true });
          count("ok");
        } catch (error) {
          const failure = ConnectError.from(error);
          count(Code[failure.code]);
          if (failure.code === Code.ResourceExhausted) expect(failure.rawMessage).to.contain("retry with exponential backoff");
        }
      }),
    );
    flooding = false;
    await healthLoop;
    // After the flood every call is served again, on every connection.
    for (let i = 0; i < 20; i++) expect((await clients[i % clients.length].get({ key: "flood:1" })).item?.key).to.equal("flood:1");
    return { codes, healthAnswers, healthWorstMs };
  }

  it("a flood of 1,200 concurrent batch sets: each is served or refused with RESOURCE_EXHAUSTED; health answers throughout; all is well after", async function () {
    this.timeout(60_000);
    const { codes, healthAnswers, healthWorstMs } = await flood(1200);
    expect(codes.get("ok"), JSON.stringify([...codes])).to.be.greaterThan(0);
    expect([...codes.keys()].filter((code) => code !== "ok" && code !== "ResourceExhausted")).to.deep.equal([]);
    expect(healthAnswers, "health checks answered during the flood").to.be.greaterThan(0);
    expect(healthWorstMs, "the slowest health check during the flood (ms)").to.be.below(10_000);
  });

  // With the gate counting each HTTP request from its headers to its answer, a flood's bodies in
  // transit count too, so far more than 8 are in flight and the excess is refused.
  it("past LARDER_MAX_IN_FLIGHT a flood is partly refused with RESOURCE_EXHAUSTED, not queued (admissionGate)", async function () {
    this.timeout(60_000);
    const { codes, healthAnswers } = await flood(1200);
    expect(codes.get("ResourceExhausted") ?? 0, JSON.stringify([...codes])).to.be.greaterThan(0);
    expect(codes.get("ok") ?? 0, JSON.stringify([...codes])).to.be.greaterThan(0);
    expect([...codes.keys()].filter((code) => code !== "ok" && code !== "ResourceExhausted")).to.deep.equal([]);
    expect(healthAnswers).to.be.greaterThan(0);
  });

  it("open streams are bounded too: a Watch past the limit is refused, and accepted again once one ends", async function () {
    this.timeout(30_000);
    const client = createClient(DataService, createGrpcTransport({ baseUrl: running.url }));
    const aborts = Array.from({ length: 3 }, () => new AbortController());
    const open = aborts.map(async (abort) => {
      const stream = client.watch({}, { signal: abort.signal })[Symbol.asyncIterator]();
      await stream.next();
      return stream;
    });
    const streams = await Promise.all(open);
    const refused = await (async () => {
      try {
        for await (const message of client.watch({})) if (message) return undefined;
      } catch (error) {
        return ConnectError.from(error);
      }
    })();
    expect(refused?.code).to.equal(Code.ResourceExhausted);
    aborts[0].abort();
    await streams[0].return?.().catch(() => undefined);
    await sleep(200);
    const again = client.watch({})[Symbol.asyncIterator]();
    expect((await again.next()).value?.kind.case).to.equal("started");
    await again.return?.();
    aborts.forEach((abort) => abort.abort());
  });
});
