import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";
import { DataService } from "../../gen/larder/data/v1/data_pb.js";
import { REPO_ROOT, runServerToExit, startServer } from "../support/server.js";
import { sleep } from "../support/async.js";
import { failureOf } from "../support/errors.js";

describe("e2e: start, configuration and graceful shutdown", () => {
  it("SIGTERM ends open Watch and health streams cleanly, exits 0, and the data is there after a restart", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "larder-restart-"));
    try {
      const first = await startServer({ dataDir });
      const transport = createGrpcTransport({ baseUrl: first.url });
      const data = createClient(DataService, transport);
      const health = createClient(Health, transport);
      await data.set({ key: "keep:a", value: { kind: { case: "stringValue", value: "durable" } } });

      const watched: string[] = [];
      const watchEnded = (async () => {
        for await (const message of data.watch({ filters: ["*"] })) watched.push(message.kind.case!);
        return "ended";
      })();
      const statuses: Status[] = [];
      const healthEnded = (async () => {
        for await (const message of health.watch({ service: "" })) statuses.push(message.status);
        return "ended";
      })();
      while (watched.length === 0 || statuses.length === 0) await sleep(10);

      expect(await first.stop("SIGTERM")).to.equal(0);
      expect(await watchEnded).to.equal("ended");
      expect(await healthEnded).to.equal("ended");
      expect(watched).to.deep.equal(["started"]);
      // Load balancers hear NOT_SERVING before the stream ends.
      expect(statuses).to.deep.equal([Status.SERVING, Status.NOT_SERVING]);

      const second = await startServer({ dataDir });
      try {
        const again = createClient(DataService, createGrpcTransport({ baseUrl: second.url }));
        expect((await again.get({ key: "keep:a" })).item?.value?.kind).to.deep.equal({ case: "stringValue", value: "durable" });
      } finally {
        await second.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }).timeout(60_000);

  it("SIGTERM lets an in-flight call complete before the process exits 0", async () => {
    const server = await startServer();
    const data = createClient(DataService, createGrpcTransport({ baseUrl: server.url }));
    const items = Array.from({ length: 30_000 }, (_, i) => ({ key: `inflight:${i}`, value: { kind: { case: "numberValue" as const, value: i } } }));
    const seeding = data.seed({ items });
    await sleep(300);
    const exited = server.stop("SIGTERM");
    expect((await seeding).items).to.equal(30_000n);
    expect(await exited).to.equal(0);
  }).timeout(60_000);

  it("SIGTERM lets an in-flight HTTP/1.1 call complete; a new request on a kept-alive connection gets UNAVAILABLE", async () => {
    const server = await startServer({ env: { LARDER_LOG_LEVEL: "info" } });
    // One socket, kept alive: the second call must travel on the connection the first one opened.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const idle = createClient(DataService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", nodeOptions: { agent } }));
    await idle.ping({});
    const busy = createClient(DataService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    const items = Array.from({ length: 30_000 }, (_, i) => ({ key: `h1:${i}`, value: { kind: { case: "numberValue" as const, value: i } } }));
    const seeding = busy.seed({ items });
    await sleep(300);
    const exited = server.stop("SIGTERM");
    while (!server.output().includes("shutting down")) await sleep(5);
    const refused = await idle.ping({}).then(
      () => undefined,
      (error: unknown) => ConnectError.from(error),
    );
    expect(refused?.code, String(refused)).to.equal(Code.Unavailable);
    expect((await seeding).items).to.equal(30_000n);
    expect(await exited).to.equal(0);
    agent.destroy();
  }).timeout(60_000);

  it("SIGTERM during a flood: accepted calls complete or fail with a clear status, nothing acknowledged is lost, exit 0", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "larder-flood-stop-"));
    try {
      const server = await startServer({ dataDir });
      const data = createClient(DataService, createGrpcTransport({ baseUrl: server.url }));
      const acknowledged: string[] = [];
      const codes = new Set<string>();
      let stopping: Promise<number | null> | undefined;
      const flood = Array.from({ length: 8 }, async (_, writer) => {
        for (let i = 0; ; i++) {
          const key = `stop:${writer}:${i}`;
          try {
            await data.set({ key, value: { kind: { case: "numberValue", value: i } } });
            acknowledged.push(key);
          } catch (error) {
            const failure = ConnectError.from(error);
            // A stream opened after GOAWAY is refused unprocessed (REFUSED_STREAM: safe to retry);
            // connect-node reports that as INTERNAL naming the reset code, so it is told apart here.
            codes.add(failure.rawMessage.includes("REFUSED_STREAM") ? "RefusedStream" : Code[failure.code]);
            return;
          }
          if (i === 20 && writer === 0) stopping = server.stop("SIGTERM");
        }
      });
      await Promise.all(flood);
      expect(await stopping).to.equal(0);
      expect([...codes].filter((code) => !["Unavailable", "Canceled", "RefusedStream"].includes(code))).to.deep.equal([]);
      const again = await startServer({ dataDir });
      try {
        const reader = createClient(DataService, createGrpcTransport({ baseUrl: again.url }));
        const found = await reader.batchGet({ keys: acknowledged.slice(-25) });
        expect(found.items).to.have.length(Math.min(25, acknowledged.length));
        expect(Number((await reader.scan({ count: true })).count)).to.be.at.least(acknowledged.length);
      } finally {
        await again.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }).timeout(60_000);

  it("SIGINT stops the server the same way (exit 0)", async () => {
    const server = await startServer();
    expect(await server.stop("SIGINT")).to.equal(0);
  }).timeout(30_000);

  it("prints the listening line with the engine and data directory", async () => {
    const server = await startServer();
    try {
      expect(server.output()).to.match(/larder listening on http:\/\/127\.0\.0\.1:\d+ \(engine embedded, data .+\)/);
    } finally {
      await server.stop();
    }
  }).timeout(30_000);

  it("health Check: SERVING for the server and its services, NOT_FOUND for an unknown service", async () => {
    const server = await startServer();
    try {
      const health = createClient(Health, createGrpcTransport({ baseUrl: server.url }));
      expect((await health.check({})).status).to.equal(Status.SERVING);
      for (const service of [
        "larder.data.v1.DataService",
        "larder.admin.v1.AdminService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ]) {
        expect((await health.check({ service })).status, service).to.equal(Status.SERVING);
      }
      const failure = await failureOf(health.check({ service: "nope.Service" }));
      expect(failure.code).to.equal(Code.NotFound);
    } finally {
      await server.stop();
    }
  }).timeout(30_000);

  it("a port already in use: a message naming LARDER_PORT and a non-zero exit", async () => {
    const first = await startServer();
    try {
      const { code, output } = await runServerToExit({ LARDER_HOST: "127.0.0.1", LARDER_PORT: String(first.port) });
      expect(code, output).to.equal(1);
      expect(output).to.contain(`127.0.0.1:${first.port} is already in use; choose another LARDER_PORT`);
    } finally {
      await first.stop();
    }
  }).timeout(60_000);

  it("the environments the keys file names are opened before the port opens: their data exists before any call", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "larder-open-"));
    const keysFile = join(dataDir, "keys.json");
    const key = (id: string, environment: string) => ({ id, sha256: "0".repeat(64), environment, role: "admin" });
    writeFileSync(keysFile, JSON.stringify({ keys: [key("k1", "prod"), key("k2", "staging"), key("k3", "prod")] }));
    try {
      const server = await startServer({ dataDir, env: { LARDER_KEYS_FILE: keysFile } });
      try {
        expect(
          readdirSync(dataDir)
            .filter((file) => file.endsWith(".sqlite"))
            .sort(),
        ).to.deep.equal(["prod.sqlite", "staging.sqlite"]);
      } finally {
        await server.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }).timeout(30_000);

  it("an environment that cannot be opened stops the server at start, naming it and the reason (exit 1)", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "larder-open-"));
    // A directory where the default environment's SQLite file belongs.
    mkdirSync(join(dataDir, "default.sqlite"));
    try {
      const { code, output } = await runServerToExit({ LARDER_DATA_DIR: dataDir });
      expect(code, output).to.equal(1);
      expect(output).to.contain("larder: could not start: the environment 'default' could not be opened:");
      expect(output).not.to.contain("listening");
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }).timeout(30_000);

  describe("configurations the server refuses, with exit code 2 and a message saying what to do", () => {
    const cases: [string, Record<string, string>, RegExp][] = [
      ["a port that is not a number", { LARDER_PORT: "http" }, /LARDER_PORT must be a whole number from 0 to 65535, not 'http'/],
      ["an unknown engine", { LARDER_ENGINE: "redis" }, /LARDER_ENGINE must be one of embedded, mongodb, not 'redis'/],
      ["mongodb without MONGODB_URI", { LARDER_ENGINE: "mongodb", MONGODB_URI: "" }, /LARDER_ENGINE=mongodb needs MONGODB_URI/],
      [
        "a message limit too small for a batch of 25 items of 400 KB",
        { LARDER_MAX_MESSAGE_BYTES: "1000" },
        /LARDER_MAX_MESSAGE_BYTES must be a whole number/,
      ],
      ["a non-loopback address without API keys", { LARDER_HOST: "0.0.0.0" }, /Refusing to listen on 0\.0\.0\.0 without API keys.*LARDER_KEYS_FILE/],
      ["a keys file that does not exist", { LARDER_KEYS_FILE: "/nonexistent/keys.json" }, /cannot read the keys file \/nonexistent\/keys.json/],
      [
        "a per-connection call bound of 0",
        { LARDER_MAX_IN_FLIGHT_PER_CONNECTION: "0" },
        /LARDER_MAX_IN_FLIGHT_PER_CONNECTION must be a whole number from 1/,
      ],
      [
        "a misspelt public service",
        { LARDER_PUBLIC_SERVICES: "grpc.health.v1.Healt" },
        /LARDER_PUBLIC_SERVICES may list only .* not 'grpc\.health\.v1\.Healt'/,
      ],
      ["only half of the TLS settings", { LARDER_TLS_CERT: "/tmp/cert.pem" }, /LARDER_TLS_CERT and LARDER_TLS_KEY go together/],
    ];
    for (const [what, env, message] of cases) {
      it(what, async () => {
        const { code, output } = await runServerToExit(env);
        expect(code, output).to.equal(2);
        expect(output).to.match(message);
      }).timeout(30_000);
    }

    it("on MongoDB, a keys file naming an environment too long for a database name (before any connection)", async () => {
      const directory = mkdtempSync(join(tmpdir(), "larder-keys-"));
      const keysFile = join(directory, "keys.json");
      const environment = "e".repeat(60);
      writeFileSync(keysFile, JSON.stringify({ keys: [{ id: "k1", sha256: "0".repeat(64), environment, role: "admin" }] }));
      try {
        // Port 1 has no MongoDB: the check must come first, so the message names the environment, not the connection.
        const { code, output } = await runServerToExit({
          LARDER_ENGINE: "mongodb",
          MONGODB_URI: "mongodb://127.0.0.1:1/?replicaSet=rs0",
          LARDER_KEYS_FILE: keysFile,
        });
        expect(code, output).to.equal(2);
        expect(output).to.contain(
          `The environment '${environment}' would be the MongoDB database 'larder_${environment}', longer than MongoDB's 63 bytes`,
        );
      } finally {
        rmSync(directory, { recursive: true, force: true });
      }
    }).timeout(30_000);
  });

  it("--help lists every setting with its default", async () => {
    const result = spawnSync(process.execPath, ["--import", "tsx", "services/main.ts", "--help"], {
      cwd: REPO_ROOT,
      encoding: "utf8",
    });
    const [code, output] = [result.status, result.stdout];
    expect(code).to.equal(0);
    for (const name of ["LARDER_HOST", "LARDER_PORT", "LARDER_ENGINE", "LARDER_DATA_DIR", "MONGODB_URI", "LARDER_KEYS_FILE"]) {
      expect(output).to.contain(name);
    }
    expect(output).to.contain("default: 127.0.0.1");
  }).timeout(30_000);
});
