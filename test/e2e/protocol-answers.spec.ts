import http2 from "node:http2";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { expect } from "chai";
import { generateKey } from "../../services/access/api-keys.js";
import { useServer } from "../support/server.js";
import { reasonOf, reasonOfBody, type ConnectErrorBody } from "../support/errors.js";
import { keysFile } from "../support/keys.js";

async function connectCall(url: string, path: string, init: RequestInit): Promise<{ status: number; body: ConnectErrorBody }> {
  const response = await fetch(`${url}${path}`, init);
  expect(response.headers.get("content-type")).to.equal("application/json");
  return { status: response.status, body: (await response.json()) as ConnectErrorBody };
}

/** A raw gRPC call over h2c: the response headers (a trailers-only answer carries the status there). */
async function grpcHeaders(url: string, path: string, contentType = "application/grpc"): Promise<http2.IncomingHttpHeaders> {
  const session = http2.connect(url);
  try {
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": contentType, te: "trailers" });
    stream.end(Buffer.from([0, 0, 0, 0, 0]));
    return await new Promise((resolve, reject) => {
      stream.once("response", resolve);
      stream.once("error", reject);
    });
  } finally {
    session.close();
  }
}

/** Decoded the way Connect's own gRPC client decodes a status. */
function grpcReason(headers: http2.IncomingHttpHeaders): string | undefined {
  const fields = new Headers();
  for (const [name, value] of Object.entries(headers)) if (!name.startsWith(":") && value !== undefined) fields.set(name, String(value));
  const failure = findTrailerError(fields);
  return failure && reasonOf(failure);
}

describe("e2e: every answer speaks the caller's protocol and says what to do", function () {
  this.timeout(60_000);
  const running = useServer();

  describe("a wrong method path", () => {
    it("Connect (curl): 404 with a JSON error naming the service's methods", async () => {
      const { status, body } = await connectCall(running.url, "/larder.data.v1.DataService/Gett", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      expect(status).to.equal(404);
      expect(body.code).to.equal("unimplemented");
      expect(body.message).to.contain("has no method 'Gett'").and.contain("Get, BatchGet");
      expect(reasonOfBody(body)).to.equal("UNKNOWN_METHOD");
    });

    it("an unknown service: the message lists the services and the path form", async () => {
      const { status, body } = await connectCall(running.url, "/nothing/here", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      expect(status).to.equal(404);
      expect(body.message).to.contain("/larder.data.v1.DataService/Get").and.contain("larder.admin.v1.AdminService");
    });

    it("gRPC: a trailers-only UNIMPLEMENTED with the reason in grpc-status-details-bin", async () => {
      const headers = await grpcHeaders(running.url, "/larder.data.v1.DataService/Gett");
      expect(headers[":status"]).to.equal(200);
      expect(headers["grpc-status"]).to.equal("12");
      expect(decodeURIComponent(String(headers["grpc-message"]))).to.contain("has no method 'Gett'");
      expect(grpcReason(headers)).to.equal("UNKNOWN_METHOD");
    });

    it("gRPC-Web over HTTP/1.1: the status in the headers", async () => {
      const response = await fetch(`${running.url}/larder.data.v1.DataService/Gett`, {
        method: "POST",
        headers: { "content-type": "application/grpc-web+proto" },
        body: new Uint8Array([0, 0, 0, 0, 0]),
      });
      expect(response.status).to.equal(200);
      expect(response.headers.get("grpc-status")).to.equal("12");
      expect(decodeURIComponent(response.headers.get("grpc-message") ?? "")).to.contain("has no method 'Gett'");
    });
  });

  describe("a missing or unsupported content type", () => {
    it("none at all: 415 with a JSON error that names the content types to send", async () => {
      const { status, body } = await connectCall(running.url, "/larder.data.v1.DataService/Get", {
        method: "POST",
        body: new TextEncoder().encode('{"key":"a"}'),
      });
      expect(status).to.equal(415);
      expect(body.code).to.equal("invalid_argument");
      expect(body.message).to.contain("No content type").and.contain("application/json");
      expect(reasonOfBody(body)).to.equal("UNSUPPORTED_CONTENT_TYPE");
    });

    it("text/plain: 415, naming what was sent", async () => {
      const { status, body } = await connectCall(running.url, "/larder.data.v1.DataService/Get", { method: "POST", body: '{"key":"a"}' });
      expect(status).to.equal(415);
      expect(body.message).to.contain("'text/plain");
    });

    it("plain JSON to Watch: 415 pointing at the streaming content types and at GET /events", async () => {
      const { status, body } = await connectCall(running.url, "/larder.data.v1.DataService/Watch", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: '{"filters":["created:users:*"]}',
      });
      expect(status).to.equal(415);
      expect(body.message).to.contain("application/connect+json").and.contain("GET /events?filter=");
    });

    it("a Connect GET without its encoding: 415 with the form to use", async () => {
      const { status, body } = await connectCall(running.url, "/larder.data.v1.DataService/Get", { method: "GET" });
      expect(status).to.equal(415);
      expect(body.message).to.contain("?encoding=json&message=");
    });

    it("GET on a method that writes: 405 saying POST", async () => {
      const { status, body } = await connectCall(running.url, "/larder.data.v1.DataService/Set?encoding=json&message=%7B%7D", { method: "GET" });
      expect(status).to.equal(405);
      expect(body.message).to.contain("called with POST");
      expect(reasonOfBody(body)).to.equal("HTTP_METHOD_NOT_ALLOWED");
    });

    it("what works still works: Connect GET and POST", async () => {
      const get = await fetch(`${running.url}/larder.data.v1.DataService/Get?encoding=json&message=${encodeURIComponent('{"key":"a"}')}`);
      expect(get.status).to.equal(200);
      const post = await fetch(`${running.url}/larder.data.v1.DataService/Get`, {
        method: "POST",
        headers: { "content-type": "application/json; charset=utf-8" },
        body: '{"key":"a"}',
      });
      expect(post.status).to.equal(200);
    });
  });

  describe("authorization without Bearer", () => {
    const key = generateKey();
    const keyed = useServer({ env: { LARDER_KEYS_FILE: keysFile([{ id: "k", key, environment: "prod", role: "read" }]) } });

    it("the bare key: UNAUTHENTICATED API_KEY_MALFORMED saying to send 'Bearer <key>', never echoing it", async () => {
      const { status, body } = await connectCall(keyed.url, "/larder.data.v1.DataService/Get", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: key },
        body: '{"key":"a"}',
      });
      expect(status).to.equal(401);
      expect(body.message).to.contain("Bearer <key>").and.not.contain(key);
      expect(reasonOfBody(body)).to.equal("API_KEY_MALFORMED");
      const good = await fetch(`${keyed.url}/larder.data.v1.DataService/Get`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
        body: '{"key":"a"}',
      });
      expect(good.status).to.equal(200);
    });
  });
});
