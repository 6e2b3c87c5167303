import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { DataService } from "../../gen/larder/data/v1/data_pb.js";
import { runServerToExit, startServer, type RunningServer } from "../support/server.js";
import { sleep } from "../support/async.js";
import { selfSignedCertificate } from "../support/tls.js";

describe("e2e: TLS (LARDER_TLS_CERT / LARDER_TLS_KEY): h2 and HTTP/1.1 on one port by ALPN", function () {
  this.timeout(60_000);
  const files = selfSignedCertificate();
  let server: RunningServer | undefined;

  before(async function () {
    if (!files) this.skip(); // no openssl on this machine: reported as pending
    server = await startServer({ env: { LARDER_TLS_CERT: files!.cert, LARDER_TLS_KEY: files!.key } });
  });
  after(async () => {
    await server?.stop();
  });

  it("announces https and serves gRPC over TLS and Connect over HTTPS/1.1 with the certificate", async () => {
    expect(server!.output()).to.match(/larder listening on https:\/\/127\.0\.0\.1:\d+/);
    const baseUrl = `https://127.0.0.1:${server!.port}`;
    const ca = readFileSync(files!.cert);
    const grpc = createClient(DataService, createGrpcTransport({ baseUrl, nodeOptions: { ca } }));
    await grpc.set({ key: "tls:a", value: { kind: { case: "stringValue", value: "secret" } } });
    const connect = createClient(DataService, createConnectTransport({ baseUrl, httpVersion: "1.1", nodeOptions: { ca } }));
    expect((await connect.get({ key: "tls:a" })).item?.value?.kind).to.deep.equal({ case: "stringValue", value: "secret" });
  });

  it("HTTPS/1.1: the second request head of a keep-alive connection, trickled, is cut like on the plain port (issue 22)", async () => {
    const socket = tls.connect({ port: server!.port, host: "127.0.0.1", ca: readFileSync(files!.cert), ALPNProtocols: ["http/1.1"] });
    socket.on("error", () => undefined);
    await new Promise((resolve) => socket.once("secureConnect", resolve));
    const started = performance.now();
    socket.write("POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
    let timer: NodeJS.Timeout | undefined;
    socket.once("data", () => {
      const slow = "POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + "a".repeat(200);
      let at = 0;
      timer = setInterval(() => {
        if (!socket.destroyed && at < slow.length) socket.write(slow[at++]);
      }, 400);
    });
    socket.on("data", () => undefined);
    const closedAfter = await Promise.race([
      new Promise<number>((resolve) => socket.once("close", () => resolve(performance.now() - started))),
      sleep(25_000).then(() => undefined),
    ]);
    clearInterval(timer);
    socket.destroy();
    // The head timeout is 10 s from the head's first byte; the rest is a busy machine's margin.
    expect(closedAfter, "closed by the server (ms)").to.be.a("number").and.below(20_000);
  });

  it("a certificate or key that is missing, not PEM, or not a pair stops the server at start: exit 2, naming the variables", async () => {
    const directory = mkdtempSync(join(tmpdir(), "larder-tls-bad-"));
    const empty = join(directory, "empty.pem");
    writeFileSync(empty, "");
    const other = selfSignedCertificate()!;
    const cases: [Record<string, string>, string][] = [
      [{ LARDER_TLS_CERT: join(directory, "nope.pem"), LARDER_TLS_KEY: files!.key }, "LARDER_TLS_CERT: cannot read"],
      [{ LARDER_TLS_CERT: files!.cert, LARDER_TLS_KEY: join(directory, "nope.pem") }, "LARDER_TLS_KEY: cannot read"],
      [{ LARDER_TLS_CERT: empty, LARDER_TLS_KEY: empty }, "LARDER_TLS_CERT and LARDER_TLS_KEY are not a usable PEM certificate and its key"],
      [
        { LARDER_TLS_CERT: files!.cert, LARDER_TLS_KEY: other.key },
        "LARDER_TLS_CERT and LARDER_TLS_KEY are not a usable PEM certificate and its key",
      ],
    ];
    for (const [env, message] of cases) {
      const { code, output } = await runServerToExit(env);
      expect([code, output.includes(message)], output).to.deep.equal([2, true]);
    }
  });

  it("refuses a client that does not trust the certificate", async () => {
    const untrusting = createClient(DataService, createGrpcTransport({ baseUrl: `https://127.0.0.1:${server!.port}` }));
    const failure = await untrusting.ping({}).catch((error: unknown) => error as Error);
    expect(String(failure)).to.match(/self[- ]signed|certificate/i);
  });
});
