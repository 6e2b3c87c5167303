import { create, fromJson, type DescMessage, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { AdminService } from "../../gen/larder/admin/v1/admin_pb.js";
import { DataService, OperationSchema } from "../../gen/larder/data/v1/data_pb.js";
import { generateKey, hashKey } from "../../services/access/api-keys.js";
import { useServer } from "../support/server.js";
import { reasonOf } from "../support/errors.js";
import { keysFile, type TestKey } from "../support/keys.js";

/**
 * The access policy as a matrix: every RPC of every service the port serves
 * (enumerated from the service descriptors, so an RPC added later without a
 * row here fails this suite) × every kind of caller (each role, no key, an
 * unknown key) × every protocol (gRPC, gRPC-Web, Connect binary and JSON);
 * each operation a Pipeline carries × each role; AdminService on the key's
 * own environment and on another; and the server-sent events endpoints.
 * The expected policy is written out here, not imported from roles.ts, so a
 * change to the policy has to be made twice, on purpose.
 */

type Caller = "read" | "write" | "watch" | "app" | "admin" | "operator" | "none" | "unknown";
const ROLES = ["read", "write", "watch", "app", "admin", "operator"] as const;
const CALLERS: readonly Caller[] = [...ROLES, "none", "unknown"];

const KEYS: Record<(typeof ROLES)[number] | "stageAdmin", string> = {
  read: generateKey(),
  write: generateKey(),
  watch: generateKey(),
  app: generateKey(),
  admin: generateKey(),
  operator: generateKey(),
  stageAdmin: generateKey(),
};

/** Each role's key in prod; the operator's in none; one more admin in stage. */
function keys(): TestKey[] {
  return Object.entries(KEYS).map(([id, key]) => {
    if (id === "operator") return { id, key, role: "operator" };
    if (id === "stageAdmin") return { id, key, environment: "stage", role: "admin" };
    return { id, key, environment: "prod", role: id };
  });
}

const READS: Caller[] = ["read", "write", "watch", "app", "admin"];
const WRITES: Caller[] = ["write", "app", "admin"];
const EVENTS: Caller[] = ["watch", "app", "admin"];
const MANAGERS: Caller[] = ["admin", "operator"];
const EVERYONE: Caller[] = [...CALLERS];

const text = (value: string) => fromJson(ValueSchema, value);

/** Who may call each RPC, and a request for it that names the key's own environment (prod). */
const POLICY: Record<string, { allowed: Caller[]; request: unknown }> = {
  "larder.data.v1.DataService/Get": { allowed: READS, request: { key: "m:a" } },
  "larder.data.v1.DataService/BatchGet": { allowed: READS, request: { keys: ["m:a"] } },
  "larder.data.v1.DataService/Query": { allowed: READS, request: { expression: "m:*" } },
  "larder.data.v1.DataService/Count": { allowed: READS, request: { expression: "m:*" } },
  "larder.data.v1.DataService/History": { allowed: READS, request: { key: "m:a" } },
  "larder.data.v1.DataService/Scan": { allowed: READS, request: {} },
  "larder.data.v1.DataService/Namespaces": { allowed: READS, request: {} },
  "larder.data.v1.DataService/Ping": { allowed: READS, request: {} },
  // Open to every role that reads: each operation is then checked as its own call (below).
  "larder.data.v1.DataService/Pipeline": { allowed: READS, request: { operations: [{ kind: { case: "get", value: { key: "m:a" } } }] } },
  "larder.data.v1.DataService/Set": { allowed: WRITES, request: { key: "m:a", value: text("x") } },
  "larder.data.v1.DataService/BatchSet": { allowed: WRITES, request: { items: [{ key: "m:b", value: text("x") }], overwrite: true } },
  "larder.data.v1.DataService/Add": { allowed: WRITES, request: { key: "m:n", amount: 1 } },
  "larder.data.v1.DataService/Remove": { allowed: WRITES, request: { keys: ["m:b"] } },
  "larder.data.v1.DataService/Seed": { allowed: WRITES, request: { items: [] } },
  "larder.data.v1.DataService/Watch": { allowed: EVENTS, request: {} },
  "larder.data.v1.DataService/Ack": { allowed: EVENTS, request: { subscription: "matrix", resumeToken: "" } },
  "larder.admin.v1.AdminService/ListEnvironments": { allowed: MANAGERS, request: {} },
  "larder.admin.v1.AdminService/CreateEnvironment": { allowed: MANAGERS, request: { name: "prod" } },
  "larder.admin.v1.AdminService/DropEnvironment": { allowed: MANAGERS, request: { name: "prod" } },
  "larder.admin.v1.AdminService/ExportEnvironment": { allowed: MANAGERS, request: { name: "prod" } },
  "larder.admin.v1.AdminService/ImportEnvironment": { allowed: MANAGERS, request: { name: "prod", items: [] } },
  "larder.admin.v1.AdminService/CloneEnvironment": { allowed: MANAGERS, request: { source: "prod", target: "prod" } },
  // Public (LARDER_PUBLIC_SERVICES' default): they say nothing about any environment's data.
  "grpc.health.v1.Health/Check": { allowed: EVERYONE, request: {} },
  "grpc.health.v1.Health/Watch": { allowed: EVERYONE, request: {} },
};

/** AdminService requests naming an environment the prod admin key is not bound to; every method naming one has a row. */
const FOREIGN: Record<string, unknown[]> = {
  CreateEnvironment: [{ name: "stage" }],
  DropEnvironment: [{ name: "stage" }],
  ExportEnvironment: [{ name: "stage" }],
  ImportEnvironment: [{ name: "stage", items: [{ key: "planted:1", value: text("x") }] }],
  CloneEnvironment: [
    { source: "prod", target: "stage" },
    { source: "stage", target: "prod" },
  ],
};
const NAMES_NO_ENVIRONMENT = ["ListEnvironments"];

const SERVICES: readonly DescService[] = [DataService, AdminService, Health];

type MakeTransport = (options: { baseUrl: string; interceptors: Interceptor[] }) => Transport;
const PROTOCOLS: Record<string, MakeTransport> = {
  grpc: (options) => createGrpcTransport(options),
  "grpc-web": (options) => createGrpcWebTransport({ ...options, httpVersion: "1.1" }),
  "connect-binary": (options) => createConnectTransport({ ...options, httpVersion: "1.1" }),
  "connect-json": (options) => createConnectTransport({ ...options, httpVersion: "1.1", useBinaryFormat: false }),
};

const withKey =
  (key: string): Interceptor =>
  (next) =>
  (request) => {
    request.header.set("authorization", `Bearer ${key}`);
    return next(request);
  };

type Outcome = "allowed" | [Code, string | undefined];

function expected(caller: Caller, allowed: readonly Caller[]): Outcome {
  if (allowed.includes(caller)) return "allowed";
  if (caller === "none") return [Code.Unauthenticated, "API_KEY_MISSING"];
  if (caller === "unknown") return [Code.Unauthenticated, "API_KEY_UNKNOWN"];
  return [Code.PermissionDenied, "ROLE_NOT_ALLOWED"];
}

/** Every message type a request can carry, nested ones included. */
function messagesOf(message: DescMessage, seen = new Set<string>()): DescMessage[] {
  if (seen.has(message.typeName)) return [];
  seen.add(message.typeName);
  return [message, ...message.fields.flatMap((field) => (field.message ? messagesOf(field.message, seen) : []))];
}

describe("e2e: the access matrix — every RPC × role × protocol, Pipeline operations, tenancy, server-sent events", function () {
  this.timeout(120_000);
  const running = useServer({ env: { LARDER_KEYS_FILE: keysFile(keys()), LARDER_LOG_LEVEL: "debug" } });

  const keyOf = (caller: Caller): string | undefined =>
    caller === "none" ? undefined : caller === "unknown" ? generateKey() : KEYS[caller as keyof typeof KEYS];
  const clientOf = (service: DescService, key: string | undefined, protocol = "grpc") =>
    createClient(service, PROTOCOLS[protocol]({ baseUrl: running.url, interceptors: key ? [withKey(key)] : [] })) as unknown as Record<
      string,
      (request: unknown, options?: { signal?: AbortSignal }) => unknown
    >;

  /** The call's outcome: allowed (answered, or refused for anything but access), or the access refusal. */
  async function outcomeOf(service: DescService, method: DescMethod, request: unknown, key: string | undefined, protocol: string): Promise<Outcome> {
    const client = clientOf(service, key, protocol);
    const input = create(method.input, request as never);
    try {
      if (method.methodKind === "server_streaming") {
        const abort = new AbortController();
        const stream = client[method.localName](input, { signal: abort.signal }) as AsyncIterable<unknown>;
        for await (const _message of stream) {
          abort.abort();
          break;
        }
      } else {
        await client[method.localName](input);
      }
      return "allowed";
    } catch (error) {
      const failure = ConnectError.from(error);
      if (key !== undefined) expect(failure.rawMessage, "a refusal never quotes the key").not.to.contain(key);
      if (failure.code !== Code.Unauthenticated && failure.code !== Code.PermissionDenied) return "allowed";
      return [failure.code, reasonOf(failure)];
    }
  }

  it("every RPC the port serves has a row in the policy, and nothing else does", () => {
    const served = SERVICES.flatMap((service) => service.methods.map((method) => `${service.typeName}/${method.name}`));
    expect(Object.keys(POLICY).sort()).to.deep.equal(served.sort());
    expect(Object.keys(FOREIGN).sort()).to.deep.equal(
      AdminService.methods
        .map((method) => method.name)
        .filter((name) => !NAMES_NO_ENVIRONMENT.includes(name))
        .sort(),
    );
  });

  it("no DataService request can name an environment: it comes from the key alone", () => {
    for (const method of DataService.methods) {
      for (const message of messagesOf(method.input)) {
        for (const field of message.fields) {
          expect(field.name, `${message.typeName}.${field.name}`).not.to.match(/env|tenant|database|project/i);
        }
      }
    }
  });

  for (const service of SERVICES) {
    for (const method of service.methods) {
      const name = `${service.typeName}/${method.name}`;
      it(`${name}: each caller on each protocol`, async () => {
        const row = POLICY[name];
        if (!row) expect.fail(`${name} has no row in the policy`);
        const seen: Record<string, Outcome> = {};
        const want: Record<string, Outcome> = {};
        for (const protocol of Object.keys(PROTOCOLS)) {
          for (const caller of CALLERS) {
            seen[`${protocol} ${caller}`] = await outcomeOf(service, method, row.request, keyOf(caller), protocol);
            want[`${protocol} ${caller}`] = expected(caller, row.allowed);
          }
        }
        expect(seen).to.deep.equal(want);
      });
    }
  }

  it("Pipeline: every operation it can carry is checked against the role as the RPC it stands for", async () => {
    const operations = OperationSchema.oneofs[0].fields;
    expect(operations.length).to.be.greaterThan(0);
    const seen: Record<string, Outcome> = {};
    const want: Record<string, Outcome> = {};
    for (const operation of operations) {
      // The operation `batch_get` stands for the RPC BatchGet.
      const rpc = operation.name.replace(/(^|_)([a-z])/g, (_, __, letter: string) => letter.toUpperCase());
      const row = POLICY[`${DataService.typeName}/${rpc}`];
      if (!row) expect.fail(`the operation ${operation.name} stands for no DataService RPC`);
      for (const caller of READS) {
        const client = clientOf(DataService, keyOf(caller));
        const response = (await client.pipeline({ operations: [{ kind: { case: operation.localName, value: row.request } }] })) as {
          results: { kind: { case: string; value: { code: number; errorInfo?: { reason: string } } } }[];
        };
        const result = response.results[0].kind;
        const access = result.case === "error" && (result.value.code === Code.PermissionDenied || result.value.code === Code.Unauthenticated);
        seen[`${operation.name} ${caller}`] = access ? [result.value.code, result.value.errorInfo?.reason] : "allowed";
        want[`${operation.name} ${caller}`] = expected(caller, row.allowed);
      }
    }
    expect(seen).to.deep.equal(want);
  });

  it("AdminService: a key bound to prod acts on no other environment, on any protocol, and changes nothing there", async () => {
    const stage = clientOf(AdminService, KEYS.stageAdmin);
    await (stage.importEnvironment as (request: unknown) => Promise<unknown>)({
      name: "stage",
      items: [{ key: "stage:1", value: text("kept") }],
      overwrite: true,
    });
    for (const protocol of Object.keys(PROTOCOLS)) {
      for (const [methodName, requests] of Object.entries(FOREIGN)) {
        const method = AdminService.methods.find((candidate) => candidate.name === methodName)!;
        for (const request of requests) {
          const outcome = await outcomeOf(AdminService, method, request, KEYS.admin, protocol);
          expect(outcome, `${protocol} ${methodName} ${JSON.stringify(request)}`).to.deep.equal([Code.PermissionDenied, "ENVIRONMENT_NOT_ALLOWED"]);
        }
      }
      const listed = (await clientOf(AdminService, KEYS.admin, protocol).listEnvironments({})) as { environments: { name: string }[] };
      expect(listed.environments.map((environment) => environment.name)).not.to.include("stage");
    }
    const exported: string[] = [];
    for await (const chunk of clientOf(AdminService, KEYS.stageAdmin).exportEnvironment({ name: "stage" }) as AsyncIterable<{
      items: { key: string }[];
    }>) {
      exported.push(...chunk.items.map((item) => item.key));
    }
    expect(exported).to.deep.equal(["stage:1"]);
    const everything = (await clientOf(AdminService, KEYS.operator).listEnvironments({})) as { environments: { name: string }[] };
    expect(everything.environments.map((environment) => environment.name)).to.include("stage");
  });

  describe("server-sent events: GET /events and POST /events/ticket", () => {
    const bearer = (caller: Caller): Record<string, string> => {
      const key = keyOf(caller);
      return key ? { authorization: `Bearer ${key}` } : {};
    };
    const refusalOf = async (response: Response): Promise<Outcome> => {
      if (response.ok) return "allowed";
      const body = (await response.json()) as { code: string; details?: { debug?: { reason?: string } }[] };
      const code = { unauthenticated: Code.Unauthenticated, permission_denied: Code.PermissionDenied }[body.code] ?? Code.Unknown;
      return [code, body.details?.[0]?.debug?.reason];
    };

    it("a stream opens for the roles that may Watch; every other caller gets the Watch refusal", async () => {
      const seen: Record<string, Outcome> = {};
      const want: Record<string, Outcome> = {};
      for (const caller of CALLERS) {
        const abort = new AbortController();
        const response = await fetch(`${running.url}/events?filter=*`, { headers: bearer(caller), signal: abort.signal });
        if (response.ok) {
          expect(response.headers.get("content-type")).to.match(/^text\/event-stream/);
          const reader = response.body!.getReader();
          const { value } = await reader.read();
          expect(Buffer.from(value!).toString()).to.match(/^event: started\n/);
        }
        seen[caller] = await refusalOf(response);
        abort.abort();
        want[caller] = expected(caller, EVENTS);
      }
      expect(seen).to.deep.equal(want);
    });

    it("a ticket is given only for a key that may Watch, and opens one stream of that key's environment", async () => {
      const seen: Record<string, Outcome> = {};
      const want: Record<string, Outcome> = {};
      for (const caller of CALLERS) {
        const response = await fetch(`${running.url}/events/ticket`, { method: "POST", headers: bearer(caller) });
        seen[caller] = await refusalOf(response);
        want[caller] = expected(caller, EVENTS);
        if (!response.ok) continue;
        const { ticket } = (await response.json()) as { ticket: string };
        const abort = new AbortController();
        const stream = await fetch(`${running.url}/events?ticket=${ticket}`, { signal: abort.signal });
        expect(stream.status, caller).to.equal(200);
        abort.abort();
        const again = await fetch(`${running.url}/events?ticket=${ticket}`);
        expect(await refusalOf(again), `${caller}: a spent ticket`).to.deep.equal([Code.Unauthenticated, "API_KEY_UNKNOWN"]);
      }
      expect(seen).to.deep.equal(want);
    });
  });

  // Last: after every call above, SSE tickets included.
  describe("the log", () => {
    it("no key, key hash or ticket reaches the log", () => {
      const log = running.server.output();
      expect(log).to.contain('"msg":"call"');
      for (const key of Object.values(KEYS)) {
        expect(log).not.to.contain(key);
        expect(log).not.to.contain(hashKey(key));
      }
      expect(log).not.to.contain("ticket=");
    });
  });
});
