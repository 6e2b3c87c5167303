import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { createData, LarderError, type LarderData } from "../../client/index.js";
import { DataService } from "../../gen/larder/data/v1/data_pb.js";
import { generateKey } from "../../services/access/api-keys.js";
import { grpcurlPath, useServer } from "../support/server.js";
import { sleep } from "../support/async.js";
import { reasonOf } from "../support/errors.js";
import { keysFile } from "../support/keys.js";

const run = promisify(execFile);

/** Counts the RPCs a client really makes, by method name. */
function countingTransport(url: string, counts: Map<string, number>, key?: string) {
  const counter: Interceptor = (next) => (request) => {
    counts.set(request.method.name, (counts.get(request.method.name) ?? 0) + 1);
    if (key) request.header.set("authorization", `Bearer ${key}`);
    return next(request);
  };
  return createGrpcTransport({ baseUrl: url, interceptors: [counter] });
}

async function rejection(call: Promise<unknown>): Promise<unknown> {
  return call.then(
    () => expect.fail("the call should have failed"),
    (error: unknown) => error,
  );
}

describe("e2e: automatic pipelining (Pipeline RPC)", () => {
  const running = useServer();
  let data: LarderData;
  const counts = new Map<string, number>();
  beforeEach(async () => {
    counts.clear();
    data = createData({ url: running.url, transport: countingTransport(running.url, counts) });
    await data.seed([], true);
    counts.clear();
  });
  afterEach(async () => data.close());

  it("calls made in the same tick share one Pipeline RPC and each gets its own result", async () => {
    const keys = Array.from({ length: 40 }, (_, i) => `p:${String(i).padStart(2, "0")}`);
    const written = await Promise.all(keys.map((key, i) => data.set(key, { i })));
    expect(written).to.deep.equal(keys.map((_, i) => ({ i })));
    expect(Object.fromEntries(counts)).to.deep.equal({ Pipeline: 1 });

    counts.clear();
    const [one, page, batch, missing] = await Promise.all([
      data.get("p:07"),
      data.get("p:*", { limit: 3 }),
      data.get(["p:01", "p:02"]),
      data.get("p:none"),
    ]);
    expect(one).to.deep.equal({ i: 7 });
    expect(page.items).to.deep.equal([
      { key: "p:00", value: { i: 0 } },
      { key: "p:01", value: { i: 1 } },
      { key: "p:02", value: { i: 2 } },
    ]);
    expect(page.lastKey).to.equal("p:02");
    expect(batch).to.deep.equal({
      items: [
        { key: "p:01", value: { i: 1 } },
        { key: "p:02", value: { i: 2 } },
      ],
    });
    expect(missing).to.equal(undefined);
    expect(Object.fromEntries(counts)).to.deep.equal({ Pipeline: 1 });
  });

  it("more calls than one Pipeline carries (100) travel in as many RPCs as needed, all answered", async () => {
    const results = await Promise.all(Array.from({ length: 250 }, (_, i) => data.add("counter:n", 1).then(() => i)));
    expect(results).to.have.length(250);
    expect(await data.get("counter:n")).to.equal(250);
    expect(counts.get("Pipeline")).to.equal(3 + 1);
  });

  it("operations apply in the order issued: a set, then adds to it, then a read, all in one tick", async () => {
    const [set, first, second, read] = await Promise.all([
      data.set("order:k", { n: 1 }),
      data.add("order:k", "n", 1),
      data.add("order:k", "n", 10),
      data.get("order:k"),
    ]);
    expect([set, first, second, read]).to.deep.equal([{ n: 1 }, { n: 2 }, { n: 12 }, { n: 12 }]);
    expect(Object.fromEntries(counts)).to.deep.equal({ Pipeline: 1 });
  });

  it("a bad operation fails alone, with its own code, message and reason; the others are applied", async () => {
    const outcomes = await Promise.allSettled([
      data.set("alone:a", 1),
      data.set("alone:*", 2),
      data.set("alone:b", 3, { exists: true }),
      data.add("alone:a", 5),
      data.get("alone:a"),
    ]);
    expect(Object.fromEntries(counts)).to.deep.equal({ Pipeline: 1 });
    expect(outcomes.map((outcome) => outcome.status)).to.deep.equal(["fulfilled", "rejected", "rejected", "fulfilled", "fulfilled"]);
    const badKey = (outcomes[1] as PromiseRejectedResult).reason;
    expect(badKey).to.be.instanceOf(LarderError).and.include({ code: "INVALID_ARGUMENT", reason: "INVALID_KEY" });
    const notFound = (outcomes[2] as PromiseRejectedResult).reason;
    expect(notFound).to.be.instanceOf(LarderError).and.include({ code: "NOT_FOUND", reason: "ITEM_NOT_FOUND" });
    expect((outcomes[4] as PromiseFulfilledResult<unknown>).value).to.equal(6);

    // The same failures as calls of their own (no pipelining): the same code, message and reason.
    const direct = createData({ url: running.url, pipeline: false });
    const alone = (await rejection(direct.set("alone:*", 2))) as LarderError;
    expect([alone.code, alone.message, alone.reason]).to.deep.equal([badKey.code, badKey.message, badKey.reason]);
    const aloneMissing = (await rejection(direct.set("alone:b", 3, { exists: true }))) as LarderError;
    expect([aloneMissing.code, aloneMissing.message, aloneMissing.reason]).to.deep.equal([notFound.code, notFound.message, notFound.reason]);
    expect(await direct.get("alone:b")).to.equal(undefined);
  });

  it("each pipelined write emits its own event, in the order issued", async () => {
    const seen: string[] = [];
    data.on("*:events:*", ({ name, item }) => void seen.push(`${name} ${item.key} ${JSON.stringify(item.value)}`));
    await data.ready();
    await Promise.all([
      data.set("events:a", 1),
      data.set("events:b", { x: [1, "two"] }),
      data.set("events:*", 0).catch(() => undefined),
      data.set("events:a", 2),
      data.remove("events:b"),
    ]);
    const deadline = Date.now() + 20_000;
    while (seen.length < 4 && Date.now() < deadline) await sleep(20);
    expect(seen).to.deep.equal(["created events:a 1", 'created events:b {"x":[1,"two"]}', "updated events:a 2", 'deleted events:b {"x":[1,"two"]}']);
  });

  it("calls made right after on(), while writes wait for the stream's start, keep the order they were made in", async () => {
    const seen: string[] = [];
    data.on("created:waiting:*", ({ item }) => void seen.push(item.key));
    const [before, written, read, count] = await Promise.all([
      data.get("waiting:a"),
      data.set("waiting:a", 1),
      data.get("waiting:a"),
      data.count("waiting:*"),
    ]);
    expect([before, written, read, count]).to.deep.equal([undefined, 1, 1, 1]);
    const deadline = Date.now() + 20_000;
    while (seen.length < 1 && Date.now() < deadline) await sleep(20);
    expect(seen).to.deep.equal(["waiting:a"]);
  });

  it("one call in flight is sent at once, alone", async () => {
    expect(await data.set("lone:a", "x")).to.equal("x");
    expect(await data.get("lone:a")).to.equal("x");
    expect(Object.fromEntries(counts)).to.deep.equal({ Pipeline: 2 });
  });

  it("a pipelined value round-trips exactly: nesting, unicode, __proto__ as data, large and negative numbers", async () => {
    const value = JSON.parse('{"__proto__":{"a":1},"s":"é😀\\u0000","n":[-1.5e300,0,12345678901234567],"deep":{"x":{"y":[null,true]}}}');
    const [written, read, meta] = await Promise.all([data.set("exact:v", value), data.get("exact:v"), data.get("exact:v", true)]);
    expect(written).to.deep.equal(value);
    expect(read).to.deep.equal(value);
    expect(Object.prototype.hasOwnProperty.call(read, "__proto__")).to.equal(true);
    expect(meta?.value).to.deep.equal(value);
    expect(meta?.created).to.be.instanceOf(Date);
  });

  describe("the RPC itself", () => {
    const raw = () => createClient(DataService, createGrpcTransport({ baseUrl: running.url }));

    it("answers operation i in result i; json_values carries the stored JSON text instead of a Value", async () => {
      const client = raw();
      const response = await client.pipeline({
        jsonValues: true,
        operations: [
          { kind: { case: "set", value: { key: "raw:a", value: fromJson(ValueSchema, { n: 1 }) } } },
          { kind: { case: "get", value: { key: "raw:a" } } },
          { kind: { case: "get", value: { key: "raw:*" } } },
          { kind: { case: "remove", value: { keys: ["raw:a"] } } },
        ],
      });
      const kinds = response.results.map((result) => result.kind.case);
      expect(kinds).to.deep.equal(["set", "get", "error", "remove"]);
      const got = response.results[1].kind;
      if (got.case !== "get") throw new Error("unreachable");
      expect(got.value.item?.valueJson).to.equal('{"n":1}');
      expect(got.value.item?.value).to.equal(undefined);
      const failed = response.results[2].kind;
      if (failed.case !== "error") throw new Error("unreachable");
      expect(failed.value.code).to.equal(Code.InvalidArgument);
      expect(failed.value.errorInfo).to.include({ reason: "INVALID_KEY", domain: "larder.dev" });
      const plain = await client.pipeline({ operations: [{ kind: { case: "get", value: { key: "raw:a" } } }] });
      expect(plain.results[0].kind.case).to.equal("get");
    });

    it("without json_values items carry google.protobuf.Value, readable over Connect JSON", async () => {
      const json = createClient(DataService, createConnectTransport({ baseUrl: running.url, httpVersion: "1.1", useBinaryFormat: false }));
      await json.set({ key: "cj:a", value: fromJson(ValueSchema, { a: [1, "b"] }) });
      const response = await fetch(`${running.url}/larder.data.v1.DataService/Pipeline`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ operations: [{ get: { key: "cj:a" } }, { get: { key: "cj:a" } }] }),
      });
      expect(response.status).to.equal(200);
      expect(await response.json()).to.deep.equal({
        results: [{ get: { item: await itemJson() } }, { get: { item: await itemJson() } }],
      });
      async function itemJson() {
        const { item } = await json.get({ key: "cj:a" });
        return {
          key: "cj:a",
          value: { a: [1, "b"] },
          created: toIso(item!.created!),
          modified: toIso(item!.modified!),
          version: String(item!.version),
        };
      }
    });

    it("no operations, more than 100, or an operation naming no call: INVALID_ARGUMENT, nothing applied", async () => {
      const client = raw();
      for (const count of [0, 101]) {
        const operations = Array.from({ length: count }, (_, i) => ({
          kind: { case: "set" as const, value: { key: `many:${i}`, value: fromJson(ValueSchema, i) } },
        }));
        const failure = await rejection(client.pipeline({ operations }));
        expect(failure).to.be.instanceOf(ConnectError);
        expect((failure as ConnectError).code).to.equal(Code.InvalidArgument);
        expect(reasonOf(failure as ConnectError)).to.equal("BATCH_SIZE");
      }
      expect((await client.query({ expression: "many:*" })).items).to.have.length(0);
      const empty = await client.pipeline({ operations: [{}] });
      const kind = empty.results[0].kind;
      expect(kind.case).to.equal("error");
      if (kind.case === "error") expect(kind.value.errorInfo?.reason).to.equal("INVALID_OPTION");
    });
  });
});

describe("e2e: Pipeline checks each operation against the key's role", () => {
  const readKey = generateKey();
  const writeKey = generateKey();
  const path = keysFile([
    { id: "reader", key: readKey, environment: "prod", role: "read" },
    { id: "writer", key: writeKey, environment: "prod", role: "write" },
  ]);
  const running = useServer({ env: { LARDER_KEYS_FILE: path } });

  it("a write in a read key's pipeline is PERMISSION_DENIED alone; its reads are answered", async () => {
    const writer = createData({ url: running.url, apiKey: writeKey });
    await writer.set("roles:a", "v");
    const counts = new Map<string, number>();
    const reader = createData({ url: running.url, transport: countingTransport(running.url, counts, readKey) });
    const outcomes = await Promise.allSettled([reader.get("roles:a"), reader.set("roles:b", 1), reader.remove("roles:a")]);
    expect(Object.fromEntries(counts)).to.deep.equal({ Pipeline: 1 });
    expect(outcomes[0]).to.deep.equal({ status: "fulfilled", value: "v" });
    for (const outcome of outcomes.slice(1)) {
      expect(outcome.status).to.equal("rejected");
      expect((outcome as PromiseRejectedResult).reason).to.include({ code: "PERMISSION_DENIED", reason: "ROLE_NOT_ALLOWED" });
    }
    expect((outcomes[1] as PromiseRejectedResult).reason.message).to.equal(
      "The API key 'reader' has the role 'read', which may not call larder.data.v1.DataService/Set",
    );
    expect(await writer.get(["roles:a", "roles:b"])).to.deep.equal({ items: [{ key: "roles:a", value: "v" }] });
  });

  it("a pipeline without a key is UNAUTHENTICATED as a whole, each call rejected with it", async () => {
    const anonymous = createData({ url: running.url });
    const outcomes = await Promise.allSettled([anonymous.get("roles:a"), anonymous.get("roles:b")]);
    for (const outcome of outcomes) {
      expect((outcome as PromiseRejectedResult).reason).to.include({ code: "UNAUTHENTICATED", reason: "API_KEY_MISSING" });
    }
  });
});

const grpcurl = grpcurlPath();
describe(`e2e: Pipeline from grpcurl${grpcurl ? "" : " (skipped: no grpcurl)"}`, function () {
  before(function () {
    if (!grpcurl) this.skip();
  });
  const running = useServer();

  it("the README example: a set and two gets in one call, one of them failing alone", async () => {
    const request = JSON.stringify({
      operations: [{ set: { key: "users:jane", value: { name: "Jane" } } }, { get: { key: "users:jane" } }, { get: { key: "users:*" } }],
    });
    const { stdout } = await run(grpcurl!, ["-plaintext", "-d", request, `127.0.0.1:${running.server.port}`, "larder.data.v1.DataService/Pipeline"], {
      timeout: 15_000,
    });
    const { results } = JSON.parse(stdout) as {
      results: Record<string, { item?: { value?: unknown }; code?: number; errorInfo?: { reason: string } }>[];
    };
    expect(results).to.have.length(3);
    expect(results[0].set.item?.value).to.deep.equal({ name: "Jane" });
    expect(results[1].get.item?.value).to.deep.equal({ name: "Jane" });
    expect(results[2].error).to.deep.include({ code: Code.InvalidArgument });
    expect(results[2].error.errorInfo?.reason).to.equal("INVALID_KEY");
  });
});

function toIso(timestamp: { seconds: bigint; nanos: number }): string {
  return new Date(Number(timestamp.seconds) * 1000 + timestamp.nanos / 1e6).toISOString();
}
