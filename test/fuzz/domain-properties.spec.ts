import { expect } from "chai";
import fc from "fast-check";
import { createClient, ConnectError, Code } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { fromJson, toJson } from "@bufbuild/protobuf";
import { timestampFromMs, ValueSchema } from "@bufbuild/protobuf/wkt";
import { DataService } from "../../gen/larder/data/v1/data_pb.js";
import { decodeLabelCursor, encodeLabelCursor } from "../../core/cursor.js";
import { DomainError } from "../../core/errors.js";
import { parseKeyExpression } from "../../core/expressions.js";
import { parseEventFilter } from "../../core/filters.js";
import type { JsonValue } from "../../core/json.js";
import { parseKey, parseWritableKey } from "../../core/keys.js";
import { checkBatchSize, parseLabelName, resolveLimit } from "../../core/limits.js";
import { applySet } from "../../core/apply-set.js";
import { planAdd, planBatchSet, planSeed, planSet, type SetInput } from "../../core/set-plan.js";
import { resolveTtl } from "../../core/ttl.js";
import { addAmount, itemSize, MAX_DEPTH, MAX_ITEM_BYTES, validateValue } from "../../core/values.js";
import { NO_LABELS } from "../../core/item.js";
import { useServer } from "../support/server.js";
import { failureOf } from "../support/errors.js";

/**
 * The domain's contract with the service: any input is either a result or a
 * DomainError, never another exception (which the handler edge would turn
 * into INTERNAL). Planning and parsing only ever refuse with INVALID_ARGUMENT
 * (S5: everything the request alone decides); only applying a plan to a
 * stored item may fail a precondition.
 */
function expectInvalidOr<T>(action: () => T): T | undefined {
  try {
    return action();
  } catch (error) {
    expect(error, String((error as Error)?.stack ?? error)).to.be.instanceOf(DomainError);
    expect((error as DomainError).code, (error as DomainError).message).to.equal("INVALID_ARGUMENT");
    expect((error as DomainError).message).to.not.equal("");
    return undefined;
  }
}

function expectPreconditionOr<T>(action: () => T): T | undefined {
  try {
    return action();
  } catch (error) {
    expect(error, String((error as Error)?.stack ?? error)).to.be.instanceOf(DomainError);
    expect(["FAILED_PRECONDITION", "ALREADY_EXISTS", "NOT_FOUND"]).to.include((error as DomainError).code);
    return undefined;
  }
}

const anyText = fc.oneof(
  fc.string(),
  fc.string({ unit: "grapheme" }),
  fc.string({ unit: "binary" }),
  fc.constantFrom("ns:*", "a|b|c", " : ", "ns:<", "ns:>=", "x".repeat(300), "__proto__", "ns:__proto__", "constructor", "\u{d800}", "a:\u{dfff}"),
);
const json: fc.Arbitrary<JsonValue> = fc.jsonValue({ maxDepth: 6 }) as fc.Arbitrary<JsonValue>;
/** JSON-like values with what JSON cannot hold: NaN, ±Infinity, -0, and nesting past the limit. */
const wildValue: fc.Arbitrary<JsonValue> = fc.oneof(
  json,
  fc.object({ values: [fc.double(), fc.string(), fc.boolean(), fc.constant(null)], maxDepth: 4 }) as fc.Arbitrary<JsonValue>,
  fc.integer({ min: 0, max: 70 }).map((depth) => {
    let value: JsonValue = 1;
    for (let i = 0; i < depth; i++) value = i % 2 ? [value] : { a: value };
    return value;
  }),
  fc.record({ $add: fc.oneof(fc.double(), fc.string(), json) }) as fc.Arbitrary<JsonValue>,
);
const labelInput = fc.option(fc.oneof(fc.record({ set: anyText }), fc.record({ setIfAbsent: anyText }), fc.constant({ remove: true as const })), {
  nil: undefined,
});
const ttlInput = fc.option(
  fc.oneof(
    fc.record({ seconds: fc.double() }),
    fc.record({
      date: fc.oneof(
        anyText,
        fc.date({ noInvalidDate: true }).map((date) => date.toISOString()),
      ),
    }),
    fc.record({ at: fc.double() }),
    fc.constant({ remove: true as const }),
  ),
  { nil: undefined },
);
const setInput: fc.Arbitrary<SetInput> = fc.record({
  key: fc.oneof(anyText, fc.constantFrom("users:alice", "counter", "orders:2024:07")),
  value: fc.option(wildValue, { nil: undefined }),
  unsetAttributes: fc.array(fc.string(), { maxLength: 3 }),
  overwrite: fc.boolean(),
  ttl: ttlInput,
  exists: fc.option(fc.boolean(), { nil: undefined }),
  defaultValue: fc.option(wildValue, { nil: undefined }),
  labels: fc.array(labelInput, { maxLength: 7 }),
  created: fc.option(fc.double(), { nil: undefined }),
  removeNulls: fc.boolean(),
});
/** A key part users would write: no colon, no expression characters, no edge whitespace. */
const keyPart = fc
  .string({ unit: "grapheme", minLength: 1, maxLength: 40 })
  .filter((part) => part.trim() === part && part !== "" && !/[:*|]/.test(part) && !/^[<>]/.test(part) && !/\p{Surrogate}/u.test(part));

/**
 * Two bugs this suite found are fixed (root attributes were checked from depth 0, so objects
 * could nest 33 levels; a Value JSON cannot hold got INTERNAL). The switches stay so the oracles
 * read plainly; both are off, so every test below runs.
 */
const OBJECT_ROOT_NESTS_33 = false;
const NON_JSON_VALUE_IS_INTERNAL = false;

/** The oracle for V1: finite numbers only, nested no deeper than MAX_DEPTH, no `$add` below the root. */
function isStorable(value: JsonValue, depth = OBJECT_ROOT_NESTS_33 && isRootObject(value) ? -1 : 0): boolean {
  if (typeof value === "number") return Number.isFinite(value);
  if (value === null || typeof value !== "object") return true;
  if (depth >= MAX_DEPTH) return false;
  if (Array.isArray(value)) return value.every((element) => isStorable(element, depth + 1));
  return Object.keys(value).every((attribute) => attribute !== "$add" && isStorable(value[attribute], depth + 1));
}

function isRootObject(value: JsonValue): boolean {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function hasAdd(value: JsonValue): boolean {
  if (value === null || typeof value !== "object") return false;
  if (Array.isArray(value)) return value.some(hasAdd);
  return Object.keys(value).some((attribute) => attribute === "$add" || hasAdd(value[attribute]));
}

describe("fuzz: any input to the domain is a result or a DomainError, never a crash", () => {
  it("any string as a key, a writable key, an expression, an event filter, a label name or a label cursor", () => {
    fc.assert(
      fc.property(anyText, (text) => {
        const key = expectInvalidOr(() => parseKey(text));
        const writable = expectInvalidOr(() => parseWritableKey(text));
        if (writable) expect(key, "a writable key is a key").to.deep.equal(writable);
        if (key) expect(parseKey(key.full), "parsing is idempotent").to.deep.equal(key);
        expectInvalidOr(() => parseKeyExpression(text));
        expectInvalidOr(() => parseEventFilter(text));
        expectInvalidOr(() => parseLabelName(text));
        expectInvalidOr(() => decodeLabelCursor(text));
      }),
      { numRuns: 3000 },
    );
  });

  it("valid input works: keys users would write parse to themselves, and label cursors round-trip", () => {
    fc.assert(
      fc.property(keyPart, keyPart, keyPart, keyPart, (ns, part, labelNs, labelPart) => {
        expect(parseWritableKey(ns)).to.deep.equal({ full: ns, ns, part: "" });
        expect(parseWritableKey(`${ns}:${part}`)).to.deep.equal({ full: `${ns}:${part}`, ns, part });
        expect(parseKeyExpression(`${ns}:${part}*`)).to.be.an("object");
        const position = { label: parseKey(`${labelNs}:${labelPart}`), item: parseKey(`${ns}:${part}`) };
        expect(decodeLabelCursor(encodeLabelCursor(position))).to.deep.equal(position);
      }),
      { numRuns: 1000 },
    );
  });

  it("any value: validateValue agrees with the V1 oracle, addAmount only reads a lone finite $add, itemSize is the JSON's UTF-8 size", () => {
    fc.assert(
      fc.property(wildValue, anyText, (value, attribute) => {
        const valid = expectInvalidOr(() => (validateValue(value), true)) ?? false;
        expect(valid, JSON.stringify(value)).to.equal(isStorable(value, 0));
        const amount = expectInvalidOr(() => addAmount(value, attribute));
        if (amount !== undefined) {
          expect(Number.isFinite(amount)).to.equal(true);
          expect(value).to.deep.equal({ $add: amount });
        }
        const key = parseKey("fuzz:item");
        const size = itemSize(key, value, NO_LABELS);
        expect(size).to.equal(Buffer.byteLength(JSON.stringify({ key: key.full, value })));
      }),
      { numRuns: 2000 },
    );
  });

  it("any set input, planned and applied onto any stored value: what is stored is always storable", () => {
    fc.assert(
      fc.property(setInput, json, (input, stored) => {
        const now = Date.now();
        const plan = expectInvalidOr(() => planSet(input, now));
        if (!plan) return;
        const live = { key: plan.key, value: stored, created: now - 1000, modified: now - 1000, labels: NO_LABELS, version: 3 };
        for (const before of [live, undefined]) {
          const outcome = expectPreconditionOr(() => applySet(before, plan, now));
          if (!outcome) continue;
          expect(outcome.item.key).to.deep.equal(plan.key);
          expect(isStorable(outcome.item.value), JSON.stringify(outcome.item.value)).to.equal(true);
          expect(itemSize(outcome.item.key, outcome.item.value, outcome.item.labels)).to.be.at.most(MAX_ITEM_BYTES + 6 * 300);
        }
      }),
      { numRuns: 2000 },
    );
  });

  /** A value nested `depth` containers deep, its root an object or an array. */
  function nested(depth: number, root: "object" | "array"): JsonValue {
    let value: JsonValue = "leaf";
    for (let i = depth - 1; i >= 0; i--) value = (i % 2 === 0) === (root === "object") ? { a: value } : [value];
    return value;
  }

  (OBJECT_ROOT_NESTS_33 ? it.skip : it)(
    "V1: a value nested 32 levels is accepted and 33 refused, whether its root is an object or an array, as a value or a default",
    () => {
      const now = Date.now();
      for (const root of ["object", "array"] as const) {
        for (const [depth, accepted] of [
          [32, true],
          [33, false],
        ] as const) {
          for (const overwrite of [true, false]) {
            const asValue = expectInvalidOr(() =>
              planSet({ key: "deep:v", value: nested(depth, root), unsetAttributes: [], overwrite, labels: [], removeNulls: true }, now),
            );
            expect(asValue !== undefined, `${root} value, ${depth} levels, overwrite ${overwrite}`).to.equal(accepted);
          }
          const asDefault = expectInvalidOr(() =>
            planSet(
              {
                key: "deep:d",
                value: undefined,
                defaultValue: nested(depth, root),
                unsetAttributes: [],
                overwrite: false,
                labels: [],
                removeNulls: true,
              },
              now,
            ),
          );
          expect(asDefault !== undefined, `${root} default, ${depth} levels`).to.equal(accepted);
        }
      }
    },
  );

  it("valid input works: any storable JSON set as an overwrite under a valid key is stored exactly (-0 as 0, V1)", () => {
    fc.assert(
      fc.property(keyPart, keyPart, json, (ns, part, value) => {
        fc.pre(!hasAdd(value));
        const now = Date.now();
        const plan = planSet({ key: `${ns}:${part}`, value, unsetAttributes: [], overwrite: true, labels: [], removeNulls: false }, now);
        // JSON text has no -0: the round trip turns it into 0, which deep equality tells apart from -0.
        expect(applySet(undefined, plan, now).item.value).to.deep.equal(JSON.parse(JSON.stringify(value)));
      }),
      { numRuns: 1000 },
    );
  });

  it("any add, batch set, seed, limit, batch size and ttl", () => {
    fc.assert(
      fc.property(
        anyText,
        fc.option(anyText, { nil: undefined }),
        fc.oneof(fc.double(), fc.integer()),
        fc.array(setInput, { maxLength: 30 }),
        fc.option(fc.boolean(), { nil: undefined }),
        fc.oneof(fc.double(), fc.integer({ min: -5, max: 2000 })),
        ttlInput,
        (key, attribute, amount, items, overwrite, limit, ttl) => {
          const now = Date.now();
          expectInvalidOr(() => planAdd({ key, attribute, amount, overwrite: false }, now));
          const batch = expectInvalidOr(() => planBatchSet(items, { overwrite, removeNulls: true }, now));
          if (batch) expect(batch.length).to.be.within(1, 25);
          expectInvalidOr(() => planSeed(items, now));
          const resolved = expectInvalidOr(() => resolveLimit(limit));
          if (resolved !== undefined) expect(resolved).to.equal(limit === 0 ? 100 : limit);
          expectInvalidOr(() => checkBatchSize(items.length, "items", "batch set"));
          expectInvalidOr(() => resolveTtl(ttl, now));
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe("fuzz: random calls over gRPC, and reads over Connect JSON, get OK or a client error, never INTERNAL", function () {
  this.timeout(180_000);
  const running = useServer();
  /** What a client may be told about its own input; INTERNAL, UNKNOWN and UNAVAILABLE would be the server's fault. */
  const clientCodes = [Code.InvalidArgument, Code.FailedPrecondition, Code.AlreadyExists, Code.NotFound, Code.OutOfRange, Code.ResourceExhausted];

  /** Values JSON can hold, and while NON_JSON_VALUE_IS_INTERNAL, only those. */
  const finite = (each: unknown): boolean =>
    typeof each === "number" ? Number.isFinite(each) : each === null || typeof each !== "object" ? true : Object.values(each).every(finite);
  const value = NON_JSON_VALUE_IS_INTERNAL ? wildValue.filter(finite) : wildValue;
  const labelUpdate = fc.option(
    fc.oneof(
      fc.record({ action: fc.record({ case: fc.constant("set" as const), value: anyText }) }),
      fc.record({ action: fc.record({ case: fc.constant("setIfAbsent" as const), value: anyText }) }),
      fc.constant({ action: { case: "remove" as const, value: true } }),
    ),
    { nil: undefined },
  );
  // Whole seconds over the full range (unbiased: far past and far ahead), and around the last second a Timestamp carries.
  const LAST_SECOND = 253_402_300_799;
  const epochSeconds = fc.oneof(fc.noBias(fc.integer({ min: -1e15, max: 1e15 })), fc.integer({ min: LAST_SECOND - 5, max: LAST_SECOND + 5 }));
  const FIRST_MS = -62_135_596_800_000;
  const LAST_MS = LAST_SECOND * 1000 + 999;
  const instantMs = fc.oneof(
    fc.integer({ min: -1e12, max: 1e13 }),
    fc.integer({ min: LAST_MS - 5, max: LAST_MS + 5 }),
    fc.integer({ min: FIRST_MS - 5, max: FIRST_MS + 5 }),
  );
  const ttl = fc.option(
    fc.oneof(
      fc.record({ kind: fc.record({ case: fc.constant("seconds" as const), value: fc.oneof(fc.double(), epochSeconds) }) }),
      fc.record({ kind: fc.record({ case: fc.constant("date" as const), value: anyText }) }),
      fc.record({ kind: fc.record({ case: fc.constant("at" as const), value: instantMs.map(timestampFromMs) }) }),
      fc.constant({ kind: { case: "remove" as const, value: true } }),
    ),
    { nil: undefined },
  );
  const batchItem = fc.record({ key: anyText, value: fc.option(value, { nil: undefined }), label1: fc.option(anyText, { nil: undefined }) });
  /** google.protobuf.Value as the wire can carry it (NaN and ±Infinity included, unlike fromJson). */
  type ValueInit = {
    kind:
      | { case: "numberValue"; value: number }
      | { case: "stringValue"; value: string }
      | { case: "boolValue"; value: boolean }
      | { case: "nullValue"; value: 0 }
      | { case: "listValue"; value: { values: ValueInit[] } }
      | { case: "structValue"; value: { fields: Record<string, ValueInit> } };
  };
  function wire(json: JsonValue): ValueInit {
    if (json === null) return { kind: { case: "nullValue", value: 0 } };
    if (typeof json === "number") return { kind: { case: "numberValue", value: json } };
    if (typeof json === "string") return { kind: { case: "stringValue", value: json } };
    if (typeof json === "boolean") return { kind: { case: "boolValue", value: json } };
    if (Array.isArray(json)) return { kind: { case: "listValue", value: { values: json.map(wire) } } };
    return { kind: { case: "structValue", value: { fields: Object.fromEntries(Object.entries(json).map(([name, each]) => [name, wire(each)])) } } };
  }

  /**
   * connect-es answers a request its protobuf decoder refuses with INTERNAL "parse binary: …"
   * (its JSON decoder says INVALID_ARGUMENT). Of the requests a client library can build, only a
   * value nested past the decoder's limit of 100 messages (about 49 JSON levels, far past V1's 32)
   * meets it; the deviation is allowed for exactly those and pinned by the nesting test below.
   */
  const decoderRefusal = (failure: ConnectError, deep: boolean) =>
    deep && failure.code === Code.Internal && /^parse binary: .*maximum recursion depth/.test(failure.rawMessage);

  async function expectClientOutcome(what: string, call: () => Promise<unknown>, deep = false): Promise<void> {
    try {
      await call();
    } catch (error) {
      const failure = ConnectError.from(error);
      if (decoderRefusal(failure, deep)) return;
      expect(clientCodes, `${what}: ${Code[failure.code]}: ${failure.rawMessage}`).to.include(failure.code);
    }
  }

  function depthOf(value: unknown): number {
    if (value === null || typeof value !== "object") return 0;
    const children = Array.isArray(value) ? value : Object.values(value);
    return 1 + children.reduce<number>((deepest, child) => Math.max(deepest, depthOf(child)), 0);
  }

  it("whatever a set stores reads back over Connect JSON too (expiry, labels, values, times: JSON refuses more than binary)", async () => {
    const client = createClient(DataService, createGrpcTransport({ baseUrl: running.url }));
    const overJson = createClient(DataService, createConnectTransport({ baseUrl: running.url, httpVersion: "1.1", useBinaryFormat: false }));
    const jsonValue = wildValue.filter(finite);
    await fc.assert(
      fc.asyncProperty(keyPart, keyPart, jsonValue, ttl, labelUpdate, async (ns, part, stored, expiry, label1) => {
        const key = `${ns}:${part}`;
        try {
          await client.set({ key, value: wire(stored), ttl: expiry, label1, overwrite: true });
        } catch (error) {
          const failure = ConnectError.from(error);
          if (decoderRefusal(failure, depthOf(stored) > MAX_DEPTH)) return;
          expect(clientCodes, `Set: ${Code[failure.code]}: ${failure.rawMessage}`).to.include(failure.code);
          return;
        }
        const read = await overJson
          .get({ key })
          .catch((error: unknown) => expect.fail(`Get over Connect JSON of ${key}: ${ConnectError.from(error).message}`));
        if (read.item) expect(read.item.key).to.equal(key);
      }),
      { numRuns: 300 },
    );
  });

  it("nesting: 32 levels are stored, 33 get INVALID_ARGUMENT; past the protobuf decoder's limit gRPC gets INTERNAL 'parse binary' (connect-es)", async () => {
    const client = createClient(DataService, createGrpcTransport({ baseUrl: running.url }));
    const nested = (depth: number): JsonValue => {
      let value: JsonValue = "leaf";
      for (let i = 0; i < depth; i++) value = i % 2 ? { a: value } : [value];
      return value;
    };
    await client.set({ key: "deep:32", value: fromJson(ValueSchema, nested(MAX_DEPTH) as never), overwrite: true });
    expect(depthOf(toJson(ValueSchema, (await client.get({ key: "deep:32" })).item!.value!))).to.equal(MAX_DEPTH);
    // An array root: an object root is accepted at 33 while OBJECT_ROOT_NESTS_33.
    expect(Array.isArray(nested(MAX_DEPTH + 1))).to.equal(true);
    const refused = await failureOf(client.set({ key: "deep:33", value: fromJson(ValueSchema, nested(MAX_DEPTH + 1) as never) }));
    expect(refused.code).to.equal(Code.InvalidArgument);
    expect(refused.rawMessage).to.match(/nested deeper than 32 levels/);
    const tooDeep = await failureOf(client.set({ key: "deep:60", value: fromJson(ValueSchema, nested(60) as never) }));
    expect(tooDeep, "refused").to.be.instanceOf(ConnectError);
    // INVALID_ARGUMENT once the server maps decoder refusals; INTERNAL "parse binary" until then (see the report of issue 10).
    expect(tooDeep.code === Code.InvalidArgument || decoderRefusal(tooDeep, true), tooDeep.message).to.equal(true);
  });

  (NON_JSON_VALUE_IS_INTERNAL ? it.skip : it)(
    "a google.protobuf.Value that JSON cannot hold (NaN, ±Infinity, no kind), as a value, an attribute, a default or a batch item, gets INVALID_ARGUMENT",
    async () => {
      const client = createClient(DataService, createGrpcTransport({ baseUrl: running.url }));
      const num = (amount: number) => ({ kind: { case: "numberValue" as const, value: amount } });
      const cases: [string, () => Promise<unknown>][] = [
        ["NaN", () => client.set({ key: "bad:1", value: num(NaN) })],
        ["Infinity", () => client.set({ key: "bad:1", value: num(Infinity) })],
        [
          "an attribute of -Infinity",
          () => client.set({ key: "bad:1", value: { kind: { case: "structValue", value: { fields: { x: num(-Infinity) } } } } }),
        ],
        [
          "$add of -Infinity",
          () => client.set({ key: "bad:1", value: { kind: { case: "structValue", value: { fields: { $add: num(-Infinity) } } } } }),
        ],
        ["a list holding Infinity", () => client.set({ key: "bad:1", value: { kind: { case: "listValue", value: { values: [num(Infinity)] } } } })],
        ["a Value with no kind", () => client.set({ key: "bad:1", value: {} })],
        ["a default of Infinity", () => client.set({ key: "bad:1", value: num(1), defaultValue: num(Infinity) })],
        ["a batch item of NaN", () => client.batchSet({ items: [{ key: "bad:2", value: num(NaN) }] })],
        ["a seed item of NaN", () => client.seed({ items: [{ key: "bad:3", value: num(NaN) }] })],
      ];
      for (const [what, call] of cases) {
        const failure = await call().then(
          () => undefined,
          (error: unknown) => ConnectError.from(error),
        );
        expect(failure?.code, `${what}: ${failure?.rawMessage}`).to.equal(Code.InvalidArgument);
      }
    },
  );

  it("400 random calls of every kind (Set, Get, BatchGet, Query, Add, Remove, BatchSet, Scan, Seed, Watch); reads over Connect JSON too", async () => {
    const client = createClient(DataService, createGrpcTransport({ baseUrl: running.url }));
    // JSON is stricter than binary on the way out (a Timestamp past 9999, say): what was stored must render in both.
    const overJson = createClient(DataService, createConnectTransport({ baseUrl: running.url, httpVersion: "1.1", useBinaryFormat: false }));
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          key: anyText,
          value,
          defaultValue: fc.option(value, { nil: undefined }),
          overwrite: fc.boolean(),
          exists: fc.option(fc.boolean(), { nil: undefined }),
          created: fc.option(fc.double(), { nil: undefined }),
          ttl,
          label1: labelUpdate,
          label3: labelUpdate,
          unsetAttributes: fc.array(anyText, { maxLength: 3 }),
        }),
        fc.array(anyText, { maxLength: 30 }),
        fc.record({
          expression: anyText,
          label: fc.oneof(fc.constant(""), anyText, fc.constantFrom("label1", "3", "label6")),
          limit: fc.nat(1500),
          reverse: fc.boolean(),
          start: anyText,
        }),
        fc.record({ attribute: fc.option(anyText, { nil: undefined }), amount: fc.double(), overwrite: fc.boolean() }),
        fc.array(batchItem, { maxLength: 30 }),
        fc.record({
          limit: fc.nat(1500),
          start: anyText,
          label: fc.oneof(fc.constant(""), anyText),
          attributes: fc.array(anyText, { maxLength: 3 }),
          segment: fc.option(fc.nat(1200), { nil: undefined }),
          totalSegments: fc.option(fc.nat(1200), { nil: undefined }),
          count: fc.boolean(),
        }),
        fc.record({
          filters: fc.array(anyText, { maxLength: 3 }),
          resumeToken: fc.oneof(
            fc.constant(""),
            anyText,
            fc.nat().map((n) => `1.${n}`),
          ),
        }),
        async (set, keys, query, add, items, scan, watch) => {
          const setRequest = {
            ...set,
            value: wire(set.value),
            defaultValue: set.defaultValue === undefined ? undefined : wire(set.defaultValue),
          };
          const deep = Math.max(depthOf(set.value), depthOf(set.defaultValue), ...items.map((item) => depthOf(item.value))) > MAX_DEPTH;
          await expectClientOutcome("Set", () => client.set(setRequest), deep);
          await expectClientOutcome("Get", () => client.get({ key: set.key }));
          await expectClientOutcome("Get over Connect JSON", () => overJson.get({ key: set.key }));
          await expectClientOutcome("BatchGet", () => client.batchGet({ keys }));
          await expectClientOutcome("Query", () => client.query(query));
          await expectClientOutcome("Add", () => client.add({ key: set.key, ...add }));
          await expectClientOutcome("Remove", () => client.remove({ keys }));
          const wired = items.map((item) => ({ ...item, value: item.value === undefined ? undefined : wire(item.value) }));
          await expectClientOutcome("BatchSet", () => client.batchSet({ items: wired }), deep);
          await expectClientOutcome("Scan", () => client.scan(scan));
          await expectClientOutcome("Scan over Connect JSON", () => overJson.scan({ limit: 10 }));
          await expectClientOutcome("Seed", () => client.seed({ items: wired.slice(0, 5) }), deep);
          await expectClientOutcome("Watch", async () => {
            const abort = new AbortController();
            const timer = setTimeout(() => abort.abort(), 200);
            try {
              for await (const message of client.watch(watch, { signal: abort.signal })) if (message) break;
            } catch (error) {
              if (!abort.signal.aborted) throw error;
            } finally {
              clearTimeout(timer);
            }
          });
        },
      ),
      { numRuns: 400 },
    );
    // The server never logged a failure of its own (the call log logs INTERNAL and UNKNOWN at level error).
    const errors = running.server
      .output()
      .split("\n")
      .filter((line) => /"level":(50|60)/.test(line));
    expect(errors, errors.slice(0, 3).join("\n")).to.deep.equal([]);
  });
});
