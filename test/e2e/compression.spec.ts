import { request as httpRequest } from "node:http";
import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { DataService } from "../../gen/larder/data/v1/data_pb.js";
import { useServer } from "../support/server.js";

/** A Connect JSON unary call over HTTP/1.1 that offers gzip; resolves with the answer's content-encoding and its size. */
function connectCall(url: string, method: string, body: unknown): Promise<{ status: number; encoding?: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const call = httpRequest(
      `${url}/larder.data.v1.DataService/${method}`,
      { method: "POST", headers: { "content-type": "application/json", "accept-encoding": "gzip" } },
      (response) => {
        let bytes = 0;
        response.on("data", (chunk: Buffer) => (bytes += chunk.length));
        response.on("end", () => resolve({ status: response.statusCode ?? 0, encoding: response.headers["content-encoding"], bytes }));
        response.on("error", reject);
      },
    );
    call.on("error", reject);
    call.end(JSON.stringify(body));
  });
}

/** The grpc-encoding a gRPC call's response came back with (the client offers gzip and br by default). */
async function grpcEncoding(url: string, expression: string): Promise<string | null> {
  const client = createClient(DataService, createGrpcTransport({ baseUrl: url }));
  let encoding: string | null = null;
  await client.query({ expression, limit: 100 }, { onHeader: (headers) => (encoding = headers.get("grpc-encoding")) });
  return encoding;
}

const LARGE = "x".repeat(1_000);

async function storeLargeItems(url: string): Promise<void> {
  const client = createClient(DataService, createGrpcTransport({ baseUrl: url }));
  await client.seed({ items: Array.from({ length: 60 }, (_, i) => ({ key: `big:${i}`, value: fromJson(ValueSchema, { text: LARGE, i }) })) });
}

describe("e2e: response compression (issue 15)", () => {
  describe("by default", () => {
    const running = useServer();
    before(async () => storeLargeItems(running.url));

    it("a caller on loopback gets a large response uncompressed, though it offers gzip (Connect and gRPC)", async () => {
      const answer = await connectCall(running.url, "Query", { expression: "big:*", limit: 100 });
      expect(answer.status).to.equal(200);
      expect(answer.bytes, "the response is large enough to be compressed").to.be.greaterThan(60_000);
      expect(answer.encoding).to.equal(undefined);
      expect(await grpcEncoding(running.url, "big:*")).to.equal(null);
    });
  });

  describe("with LARDER_COMPRESS_LOOPBACK=true", () => {
    const running = useServer({ env: { LARDER_COMPRESS_LOOPBACK: "true" } });
    before(async () => storeLargeItems(running.url));

    it("a response of LARDER_COMPRESS_MIN_BYTES (16 KiB) or more is compressed for a caller that offers it", async () => {
      const answer = await connectCall(running.url, "Query", { expression: "big:*", limit: 100 });
      expect(answer.status).to.equal(200);
      expect(answer.encoding).to.equal("gzip");
      expect(answer.bytes, "60 items of 1,000 x compress well").to.be.lessThan(10_000);
      expect(await grpcEncoding(running.url, "big:*")).to.equal("gzip");
    });

    it("a smaller response is not: gzip would cost more than it saves", async () => {
      const answer = await connectCall(running.url, "Query", { expression: "big:*", limit: 5 });
      expect(answer.status).to.equal(200);
      expect(answer.bytes).to.be.greaterThan(1_024).and.lessThan(16_384);
      expect(answer.encoding).to.equal(undefined);
    });
  });

  describe("with LARDER_COMPRESS_LOOPBACK=true and LARDER_COMPRESS_MIN_BYTES=0", () => {
    const running = useServer({ env: { LARDER_COMPRESS_LOOPBACK: "true", LARDER_COMPRESS_MIN_BYTES: "0" } });

    it("even a small response is compressed", async () => {
      const answer = await connectCall(running.url, "Ping", {});
      expect(answer.status).to.equal(200);
      expect(answer.encoding).to.equal("gzip");
    });
  });
});
