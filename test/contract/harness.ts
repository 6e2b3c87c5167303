import { createClient, ConnectError, Code, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { DataService } from "../../gen/larder/data/v1/data_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { useServer } from "../support/server.js";
import { pipelinedClient } from "../support/pipeline.js";

/**
 * The contract suite: one set of tests that every engine must pass, run over
 * gRPC against the real server. The embedded engine always runs; MongoDB runs
 * when MONGODB_URI points at a replica set, and is reported as skipped
 * otherwise, never as passed. LARDER_TEST_ENGINES picks engines by name; one
 * that names mongodb without MONGODB_URI stops the run (npm run test:mongo).
 */
export interface EngineUnderTest {
  readonly name: "embedded" | "mongodb";
  readonly env: Record<string, string>;
  readonly skipReason?: string;
}

export function enginesUnderTest(): EngineUnderTest[] {
  const wanted = (process.env.LARDER_TEST_ENGINES ?? "embedded,mongodb").split(",").map((s) => s.trim());
  const engines: EngineUnderTest[] = [];
  if (wanted.includes("embedded")) engines.push({ name: "embedded", env: { LARDER_ENGINE: "embedded" } });
  if (wanted.includes("mongodb")) {
    const uri = process.env.MONGODB_URI;
    if (!uri && process.env.LARDER_TEST_ENGINES) {
      // Asked for by name (npm run test:mongo): a run that skips everything must not look like a pass.
      throw new Error(
        "LARDER_TEST_ENGINES names mongodb but MONGODB_URI is not set: point it at a MongoDB 6.0+ replica set, " +
          "e.g. MONGODB_URI='mongodb://127.0.0.1:27017/?replicaSet=rs0' npm run test:mongo (see docs/mongodb.md)",
      );
    }
    engines.push({
      name: "mongodb",
      env: uri ? { LARDER_ENGINE: "mongodb", MONGODB_URI: uri, LARDER_MONGODB_DB_PREFIX: `larder_test_${process.pid}_${Date.now()}_` } : {},
      skipReason: uri ? undefined : "MONGODB_URI is not set: the MongoDB contract run is skipped",
    });
  }
  return engines;
}

/**
 * How the suite's unary data calls travel: each as its own RPC, or as the
 * TypeScript client sends them, the calls of one tick together in Pipeline
 * RPCs (test/support/pipeline.ts). Every contract holds both ways.
 */
export type CallPath = "direct" | "pipelined";
const CALL_PATHS: readonly CallPath[] = ["direct", "pipelined"];

export interface ContractContext {
  readonly engine: EngineUnderTest;
  readonly path: CallPath;
  /** A DataService client over gRPC (HTTP/2) to the server of this engine. */
  readonly client: Client<typeof DataService>;
  /** The server's base URL, for clients of other protocols (once the suite's server runs). */
  readonly url: string;
  /** Removes every item, so a test starts from an empty environment. */
  clear(): Promise<void>;
}

/** Declares a contract suite once per engine under test and call path. */
export function describeContract(
  title: string,
  body: (context: ContractContext) => void,
  options: { readonly env?: Record<string, string> } = {},
): void {
  for (const engine of enginesUnderTest()) for (const path of CALL_PATHS) describeOn(engine, path);

  function describeOn(engine: EngineUnderTest, path: CallPath): void {
    describe(`${title} [${engine.name}${path === "pipelined" ? ", pipelined" : ""}]`, function () {
      if (engine.skipReason) {
        before(function () {
          this.skip();
        });
      }
      const server = engine.skipReason ? undefined : useServer({ env: { ...engine.env, ...options.env } });
      if (engine.name === "mongodb" && !engine.skipReason) {
        // Each run gets fresh databases (a unique prefix); drop them so they do not pile up in the deployment.
        after(async function () {
          this.timeout(60_000);
          const { MongoClient } = await import("mongodb");
          const client = await MongoClient.connect(engine.env.MONGODB_URI);
          try {
            // authorizedDatabases: a user with rights on some databases only (Atlas) may still list them.
            const { databases } = await client.db("admin").admin().listDatabases({ nameOnly: true, authorizedDatabases: true });
            const prefix = engine.env.LARDER_MONGODB_DB_PREFIX;
            for (const database of databases) if (database.name.startsWith(prefix)) await client.db(database.name).dropDatabase();
          } finally {
            await client.close();
          }
        });
      }
      let connected: Client<typeof DataService> | undefined;
      // Suites take `client` while mocha is still collecting tests, before the
      // server has a port, so the real client is created on the first call.
      const client = new Proxy({} as Client<typeof DataService>, {
        get(_, method: string) {
          if (!connected) {
            const direct = createClient(DataService, createGrpcTransport({ baseUrl: server!.url }));
            connected = path === "pipelined" ? pipelinedClient(direct) : direct;
          }
          return connected[method as keyof Client<typeof DataService>];
        },
      });
      const context: ContractContext = {
        engine,
        path,
        client,
        get url() {
          return server!.url;
        },
        async clear() {
          await client.seed({ items: [], overwrite: true });
        },
      };
      beforeEach(async function () {
        if (!engine.skipReason) await context.clear();
      });
      body(context);
    });
  }
}

/** Asserts a call fails with this code, reason (§14) and, if given, message text. */
export async function expectFailure(call: Promise<unknown>, code: Code, reason: string, message?: string): Promise<ConnectError> {
  let failure: ConnectError | undefined;
  try {
    await call;
  } catch (error) {
    failure = ConnectError.from(error);
  }
  expect(failure, "the call should have failed").to.be.instanceOf(ConnectError);
  expect(Code[failure!.code], failure!.rawMessage).to.equal(Code[code]);
  const details = failure!.findDetails(ErrorInfoSchema);
  expect(details.map((d) => d.reason)).to.deep.equal([reason]);
  expect(details[0].domain).to.equal("larder.dev");
  if (message !== undefined) expect(failure!.rawMessage).to.equal(message);
  return failure!;
}
