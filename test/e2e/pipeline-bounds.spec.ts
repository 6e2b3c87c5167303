import { fromJson, toBinary } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { createData } from "../../client/index.js";
import { DataService, PipelineResponseSchema, type PipelineResponse } from "../../gen/larder/data/v1/data_pb.js";
import { MAX_PIPELINE_ANSWER_BYTES } from "../../core/limits.js";
import { useServer } from "../support/server.js";
import { sleep } from "../support/async.js";

/**
 * Each operation of a Pipeline is bounded as its own call is, but 100 of them
 * were not bounded together: 100 batch gets of large items built gigabytes
 * for one read-key call (and blocked every other caller while it did), and an
 * answer past the message limit failed the whole call after its writes had
 * been applied. The answer is now bounded, and what does not fit is left
 * unrun, in order, for the caller to send again (the client does so itself).
 */
describe("e2e: a Pipeline's answer is bounded as a whole", function () {
  this.timeout(60_000);
  const running = useServer();
  const raw = () => createClient(DataService, createGrpcTransport({ baseUrl: running.url }));
  const big = "x".repeat(380 * 1024);
  const bigKeys = Array.from({ length: 10 }, (_, i) => `big:${String(i).padStart(2, "0")}`);

  before(async () => {
    const client = raw();
    await client.seed({ items: [], overwrite: true });
    for (const key of bigKeys) await client.set({ key, value: fromJson(ValueSchema, big) });
  });

  /** An operation's outcome: its kind when answered, [code, reason] when refused. */
  const outcomeOf = (response: PipelineResponse, index: number) => {
    const kind = response.results[index].kind;
    return kind.case === "error" ? [kind.value.code, kind.value.errorInfo?.reason] : kind.case;
  };

  it("100 batch gets of 3.8 MB each: the first is answered, the rest left unrun with PIPELINE_ANSWER_FULL", async () => {
    const operations = Array.from({ length: 100 }, () => ({ kind: { case: "batchGet" as const, value: { keys: bigKeys } } }));
    const response = await raw().pipeline({ operations, jsonValues: true });
    expect(response.results).to.have.length(100);
    expect(outcomeOf(response, 0)).to.equal("batchGet");
    for (let i = 1; i < 100; i++) expect(outcomeOf(response, i), `operation ${i}`).to.deep.equal([Code.ResourceExhausted, "PIPELINE_ANSWER_FULL"]);
    expect(toBinary(PipelineResponseSchema, response).length).to.be.below(16 * 1024 * 1024);
  });

  it("a write before many large reads is answered with its item, and nothing after the first unrun operation is applied", async () => {
    const operations = [
      { kind: { case: "set" as const, value: { key: "marker:first", value: fromJson(ValueSchema, "written") } } },
      ...Array.from({ length: 30 }, () => ({ kind: { case: "query" as const, value: { expression: "big:*", limit: 3 } } })),
      { kind: { case: "set" as const, value: { key: "marker:last", value: fromJson(ValueSchema, "written") } } },
    ];
    const client = raw();
    const response = await client.pipeline({ operations, jsonValues: true });
    expect(outcomeOf(response, 0)).to.equal("set");
    const kinds = response.results.map((_, i) => outcomeOf(response, i));
    const firstUnrun = kinds.findIndex((kind) => Array.isArray(kind));
    expect(firstUnrun).to.be.greaterThan(1);
    // Answered reads hold at most the bound (a read that would cross it is dropped, unanswered).
    const answered = response.results
      .slice(1, firstUnrun)
      .reduce((sum, result) => sum + (result.kind.case === "query" ? result.kind.value.items.length : 0), 0);
    expect(answered * big.length).to.be.at.most(MAX_PIPELINE_ANSWER_BYTES);
    for (const kind of kinds.slice(1, firstUnrun)) expect(kind).to.equal("query");
    for (const kind of kinds.slice(firstUnrun)) expect(kind).to.deep.equal([Code.ResourceExhausted, "PIPELINE_ANSWER_FULL"]);
    expect((await client.get({ key: "marker:first" })).item?.key).to.equal("marker:first");
    expect((await client.get({ key: "marker:last" })).item).to.equal(undefined);
  });

  it("a pipeline of slow operations (100 counts of 100,000 items) lets a call made meanwhile be answered before it ends", async () => {
    const client = raw();
    for (let batch = 0; batch < 4; batch++) {
      const items = Array.from({ length: 25_000 }, (_, i) => ({
        key: `counted:${batch}${String(i).padStart(5, "0")}`,
        value: fromJson(ValueSchema, i),
      }));
      await client.seed({ items });
    }
    const finished: string[] = [];
    const operations = Array.from({ length: 100 }, () => ({ kind: { case: "count" as const, value: { expression: "counted:*" } } }));
    const pipeline = client.pipeline({ operations }).then((response) => {
      finished.push("pipeline");
      return response;
    });
    await sleep(100);
    await client.ping({});
    finished.push("ping");
    const response = await pipeline;
    for (const result of response.results) expect(result.kind.case === "count" && result.kind.value.count).to.equal(100_000n);
    // Held until the last count, the ping would come second (the embedded engine answers synchronously).
    expect(finished).to.deep.equal(["ping", "pipeline"]);
  });

  it("the client sends what was left unrun again: 30 large queries and a set in one tick all succeed", async () => {
    let pipelines = 0;
    const counter: Interceptor = (next) => (request) => {
      if (request.method.name === "Pipeline") pipelines++;
      return next(request);
    };
    const data = createData({ url: running.url, transport: createGrpcTransport({ baseUrl: running.url, interceptors: [counter] }) });
    try {
      const [written, ...pages] = await Promise.all([
        data.set("marker:client", "written"),
        ...Array.from({ length: 30 }, () => data.get("big:*", { limit: 3 })),
      ]);
      expect(written).to.equal("written");
      for (const page of pages) {
        expect(page.items[0]).to.deep.equal({ key: "big:00", value: big });
        expect(page.items.length).to.equal(pages[0].items.length);
      }
      expect(pipelines).to.be.greaterThan(1);
    } finally {
      await data.close();
    }
  });
});
