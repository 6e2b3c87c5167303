import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { DataService } from "../../gen/larder/data/v1/data_pb.js";
import { useServer } from "../support/server.js";
import { sleep } from "../support/async.js";
import { failureOf } from "../support/errors.js";

describe("e2e: deadlines cancel the work, not just the wait", function () {
  this.timeout(120_000);
  const running = useServer();

  it("a seed whose deadline passes gets DEADLINE_EXCEEDED and stops writing; the server keeps serving", async () => {
    const client = createClient(DataService, createGrpcTransport({ baseUrl: running.url }));
    const total = 50_000;
    const items = Array.from({ length: total }, (_, i) => ({
      key: `dl:${String(i).padStart(5, "0")}`,
      value: { kind: { case: "numberValue" as const, value: i } },
    }));
    const failure = await failureOf(client.seed({ items }, { timeoutMs: 400 }));
    expect(failure.code).to.equal(Code.DeadlineExceeded);
    // Let anything still running finish, then count: the server stopped well short of the whole seed.
    await sleep(2_000);
    const written = Number((await client.scan({ count: true })).count);
    expect(written).to.be.below(total);
    const again = Number((await client.scan({ count: true })).count);
    expect(again, "nothing keeps writing after the deadline").to.equal(written);
    expect((await client.ping({})).$typeName).to.equal("larder.data.v1.PingResponse");
  });

  /** A client that sends a deadline header without timing it itself, so the status seen is the server's. */
  const withDeadlineHeader = (name: "grpc-timeout", value: string) =>
    createClient(
      DataService,
      createGrpcTransport({ baseUrl: running.url, interceptors: [(next) => (request) => (request.header.set(name, value), next(request))] }),
    );

  it("a Watch whose deadline passes ends with DEADLINE_EXCEEDED, not a clean end", async () => {
    const client = withDeadlineHeader("grpc-timeout", "300m");
    const started = Date.now();
    let failure: ConnectError | undefined;
    try {
      for await (const message of client.watch({})) void message;
    } catch (error) {
      failure = ConnectError.from(error);
    }
    expect(failure?.code, String(failure)).to.equal(Code.DeadlineExceeded);
    expect(Date.now() - started).to.be.at.least(250);
  });

  it("a deadline past what a timer can hold (24.8 days) is INVALID_ARGUMENT, not a call cut at once", async () => {
    const failure = await failureOf(withDeadlineHeader("grpc-timeout", "99999999S").ping({}));
    expect(failure.code, String(failure)).to.equal(Code.InvalidArgument);
    expect(failure.rawMessage).to.contain("must be <= 2147483647");
    expect((await withDeadlineHeader("grpc-timeout", "2000000S").ping({})).$typeName).to.equal("larder.data.v1.PingResponse");
  });
});
