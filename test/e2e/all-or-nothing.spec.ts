import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { expect } from "chai";
import pino from "pino";
import { AdminService } from "../../gen/larder/admin/v1/admin_pb.js";
import { DataService } from "../../gen/larder/data/v1/data_pb.js";
import { registerAdminService } from "../../services/admin-service.js";
import { registerDataService } from "../../services/data-service.js";
import type { SetPlan } from "../../core/set-plan.js";
import { EmbeddedEngine } from "../../services/stores/embedded/embedded-engine.js";
import type { EmbeddedStore } from "../../services/stores/embedded/embedded-store.js";
import type { Engine } from "../../services/stores/engine.js";
import type { Store } from "../../services/stores/store.js";
import { reasonOf } from "../support/errors.js";

const text = (value: string) => ({ kind: { case: "stringValue" as const, value } });

/**
 * Issue 16: seed with overwrite, ImportEnvironment with overwrite and
 * CloneEnvironment fail part-way (the disk fails after some chunks, injected
 * at the store port as the SqliteError better-sqlite3 throws) and the
 * environment must show its old content, whole, with no event of the
 * failed write; the call says why (UNAVAILABLE, STORE_UNAVAILABLE).
 */
describe("e2e: bulk writes are all or nothing when the store fails part-way (issue 16)", function () {
  this.timeout(60_000);
  let dataDir: string;
  let engine: EmbeddedEngine;
  /** After how many staged chunks the store fails; undefined: it does not. */
  let failAfterChunks: number | undefined;
  let data: ReturnType<typeof createClient<typeof DataService>>;
  let admin: ReturnType<typeof createClient<typeof AdminService>>;

  /** The store, with replaceAll's chunks cut by an I/O error once failAfterChunks have gone through. */
  function faulty(store: EmbeddedStore): Store {
    return new Proxy(store, {
      get(target, property, receiver) {
        const member = Reflect.get(target, property, receiver);
        if (property !== "replaceAll") return typeof member === "function" ? member.bind(target) : member;
        return (chunks: AsyncIterable<readonly SetPlan[]>, ...rest: unknown[]) => {
          async function* failing() {
            let given = 0;
            for await (const chunk of chunks) {
              if (failAfterChunks !== undefined && given++ >= failAfterChunks) {
                throw new Database.SqliteError("SQLITE_IOERR: simulated disk failure", "SQLITE_IOERR_WRITE");
              }
              yield chunk;
            }
          }
          return (member as Store["replaceAll"]).call(target, failing(), ...(rest as [number]));
        };
      },
    }) as Store;
  }

  beforeEach(async () => {
    failAfterChunks = undefined;
    dataDir = mkdtempSync(join(tmpdir(), "larder-bulk-e2e-"));
    engine = new EmbeddedEngine({ dataDir, durability: "normal", sweepIntervalMs: 3_600_000, changeRetentionMs: 3_600_000 });
    const faultyEngine: Engine = {
      describe: () => "faulty",
      environment: async (name) => faulty(await engine.environment(name)),
      list: () => engine.list(),
      drop: (name) => engine.drop(name),
      close: () => engine.close(),
    };
    const transport = createRouterTransport((router) => {
      registerDataService(router, { engine: faultyEngine, shutdownSignal: new AbortController().signal, log: pino({ level: "silent" }) });
      registerAdminService(router, { engine: faultyEngine });
    });
    data = createClient(DataService, transport);
    admin = createClient(AdminService, transport);
    // The old content of `default`, and a source environment for clones.
    await data.batchSet({ items: [0, 1, 2].map((i) => ({ key: `old:${i}`, value: text(`old ${i}`) })), overwrite: true });
    const many = Array.from({ length: 1_000 }, (_, i) => ({ key: `new:${String(i).padStart(4, "0")}`, value: text(`new ${i}`) }));
    await admin.importEnvironment({ name: "source", items: many, overwrite: true });
  });
  afterEach(async () => {
    await engine.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function keysOf(name: string): Promise<string[]> {
    const keys: string[] = [];
    for await (const chunk of admin.exportEnvironment({ name })) keys.push(...chunk.items.map((item) => item.key));
    return keys;
  }
  const headOf = async (name: string) => (await engine.environment(name)).headSequence();

  async function expectStoreFailure(call: Promise<unknown>): Promise<void> {
    let failure: ConnectError | undefined;
    try {
      await call;
    } catch (error) {
      failure = ConnectError.from(error);
    }
    expect(failure, "the call fails").to.be.instanceOf(ConnectError);
    expect([failure!.code, reasonOf(failure!)]).to.deep.equal([Code.Unavailable, "STORE_UNAVAILABLE"]);
  }

  const bulkWrites: [string, () => Promise<unknown>][] = [
    [
      "Seed with overwrite",
      () => data.seed({ items: Array.from({ length: 1_000 }, (_, i) => ({ key: `new:${i}`, value: text(`new ${i}`) })), overwrite: true }),
    ],
    [
      "ImportEnvironment with overwrite",
      () =>
        admin.importEnvironment({
          name: "default",
          items: Array.from({ length: 1_000 }, (_, i) => ({ key: `new:${i}`, value: text(`new ${i}`) })),
          overwrite: true,
        }),
    ],
    ["CloneEnvironment", () => admin.cloneEnvironment({ source: "source", target: "default" })],
  ];

  for (const [what, call] of bulkWrites) {
    it(`${what}: a failure after some chunks leaves the old content and no event; without the failure it lands whole`, async () => {
      const head = await headOf("default");
      for (const after of [0, 1, 5]) {
        failAfterChunks = after;
        await expectStoreFailure(call());
        expect(await keysOf("default"), `failing after ${after} chunks`).to.deep.equal(["old:0", "old:1", "old:2"]);
        expect(await headOf("default"), "no event of the failed write").to.equal(head);
      }
      failAfterChunks = undefined;
      await call();
      const keys = await keysOf("default");
      expect(keys).to.have.length(1_000);
      expect(keys.filter((key) => key.startsWith("old:"))).to.deep.equal([]);
    });
  }

  it("ImportEnvironment without overwrite: one bad item, and nothing is written (SE3); then all land together", async () => {
    const items = [...Array.from({ length: 300 }, (_, i) => ({ key: `add:${i}`, value: text("x") })), { key: "bad:*", value: text("x") }];
    let failure: ConnectError | undefined;
    try {
      await admin.importEnvironment({ name: "default", items });
    } catch (error) {
      failure = ConnectError.from(error);
    }
    expect(failure?.code).to.equal(Code.InvalidArgument);
    expect(await keysOf("default")).to.deep.equal(["old:0", "old:1", "old:2"]);
    await admin.importEnvironment({ name: "default", items: items.slice(0, 300) });
    expect(await keysOf("default")).to.have.length(303);
  });
});
