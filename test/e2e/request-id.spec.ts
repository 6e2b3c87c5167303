import http from "node:http";
import { Code, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { DataService } from "../../gen/larder/data/v1/data_pb.js";
import { requestIdOf } from "../../services/request-id.js";
import { holdCall, startInProcess, type InProcessServer } from "../support/in-process.js";
import { failureOf } from "../support/errors.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe("request ids (x-request-id)", function () {
  this.timeout(60_000);

  it("keeps a caller's id when it is short and plain; makes one otherwise", () => {
    expect(requestIdOf("7f3c9a2e-1b4d-4e8f-9a0b-2c3d4e5f6a7b")).to.equal("7f3c9a2e-1b4d-4e8f-9a0b-2c3d4e5f6a7b");
    expect(requestIdOf("trace:00-4bf92f3577b34da6a3ce929d0e0e4736/1+x=")).to.equal("trace:00-4bf92f3577b34da6a3ce929d0e0e4736/1+x=");
    for (const bad of [undefined, "", "a b", "line\nbreak", '{"json":1}', "é", "x".repeat(129), ["one", "two"]]) {
      expect(requestIdOf(bad), JSON.stringify(bad)).to.match(UUID);
    }
    expect(requestIdOf(undefined)).to.not.equal(requestIdOf(undefined));
  });

  describe("on every protocol", () => {
    let server: InProcessServer;
    before(async () => {
      server = await startInProcess();
    });
    after(async () => {
      await server?.close();
    });

    const protocols: [string, () => Transport][] = [
      ["gRPC", () => createGrpcTransport({ baseUrl: server.url })],
      ["gRPC-Web", () => createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" })],
      ["Connect over HTTP/2", () => createConnectTransport({ baseUrl: server.url, httpVersion: "2" })],
      ["Connect over HTTP/1.1", () => createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" })],
    ];

    for (const [name, transport] of protocols) {
      it(`${name}: the answer carries the caller's id, or a new one; the call's log line names it`, async () => {
        const data = createClient(DataService, transport());
        const id = `it-${name.replace(/\W+/g, "-")}`;
        let answered: string | null = null;
        await data.ping({}, { headers: { "x-request-id": id }, onHeader: (headers) => (answered = headers.get("x-request-id")) });
        expect(answered).to.equal(id);
        expect(
          server.logs.some((line) => line.msg === "call" && line.requestId === id && line.method === "larder.data.v1.DataService/Ping"),
        ).to.equal(true);

        let made: string | null = null;
        await data.ping({}, { headers: { "x-request-id": "not an id; drop table" }, onHeader: (headers) => (made = headers.get("x-request-id")) });
        expect(made).to.match(UUID);
        expect(server.logs.some((line) => line.requestId === made)).to.equal(true);
        expect(JSON.stringify(server.logs)).to.not.include("drop table");
      });

      it(`${name}: an error answer carries it too, and so does the error's log line`, async () => {
        const data = createClient(DataService, transport());
        const id = `err-${name.replace(/\W+/g, "-")}`;
        const failure = await failureOf(data.get({ key: "" }, { headers: { "x-request-id": id } }));
        expect(failure.code).to.equal(Code.InvalidArgument);
        expect(failure.metadata.get("x-request-id")).to.equal(id);
        const line = server.logs.find((entry) => entry.requestId === id);
        expect(line).to.include({ code: "InvalidArgument", method: "larder.data.v1.DataService/Get" });
      });
    }
  });

  it("the 503 of a shutdown carries it", async () => {
    const server = await startInProcess({ LARDER_SHUTDOWN_GRACE_MS: "5000" });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const post = (id: string) =>
      new Promise<http.IncomingMessage>((resolve, reject) => {
        const call = http.request(`${server.url}/larder.data.v1.DataService/Ping`, {
          method: "POST",
          agent,
          headers: { "content-type": "application/json", "x-request-id": id },
        });
        call.on("response", (answer) => {
          answer.resume();
          answer.on("end", () => resolve(answer));
        });
        call.on("error", reject);
        call.end("{}");
      });
    // A call that never ends keeps the server in its grace period.
    const held = await holdCall(server);
    try {
      expect((await post("before-shutdown")).headers["x-request-id"]).to.equal("before-shutdown");
      const closing = server.close();
      const refused = await post("during-shutdown");
      expect(refused.statusCode).to.equal(503);
      expect(refused.headers["x-request-id"]).to.equal("during-shutdown");
      held.destroy();
      await closing;
    } finally {
      held.destroy();
      agent.destroy();
    }
  });

  it("refusals written before any handler (admission control) carry it in every protocol", async () => {
    const server = await startInProcess({ LARDER_MAX_IN_FLIGHT: "1" });
    const held = await holdCall(server);
    try {
      const transports: [string, Transport][] = [
        ["grpc", createGrpcTransport({ baseUrl: server.url })],
        ["grpc-web", createGrpcWebTransport({ baseUrl: server.url, httpVersion: "2" })],
        ["connect", createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" })],
      ];
      for (const [name, transport] of transports) {
        const failure = await failureOf(createClient(DataService, transport).get({ key: "a:1" }, { headers: { "x-request-id": `refused-${name}` } }));
        expect(failure.code, name).to.equal(Code.ResourceExhausted);
        expect(failure.metadata.get("x-request-id"), name).to.equal(`refused-${name}`);
      }
    } finally {
      held.destroy();
      await server.close();
    }
  });
});
