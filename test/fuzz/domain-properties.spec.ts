import { expect } from "chai";
import fc from "fast-check";
import { createClient, ConnectError, Code } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { DataService } from "../../gen/larder/data/v1/data_pb.js";
import { DomainError } from "../../services/domain/errors.js";
import { parseKeyExpression } from "../../services/domain/expressions.js";
import { parseEventFilter } from "../../services/domain/filters.js";
import type { JsonValue } from "../../services/domain/json.js";
import { parseKey, parseWritableKey } from "../../services/domain/keys.js";
import { applySet, planSet, type SetInput } from "../../services/domain/set-plan.js";
import { resolveTtl } from "../../services/domain/ttl.js";
import { useServer } from "../support/server.js";

/** Valid input works; anything else is a DomainError (INVALID_ARGUMENT or a precondition), never a crash. */
function expectDomainOutcome(action: () => unknown): void {
  try {
    action();
  } catch (error) {
    expect(error, String(error)).to.be.instanceOf(DomainError);
    expect(["INVALID_ARGUMENT", "FAILED_PRECONDITION", "ALREADY_EXISTS", "NOT_FOUND"]).to.include((error as DomainError).code);
  }
}

const anyText = fc.oneof(fc.string(), fc.string({ unit: "grapheme" }), fc.string({ unit: "binary" }), fc.constantFrom("ns:*", "a|b|c", " : ", "ns:<", "x".repeat(300)));
const json: fc.Arbitrary<JsonValue> = fc.jsonValue({ maxDepth: 6 }) as fc.Arbitrary<JsonValue>;
const labelInput = fc.option(
  fc.oneof(fc.record({ set: anyText }), fc.record({ setIfAbsent: anyText }), fc.constant({ remove: true as const })),
  { nil: undefined },
);
const ttlInput = fc.option(
  fc.oneof(
    fc.record({ seconds: fc.double() }),
    fc.record({ date: anyText }),
    fc.record({ at: fc.double() }),
    fc.constant({ remove: true as const }),
  ),
  { nil: undefined },
);
const setInput: fc.Arbitrary<SetInput> = fc.record({
  key: anyText,
  value: fc.option(json, { nil: undefined }),
  unsetAttributes: fc.array(fc.string(), { maxLength: 3 }),
  overwrite: fc.boolean(),
  ttl: ttlInput,
  exists: fc.option(fc.boolean(), { nil: undefined }),
  defaultValue: fc.option(json, { nil: undefined }),
  labels: fc.array(labelInput, { maxLength: 5 }),
  created: fc.option(fc.double(), { nil: undefined }),
  removeNulls: fc.boolean(),
});

describe("fuzz: any input to the domain is a result or a DomainError, never a crash", () => {
  it("any string as a key, a writable key, an expression or an event filter", () => {
    fc.assert(
      fc.property(anyText, (text) => {
        expectDomainOutcome(() => parseKey(text));
        expectDomainOutcome(() => parseWritableKey(text));
        expectDomainOutcome(() => parseKeyExpression(text));
        expectDomainOutcome(() => parseEventFilter(text));
      }),
      { numRuns: 2000 },
    );
  });

  it("any set input, planned and applied onto any stored value", () => {
    fc.assert(
      fc.property(setInput, json, (input, stored) => {
        const now = Date.now();
        expectDomainOutcome(() => {
          const plan = planSet(input, now);
          const live = { key: plan.key, value: stored, created: now - 1000, modified: now - 1000, labels: [undefined, undefined, undefined, undefined, undefined] as const };
          applySet(live, plan, now);
          applySet(undefined, plan, now);
        });
      }),
      { numRuns: 1000 },
    );
  });

  it("any ttl", () => {
    fc.assert(fc.property(ttlInput, (ttl) => expectDomainOutcome(() => resolveTtl(ttl, Date.now()))), { numRuns: 1000 });
  });
});

describe("fuzz: random keys and values over gRPC get OK or a client error, never INTERNAL", function () {
  this.timeout(120_000);
  const running = useServer();

  it("200 random Set/Get/Query calls", async () => {
    const client = createClient(DataService, createGrpcTransport({ baseUrl: running.url }));
    await fc.assert(
      fc.asyncProperty(anyText, json, anyText, async (key, value, expression) => {
        for (const call of [
          () => client.set({ key, value: fromJson(ValueSchema, value as never) }),
          () => client.get({ key }),
          () => client.query({ expression }),
        ]) {
          try {
            await call();
          } catch (error) {
            const code = ConnectError.from(error).code;
            expect([Code.InvalidArgument, Code.FailedPrecondition], `${Code[code]}: ${String(error)}`).to.include(code);
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});
