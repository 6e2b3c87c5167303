import { createClient, createRouterTransport } from "@connectrpc/connect";
import { expect } from "chai";
import pino from "pino";
import { DataService } from "../../gen/larder/data/v1/data_pb.js";
import { createDataService } from "../../services/data-service.js";
import type { Engine } from "../../services/stores/engine.js";
import type { ReadOptions, Store } from "../../services/stores/store.js";

/**
 * Every read reaches the store with the time its caller still waits, so the
 * MongoDB engine can hand it to the server as maxTimeMS (readTimeLimit, in
 * mongo-queries.spec) and a query nobody waits for stops there too.
 */
describe("reads carry the call's deadline to the store", () => {
  const seen: { method: string; options?: ReadOptions }[] = [];
  const recording =
    (method: string, result: unknown) =>
    async (...args: unknown[]) => {
      seen.push({ method, options: args[2] as ReadOptions | undefined });
      return result;
    };
  const store = {
    get: recording("get", undefined),
    getMany: recording("getMany", []),
    queryKeys: recording("queryKeys", { items: [], more: false }),
    queryLabel: recording("queryLabel", { items: [], more: false }),
    scan: recording("scan", { items: [], more: false }),
    count: recording("count", 0),
  } as unknown as Store;
  const engine = { environment: async () => store } as unknown as Engine;
  const client = createClient(
    DataService,
    createRouterTransport(({ service }) => {
      service(DataService, createDataService({ engine, shutdownSignal: new AbortController().signal, log: pino({ level: "silent" }) }));
    }),
  );

  async function readsWith(timeoutMs: number | undefined): Promise<typeof seen> {
    seen.length = 0;
    await client.get({ key: "k" }, { timeoutMs });
    await client.batchGet({ keys: ["a", "b"] }, { timeoutMs });
    await client.query({ expression: "users:*" }, { timeoutMs });
    await client.query({ expression: "x*", label: "label1" }, { timeoutMs });
    await client.scan({}, { timeoutMs });
    await client.scan({ count: true }, { timeoutMs });
    return [...seen];
  }

  it("with a deadline: get, batch get, key and label queries, scan and count each get the time left", async () => {
    const reads = await readsWith(5_000);
    expect(reads.map((read) => read.method)).to.deep.equal(["get", "getMany", "queryKeys", "queryLabel", "scan", "count"]);
    for (const read of reads) expect(read.options?.timeoutMs, read.method).to.be.within(4_000, 5_000);
  });

  it("without a deadline the store is given no limit", async () => {
    const reads = await readsWith(undefined);
    expect(reads).to.have.length(6);
    for (const read of reads) expect(read.options?.timeoutMs, read.method).to.equal(undefined);
  });
});
