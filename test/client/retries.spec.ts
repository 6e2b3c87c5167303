import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { createData, createDataWith } from "../../client/index.js";
import { useServer } from "../support/server.js";

/**
 * The client's own retries: a write whose answer is lost after the server
 * applied it (the interceptor drops the first answer of each call and
 * reports UNAVAILABLE) is sent again with the same idempotency key, and the
 * server answers with the first outcome instead of applying it twice.
 */
describe("client retries with idempotency keys", () => {
  const running = useServer();

  /** The idempotency keys a call carried: its own, or those of a Pipeline's operations. */
  function keysOf(message: unknown): string[] {
    const operations = (message as { operations?: { kind: { value?: { idempotencyKey?: string } } }[] }).operations;
    if (operations) return operations.map((operation) => operation.kind.value?.idempotencyKey ?? "");
    return [(message as { idempotencyKey?: string }).idempotencyKey ?? ""];
  }

  for (const pipeline of [true, false]) {
    describe(pipeline ? "pipelined" : "one RPC per call", () => {
      // Each mode writes keys of its own: both run against one server.
      const k = (key: string) => `${pipeline ? "p" : "u"}${key}`;
      function lossyData(drops: { count: number }, sentKeys: string[]) {
        const loseFirstAnswer: Interceptor = (next) => async (request) => {
          sentKeys.push(...keysOf(request.message));
          const response = await next(request);
          if (drops.count > 0) {
            drops.count--;
            throw new ConnectError("the connection dropped before the answer arrived", Code.Unavailable);
          }
          return response;
        };
        return createDataWith({
          transport: createGrpcTransport({ baseUrl: running.url, interceptors: [loseFirstAnswer] }),
          retries: { attempts: 3, initialBackoffMs: 10 },
          pipeline,
        });
      }

      it("add(key, 1) retried after UNAVAILABLE counts once; every attempt carried the same key", async () => {
        const sent: string[] = [];
        const data = lossyData({ count: 2 }, sent);
        expect(await data.add(k("retry:counter"), 1)).to.equal(1);
        expect(sent).to.have.length(3);
        expect(new Set(sent).size).to.equal(1);
        expect(sent[0]).to.match(/^[0-9a-f-]{36}$/);
        const plain = createData({ url: running.url });
        expect(await plain.get(k("retry:counter"))).to.equal(1);
        await Promise.all([data.close(), plain.close()]);
      });

      it("set, batch set and remove are retried the same way, each call with a key of its own", async () => {
        const sent: string[] = [];
        const drops = { count: 1 };
        const data = lossyData(drops, sent);
        expect(await data.set(k("retry:doc"), { n: 1 }, { meta: true })).to.deep.include({ version: 1 });
        drops.count = 1;
        expect(await data.set([{ key: k("retry:b"), value: 1 }])).to.deep.equal({ items: [{ key: k("retry:b"), value: 1 }] });
        drops.count = 1;
        expect(await data.remove(k("retry:doc"))).to.equal(true);
        expect(sent).to.have.length(6);
        expect([sent[0] === sent[1], sent[2] === sent[3], sent[4] === sent[5]]).to.deep.equal([true, true, true]);
        expect(new Set(sent).size).to.equal(3);
        await data.close();
      });

      it("a caller's own idempotencyKey is used, and a key given again replays the first outcome", async () => {
        const sent: string[] = [];
        const data = lossyData({ count: 0 }, sent);
        expect(await data.add(k("retry:mine"), 5, { idempotencyKey: k("order-42") })).to.equal(5);
        expect(await data.add(k("retry:mine"), 5, { idempotencyKey: k("order-42") })).to.equal(5);
        expect(sent).to.deep.equal([k("order-42"), k("order-42")]);
        expect(await data.add(k("retry:mine"), 1)).to.equal(6);
        const reused = await data.add(k("retry:mine"), 7, { idempotencyKey: k("order-42") }).catch((error: unknown) => error);
        expect(reused).to.include({ code: "FAILED_PRECONDITION", reason: "IDEMPOTENCY_KEY_REUSED" });
        await data.close();
      });

      it("without retries (attempts: 1) a write carries no key of the client's own, only the caller's", async () => {
        const sent: string[] = [];
        const interceptor: Interceptor = (next) => async (request) => {
          sent.push(...keysOf(request.message));
          return next(request);
        };
        const data = createDataWith({
          transport: createGrpcTransport({ baseUrl: running.url, interceptors: [interceptor] }),
          retries: { attempts: 1 },
          pipeline,
        });
        await data.set(k("retry:once"), 1);
        await data.set(k("retry:once"), 2, { idempotencyKey: k("given") });
        expect(sent).to.deep.equal(["", k("given")]);
        await data.close();
      });

      it("gives up after its attempts and reports UNAVAILABLE; other errors are not retried", async () => {
        const sent: string[] = [];
        const drops = { count: 5 };
        const data = lossyData(drops, sent);
        const failure = await data.set(k("retry:x"), 1).catch((error: unknown) => error);
        expect(failure).to.include({ code: "UNAVAILABLE" });
        expect(sent).to.have.length(3);
        drops.count = 0;
        const invalid = await data.set(k("retry:*bad"), 1).catch((error: unknown) => error);
        expect(invalid).to.include({ code: "INVALID_ARGUMENT" });
        expect(sent).to.have.length(4);
        await data.close();
      });
    });
  }
});
