import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import pino from "pino";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";
import { DataService } from "../../gen/larder/data/v1/data_pb.js";
import { registerDataService } from "../../services/data-service.js";
import { HealthStatus } from "../../services/health.js";
import { EmbeddedEngine } from "../../services/stores/embedded/embedded-engine.js";
import { startServer } from "../support/server.js";
import { failureOf, reasonOf } from "../support/errors.js";

const text = (value: string) => ({ kind: { case: "stringValue" as const, value } });

describe("storage faults: a full or read-only disk gives a clear status, health follows, and the service recovers", function () {
  this.timeout(60_000);

  describe("injected in SQLite, under the engine (runs everywhere)", () => {
    let failWith: string | undefined;
    let engine: EmbeddedEngine;
    let data: ReturnType<typeof createClient<typeof DataService>>;
    let health: ReturnType<typeof createClient<typeof Health>>;
    const transaction = Database.prototype.transaction;

    before(async () => {
      // SQLite fails inside the store's write transaction, with the SqliteError better-sqlite3 throws: the
      // engine maps it (embedded/errors.ts), so the edge sees what it sees of MongoDB's faults.
      Database.prototype.transaction = function (this: Database.Database, body: (...args: never[]) => unknown) {
        return transaction.call(this, (...args: never[]) => {
          if (failWith) throw new Database.SqliteError(`${failWith}: simulated`, failWith);
          return body(...args);
        });
      } as typeof transaction;
      engine = new EmbeddedEngine({
        dataDir: mkdtempSync(join(tmpdir(), "larder-faults-")),
        durability: "normal",
        sweepIntervalMs: 60_000,
        changeRetentionMs: 60_000,
      });
      const status = new HealthStatus(new Set([DataService.typeName]));
      status.setServing(true);
      const transport = createRouterTransport(
        (router) => {
          registerDataService(router, { engine, shutdownSignal: new AbortController().signal, log: pino({ level: "silent" }) });
          status.register(router, new AbortController().signal);
        },
        { router: { interceptors: [status.storeInterceptor()] } },
      );
      data = createClient(DataService, transport);
      health = createClient(Health, transport);
    });
    after(async () => {
      Database.prototype.transaction = transaction;
      await engine.close();
    });

    const cases: [string, Code, string][] = [
      ["SQLITE_FULL", Code.ResourceExhausted, "The data directory is full"],
      ["SQLITE_READONLY", Code.Unavailable, "The data directory is read-only"],
      ["SQLITE_IOERR_WRITE", Code.Unavailable, "The data store could not be read or written"],
    ];
    for (const [code, status, message] of cases) {
      it(`${code} → ${Code[status]} "${message}", NOT_SERVING, then SERVING once writes succeed again`, async () => {
        await data.set({ key: "before", value: text("kept") });
        failWith = code;
        const failure = await failureOf(data.set({ key: "k", value: text("v") }));
        expect([failure.code, failure.rawMessage, reasonOf(failure)]).to.deep.equal([status, message, "STORE_UNAVAILABLE"]);
        expect((await health.check({})).status).to.equal(Status.NOT_SERVING);
        failWith = undefined;
        await data.set({ key: "k", value: text("v") });
        expect((await health.check({})).status).to.equal(Status.SERVING);
        expect((await data.get({ key: "before" })).item?.value?.kind).to.deep.equal(text("kept").kind);
      });
    }
  });

  describe("a real full disk (a small tmpfs; pending where mounting is not allowed)", () => {
    let mountPoint: string | undefined;

    before(function () {
      const directory = mkdtempSync(join(tmpdir(), "larder-tmpfs-"));
      try {
        execFileSync("mount", ["-t", "tmpfs", "-o", "size=3m", "tmpfs", directory], { stdio: "ignore" });
        mountPoint = directory;
      } catch {
        rmSync(directory, { recursive: true, force: true });
        this.skip();
      }
    });
    after(() => {
      if (!mountPoint) return;
      execFileSync("umount", [mountPoint], { stdio: "ignore" });
      rmSync(mountPoint, { recursive: true, force: true });
    });

    it("writes fail with RESOURCE_EXHAUSTED when it fills, health says NOT_SERVING, nothing acknowledged is lost, and it recovers when space returns", async () => {
      const server = await startServer({ dataDir: mountPoint });
      try {
        const transport = createGrpcTransport({ baseUrl: server.url });
        const data = createClient(DataService, transport);
        const health = createClient(Health, transport);
        const acknowledged: string[] = [];
        let failure: ConnectError | undefined;
        for (let i = 0; i < 200 && !failure; i++) {
          const key = `fill:${String(i).padStart(3, "0")}`;
          try {
            await data.set({ key, value: text("x".repeat(100_000)) });
            acknowledged.push(key);
          } catch (error) {
            failure = ConnectError.from(error);
          }
        }
        expect(failure, "the disk should have filled").to.be.instanceOf(ConnectError);
        expect([failure!.code, reasonOf(failure!)]).to.deep.equal([Code.ResourceExhausted, "STORE_UNAVAILABLE"]);
        expect(failure!.rawMessage).to.equal("The data directory is full");
        expect((await health.check({})).status).to.equal(Status.NOT_SERVING);
        execFileSync("mount", ["-o", "remount,size=64m", mountPoint!], { stdio: "ignore" });
        await data.set({ key: "after", value: text("space returned") });
        expect((await health.check({})).status).to.equal(Status.SERVING);
        const count = Number((await data.scan({ count: true })).count);
        expect(count).to.equal(acknowledged.length + 1);
      } finally {
        await server.stop();
      }
    });
  });
});
