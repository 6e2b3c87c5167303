import { fromBinary, toBinary, create } from "@bufbuild/protobuf";
import { createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import * as http from "node:http";
import { DataService, GetRequestSchema, GetResponseSchema } from "../../gen/larder/data/v1/data_pb.js";
import { useServer } from "../support/server.js";

function varint(value: number): number[] {
  const bytes: number[] = [];
  for (; value > 0x7f; value = Math.floor(value / 128)) bytes.push((value % 128) | 0x80);
  bytes.push(value);
  return bytes;
}

/**
 * One port, every protocol: the same item written and read over gRPC (two
 * independent client implementations), gRPC-Web and Connect, over HTTP/2
 * cleartext and HTTP/1.1.
 */
describe("e2e: one port serves gRPC, gRPC-Web and Connect over h2c and HTTP/1.1", () => {
  const running = useServer();

  const transports: [string, () => Transport][] = [
    ["gRPC over HTTP/2 (connect-node)", () => createGrpcTransport({ baseUrl: running.url })],
    ["Connect binary over HTTP/2", () => createConnectTransport({ baseUrl: running.url, httpVersion: "2" })],
    ["Connect JSON over HTTP/1.1", () => createConnectTransport({ baseUrl: running.url, httpVersion: "1.1", useBinaryFormat: false })],
    ["gRPC-Web over HTTP/1.1", () => createGrpcWebTransport({ baseUrl: running.url, httpVersion: "1.1" })],
    ["gRPC-Web over HTTP/2", () => createGrpcWebTransport({ baseUrl: running.url, httpVersion: "2" })],
  ];

  for (const [name, transport] of transports) {
    it(`${name}: Set then Get round-trips the value`, async () => {
      const client = createClient(DataService, transport());
      const key = `t:${name.replace(/\W+/g, "-")}`;
      const set = await client.set({ key, value: { kind: { case: "stringValue", value: name } } });
      expect(set.item?.key).to.equal(key);
      const got = await client.get({ key });
      expect(got.item?.value?.kind).to.deep.equal({ case: "stringValue", value: name });
    });
  }

  it("Connect JSON with plain fetch (what curl does): POST /larder.data.v1.DataService/Get", async () => {
    const client = createClient(DataService, createGrpcTransport({ baseUrl: running.url }));
    await client.set({ key: "fetch:a", value: { kind: { case: "numberValue", value: 42 } } });
    const response = await fetch(`${running.url}/larder.data.v1.DataService/Get`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key: "fetch:a" }),
    });
    expect(response.status).to.equal(200);
    const body = (await response.json()) as { item: { key: string; value: unknown } };
    expect(body.item.key).to.equal("fetch:a");
    expect(body.item.value).to.equal(42);
  });

  it("a Connect JSON error carries the code, message and the ErrorInfo reason", async () => {
    const response = await fetch(`${running.url}/larder.data.v1.DataService/Get`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key: "ns:" }),
    });
    expect(response.status).to.equal(400);
    const body = (await response.json()) as { code: string; message: string; details: { type: string }[] };
    expect([body.code, body.message]).to.deep.equal(["invalid_argument", "Invalid key"]);
    expect(body.details.map((detail) => detail.type)).to.deep.equal(["google.rpc.ErrorInfo"]);
  });

  it("an independent gRPC implementation (@grpc/grpc-js) gets the same answer", async () => {
    const client = createClient(DataService, createGrpcTransport({ baseUrl: running.url }));
    await client.set({ key: "grpcjs:a", value: { kind: { case: "boolValue", value: true } } });
    const channel = new grpc.Client(`127.0.0.1:${new URL(running.url).port}`, grpc.credentials.createInsecure());
    try {
      const response = await new Promise<Uint8Array>((resolve, reject) =>
        channel.makeUnaryRequest(
          "/larder.data.v1.DataService/Get",
          (request: Uint8Array) => Buffer.from(request),
          (bytes: Buffer) => new Uint8Array(bytes),
          toBinary(GetRequestSchema, create(GetRequestSchema, { key: "grpcjs:a" })),
          (error, value) => (error ? reject(error) : resolve(value!)),
        ),
      );
      const decoded = fromBinary(GetResponseSchema, response);
      expect(decoded.item?.value?.kind).to.deep.equal({ case: "boolValue", value: true });
      const failure = await new Promise<grpc.ServiceError>((resolve) =>
        channel.makeUnaryRequest(
          "/larder.data.v1.DataService/Get",
          (request: Uint8Array) => Buffer.from(request),
          (bytes: Buffer) => new Uint8Array(bytes),
          toBinary(GetRequestSchema, create(GetRequestSchema, { key: " : " })),
          (error) => resolve(error!),
        ),
      );
      expect([failure.code, failure.details]).to.deep.equal([grpc.status.INVALID_ARGUMENT, "Invalid key"]);
    } finally {
      channel.close();
    }
  });

  it("a request larger than the message limit → RESOURCE_EXHAUSTED, and the server keeps serving", async () => {
    // The client's own HTTP/2 session would refuse to buffer 17 MB (ENHANCE_YOUR_CALM) before the server could answer.
    const client = createClient(DataService, createGrpcTransport({ baseUrl: running.url, nodeOptions: { maxSessionMemory: 64 } }));
    const huge = "x".repeat(17 * 1024 * 1024);
    let code: number | undefined;
    try {
      await client.set({ key: "big", value: { kind: { case: "stringValue", value: huge } } });
    } catch (error) {
      code = (error as { code?: number }).code;
    }
    expect(code).to.equal(8); // RESOURCE_EXHAUSTED
    expect((await client.ping({})).$typeName).to.equal("larder.data.v1.PingResponse");
  });

  it("HTTP/1.1: a chunked body over the limit → RESOURCE_EXHAUSTED; the rest is read and dropped, so the next call does not hang", async () => {
    // Chunked (no content-length), as Connect's binary HTTP/1.1 transport sends: refused before it has all arrived.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const post = (path: string, chunks: Buffer[]) =>
      new Promise<{ status: number; connection?: string; body: string }>((resolve, reject) => {
        const request = http.request(
          `${running.url}${path}`,
          { method: "POST", agent, headers: { "content-type": "application/proto" } },
          (response) => {
            let body = "";
            response.on("data", (chunk) => (body += chunk));
            response.on("end", () => resolve({ status: response.statusCode!, connection: response.headers.connection, body }));
          },
        );
        request.on("error", reject);
        for (const chunk of chunks) request.write(chunk);
        request.end();
      });
    const request = toBinary(GetRequestSchema, create(GetRequestSchema, { key: "a" }));
    // Field 15 (unknown, so skipped when parsed) as one length-delimited 18 MB blob.
    const padding = Buffer.alloc(18_000_000, 0x61);
    const header = Buffer.from([0x7a, ...varint(padding.length)]);
    const big = await post("/larder.data.v1.DataService/Get", [Buffer.from(request), header, padding]);
    expect(big.status).to.equal(429);
    expect(big.body).to.contain("resource_exhausted");
    const started = Date.now();
    const small = await post("/larder.data.v1.DataService/Ping", []);
    expect(small.status).to.equal(200);
    expect(Date.now() - started, "the next call is not held until the body timeout").to.be.below(5_000);
    agent.destroy();
  });

  it("a batch of 25 items of almost 400 KB fits in one message (V8)", async () => {
    const client = createClient(DataService, createGrpcTransport({ baseUrl: running.url }));
    const items = Array.from({ length: 25 }, (_, i) => ({
      key: `big:${i}`,
      value: { kind: { case: "stringValue" as const, value: "y".repeat(400 * 1024 - 40) } },
    }));
    const response = await client.batchSet({ items, overwrite: true });
    expect(response.items).to.have.length(25);
  });
});
