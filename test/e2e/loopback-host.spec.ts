import http from "node:http";
import http2 from "node:http2";
import { expect } from "chai";
import { generateKey } from "../../services/access/api-keys.js";
import { hostOf, isLoopbackName } from "../../services/loopback-host.js";
import { useServer } from "../support/server.js";
import { reasonOfBody } from "../support/errors.js";
import { keysFile } from "../support/keys.js";

type Answer = { status: number; body: string };

/** A Connect JSON call over HTTP/1.1 with the Host header a DNS-rebinding page would send. */
function connectCall(port: number, host: string, method: string, message: unknown, authorization?: string): Promise<Answer> {
  const payload = JSON.stringify(message);
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        host: "127.0.0.1",
        port,
        method: "POST",
        path: `/larder.data.v1.DataService/${method}`,
        headers: { host, "content-type": "application/json", ...(authorization ? { authorization } : {}) },
      },
      (response) => {
        let body = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => (body += chunk));
        response.on("end", () => resolve({ status: response.statusCode!, body }));
      },
    );
    request.on("error", reject);
    request.end(payload);
  });
}

/** A gRPC Ping over h2c with the given :authority; resolves with the response headers (trailers-only for a refusal). */
async function grpcPing(url: string, authority: string): Promise<http2.IncomingHttpHeaders> {
  const session = http2.connect(url);
  try {
    const stream = session.request({
      ":method": "POST",
      ":path": "/larder.data.v1.DataService/Ping",
      ":authority": authority,
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.end(Buffer.from([0, 0, 0, 0, 0]));
    const headers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      stream.once("response", resolve);
      stream.once("error", reject);
    });
    const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve) => {
      stream.once("trailers", resolve);
      stream.once("end", () => resolve({}));
      stream.resume();
    });
    return { ...headers, ...trailers };
  } finally {
    session.close();
  }
}

describe("e2e: without a keys file only loopback hosts are served (DNS rebinding)", function () {
  this.timeout(60_000);

  describe("hosts", () => {
    it("loopback names: localhost and its subdomains, 127.0.0.0/8, ::1, with or without a port", () => {
      for (const authority of [
        "localhost",
        "LOCALHOST:4150",
        "app.localhost:80",
        "127.0.0.1:4150",
        "127.9.8.7",
        "[::1]:4150",
        "[::1]",
        "localhost.",
      ]) {
        expect(isLoopbackName(hostOf(authority)), authority).to.equal(true);
      }
      for (const authority of [
        "evil.example",
        "evil.example:4150",
        "localhost.evil.example",
        "127.0.0.1.evil.example",
        "10.0.0.1:4150",
        "[::2]:4150",
        "0.0.0.0",
      ]) {
        expect(isLoopbackName(hostOf(authority)), authority).to.equal(false);
      }
    });
  });

  describe("no keys file", () => {
    const running = useServer();

    it("Connect: a request addressed to another name is PERMISSION_DENIED HOST_NOT_ALLOWED, and nothing is written", async () => {
      const { port } = running.server;
      const refused = await connectCall(port, `rebound.example:${port}`, "Set", { key: "rebind:a", value: 1 });
      expect(refused.status).to.equal(403);
      expect(JSON.parse(refused.body)).to.include({ code: "permission_denied" });
      expect(reasonOfBody(refused.body)).to.equal("HOST_NOT_ALLOWED");
      expect(JSON.parse(refused.body).message).to.contain("LARDER_KEYS_FILE");
      const read = await connectCall(port, `127.0.0.1:${port}`, "Get", { key: "rebind:a" });
      expect(read.status).to.equal(200);
      expect(JSON.parse(read.body)).to.deep.equal({});
    });

    it("Connect: localhost, 127.0.0.1 and [::1] are served", async () => {
      const { port } = running.server;
      for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]) {
        const answer = await connectCall(port, host, "Ping", {});
        expect(answer.status, host).to.equal(200);
      }
    });

    it("gRPC: another :authority gets PERMISSION_DENIED in the trailers-only answer; the loopback one is served", async () => {
      const refused = await grpcPing(running.url, "rebound.example");
      expect(refused["grpc-status"]).to.equal("7");
      const served = await grpcPing(running.url, `127.0.0.1:${running.server.port}`);
      expect(served["grpc-status"]).to.equal("0");
    });
  });

  describe("with a keys file the key decides, whatever the host", () => {
    const key = generateKey();
    const keyed = useServer({ env: { LARDER_KEYS_FILE: keysFile([{ id: "k", key, environment: "prod", role: "read" }]) } });

    it("a request addressed to a public name is served with a valid key", async () => {
      const answer = await connectCall(keyed.server.port, "larder.example.com", "Ping", {}, `Bearer ${key}`);
      expect(answer.status).to.equal(200);
    });
  });
});
