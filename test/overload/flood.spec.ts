import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { DataService } from "../../gen/larder/data/v1/data_pb.js";
import { useServer } from "../support/server.js";

describe("overload: bounded work in flight, health answers through a flood, recovery after it", () => {
  const running = useServer({ env: { LARDER_MAX_IN_FLIGHT: "8", LARDER_MAX_STREAMS: "3" } });

  // The embedded engine finishes each call without yielding to I/O, so its backlog waits in the
  // sockets (HTTP/2 flow control), not in the server; the bound itself is unit-tested in
  // limiter.spec.ts with calls that do wait. Here: the flood is served or refused cleanly.
  it("a flood of 1,200 concurrent batch sets: each is served or refused with RESOURCE_EXHAUSTED; health answers throughout; all is well after", async function () {
    this.timeout(60_000);
    // Several connections, as many clients would open.
    const clients = Array.from({ length: 4 }, () => createClient(DataService, createGrpcTransport({ baseUrl: running.url })));
    const health = createClient(Health, createGrpcTransport({ baseUrl: running.url }));
    const items = Array.from({ length: 25 }, (_, i) => ({ key: `flood:${i}`, value: { kind: { case: "stringValue" as const, value: "x".repeat(2000) } } }));
    const codes = new Map<string, number>();
    let healthAnswers = 0;
    let flooding = true;
    const healthLoop = (async () => {
      while (flooding) {
        expect((await health.check({})).status).to.equal(1);
        healthAnswers++;
      }
    })();
    await Promise.all(
      Array.from({ length: 1200 }, async (_, i) => {
        try {
          await clients[i % clients.length].batchSet({ items, overwrite: true });
          codes.set("ok", (codes.get("ok") ?? 0) + 1);
        } catch (error) {
          const failure = ConnectError.from(error);
          codes.set(Code[failure.code], (codes.get(Code[failure.code]) ?? 0) + 1);
          if (failure.code === Code.ResourceExhausted) expect(failure.rawMessage).to.contain("retry with exponential backoff");
        }
      }),
    );
    flooding = false;
    await healthLoop;
    expect(codes.get("ok"), JSON.stringify([...codes])).to.be.greaterThan(0);
    expect([...codes.keys()].filter((code) => code !== "ok" && code !== "ResourceExhausted")).to.deep.equal([]);
    expect(healthAnswers, "health checks answered during the flood").to.be.greaterThan(0);
    // After the flood every call is served again.
    for (let i = 0; i < 20; i++) await clients[0].get({ key: "flood:1" });
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
    await new Promise((resolve) => setTimeout(resolve, 200));
    const again = client.watch({})[Symbol.asyncIterator]();
    expect((await again.next()).value?.kind.case).to.equal("started");
    await again.return?.();
    aborts.forEach((abort) => abort.abort());
  });
});
