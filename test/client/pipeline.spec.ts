import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { expect } from "chai";
import { GetResponseSchema, type DataService, type PipelineRequest } from "../../gen/larder/data/v1/data_pb.js";
import { LarderError } from "../../client/errors.js";
import { MAX_OPERATIONS, MAX_PIPELINE_VALUE_CHARS, pipelined } from "../../client/pipeline.js";

/** A client whose Pipeline records each call's operations and answers each with an empty response of its kind. */
function recordingClient(fail?: Error) {
  const calls: PipelineRequest[] = [];
  const client = {
    async pipeline(request: PipelineRequest) {
      calls.push(request);
      if (fail) throw fail;
      return { results: request.operations.map((operation) => ({ kind: { case: operation.kind.case, value: create(GetResponseSchema) } })) };
    },
  } as unknown as Client<typeof DataService>;
  return { client, calls };
}

describe("client pipelining: how calls are grouped (issue 15)", () => {
  it("calls of one tick go in one Pipeline, in the order made, asking for JSON text values", async () => {
    const { client, calls } = recordingClient();
    const send = pipelined(client);
    await Promise.all([send("get", { key: "a" }), send("remove", { keys: ["b"] }), send("get", { key: "c" })]);
    expect(calls).to.have.length(1);
    expect(calls[0].jsonValues).to.equal(true);
    expect(calls[0].operations.map((operation) => operation.kind.case)).to.deep.equal(["get", "remove", "get"]);
  });

  it(`a Pipeline carries at most ${MAX_OPERATIONS} operations; the rest of the tick goes in the next`, async () => {
    const { client, calls } = recordingClient();
    const send = pipelined(client);
    await Promise.all(Array.from({ length: MAX_OPERATIONS * 2 + 1 }, (_, i) => send("get", { key: `k${i}` })));
    expect(calls.map((call) => call.operations.length)).to.deep.equal([MAX_OPERATIONS, MAX_OPERATIONS, 1]);
  });

  it("writes whose values would take a Pipeline past 1 MiB of JSON start the next one; a larger write travels alone", async () => {
    const { client, calls } = recordingClient();
    const send = pipelined(client);
    const half = MAX_PIPELINE_VALUE_CHARS / 2 + 1;
    await Promise.all([
      send("set", { key: "a" }, half),
      send("set", { key: "b" }, half),
      send("get", { key: "c" }),
      send("set", { key: "big" }, MAX_PIPELINE_VALUE_CHARS * 3),
      send("get", { key: "d" }),
    ]);
    expect(calls.map((call) => call.operations.map((operation) => (operation.kind.value as { key: string }).key))).to.deep.equal([
      ["a"],
      ["b", "c"],
      ["big"],
      ["d"],
    ]);
  });

  it("a call that fails as a whole rejects every operation in it with that error", async () => {
    const refusal = new ConnectError("Unknown API key", Code.Unauthenticated);
    const { client } = recordingClient(refusal);
    const send = pipelined(client);
    const outcomes = await Promise.allSettled([send("get", { key: "a" }), send("get", { key: "b" })]);
    expect(outcomes.map((outcome) => (outcome as PromiseRejectedResult).reason)).to.deep.equal([refusal, refusal]);
  });

  it("a missing result is an INTERNAL LarderError for that operation, not a hang", async () => {
    const client = { pipeline: async () => ({ results: [] }) } as unknown as Client<typeof DataService>;
    const failure = await pipelined(client)("get", { key: "a" }).catch((error: unknown) => error);
    expect(failure).to.be.instanceOf(LarderError).and.include({ code: "INTERNAL" });
  });
});
