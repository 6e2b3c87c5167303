import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type UnaryRequest, type UnaryResponse, type StreamResponse } from "@connectrpc/connect";
import {
  connectNodeAdapter,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { DataService, GetRequestSchema } from "../../gen/larder/data/v1/data_pb.js";
import { admissionGate, overloadGuard, type AdmissionGate } from "../../services/overload.js";
import { eventually, sleep } from "../support/async.js";
import { failureOf, reasonOf } from "../support/errors.js";

/** The in-flight bound, driven with calls that really wait (the embedded engine's never do). */
describe("overload guard (unit)", () => {
  const request = (service: string, methodKind = "unary") => ({ service: { typeName: service }, method: { methodKind } }) as unknown as UnaryRequest;

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
    const refused = await failureOf(call(request("larder.data.v1.DataService")));
    expect(refused.code).to.equal(Code.ResourceExhausted);
    expect(refused.rawMessage).to.equal("The server is at its limit of 3 calls in flight; retry with exponential backoff");
    expect(refused.findDetails(ErrorInfoSchema)[0]).to.include({ reason: "TOO_MANY_CALLS", domain: "larder.dev" });
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
      const failure = await failureOf(call(request("s")));
      expect(failure.code).to.equal(Code.InvalidArgument);
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
    const second = await failureOf(call(request("s", "server_streaming")));
    expect(second.rawMessage).to.equal("The server is at its limit of 1 open streams; retry with exponential backoff");
    expect(reasonOf(second)).to.equal("TOO_MANY_STREAMS");
    const received = [];
    for await (const message of response.message) received.push(message);
    expect(received).to.deep.equal([1, 2]);
    expect(guard.load().streams).to.equal(0);
  });
});

/**
 * The admission gate in front of the Connect handler, on real HTTP/2 and
 * HTTP/1.1 servers in this process, with handlers that really wait, so the
 * bound is exercised exactly: counted per HTTP request, overall and per
 * connection, refused in each protocol's own form before the handler (or the
 * body) is touched.
 */
describe("admission gate (in-process HTTP/2 and HTTP/1.1 servers)", function () {
  this.timeout(30_000);

  interface Rig {
    gate: AdmissionGate;
    h2url: string;
    h1url: string;
    /** Calls that reached the handler. */
    handled: () => number;
    /** Waiting `get({key: "wait"})` calls in the handler. */
    waiting: () => number;
    release: () => void;
    close: () => Promise<void>;
  }

  async function rig(limits: { maxInFlight: number; maxPerConnection: number; discardMs?: number; bodyMs?: number }): Promise<Rig> {
    let handled = 0;
    let gates: (() => void)[] = [];
    const handler = connectNodeAdapter({
      routes: (router) => {
        router.service(DataService, {
          async get(request, context) {
            handled++;
            if (request.key === "wait") {
              await new Promise<void>((resolve) => {
                gates.push(resolve);
                context.signal.addEventListener("abort", () => resolve(), { once: true });
              });
            }
            return {};
          },
          async *watch(_request, context) {
            handled++;
            yield { kind: { case: "started", value: { resumeToken: "1.0" } } };
            await new Promise((resolve) => context.signal.addEventListener("abort", resolve, { once: true }));
          },
        });
        router.service(Health, { check: async () => ({ status: 1 }) });
      },
    });
    const gate = admissionGate(handler, {
      bodyMs: 60_000,
      ...limits,
      services: [DataService, Health],
      exempt: new Set([Health.typeName]),
      publicStreams: { services: [Health], max: 100, maxPerConnection: 100 },
    });
    // As the real server: room for a few maximal (16 MiB) messages per session (see http2Options in services/http/listener.ts).
    const h2 = http2.createServer({ maxSessionMemory: 80 }, gate);
    const h1 = http.createServer(gate);
    const sessions = new Set<http2.Http2Session>();
    h2.on("session", (session) => sessions.add(session));
    const listen = (server: net.Server) =>
      new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port)));
    const [p2, p1] = [await listen(h2), await listen(h1)];
    return {
      gate,
      h2url: `http://127.0.0.1:${p2}`,
      h1url: `http://127.0.0.1:${p1}`,
      handled: () => handled,
      waiting: () => gates.length,
      release: () => {
        gates.forEach((open) => open());
        gates = [];
      },
      close: async () => {
        sessions.forEach((session) => session.destroy());
        h1.closeAllConnections();
        await Promise.all([new Promise((resolve) => h2.close(resolve)), new Promise((resolve) => h1.close(resolve))]);
      },
    };
  }

  /** A gRPC client on its own HTTP/2 connection. */
  function connection(url: string) {
    const sessionManager = new Http2SessionManager(url);
    return { client: createClient(DataService, createGrpcTransport({ baseUrl: url, sessionManager })), close: () => sessionManager.abort() };
  }

  const until = (condition: () => boolean, what: string) => eventually(condition, what, 2_000, 10);

  /** HTTP/1.1: a body shorter than its Content-Length, then silence; resolves with the ms until the server closes the socket. */
  function closedAfterStalledBody(h1url: string): Promise<number> {
    return new Promise<number>((resolve) => {
      const socket = net.connect(Number(new URL(h1url).port), "127.0.0.1", () =>
        socket.write(
          'POST /larder.data.v1.DataService/Get HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"key"',
        ),
      );
      const opened = Date.now();
      socket.on("error", () => undefined);
      socket.on("data", () => undefined);
      socket.on("close", () => resolve(Date.now() - opened));
    });
  }

  let current: Rig | undefined;
  const connections: { close: () => void }[] = [];
  afterEach(async () => {
    current?.release();
    connections.splice(0).forEach((each) => each.close());
    await current?.close();
    current = undefined;
  });
  const open = (url: string) => {
    const each = connection(url);
    connections.push(each);
    return each.client;
  };

  it("overall: past the bound a call is refused at once, never reaches the handler; health and streams pass; all recover", async () => {
    const r = (current = await rig({ maxInFlight: 4, maxPerConnection: 100 }));
    const held = Array.from({ length: 4 }, () => open(r.h2url).get({ key: "wait" }));
    await until(() => r.waiting() === 4, "four calls wait in the handler");
    expect(r.gate.load().inFlight).to.equal(4);

    const started = performance.now();
    const refused = await failureOf(open(r.h2url).get({ key: "other" }));
    expect(performance.now() - started, "refused at once, not queued").to.be.below(1000);
    expect(refused.code).to.equal(Code.ResourceExhausted);
    expect(refused.rawMessage).to.equal("The server is at its limit of 4 calls in flight; retry with exponential backoff");
    expect(r.handled(), "the refused call never reached the handler").to.equal(4);
    expect(r.gate.load().refused).to.equal(1);

    const health = createClient(Health, createGrpcTransport({ baseUrl: r.h2url }));
    expect((await health.check({})).status, "health is exempt").to.equal(1);
    const abort = new AbortController();
    const stream = open(r.h2url).watch({}, { signal: abort.signal })[Symbol.asyncIterator]();
    expect((await stream.next()).value?.kind.case, "streams are left to the stream bound").to.equal("started");
    abort.abort();

    r.release();
    await Promise.all(held);
    await until(() => r.gate.load().inFlight === 0, "every slot released");
    await open(r.h2url).get({ key: "after" });
  });

  it("per connection: one connection cannot take the whole budget", async () => {
    const r = (current = await rig({ maxInFlight: 100, maxPerConnection: 2 }));
    const busy = open(r.h2url);
    const held = [busy.get({ key: "wait" }), busy.get({ key: "wait" })];
    await until(() => r.waiting() === 2, "two calls wait");
    const refused = await failureOf(busy.get({ key: "wait" }));
    expect(refused.code).to.equal(Code.ResourceExhausted);
    expect(refused.rawMessage).to.equal(
      "This connection is at its limit of 2 calls in flight; retry with exponential backoff or spread calls over more connections",
    );
    expect(reasonOf(refused)).to.equal("TOO_MANY_CALLS_ON_CONNECTION");
    const other = open(r.h2url).get({ key: "wait" });
    await until(() => r.waiting() === 3, "another connection is still served");
    r.release();
    await Promise.all([...held, other]);
    await until(() => r.gate.load().inFlight === 0, "every slot released");
    await busy.get({ key: "after" });
  });

  it("each protocol gets RESOURCE_EXHAUSTED in its own form: gRPC (connect-node and grpc-js), gRPC-Web, Connect (429 + Retry-After)", async () => {
    const r = (current = await rig({ maxInFlight: 1, maxPerConnection: 100 }));
    const held = open(r.h2url).get({ key: "wait" });
    await until(() => r.waiting() === 1, "one call waits");

    // Each with its ErrorInfo reason, as every other error carries one (issue 16).
    const refusal = (error: ConnectError) => [error.code, reasonOf(error)];
    const expected = [Code.ResourceExhausted, "TOO_MANY_CALLS"];
    expect(refusal(await failureOf(open(r.h2url).get({ key: "x" }))), "gRPC").to.deep.equal(expected);
    const web = createClient(DataService, createGrpcWebTransport({ baseUrl: r.h1url, httpVersion: "1.1" }));
    expect(refusal(await failureOf(web.get({ key: "x" }))), "gRPC-Web over HTTP/1.1").to.deep.equal(expected);
    const webH2 = createClient(DataService, createGrpcWebTransport({ baseUrl: r.h2url, httpVersion: "2" }));
    expect(refusal(await failureOf(webH2.get({ key: "x" }))), "gRPC-Web over HTTP/2").to.deep.equal(expected);
    const connectH1 = createClient(DataService, createConnectTransport({ baseUrl: r.h1url, httpVersion: "1.1" }));
    expect(refusal(await failureOf(connectH1.get({ key: "x" }))), "Connect over HTTP/1.1").to.deep.equal(expected);
    const connectGet = createClient(DataService, createConnectTransport({ baseUrl: r.h1url, httpVersion: "1.1", useHttpGet: true }));
    expect(refusal(await failureOf(connectGet.get({ key: "x" }))), "Connect GET").to.deep.equal(expected);

    const raw = await fetch(`${r.h1url}/larder.data.v1.DataService/Get`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"key":"x"}',
    });
    expect(raw.status).to.equal(429);
    expect(raw.headers.get("retry-after")).to.equal("1");
    const body = (await raw.json()) as { code: string; message: string; details: { type: string }[] };
    expect([body.code, body.message]).to.deep.equal([
      "resource_exhausted",
      "The server is at its limit of 1 calls in flight; retry with exponential backoff",
    ]);
    expect(body.details.map((detail) => detail.type)).to.deep.equal(["google.rpc.ErrorInfo"]);

    const grpcJs = new grpc.Client(r.h2url.replace("http://", ""), grpc.credentials.createInsecure());
    const status = await new Promise<grpc.ServiceError | null>((resolve) =>
      grpcJs.makeUnaryRequest(
        "/larder.data.v1.DataService/Get",
        (message: Uint8Array) => Buffer.from(message),
        (bytes: Buffer) => bytes,
        toBinary(GetRequestSchema, create(GetRequestSchema, { key: "x" })),
        (error) => resolve(error),
      ),
    );
    grpcJs.close();
    expect(status?.code, "grpc-js").to.equal(grpc.status.RESOURCE_EXHAUSTED);
    expect(status?.details).to.contain("retry with exponential backoff");

    expect(r.handled(), "no refused call reached the handler").to.equal(1);
    r.release();
    await held;
  });

  it("a refused call with a 5 MB body is answered cleanly once its body is read and dropped, and its connection stays usable (gRPC over HTTP/2, Connect over HTTP/1.1)", async () => {
    const r = (current = await rig({ maxInFlight: 1, maxPerConnection: 100 }));
    const held = open(r.h2url).get({ key: "wait" });
    await until(() => r.waiting() === 1, "one call waits");
    const items = Array.from({ length: 25 }, (_, i) => ({
      key: `big:${i}`,
      value: { kind: { case: "stringValue" as const, value: "x".repeat(200_000) } },
    }));
    const grpcClient = open(r.h2url);
    for (let i = 0; i < 3; i++) expect((await failureOf(grpcClient.batchSet({ items }))).code).to.equal(Code.ResourceExhausted);
    const connectH1 = createClient(DataService, createConnectTransport({ baseUrl: r.h1url, httpVersion: "1.1" }));
    for (let i = 0; i < 3; i++) expect((await failureOf(connectH1.batchSet({ items }))).code).to.equal(Code.ResourceExhausted);
    expect(r.handled(), "no refused call reached the handler").to.equal(1);
    expect(r.gate.load().refused).to.equal(6);
    expect(r.gate.load().discardedBytes, "every refused body was read through (and dropped)").to.be.above(6 * 25 * 200_000);
    // The same connections still work once there is room.
    r.release();
    await held;
    await until(() => r.gate.load().inFlight === 0, "slot released");
    await grpcClient.get({ key: "after" });
    await connectH1.get({ key: "after" });
  });

  it("a refused call whose body never ends is cut after the discard time (HTTP/2: RST_STREAM CANCEL, the connection serves on; HTTP/1.1: the socket is closed)", async () => {
    const r = (current = await rig({ maxInFlight: 1, maxPerConnection: 100, discardMs: 300 }));
    const held = open(r.h2url).get({ key: "wait" });
    await until(() => r.waiting() === 1, "one call waits");
    const session = http2.connect(r.h2url);
    const stream = session.request({
      ":method": "POST",
      ":path": "/larder.data.v1.DataService/Get",
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.write(Buffer.from([0, 0, 0, 0, 100, 0x0a])); // a message that claims 100 bytes, and the body never ends
    stream.on("error", () => undefined);
    const started = Date.now();
    const code = await new Promise<number>((resolve) => stream.on("close", () => resolve(stream.rstCode ?? -1)));
    expect(code, "reset by the server").to.equal(http2.constants.NGHTTP2_CANCEL);
    expect(Date.now() - started).to.be.within(250, 3000);
    expect(r.handled(), "never reached the handler").to.equal(1);
    // The same connection still works.
    const again = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/grpc", te: "trailers" });
    const status = await new Promise<string | undefined>((resolve) => {
      again.on("trailers", (trailers) => resolve(String(trailers["grpc-status"])));
      again.on("close", () => resolve(undefined));
      again.on("data", () => undefined);
      again.end(Buffer.from([0, 0, 0, 0, 0]));
    });
    expect(status).to.equal("0");
    session.close();
    const closedAfter = await closedAfterStalledBody(r.h1url);
    expect(closedAfter).to.be.within(250, 3000);
    r.release();
    await held;
  });

  it("an admitted call whose body stops half-way is cut after LARDER_BODY_TIMEOUT_MS and frees its slot (HTTP/2: RST_STREAM CANCEL, the connection serves on; HTTP/1.1: the socket is closed)", async () => {
    const r = (current = await rig({ maxInFlight: 1, maxPerConnection: 100, bodyMs: 300 }));
    const session = http2.connect(r.h2url);
    const stream = session.request({
      ":method": "POST",
      ":path": "/larder.data.v1.DataService/Get",
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.write(Buffer.from([0, 0, 0, 0, 100, 0x0a])); // a message that claims 100 bytes, and the body never ends
    stream.on("error", () => undefined);
    await until(() => r.gate.load().inFlight === 1, "the call is admitted while its body arrives");
    const started = Date.now();
    const code = await new Promise<number>((resolve) => stream.on("close", () => resolve(stream.rstCode ?? -1)));
    expect(code, "reset by the server").to.equal(http2.constants.NGHTTP2_CANCEL);
    expect(Date.now() - started).to.be.below(3000);
    await until(() => r.gate.load().inFlight === 0, "its slot is free again");
    expect(r.handled(), "the handler never saw a call without its whole body").to.equal(0);
    const client = createClient(DataService, createGrpcTransport({ baseUrl: r.h2url, sessionManager: new Http2SessionManager(r.h2url) }));
    await client.get({ key: "after" });
    session.close();

    const closedAfter = await closedAfterStalledBody(r.h1url);
    expect(closedAfter).to.be.within(250, 3000);
    await until(() => r.gate.load().inFlight === 0, "its slot is free again");
    expect(r.handled()).to.equal(1);
  });

  it("a call whose body takes less than LARDER_BODY_TIMEOUT_MS, or whose handler takes longer (gRPC, Connect GET), is not cut", async () => {
    const r = (current = await rig({ maxInFlight: 10, maxPerConnection: 100, bodyMs: 400 }));
    const session = http2.connect(r.h2url);
    const stream = session.request({
      ":method": "POST",
      ":path": "/larder.data.v1.DataService/Get",
      "content-type": "application/grpc",
      te: "trailers",
    });
    const message = Buffer.from([0x0a, 4, ...Buffer.from("slow")]);
    stream.write(Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message.subarray(0, 2)]));
    setTimeout(() => stream.end(message.subarray(2)), 200);
    const status = await new Promise<string | undefined>((resolve) => {
      stream.on("trailers", (trailers) => resolve(String(trailers["grpc-status"])));
      stream.on("close", () => resolve(undefined));
      stream.on("data", () => undefined);
    });
    expect(status, "a body in two parts 200 ms apart is served").to.equal("0");
    session.close();
    // Connect GET calls carry their message in the URL and have no body to wait for, over HTTP/1.1 and HTTP/2.
    const viaGet = (httpVersion: "1.1" | "2") =>
      createClient(DataService, createConnectTransport({ baseUrl: httpVersion === "2" ? r.h2url : r.h1url, httpVersion, useHttpGet: true }));
    const waiting = [open(r.h2url).get({ key: "wait" }), viaGet("1.1").get({ key: "wait" }), viaGet("2").get({ key: "wait" })];
    await until(() => r.waiting() === 3, "the calls wait in the handler");
    await sleep(700);
    r.release();
    await Promise.all(waiting);
  });

  it("a call cancelled while it waits frees its slot", async () => {
    const r = (current = await rig({ maxInFlight: 1, maxPerConnection: 1 }));
    const client = open(r.h2url);
    const abort = new AbortController();
    const held = failureOf(client.get({ key: "wait" }, { signal: abort.signal }));
    await until(() => r.waiting() === 1, "the call waits");
    abort.abort();
    expect((await held).code).to.equal(Code.Canceled);
    await until(() => r.gate.load().inFlight === 0, "the cancelled call's slot is free");
    await client.get({ key: "after" });
  });
});
