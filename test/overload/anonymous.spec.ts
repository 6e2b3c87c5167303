import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { setMaxListeners } from "node:events";
import http2 from "node:http2";
import net from "node:net";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { DataService } from "../../gen/larder/data/v1/data_pb.js";
import { monitor, rssMb } from "../support/hostile.js";
import { useServer } from "../support/server.js";
import { sleep } from "../support/async.js";
import { reasonOf } from "../support/errors.js";

const MAX_STREAMS = 5;
const MAX_PUBLIC = 12;
const PER_CONNECTION = 3;
const HTTP2_STREAMS = 50;
const BODY_TIMEOUT_MS = 1_000;
/** The server's own bound on an HTTP/1.1 request head (HANDSHAKE_TIMEOUT_MS in services/http/connection-timeouts.ts), plus slack for a busy machine. */
const HEAD_CLOSED_WITHIN_MS = 16_000;

/** A stream held open until `abort`; resolves with the first message, or the error that refused it. */
function openHealthWatch(url: string, signal: AbortSignal): Promise<"open" | ConnectError> {
  const health = createClient(Health, createGrpcTransport({ baseUrl: url }));
  return new Promise((resolve) => {
    void (async () => {
      try {
        for await (const _ of health.watch({}, { signal })) resolve("open");
      } catch (error) {
        resolve(ConnectError.from(error));
      }
    })();
  });
}

function openReflection(client: ReturnType<typeof createClient<typeof ServerReflection>>, signal: AbortSignal): Promise<"open" | ConnectError> {
  async function* requests() {
    yield { messageRequest: { case: "listServices" as const, value: "" } };
    await new Promise((resolve) => signal.addEventListener("abort", resolve));
  }
  return new Promise((resolve) => {
    void (async () => {
      try {
        for await (const _ of client.serverReflectionInfo(requests(), { signal })) resolve("open");
      } catch (error) {
        resolve(ConnectError.from(error));
      }
    })();
  });
}

function reasons(outcomes: ("open" | ConnectError)[]): Record<string, number> {
  const counted: Record<string, number> = {};
  for (const outcome of outcomes) {
    const name = outcome === "open" ? "open" : `${Code[outcome.code]} ${reasonOf(outcome) ?? ""}`;
    counted[name] = (counted[name] ?? 0) + 1;
  }
  return counted;
}

/** Whether the server closes a raw connection within `ms`, while `feed` writes to it. */
async function closedWithin(port: number, ms: number, feed: (socket: net.Socket) => void): Promise<number | undefined> {
  const socket = net.connect(port, "127.0.0.1");
  socket.on("error", () => undefined);
  socket.on("data", () => undefined);
  await new Promise((resolve) => socket.once("connect", resolve));
  const started = performance.now();
  feed(socket);
  const closed = await Promise.race([
    new Promise<number>((resolve) => socket.once("close", () => resolve(performance.now() - started))),
    sleep(ms).then(() => undefined),
  ]);
  socket.destroy();
  return closed;
}

/** Writes `text` one byte every `everyMs` until the socket closes. */
function trickle(socket: net.Socket, text: string, everyMs: number): void {
  let at = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || at >= text.length) return clearInterval(timer);
    socket.write(text[at++]);
  }, everyMs);
  socket.once("close", () => clearInterval(timer));
}

describe("anonymous surfaces have their own small bounds (issue 22)", function () {
  this.timeout(120_000);
  const running = useServer({
    env: {
      LARDER_MAX_STREAMS: String(MAX_STREAMS),
      LARDER_MAX_PUBLIC_STREAMS: String(MAX_PUBLIC),
      LARDER_MAX_PUBLIC_STREAMS_PER_CONNECTION: String(PER_CONNECTION),
      LARDER_HTTP2_MAX_CONCURRENT_STREAMS: String(HTTP2_STREAMS),
    },
  });

  it("health Watch streams: at most 3 per connection and 12 in all, the rest RESOURCE_EXHAUSTED; keyed Watch streams are untouched", async () => {
    const abort = new AbortController();
    setMaxListeners(0, abort.signal);
    try {
      // One connection: the per-connection bound.
      const health = createClient(Health, createGrpcTransport({ baseUrl: running.url }));
      const oneConnection = await Promise.all(
        Array.from(
          { length: 6 },
          () =>
            new Promise<"open" | ConnectError>((resolve) => {
              void (async () => {
                try {
                  for await (const _ of health.watch({}, { signal: abort.signal })) resolve("open");
                } catch (error) {
                  resolve(ConnectError.from(error));
                }
              })();
            }),
        ),
      );
      expect(reasons(oneConnection)).to.deep.equal({
        open: PER_CONNECTION,
        "ResourceExhausted TOO_MANY_PUBLIC_STREAMS_ON_CONNECTION": 6 - PER_CONNECTION,
      });
      // Many connections: the overall bound.
      const many = await Promise.all(Array.from({ length: 15 }, () => openHealthWatch(running.url, abort.signal)));
      expect(reasons(many)).to.deep.equal({
        open: MAX_PUBLIC - PER_CONNECTION,
        "ResourceExhausted TOO_MANY_PUBLIC_STREAMS": 15 - (MAX_PUBLIC - PER_CONNECTION),
      });
      // Keyed callers keep every one of LARDER_MAX_STREAMS.
      const data = createClient(DataService, createGrpcTransport({ baseUrl: running.url }));
      const watches = await Promise.all(
        Array.from({ length: MAX_STREAMS }, async () => {
          for await (const message of data.watch({}, { signal: abort.signal })) if (message.kind.case === "started") return "started";
          return "ended";
        }),
      );
      expect(watches).to.deep.equal(Array(MAX_STREAMS).fill("started"));
      // A health check (unary) still answers at once.
      expect((await health.check({}, { timeoutMs: 5_000 })).status).to.equal(1);
    } finally {
      abort.abort();
    }
    // Closed streams give their places back.
    await sleep(500);
    const again = new AbortController();
    expect(await openHealthWatch(running.url, again.signal)).to.equal("open");
    again.abort();
  });

  it("reflection streams count against the same small bounds, never against LARDER_MAX_STREAMS", async () => {
    const abort = new AbortController();
    setMaxListeners(0, abort.signal);
    try {
      const outcomes = await Promise.all(
        Array.from({ length: 8 }, async () => {
          const client = createClient(ServerReflection, createGrpcTransport({ baseUrl: running.url }));
          return Promise.all(Array.from({ length: 4 }, () => openReflection(client, abort.signal)));
        }),
      );
      const counted = reasons(outcomes.flat());
      expect(counted.open).to.equal(MAX_PUBLIC);
      expect(
        (counted["ResourceExhausted TOO_MANY_PUBLIC_STREAMS"] ?? 0) + (counted["ResourceExhausted TOO_MANY_PUBLIC_STREAMS_ON_CONNECTION"] ?? 0),
      ).to.equal(32 - MAX_PUBLIC);
      const data = createClient(DataService, createGrpcTransport({ baseUrl: running.url }));
      for await (const message of data.watch({}, { signal: abort.signal })) if (message.kind.case === "started") break;
    } finally {
      abort.abort();
    }
  });

  it("HTTP/2 tells each client its bound on concurrent streams (SETTINGS_MAX_CONCURRENT_STREAMS)", async () => {
    const session = http2.connect(running.url);
    try {
      const settings = await new Promise<http2.Settings>((resolve) => session.once("remoteSettings", resolve));
      expect(settings.maxConcurrentStreams).to.equal(HTTP2_STREAMS);
    } finally {
      session.close();
    }
  });

  it("a flood of 3,000 anonymous health Watch streams over 30 connections: refused cheaply, RSS grows < 80 MB, health answers within 5 s", async () => {
    const before = rssMb(running.server.process.pid!);
    const watch = monitor(running.server.process.pid!, running.url);
    const frame = Buffer.from([0, 0, 0, 0, 0]); // an empty HealthCheckRequest, gRPC-framed
    const sessions = Array.from({ length: 30 }, () => http2.connect(running.url));
    let answered = 0;
    try {
      await Promise.all(
        sessions.map(async (session) => {
          session.on("error", () => undefined);
          await Promise.all(
            Array.from(
              { length: 100 },
              () =>
                new Promise<void>((resolve) => {
                  const stream = session.request({
                    ":method": "POST",
                    ":path": "/grpc.health.v1.Health/Watch",
                    "content-type": "application/grpc",
                    te: "trailers",
                  });
                  stream.on("error", () => resolve());
                  stream.on("response", () => {
                    answered++;
                    resolve();
                  });
                  stream.on("close", () => resolve());
                  stream.end(frame);
                }),
            ),
          );
        }),
      );
      await sleep(500);
      const { peakRssMb, worstHealthMs, healthFailure } = await watch.stop();
      expect(healthFailure).to.equal(undefined);
      expect(running.server.process.exitCode).to.equal(null);
      expect(answered).to.be.greaterThan(0);
      expect(peakRssMb - before, `RSS ${before.toFixed(0)} → ${peakRssMb.toFixed(0)} MB`).to.be.below(80);
      expect(worstHealthMs).to.be.below(5_000);
    } finally {
      for (const session of sessions) session.destroy();
    }
  });

  it("HTTP/1.1: the second request head of a keep-alive connection, trickled, is cut like the first", async () => {
    const closedAfter = await closedWithin(running.server.port, HEAD_CLOSED_WITHIN_MS + 5_000, (socket) => {
      const first = "POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
      socket.write(first);
      socket.once("data", () => trickle(socket, "POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + "a".repeat(200), 400));
    });
    expect(closedAfter, "closed by the server (ms)").to.be.a("number").and.below(HEAD_CLOSED_WITHIN_MS);
  });
});

// Its own server: a 1 s body timeout would also cut honest calls on a machine busy with the flood above.
describe("anonymous surfaces: request bodies are timed, health's too (issue 22)", function () {
  this.timeout(60_000);
  const running = useServer({ env: { LARDER_BODY_TIMEOUT_MS: String(BODY_TIMEOUT_MS) } });

  it("HTTP/1.1: health is cut after LARDER_BODY_TIMEOUT_MS when its body trickles", async () => {
    const closedAfter = await closedWithin(running.server.port, 10_000, (socket) => {
      socket.write("POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n");
      trickle(socket, " ".repeat(100), 300);
    });
    expect(closedAfter, "closed by the server (ms)")
      .to.be.a("number")
      .and.below(BODY_TIMEOUT_MS + 4_000);
  });
});
