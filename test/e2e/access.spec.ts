import { Code, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { toBinary } from "@bufbuild/protobuf";
import { AdminService, ExportEnvironmentResponseSchema } from "../../gen/larder/admin/v1/admin_pb.js";
import { DataService } from "../../gen/larder/data/v1/data_pb.js";
import { generateKey, hashKey } from "../../services/access/api-keys.js";
import type { Role } from "../../services/access/roles.js";
import { runServerToExit, useServer } from "../support/server.js";
import { sleep } from "../support/async.js";
import { failureOf, reasonOf } from "../support/errors.js";
import { bearer, keysFile } from "../support/keys.js";

/** One key per (environment, role) this suite uses. */
const KEYS: Record<string, { environment?: string; role: Role; key: string }> = {
  prodWrite: { environment: "prod", role: "write", key: generateKey() },
  stageWrite: { environment: "stage", role: "write", key: generateKey() },
  prodRead: { environment: "prod", role: "read", key: generateKey() },
  prodWatch: { environment: "prod", role: "watch", key: generateKey() },
  prodApp: { environment: "prod", role: "app", key: generateKey() },
  admin: { environment: "prod", role: "admin", key: generateKey() },
  copyWatch: { environment: "copy", role: "watch", key: generateKey() },
  stageWatch: { environment: "stage", role: "watch", key: generateKey() },
  // Moving data between environments takes a key bound to none (issue 16).
  operator: { role: "operator", key: generateKey() },
};

const value = (text: string) => ({ kind: { case: "stringValue" as const, value: text } });

describe("e2e: API keys, roles and environments (issue 7)", () => {
  // debug: every call is logged, so the last test can show that no key or hash ever reaches the log.
  const running = useServer({
    env: { LARDER_KEYS_FILE: keysFile(Object.entries(KEYS).map(([id, key]) => ({ id, ...key }))), LARDER_LOG_LEVEL: "debug" },
  });
  type MakeTransport = (options: { baseUrl: string; interceptors: Interceptor[] }) => Transport;
  const transport = (key?: string, make: MakeTransport = createGrpcTransport): Transport =>
    make({ baseUrl: running.url, interceptors: key ? [bearer(key)] : [] });
  const data = (key?: string) => createClient(DataService, transport(key));

  it("the same key in two environments stays separate in get, query, label query and scan", async () => {
    const prod = data(KEYS.prodWrite.key);
    const stage = data(KEYS.stageWrite.key);
    await prod.set({ key: "users:jane", value: value("prod"), label1: { action: { case: "set", value: "team:a" } } });
    await stage.set({ key: "users:jane", value: value("stage"), label1: { action: { case: "set", value: "team:a" } } });
    expect((await prod.get({ key: "users:jane" })).item?.value?.kind).to.deep.equal(value("prod").kind);
    expect((await stage.get({ key: "users:jane" })).item?.value?.kind).to.deep.equal(value("stage").kind);
    for (const [client, expected] of [
      [prod, "prod"],
      [stage, "stage"],
    ] as const) {
      const byKey = await client.query({ expression: "users:*" });
      expect(byKey.items.map((item) => item.value?.kind)).to.deep.equal([value(expected).kind]);
      const byLabel = await client.query({ expression: "team:a", label: "label1" });
      expect(byLabel.items.map((item) => item.value?.kind)).to.deep.equal([value(expected).kind]);
      expect((await client.scan({ count: true })).count).to.equal(1n);
    }
  });

  it("the same key in two environments stays separate in watch", async () => {
    const watcher = createClient(DataService, transport(KEYS.prodWatch.key));
    const abort = new AbortController();
    const seen: string[] = [];
    let started!: () => void;
    const ready = new Promise<void>((resolve) => (started = resolve));
    const reading = (async () => {
      try {
        for await (const message of watcher.watch({ filters: ["*:w:*"] }, { signal: abort.signal })) {
          if (message.kind.case === "started") started();
          if (message.kind.case === "event") seen.push(message.kind.value.item!.value!.kind.value as string);
        }
      } catch {
        // aborted below
      }
    })();
    await ready;
    await data(KEYS.stageWrite.key).set({ key: "w:1", value: value("stage") });
    await data(KEYS.prodWrite.key).set({ key: "w:1", value: value("prod") });
    const deadline = Date.now() + 5_000;
    while (seen.length === 0 && Date.now() < deadline) await sleep(10);
    await sleep(200);
    abort.abort();
    await reading;
    expect(seen).to.deep.equal(["prod"]);
  });

  it("a named subscription's acknowledged position stays in its environment", async () => {
    const startedAt = async (key: string, subscription?: string) => {
      const abort = new AbortController();
      for await (const message of data(key).watch({ subscription }, { signal: abort.signal })) {
        if (message.kind.case === "started") {
          abort.abort();
          return message.kind.value.resumeToken;
        }
      }
      throw new Error("the watch ended before it started");
    };
    // prod has more changes than stage, so the two heads differ.
    for (let i = 0; i < 5; i++) await data(KEYS.prodWrite.key).set({ key: `sub:${i}`, value: value("prod") });
    const prodHead = await startedAt(KEYS.prodWatch.key);
    await data(KEYS.prodWatch.key).ack({ subscription: "shared-name", resumeToken: prodHead });
    await data(KEYS.prodWrite.key).set({ key: "sub:later", value: value("prod") });
    const stageHead = await startedAt(KEYS.stageWatch.key);
    expect(stageHead).not.to.equal(prodHead);
    expect(await startedAt(KEYS.prodWatch.key, "shared-name")).to.equal(prodHead);
    // stage never acknowledged anything under that name: it starts at its own head, not at prod's position.
    expect(await startedAt(KEYS.stageWatch.key, "shared-name")).to.equal(stageHead);
  });

  describe("every RPC: no key and an unknown key → UNAUTHENTICATED; a role that does not allow it → PERMISSION_DENIED", () => {
    /** A real position in prod, for the Ack calls (a token is refused unless it is of that database). */
    let prodToken = "";
    before(async () => {
      const abort = new AbortController();
      for await (const message of data(KEYS.prodWatch.key).watch({}, { signal: abort.signal })) {
        if (message.kind.case !== "started") continue;
        prodToken = message.kind.value.resumeToken;
        abort.abort();
        break;
      }
    });
    const dataCalls: [string, Role[], (client: ReturnType<typeof data>) => Promise<unknown>][] = [
      ["Get", ["read", "write", "watch", "app"], (c) => c.get({ key: "a" })],
      ["BatchGet", ["read", "write", "watch", "app"], (c) => c.batchGet({ keys: ["a"] })],
      ["Query", ["read", "write", "watch", "app"], (c) => c.query({ expression: "a:*" })],
      ["Count", ["read", "write", "watch", "app"], (c) => c.count({ expression: "a:*" })],
      ["History", ["read", "write", "watch", "app"], (c) => c.history({ key: "a" })],
      ["Scan", ["read", "write", "watch", "app"], (c) => c.scan({})],
      ["Namespaces", ["read", "write", "watch", "app"], (c) => c.namespaces({})],
      ["Ping", ["read", "write", "watch", "app"], (c) => c.ping({})],
      ["Set", ["write", "app"], (c) => c.set({ key: "a", value: value("x") })],
      ["BatchSet", ["write", "app"], (c) => c.batchSet({ items: [{ key: "a", value: value("x") }], overwrite: true })],
      ["Add", ["write", "app"], (c) => c.add({ key: "n", amount: 1 })],
      ["Remove", ["write", "app"], (c) => c.remove({ keys: ["a"] })],
      ["Seed", ["write", "app"], (c) => c.seed({ items: [] })],
      ["Ack", ["watch", "app"], (c) => c.ack({ subscription: "s", resumeToken: prodToken })],
      [
        "Watch",
        ["watch", "app"],
        async (c) => {
          for await (const message of c.watch({})) if (message.kind.case === "started") return;
        },
      ],
    ];
    const keyByRole: Record<Exclude<Role, "admin" | "operator">, string> = {
      read: KEYS.prodRead.key,
      write: KEYS.prodWrite.key,
      watch: KEYS.prodWatch.key,
      app: KEYS.prodApp.key,
    };
    for (const [method, allowed, call] of dataCalls) {
      it(`DataService/${method}`, async () => {
        const missing = await failureOf(call(data()));
        expect([missing.code, reasonOf(missing)], "no key").to.deep.equal([Code.Unauthenticated, "API_KEY_MISSING"]);
        const unknown = await failureOf(call(data(generateKey())));
        expect([unknown.code, reasonOf(unknown)], "unknown key").to.deep.equal([Code.Unauthenticated, "API_KEY_UNKNOWN"]);
        for (const [role, key] of Object.entries(keyByRole)) {
          if (allowed.includes(role as Role)) {
            await call(data(key));
          } else {
            const failure = await failureOf(call(data(key)));
            expect([failure.code, reasonOf(failure)], `role ${role}`).to.deep.equal([Code.PermissionDenied, "ROLE_NOT_ALLOWED"]);
            expect(failure.rawMessage).to.contain(`role '${role}'`);
            expect(failure.rawMessage).not.to.contain(key);
          }
        }
      });
    }

    it("AdminService: only the admin role (its own environment) and the operator (every one); see tenancy.spec.ts", async () => {
      const admin = (key?: string) => createClient(AdminService, transport(key));
      expect((await failureOf(admin().listEnvironments({}))).code).to.equal(Code.Unauthenticated);
      expect((await failureOf(admin(KEYS.prodWrite.key).listEnvironments({}))).code).to.equal(Code.PermissionDenied);
      expect((await failureOf(admin(KEYS.prodApp.key).listEnvironments({}))).code).to.equal(Code.PermissionDenied);
      expect((await admin(KEYS.admin.key).listEnvironments({})).environments.map((env) => env.name)).to.deep.equal(["prod"]);
      const names = (await admin(KEYS.operator.key).listEnvironments({})).environments.map((env) => env.name);
      expect(names).to.include.members(["prod", "stage"]);
    });

    it("a malformed authorization header → UNAUTHENTICATED", async () => {
      const client = createClient(
        DataService,
        createGrpcTransport({
          baseUrl: running.url,
          interceptors: [
            (next) => (request) => {
              request.header.set("authorization", "Basic dXNlcjpwYXNz");
              return next(request);
            },
          ],
        }),
      );
      expect((await failureOf(client.get({ key: "a" }))).code).to.equal(Code.Unauthenticated);
    });
  });

  it("the key works on every transport: gRPC, gRPC-Web and Connect", async () => {
    const makers: MakeTransport[] = [
      createGrpcTransport,
      (options) => createGrpcWebTransport({ ...options, httpVersion: "1.1" }),
      (options) => createConnectTransport({ ...options, httpVersion: "1.1" }),
    ];
    for (const make of makers) {
      const client = createClient(DataService, transport(KEYS.prodRead.key, make));
      expect((await client.ping({})).$typeName).to.equal("larder.data.v1.PingResponse");
      expect((await failureOf(createClient(DataService, transport(undefined, make)).ping({}))).code).to.equal(Code.Unauthenticated);
    }
  });

  it("reflection and health stay reachable without a key, so grpcurl works", async () => {
    const health = createClient(Health, transport());
    expect((await health.check({})).status).to.equal(1);
    const reflection = createClient(ServerReflection, transport());
    async function* listServices() {
      yield { messageRequest: { case: "listServices" as const, value: "" } };
    }
    const answers = [];
    for await (const answer of reflection.serverReflectionInfo(listServices())) answers.push(answer);
    expect(answers[0].messageResponse.case).to.equal("listServicesResponse");
  });

  it("export → import round trip is identical, and import can skip events", async () => {
    const admin = createClient(AdminService, transport(KEYS.operator.key));
    const prod = data(KEYS.prodWrite.key);
    await prod.seed({ items: [], overwrite: true });
    await prod.set({
      key: "x:1",
      value: { kind: { case: "structValue", value: { fields: { a: { kind: { case: "numberValue", value: 1 } } } } } },
      label2: { action: { case: "set", value: "l:1" } },
      ttl: { kind: { case: "date", value: "2100-01-01" } },
    });
    await prod.set({ key: "simple", value: value("s") });
    const exported = [];
    for await (const chunk of admin.exportEnvironment({ name: "prod" })) exported.push(...chunk.items);
    await admin.createEnvironment({ name: "copy" }).catch(() => undefined);
    await admin.importEnvironment({ name: "copy", items: exported, overwrite: true, skipEvents: true });
    const again = [];
    for await (const chunk of admin.exportEnvironment({ name: "copy" })) again.push(...chunk.items);
    expect(again).to.deep.equal(exported);
    expect(exported.map((item) => item.key)).to.deep.equal(["simple", "x:1"]);
    await admin.cloneEnvironment({ source: "prod", target: "clone", skipEvents: true });
    const cloned = [];
    for await (const chunk of admin.exportEnvironment({ name: "clone" })) cloned.push(...chunk.items);
    expect(cloned).to.deep.equal(exported);
    await admin.dropEnvironment({ name: "clone" });
    expect((await admin.listEnvironments({})).environments.map((env) => env.name)).not.to.include("clone");
  });

  it("export streams an environment of large items in messages below the message limit (50 items of 380 KB: 19 MB)", async () => {
    const admin = createClient(AdminService, transport(KEYS.admin.key));
    const prod = data(KEYS.prodWrite.key);
    await prod.seed({ items: [], overwrite: true });
    const big = value("x".repeat(380 * 1024));
    for (let i = 0; i < 50; i += 10) {
      const items = Array.from({ length: 10 }, (_, j) => ({ key: `big:${String(i + j).padStart(2, "0")}`, value: big }));
      await prod.batchSet({ items, overwrite: true });
    }
    const sizes: number[] = [];
    const keys: string[] = [];
    for await (const chunk of admin.exportEnvironment({ name: "prod" })) {
      sizes.push(toBinary(ExportEnvironmentResponseSchema, chunk).length);
      keys.push(...chunk.items.map((item) => item.key));
    }
    expect(keys).to.deep.equal(Array.from({ length: 50 }, (_, i) => `big:${String(i).padStart(2, "0")}`));
    expect(sizes.length).to.be.greaterThan(1);
    expect(Math.max(...sizes)).to.be.below(16 * 1024 * 1024);
    await prod.seed({ items: [], overwrite: true });
  });

  it("import fires a created event per item, and none with skipEvents", async () => {
    const admin = createClient(AdminService, transport(KEYS.operator.key));
    const watcher = createClient(DataService, transport(KEYS.copyWatch.key));
    const abort = new AbortController();
    const events: string[] = [];
    let started!: () => void;
    const ready = new Promise<void>((resolve) => (started = resolve));
    const reading = (async () => {
      try {
        for await (const message of watcher.watch({ filters: ["created:imported:*"] }, { signal: abort.signal })) {
          if (message.kind.case === "started") started();
          if (message.kind.case === "event") events.push(message.kind.value.item!.key);
        }
      } catch {
        // aborted below
      }
    })();
    await ready;
    await admin.importEnvironment({ name: "copy", items: [{ key: "imported:quiet", value: value("q") }], skipEvents: true });
    await admin.importEnvironment({ name: "copy", items: [{ key: "imported:loud", value: value("l") }] });
    const deadline = Date.now() + 5_000;
    while (events.length === 0 && Date.now() < deadline) await sleep(10);
    await sleep(200);
    abort.abort();
    await reading;
    expect(events).to.deep.equal(["imported:loud"]);
    const copy = createClient(DataService, transport(KEYS.copyWatch.key));
    expect((await copy.get({ key: "imported:quiet" })).item?.key).to.equal("imported:quiet");
  });

  it("no key and no key hash ever reaches the log, though every call above was logged", () => {
    const log = running.server.output();
    const calls = log
      .split("\n")
      .filter((line) => line.includes('"msg":"call"'))
      .map((line) => JSON.parse(line) as { method: string; code: string; environment?: string; key?: string });
    expect(calls.find((call) => call.method === "larder.data.v1.DataService/Get" && call.code === "ok")).to.include({ environment: "prod" });
    expect(calls.some((call) => call.key === "stageWrite" && call.environment === "stage")).to.equal(true);
    // A stream is logged when it ends, so its duration covers the whole stream.
    const watches = calls.filter((call) => call.method === "larder.data.v1.DataService/Watch" && call.environment === "prod");
    // Each was ended by its client (abort), which the log calls Canceled rather than an error or a clean end.
    expect(watches.map((call) => call.code)).to.include("Canceled");
    expect(Math.max(...watches.map((call) => (call as { ms?: number }).ms ?? 0))).to.be.above(50);
    // A refused caller has no environment: the log must not claim one.
    const refused = calls.filter((call) => call.code === "Unauthenticated");
    expect(refused).not.to.have.lengthOf(0);
    for (const call of refused) expect(call).not.to.have.property("environment");
    for (const { key } of Object.values(KEYS)) {
      expect(log).not.to.contain(key);
      expect(log).not.to.contain(hashKey(key));
    }
  });
});

describe("e2e: LARDER_PUBLIC_SERVICES", () => {
  const key = generateKey();
  const path = keysFile([{ id: "reader", key, environment: "prod", role: "read" }]);
  const running = useServer({ env: { LARDER_KEYS_FILE: path, LARDER_PUBLIC_SERVICES: "" } });

  it("empty: health needs a key too (any role may ask it)", async () => {
    const anonymous = createClient(Health, createGrpcTransport({ baseUrl: running.url }));
    expect((await failureOf(anonymous.check({}))).code).to.equal(Code.Unauthenticated);
    const keyed = createClient(Health, createGrpcTransport({ baseUrl: running.url, interceptors: [bearer(key)] }));
    expect((await keyed.check({})).status).to.equal(1);
  });

  it("empty: reflection needs a key too (any role may ask it)", async () => {
    async function* listServices() {
      yield { messageRequest: { case: "listServices" as const, value: "" } };
    }
    const ask = async (interceptors: Interceptor[]) => {
      const client = createClient(ServerReflection, createGrpcTransport({ baseUrl: running.url, interceptors }));
      const answers = [];
      for await (const answer of client.serverReflectionInfo(listServices())) answers.push(answer);
      return answers;
    };
    expect((await failureOf(ask([]))).code).to.equal(Code.Unauthenticated);
    expect((await ask([bearer(key)]))[0].messageResponse.case).to.equal("listServicesResponse");
  });

  it("a service that reads data cannot be made public (exit 2)", async () => {
    const { code, output } = await runServerToExit({
      LARDER_KEYS_FILE: path,
      LARDER_PUBLIC_SERVICES: "grpc.health.v1.Health,larder.data.v1.DataService",
    });
    expect(code, output).to.equal(2);
    expect(output).to.contain("LARDER_PUBLIC_SERVICES may list only");
    expect(output).to.contain("not 'larder.data.v1.DataService'");
  }).timeout(30_000);
});
