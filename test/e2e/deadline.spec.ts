import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { DataService } from "../../gen/larder/data/v1/data_pb.js";
import { useServer } from "../support/server.js";

describe("e2e: deadlines cancel the work, not just the wait", function () {
  this.timeout(120_000);
  const running = useServer();

  it("a seed whose deadline passes gets DEADLINE_EXCEEDED and stops writing; the server keeps serving", async () => {
    const client = createClient(DataService, createGrpcTransport({ baseUrl: running.url }));
    const total = 50_000;
    const items = Array.from({ length: total }, (_, i) => ({ key: `dl:${String(i).padStart(5, "0")}`, value: { kind: { case: "numberValue" as const, value: i } } }));
    const failure = await client.seed({ items }, { timeoutMs: 400 }).catch((error: unknown) => ConnectError.from(error));
    expect((failure as ConnectError).code).to.equal(Code.DeadlineExceeded);
    // Let anything still running finish, then count: the server stopped well short of the whole seed.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const written = Number((await client.scan({ count: true })).count);
    expect(written).to.be.below(total);
    const again = Number((await client.scan({ count: true })).count);
    expect(again, "nothing keeps writing after the deadline").to.equal(written);
    expect((await client.ping({})).$typeName).to.equal("larder.data.v1.PingResponse");
  });
});
