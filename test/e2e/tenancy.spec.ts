import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Code, createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { AdminService, type ExportedItem } from "../../gen/larder/admin/v1/admin_pb.js";
import { DataService } from "../../gen/larder/data/v1/data_pb.js";
import { generateKey, hashKey } from "../../services/access/api-keys.js";
import type { Role } from "../../services/access/roles.js";
import { REPO_ROOT, useServer } from "../support/server.js";
import { failureOf, reasonOf } from "../support/errors.js";
import { bearer } from "../support/keys.js";

/**
 * Issue 16: a key bound to an environment acts only there on every
 * AdminService RPC, whatever its role and whatever the request names; only an
 * operator key (bound to none) manages every environment. Every cell of
 * RPC × role × own/foreign environment × protocol runs against the real
 * server, and a refused cell must leave both environments exactly as they were.
 */

const OWN = "home";
const FOREIGN = "away";
const BOUND_ROLES = ["read", "write", "watch", "app", "admin"] as const;
type Target = "own" | "foreign";
type Admin = Client<typeof AdminService>;

const text = (value: string) => ({ kind: { case: "stringValue" as const, value } });
const BASELINE: Record<string, { key: string; value: ReturnType<typeof text> }[]> = {
  [OWN]: [{ key: "h:1", value: text("home one") }],
  [FOREIGN]: [
    { key: "a:1", value: text("secret one") },
    { key: "a:2", value: text("secret two") },
  ],
};

async function exported(admin: Admin, name: string): Promise<{ key: string; value: unknown }[]> {
  const items: ExportedItem[] = [];
  for await (const chunk of admin.exportEnvironment({ name })) items.push(...chunk.items);
  return items.map((item) => ({ key: item.key, value: item.value?.kind }));
}

/** What a cell must give: a refusal (code and reason), or success checked by `then`. */
type Outcome = { refused: [Code, string] } | { then: (result: unknown, operator: Admin) => Promise<void> };

interface Row {
  readonly rpc: string;
  /** Calls the RPC naming the own or the foreign environment. */
  readonly call: (admin: Admin, target: Target) => Promise<unknown>;
  /** What an admin key bound to OWN gets; a foreign target is ENVIRONMENT_NOT_ALLOWED unless the row names no environment. */
  readonly admin: (target: Target) => Outcome;
  readonly operator: (target: Target) => Outcome;
}

const nameOf = (target: Target) => (target === "own" ? OWN : FOREIGN);
const otherOf = (target: Target) => (target === "own" ? FOREIGN : OWN);

const ROWS: Row[] = [
  {
    rpc: "ListEnvironments",
    call: (admin) => admin.listEnvironments({}),
    admin: () => ({
      then: async (result) => {
        const names = (result as { environments: { name: string }[] }).environments.map((env) => env.name);
        expect(names, "an admin key sees only its own environment").to.deep.equal([OWN]);
      },
    }),
    operator: () => ({
      then: async (result) => {
        const names = (result as { environments: { name: string }[] }).environments.map((env) => env.name);
        expect(names).to.include.members([OWN, FOREIGN]);
      },
    }),
  },
  {
    rpc: "CreateEnvironment",
    call: (admin, target) => admin.createEnvironment({ name: nameOf(target) }),
    // Both exist: getting past the tenancy check shows as ALREADY_EXISTS, and a refused one must not say whether it exists.
    admin: () => ({ refused: [Code.AlreadyExists, "ENVIRONMENT_EXISTS"] }),
    operator: () => ({ refused: [Code.AlreadyExists, "ENVIRONMENT_EXISTS"] }),
  },
  {
    rpc: "DropEnvironment",
    call: (admin, target) => admin.dropEnvironment({ name: nameOf(target) }),
    admin: (target) => ({ then: dropped(nameOf(target)) }),
    operator: (target) => ({ then: dropped(nameOf(target)) }),
  },
  {
    rpc: "ExportEnvironment",
    call: async (admin, target) => exported(admin, nameOf(target)),
    admin: (target) => ({ then: async (result) => void expect(result).to.deep.equal(baseline(nameOf(target))) }),
    operator: (target) => ({ then: async (result) => void expect(result).to.deep.equal(baseline(nameOf(target))) }),
  },
  {
    rpc: "ImportEnvironment",
    call: (admin, target) =>
      admin.importEnvironment({ name: nameOf(target), items: [{ key: "planted:1", value: text("planted") }], overwrite: true }),
    admin: (target) => ({ then: planted(nameOf(target)) }),
    operator: (target) => ({ then: planted(nameOf(target)) }),
  },
  {
    rpc: "CloneEnvironment (into the named one)",
    call: (admin, target) => admin.cloneEnvironment({ source: otherOf(target), target: nameOf(target) }),
    // Into its own environment an admin key must read another: refused either way.
    admin: () => ({ refused: [Code.PermissionDenied, "ENVIRONMENT_NOT_ALLOWED"] }),
    operator: (target) => ({ then: clonedInto(nameOf(target), otherOf(target)) }),
  },
  {
    rpc: "CloneEnvironment (onto itself)",
    call: (admin, target) => admin.cloneEnvironment({ source: nameOf(target), target: nameOf(target) }),
    admin: () => ({ refused: [Code.InvalidArgument, "INVALID_OPTION"] }),
    operator: () => ({ refused: [Code.InvalidArgument, "INVALID_OPTION"] }),
  },
];

function baseline(name: string) {
  return BASELINE[name].map((item) => ({ key: item.key, value: item.value.kind }));
}

function dropped(name: string) {
  return async (_result: unknown, operator: Admin) => {
    expect((await operator.listEnvironments({})).environments.map((env) => env.name)).not.to.include(name);
  };
}

function planted(name: string) {
  return async (_result: unknown, operator: Admin) => {
    expect(await exported(operator, name)).to.deep.equal([{ key: "planted:1", value: text("planted").kind }]);
  };
}

function clonedInto(target: string, source: string) {
  return async (_result: unknown, operator: Admin) => {
    expect(await exported(operator, target)).to.deep.equal(baseline(source));
  };
}

describe("e2e: tenancy — every AdminService RPC × role × own/foreign environment × protocol (issue 16)", function () {
  this.timeout(120_000);
  const directory = mkdtempSync(join(tmpdir(), "larder-tenancy-"));
  const keysPath = join(directory, "keys.json");
  const keys: Record<string, string> = {};

  before(async function () {
    this.timeout(60_000);
    // The operator key comes from `npm run keys`, as a user would make it: this proves the script too.
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--import", "tsx", "scripts/keys.ts", "add", "--file", keysPath, "--id", "ops", "--role", "operator"],
      { cwd: REPO_ROOT },
    );
    keys.operator = stdout.trim();
    const file = JSON.parse(readFileSync(keysPath, "utf8")) as { keys: Record<string, unknown>[] };
    expect(file.keys).to.deep.equal([{ id: "ops", sha256: hashKey(keys.operator), role: "operator" }]);
    for (const role of BOUND_ROLES) {
      keys[role] = generateKey();
      file.keys.push({ id: `home-${role}`, sha256: hashKey(keys[role]), environment: OWN, role });
    }
    keys.foreignWriter = generateKey();
    file.keys.push({ id: "away-writer", sha256: hashKey(keys.foreignWriter), environment: FOREIGN, role: "write" });
    writeFileSync(keysPath, JSON.stringify(file));
  });
  const running = useServer({ env: { LARDER_KEYS_FILE: keysPath } });

  const transports: [string, (key: string) => Transport][] = [
    ["gRPC", (key) => createGrpcTransport({ baseUrl: running.url, interceptors: [bearer(key)] })],
    ["Connect", (key) => createConnectTransport({ baseUrl: running.url, httpVersion: "1.1", interceptors: [bearer(key)] })],
  ];
  const operatorClient = () => createClient(AdminService, transports[0][1](keys.operator));

  /** Both environments exactly as BASELINE says, whatever the last cell did. */
  async function restore(): Promise<void> {
    const operator = operatorClient();
    for (const [name, items] of Object.entries(BASELINE)) await operator.importEnvironment({ name, items, overwrite: true, skipEvents: true });
  }

  async function unchanged(): Promise<void> {
    const operator = operatorClient();
    for (const name of [OWN, FOREIGN]) expect(await exported(operator, name), `${name} is unchanged`).to.deep.equal(baseline(name));
    const names = (await operator.listEnvironments({})).environments.map((env) => env.name);
    expect(
      names.filter((name) => ![OWN, FOREIGN].includes(name)),
      "no environment was created",
    ).to.deep.equal([]);
  }

  for (const [protocol, transport] of transports) {
    for (const row of ROWS) {
      it(`${protocol}: ${row.rpc}`, async () => {
        for (const role of [...BOUND_ROLES, "operator"] as Role[]) {
          for (const target of ["own", "foreign"] as Target[]) {
            const cell = `${role} key, ${target} environment`;
            await restore();
            const outcome: Outcome =
              role === "operator"
                ? row.operator(target)
                : role !== "admin"
                  ? { refused: [Code.PermissionDenied, "ROLE_NOT_ALLOWED"] }
                  : target === "foreign" && row.rpc !== "ListEnvironments"
                    ? { refused: [Code.PermissionDenied, "ENVIRONMENT_NOT_ALLOWED"] }
                    : row.admin(target);
            const admin = createClient(AdminService, transport(keys[role]));
            if ("refused" in outcome) {
              const failure = await failureOf(row.call(admin, target));
              expect([failure.code, reasonOf(failure)], `${cell}: ${failure.message}`).to.deep.equal(outcome.refused);
              expect(failure.rawMessage, cell).not.to.contain(keys[role]);
              await unchanged();
            } else {
              await outcome.then(await row.call(admin, target), operatorClient());
            }
          }
        }
      });
    }
  }

  it("a bound admin key cannot create, nor learn of, an environment it is not bound to; an operator can create it", async () => {
    const admin = createClient(AdminService, transports[0][1](keys.admin));
    for (const name of ["fresh", FOREIGN, "Not A Name"]) {
      const failure = await failureOf(admin.createEnvironment({ name }));
      expect([failure.code, reasonOf(failure)], name).to.deep.equal([Code.PermissionDenied, "ENVIRONMENT_NOT_ALLOWED"]);
    }
    const operator = operatorClient();
    expect((await operator.listEnvironments({})).environments.map((env) => env.name)).not.to.include("fresh");
    expect((await operator.createEnvironment({ name: "fresh" })).environment?.name).to.equal("fresh");
    expect((await admin.listEnvironments({})).environments.map((env) => env.name)).to.deep.equal([OWN]);
    await operator.dropEnvironment({ name: "fresh" });
  });

  it("environment errors carry their own reasons: not found, exists, a malformed name", async () => {
    const operator = operatorClient();
    const missing = await failureOf(exported(operator, "nowhere"));
    expect([missing.code, reasonOf(missing)]).to.deep.equal([Code.NotFound, "ENVIRONMENT_NOT_FOUND"]);
    const drop = await failureOf(operator.dropEnvironment({ name: "nowhere" }));
    expect([drop.code, reasonOf(drop)]).to.deep.equal([Code.NotFound, "ENVIRONMENT_NOT_FOUND"]);
    const exists = await failureOf(operator.createEnvironment({ name: OWN }));
    expect([exists.code, reasonOf(exists)]).to.deep.equal([Code.AlreadyExists, "ENVIRONMENT_EXISTS"]);
    const malformed = await failureOf(operator.createEnvironment({ name: "Not A Name" }));
    expect([malformed.code, reasonOf(malformed)]).to.deep.equal([Code.InvalidArgument, "INVALID_ENVIRONMENT_NAME"]);
  });

  it("an operator key has no environment of its own: every DataService call is PERMISSION_DENIED, saying why", async () => {
    for (const [protocol, transport] of transports) {
      const data = createClient(DataService, transport(keys.operator));
      for (const call of [() => data.get({ key: "a:1" }), () => data.set({ key: "a:1", value: text("x") }), () => data.ping({})]) {
        const failure = await failureOf(call());
        expect([failure.code, reasonOf(failure)], protocol).to.deep.equal([Code.PermissionDenied, "ROLE_NOT_ALLOWED"]);
        expect(failure.rawMessage).to.contain("bound to no environment");
      }
    }
  });

  it("a bound key's data calls still reach only its own environment", async () => {
    await restore();
    const foreignData = createClient(DataService, transports[0][1](keys.foreignWriter));
    const ownData = createClient(DataService, transports[0][1](keys.admin));
    expect((await foreignData.get({ key: "a:1" })).item?.key).to.equal("a:1");
    expect((await ownData.get({ key: "a:1" })).item).to.equal(undefined);
  });
});
