import http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { expect } from "chai";
import { ServerReflectionRequestSchema } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { WatchRequestSchema } from "../../gen/larder/data/v1/data_pb.js";
import { startServer, type RunningServer } from "../support/server.js";
import { sleep } from "../support/async.js";

function framed(bytes: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + bytes.length);
  frame.writeUInt32BE(bytes.length, 1);
  frame.set(bytes, 5);
  return frame;
}

/**
 * A gRPC client that goes away mid-stream the way grpcurl does when stopped:
 * the stream is open (its request side too, for a bidi call), a message has
 * arrived, and the connection is dropped.
 */
async function leaveMidStream(url: string, path: string, message: Uint8Array, endRequest: boolean): Promise<void> {
  const session = http2.connect(url);
  session.on("error", () => undefined);
  const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
  stream.on("error", () => undefined);
  if (endRequest) stream.end(framed(message));
  else stream.write(framed(message));
  await new Promise<void>((resolve, reject) => {
    stream.once("data", () => resolve());
    stream.once("close", () => reject(new Error(`${path} closed before its first message`)));
  });
  session.destroy();
}

type LogLine = { level: number; msg: string; method?: string; code?: string; err?: unknown };

function logLines(server: RunningServer): LogLine[] {
  return server
    .output()
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as LogLine);
}

describe("e2e: a client going away is not a server error", function () {
  this.timeout(60_000);
  let server: RunningServer;
  before(async () => {
    server = await startServer({ env: { LARDER_LOG_LEVEL: "debug" } });
  });
  after(async () => {
    await server?.stop();
  });

  const cases: [string, string, Uint8Array, boolean][] = [
    [
      "a reflection stream (bidi, request still open)",
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
      toBinary(ServerReflectionRequestSchema, create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } })),
      false,
    ],
    [
      "a Watch",
      "/larder.data.v1.DataService/Watch",
      toBinary(WatchRequestSchema, create(WatchRequestSchema, { filters: ["created:users:*"] })),
      true,
    ],
  ];

  for (const [name, path, message, endRequest] of cases) {
    it(`${name}: one debug line with code Canceled, nothing at warn or above, no stack`, async () => {
      const method = path.slice(1);
      await leaveMidStream(server.url, path, message, endRequest);
      const deadline = Date.now() + 10_000;
      while (!logLines(server).some((line) => line.method === method) && Date.now() < deadline) await sleep(20);
      await sleep(200);
      const lines = logLines(server).filter((line) => line.method === method);
      expect(lines, server.output()).to.have.length(1);
      expect(lines[0]).to.include({ level: 20, msg: "call", code: "Canceled" });
      expect(lines[0]).not.to.have.property("err");
      expect(
        logLines(server).filter((line) => line.level >= 40),
        server.output(),
      ).to.deep.equal([]);
    });
  }
});
