import { Code, ConnectError, type UnaryRequest, type UnaryResponse, type StreamResponse } from "@connectrpc/connect";
import { expect } from "chai";
import { overloadGuard } from "../../services/overload.js";

/** The in-flight bound, driven with calls that really wait (the embedded engine's never do). */
describe("overload guard (unit)", () => {
  const request = (service: string, methodKind = "unary") =>
    ({ service: { typeName: service }, method: { methodKind } }) as unknown as UnaryRequest;

  function gatedNext() {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const next = async () => {
      await gate;
      return { stream: false } as unknown as UnaryResponse;
    };
    return { next, release };
  }

  it("serves up to the bound, refuses the excess at once with RESOURCE_EXHAUSTED, serves again after", async () => {
    const guard = overloadGuard({ maxUnary: 3, maxStreams: 10, exempt: new Set(["grpc.health.v1.Health"]) });
    const { next, release } = gatedNext();
    const call = guard(next as never);
    const waiting = [1, 2, 3].map(() => call(request("larder.data.v1.DataService")));
    expect(guard.load().unary).to.equal(3);
    const refused = await call(request("larder.data.v1.DataService")).catch((error: unknown) => ConnectError.from(error));
    expect((refused as ConnectError).code).to.equal(Code.ResourceExhausted);
    expect((refused as ConnectError).rawMessage).to.equal("The server is at its limit of 3 calls in flight; retry with exponential backoff");
    const health = call(request("grpc.health.v1.Health"));
    expect(guard.load().unary, "exempt services are never counted or refused").to.equal(3);
    release();
    await Promise.all([...waiting, health]);
    expect(guard.load().unary).to.equal(0);
    await call(request("larder.data.v1.DataService"));
  });

  it("a failing call releases its slot", async () => {
    const guard = overloadGuard({ maxUnary: 1, maxStreams: 1, exempt: new Set() });
    const call = guard((async () => {
      throw new ConnectError("nope", Code.InvalidArgument);
    }) as never);
    for (let i = 0; i < 3; i++) {
      const failure = await call(request("s")).catch((error: unknown) => ConnectError.from(error));
      expect((failure as ConnectError).code).to.equal(Code.InvalidArgument);
    }
    expect(guard.load()).to.deep.equal({ unary: 0, streams: 0 });
  });

  it("a stream holds its slot until its last message is sent", async () => {
    const guard = overloadGuard({ maxUnary: 1, maxStreams: 1, exempt: new Set() });
    const call = guard((async () => ({
      stream: true,
      message: (async function* () {
        yield 1;
        yield 2;
      })(),
    })) as never);
    const response = (await call(request("s", "server_streaming"))) as unknown as StreamResponse;
    expect(guard.load().streams).to.equal(1);
    const second = await call(request("s", "server_streaming")).catch((error: unknown) => ConnectError.from(error));
    expect((second as ConnectError).rawMessage).to.equal("The server is at its limit of 1 open streams; retry with exponential backoff");
    const received = [];
    for await (const message of response.message) received.push(message);
    expect(received).to.deep.equal([1, 2]);
    expect(guard.load().streams).to.equal(0);
  });
});
