import { expect } from "chai";
import fc from "fast-check";
import { DomainError } from "../../core/errors.js";
import type { ItemRecord } from "../../core/item.js";
import { isLive, NO_LABELS } from "../../core/item.js";
import type { JsonValue } from "../../core/json.js";
import { parseKey } from "../../core/keys.js";
import { applySet } from "../../core/apply-set.js";
import { planAdd, planBatchSet, planSeed, planSet, type SetInput } from "../../core/set-plan.js";
import { parseIsoDate, resolveTtl } from "../../core/ttl.js";
import { itemSize, validateValue } from "../../core/values.js";
import { setInput as input } from "../support/set-input.js";

const NOW = Date.UTC(2026, 10, 25, 12, 0, 0, 123);

/** Runs set calls one after another on one item, as the store would. */
function run(...inputs: SetInput[]): ItemRecord | undefined {
  let live: ItemRecord | undefined;
  for (const each of inputs) live = applySet(live, planSet(each, NOW), NOW).item;
  return live;
}

function failure(action: () => unknown): DomainError {
  try {
    action();
  } catch (error) {
    expect(error).to.be.instanceOf(DomainError);
    return error as DomainError;
  }
  throw new Error("expected a DomainError");
}

describe("set planning (domain)", () => {
  describe("values V3-V7", () => {
    it("V4 merges root attributes and replaces nested objects; V6 null removes", () => {
      const item = run(input("k", { a: 1, n: { x: 1, y: 2 }, c: 3 }), input("k", { n: { x: 5 }, c: null, d: 4 }));
      expect(item!.value).to.deep.equal({ a: 1, n: { x: 5 }, d: 4 });
    });
    it("V6 an undefined root attribute (unsetAttributes) removes it, nulls below the root stay", () => {
      const item = run(input("k", { a: 1, b: 2 }), input("k", { c: { x: null } }, { unsetAttributes: ["b"] }));
      expect(item!.value).to.deep.equal({ a: 1, c: { x: null } });
    });
    it("V6 removeNulls false stores null attributes; V7 and a whole null value", () => {
      expect(run(input("k", { a: null }, { removeNulls: false }))!.value).to.deep.equal({ a: null });
      expect(run(input("k", null, { removeNulls: false }))!.value).to.equal(null);
    });
    it("V7 a missing or null value without a default is INVALID_VALUE", () => {
      for (const value of [undefined, null]) {
        const error = failure(() => planSet(input("k", value), NOW));
        expect([error.code, error.reason, error.message]).to.deep.equal([
          "INVALID_ARGUMENT",
          "INVALID_VALUE",
          "Value can not be undefined without setting a 'default'",
        ]);
      }
    });
    it("V5 a single value onto an object is FAILED_PRECONDITION unless overwrite", () => {
      const stored = run(input("k", { a: 1 }));
      const error = failure(() => applySet(stored, planSet(input("k", "x"), NOW), NOW));
      expect([error.code, error.reason]).to.deep.equal(["FAILED_PRECONDITION", "NOT_A_SIMPLE_VALUE"]);
      expect(applySet(stored, planSet(input("k", "x", { overwrite: true }), NOW), NOW).item.value).to.equal("x");
    });
    it("V2 attribute names such as __proto__ are data", () => {
      const value = JSON.parse('{"__proto__":{"x":1},"a.b":2,"$y":3,"":4}') as JsonValue;
      const item = run(input("k", value), input("k", JSON.parse('{"constructor":5}') as JsonValue));
      expect(Object.keys(item!.value as object)).to.deep.equal(["__proto__", "a.b", "$y", "", "constructor"]);
      expect(Object.getPrototypeOf(item!.value)).to.equal(Object.prototype);
    });
    it("V1 refuses non-finite numbers and nesting deeper than 32", () => {
      let deep: JsonValue = 1;
      for (let i = 0; i < 33; i++) deep = [deep];
      expect(failure(() => validateValue(deep)).reason).to.equal("INVALID_VALUE");
      expect(failure(() => planSet(input("k", { a: Number.NaN }), NOW)).reason).to.equal("INVALID_VALUE");
    });
    it("V1/V2 refuse a lone surrogate in any string or attribute name, of the value or the default; pairs are text", () => {
      const lone = "\ud800";
      const message = "'value' may only hold well-formed Unicode text (no lone surrogates)";
      for (const value of [`a${lone}`, { [`x${lone}`]: 1 }, { a: { [lone]: 1 } }, { a: [`\udc00b`] }, [lone], { c: { $add: 1 }, [lone]: 2 }]) {
        const error = failure(() => planSet(input("k", value as JsonValue), NOW));
        expect([error.code, error.reason, error.message], JSON.stringify(value)).to.deep.equal(["INVALID_ARGUMENT", "INVALID_VALUE", message]);
      }
      for (const defaultValue of [lone, { [lone]: 1 }, { a: { b: lone } }]) {
        const error = failure(() => planSet(input("k", undefined, { defaultValue: defaultValue as JsonValue }), NOW));
        expect(error.message, JSON.stringify(defaultValue)).to.equal("'default' may only hold well-formed Unicode text (no lone surrogates)");
      }
      expect(run(input("k", { "😀": "\ud83d\ude00" }))!.value).to.deep.equal({ "😀": "😀" });
    });
    it("V8 measures { key, value, labels } as JSON and names the size", () => {
      expect(itemSize(parseKey("k"), "v", NO_LABELS)).to.equal(JSON.stringify({ key: "k", value: "v" }).length);
      const error = failure(() => planSet(input("big", "x".repeat(409_600)), NOW));
      expect([error.code, error.reason]).to.deep.equal(["INVALID_ARGUMENT", "ITEM_TOO_LARGE"]);
      expect(error.message).to.equal("Item size of 400.02 KB is greater than the maximum size of 400 KB.");
      const stored = run(input("k", { a: "x".repeat(300_000) }));
      const merged = failure(() => applySet(stored, planSet(input("k", { b: "y".repeat(300_000) }), NOW), NOW));
      expect([merged.code, merged.reason]).to.deep.equal(["FAILED_PRECONDITION", "ITEM_TOO_LARGE"]);
    });
  });

  describe("defaults D1-D5", () => {
    it("D2 default attributes fill only what is missing; the input wins; arrays are not merged", () => {
      const item = run(
        input("k", { a: 1, n: { x: 1 }, t: ["a"] }, { defaultValue: { b: 2, n: { y: 2 }, t: ["x", "y"] } }),
        input("k", { a: 2 }, { defaultValue: { b: 9 } }),
      );
      expect(item!.value).to.deep.equal({ a: 2, n: { x: 1, y: 2 }, t: ["a"], b: 2 });
    });
    it("D3 a single-value default is written only when there is no item", () => {
      const first = run(input("k", undefined, { defaultValue: "d" }));
      expect(first!.value).to.equal("d");
      const kept = applySet({ ...first!, value: "real" }, planSet(input("k", null, { defaultValue: "other" }), NOW), NOW);
      expect(kept.item.value).to.equal("real");
    });
    it("D3 an object default onto a single value replaces it, onto an object fills it (D5)", () => {
      expect(run(input("k", "s"), input("k", undefined, { defaultValue: { a: 1 } }))!.value).to.deep.equal({ a: 1 });
      expect(run(input("k", { a: 1 }), input("k", {}, { defaultValue: { a: 2, b: 2 } }))!.value).to.deep.equal({
        a: 1,
        b: 2,
      });
    });
    it("D4 a default of another kind and D1 $add in a default are INVALID_OPTION", () => {
      const cases: [JsonValue, JsonValue, string][] = [
        ["x", 5, "'default' must be of the same type as the value"],
        [{ a: 1 }, [1], "'default' must be of the same type as the value"],
        [{ a: 1 }, { c: { $add: 1 } }, "'$add' cannot be used as a default (c)"],
      ];
      for (const [value, defaultValue, message] of cases) {
        const error = failure(() => planSet(input("k", value, { defaultValue }), NOW));
        expect([error.reason, error.message]).to.deep.equal(["INVALID_OPTION", message]);
      }
      expect(failure(() => planSet(input("k", undefined, { defaultValue: { $add: 1 } }), NOW)).message).to.equal(
        "'default' cannot use the $add keyword",
      );
    });
  });

  describe("counters A1-A6, AD1-AD5", () => {
    it("A1 adds to root attributes, missing ones counting as 0", () => {
      const item = run(input("k", { c: { $add: 1 }, s: "x" }), input("k", { c: { $add: 5 }, d: { $add: -2 } }));
      expect(item!.value).to.deep.equal({ c: 6, s: "x", d: -2 });
    });
    it("A2 malformed $add objects and A3 nested $add are INVALID_VALUE", () => {
      expect(failure(() => planSet(input("k", { c: { $add: 1, x: 2 } }), NOW)).message).to.equal(
        "'$add' is a reserved keyword and must be in an object with a single key of $add",
      );
      expect(failure(() => planSet(input("k", { c: { $add: "1" } }), NOW)).message).to.equal("'c' must be a number when using $add");
      expect(failure(() => planSet(input("k", { $add: "x" }), NOW)).message).to.equal("'value' must be a number when using $add");
      expect(failure(() => planSet(input("k", { a: { b: { $add: 1 } } }), NOW)).reason).to.equal("INVALID_VALUE");
    });
    it("A4 adding onto a non-number is FAILED_PRECONDITION naming the attribute", () => {
      const stored = run(input("k", { c: "text" }));
      const error = failure(() => applySet(stored, planSet(input("k", { c: { $add: 1 } }), NOW), NOW));
      expect([error.code, error.reason, error.message]).to.deep.equal(["FAILED_PRECONDITION", "NOT_A_NUMBER", "'c' is not a number"]);
    });
    it("A6 a sum past the largest double is OUT_OF_RANGE NUMBER_OVERFLOW, for the value and for attributes", () => {
      const max = Number.MAX_VALUE;
      const single = run(input("s", max));
      const error = failure(() => applySet(single, planAdd({ key: "s", amount: max, overwrite: false }, NOW), NOW));
      expect([error.code, error.reason, error.message]).to.deep.equal([
        "OUT_OF_RANGE",
        "NUMBER_OVERFLOW",
        `Adding ${max} to 'value' overflows the largest number`,
      ]);
      const object = run(input("o", { low: -max, ok: 1 }));
      const attribute = failure(() => applySet(object, planSet(input("o", { ok: { $add: 1 }, low: { $add: -max } }), NOW), NOW));
      expect([attribute.reason, attribute.message]).to.deep.equal(["NUMBER_OVERFLOW", `Adding ${-max} to 'low' overflows the largest number`]);
      // Up to the largest double itself is a number like any other.
      expect(applySet(run(input("e", max - 1e292)), planAdd({ key: "e", amount: 1e292, overwrite: false }, NOW), NOW).item.value).to.equal(max);
    });
    it("A5 with overwrite $add stores the number", () => {
      expect(run(input("k", { c: { $add: 7 } }), input("k", { c: { $add: 3 } }, { overwrite: true }))!.value).to.deep.equal({
        c: 3,
      });
    });
    it("AD1/AD2 add to a value and to an attribute; AD4 non-numeric amounts; AD5 onto an object", () => {
      let live = applySet(undefined, planAdd({ key: "c", amount: 1, overwrite: false }, NOW), NOW).item;
      live = applySet(live, planAdd({ key: "c", amount: 0.5, overwrite: false }, NOW), NOW).item;
      expect(live.value).to.equal(1.5);
      const single = run(input("s", 5));
      expect(applySet(single, planAdd({ key: "s", attribute: "c", amount: 1, overwrite: false }, NOW), NOW).item.value).to.deep.equal({ c: 1 });
      expect(failure(() => planAdd({ key: "c", amount: Number.NaN, overwrite: false }, NOW)).message).to.equal("Values must be numeric");
      expect(failure(() => planAdd({ key: "c", attribute: "$add", amount: 5, overwrite: false }, NOW)).message).to.equal(
        "'$add' is a reserved keyword and cannot be the name of a counter",
      );
      const object = run(input("o", { a: 1 }));
      expect(failure(() => applySet(object, planAdd({ key: "o", amount: 1, overwrite: false }, NOW), NOW)).reason).to.equal("NOT_A_SIMPLE_VALUE");
    });
    it("A6 N adds of random amounts equal their double sum", () => {
      fc.assert(
        fc.property(fc.array(fc.integer({ min: -1000, max: 1000 }), { maxLength: 30 }), (amounts) => {
          let live: ItemRecord | undefined;
          for (const amount of amounts) live = applySet(live, planAdd({ key: "n", amount, overwrite: false }, NOW), NOW).item;
          expect(live?.value ?? 0).to.equal(amounts.reduce((sum, n) => sum + n, 0));
        }),
      );
    });
  });

  describe("existence, created check, metadata", () => {
    it("E1/E2 exists checks with their codes", () => {
      const stored = run(input("k", 1));
      expect(failure(() => applySet(stored, planSet(input("k", 2, { exists: false }), NOW), NOW)).code).to.equal("ALREADY_EXISTS");
      expect(failure(() => applySet(undefined, planSet(input("k", 2, { exists: true }), NOW), NOW)).code).to.equal("NOT_FOUND");
    });
    it("versions: 1 at creation, one more per write (overwrites too), and ifVersion checked after exists and created (S5)", () => {
      const first = applySet(undefined, planSet(input("k", 1), NOW), NOW).item;
      expect(first.version).to.equal(1);
      const second = applySet(first, planSet(input("k", 2, { overwrite: true, ifVersion: 1 }), NOW), NOW).item;
      expect(second.version).to.equal(2);
      const mismatch = failure(() => applySet(second, planSet(input("k", 3, { ifVersion: 1 }), NOW), NOW));
      expect([mismatch.code, mismatch.reason]).to.deep.equal(["FAILED_PRECONDITION", "VERSION_MISMATCH"]);
      expect(failure(() => applySet(undefined, planSet(input("k", 3, { ifVersion: 2 }), NOW), NOW)).reason).to.equal("VERSION_MISMATCH");
      expect(failure(() => applySet(second, planSet(input("k", 3, { ifVersion: 0 }), NOW), NOW)).reason).to.equal("VERSION_MISMATCH");
      expect(applySet(undefined, planSet(input("k", 3, { ifVersion: 0 }), NOW), NOW).item.version).to.equal(1);
      expect(failure(() => applySet(second, planSet(input("k", 3, { exists: false, ifVersion: 1 }), NOW), NOW)).reason).to.equal("ITEM_EXISTS");
      expect(failure(() => applySet(second, planSet(input("k", 3, { created: 1, ifVersion: 1 }), NOW), NOW)).reason).to.equal("CREATED_MISMATCH");
      for (const bad of [-1, 1.5, Number.MAX_SAFE_INTEGER + 1, NaN]) {
        expect(failure(() => planSet(input("k", 3, { ifVersion: bad }), NOW)).reason, String(bad)).to.equal("INVALID_OPTION");
      }
    });

    it("C1/C2 created accepts epoch seconds or milliseconds and overwrite keeps it", () => {
      const created = Date.UTC(2023, 5, 30, 3, 51, 48, 250);
      const stored: ItemRecord = { key: parseKey("k"), value: 1, created, modified: created, labels: NO_LABELS, version: 1 };
      const bySeconds = applySet(stored, planSet(input("k", 2, { overwrite: true, created: 1688097108 }), NOW), NOW);
      expect(bySeconds.item.created).to.equal(created);
      expect(applySet(stored, planSet(input("k", 3, { created }), NOW), NOW).item.value).to.equal(3);
      const error = failure(() => applySet(stored, planSet(input("k", 2, { created: created + 1 }), NOW), NOW));
      expect([error.code, error.reason]).to.deep.equal(["FAILED_PRECONDITION", "CREATED_MISMATCH"]);
      expect(failure(() => applySet(undefined, planSet(input("k", 2, { created: 1 }), NOW), NOW)).reason).to.equal("CREATED_MISMATCH");
    });
    it("S5 exists is checked before created, created before V5", () => {
      const stored = run(input("k", { a: 1 }));
      expect(failure(() => applySet(stored, planSet(input("k", "x", { exists: false, created: 1 }), NOW), NOW)).reason).to.equal("ITEM_EXISTS");
      expect(failure(() => applySet(stored, planSet(input("k", "x", { created: 1 }), NOW), NOW)).reason).to.equal("CREATED_MISMATCH");
    });
    it("M1/M2 merges keep created, labels and ttl; overwrite drops them", () => {
      const later = NOW + 1000;
      const first = applySet(undefined, planSet(input("k", 1, { labels: [{ set: "l:1" }], ttl: { seconds: 60 } }), NOW), NOW).item;
      const merged = applySet(first, planSet(input("k", 2), later), later).item;
      expect([merged.created, merged.modified, merged.expires, merged.labels[0]?.full]).to.deep.equal([NOW, later, NOW + 60_000, "l:1"]);
      const replaced = applySet(merged, planSet(input("k", 3, { overwrite: true }), later), later).item;
      expect([replaced.created, replaced.expires, replaced.labels[0]]).to.deep.equal([later, undefined, undefined]);
    });
    it("L2 labels: set, set only if absent, remove, keep; K6 applies to label values", () => {
      const first = run(input("k", 1, { labels: [{ set: "a" }, { setIfAbsent: "b" }] }));
      const second = applySet(
        first,
        planSet(input("k", 1, { labels: [{ remove: true }, { setIfAbsent: "c" }, { setIfAbsent: "d" }] }), NOW),
        NOW,
      ).item;
      expect(second.labels.map((label) => label?.full)).to.deep.equal([undefined, "b", "d", undefined, undefined]);
      expect(failure(() => planSet(input("k", 1, { labels: [{ set: "ns:a*" }] }), NOW)).reason).to.equal("INVALID_KEY");
    });
  });

  describe("batches BS1-BS3 and seed SE3", () => {
    it("BS3 duplicate keys, BS2 overwrite false, BS1 sizes", () => {
      expect(failure(() => planBatchSet([input("a", 1), input(" a ", 2)], { removeNulls: true }, NOW)).message).to.contain("'a'");
      expect(failure(() => planBatchSet([input("a", 1)], { overwrite: false, removeNulls: true }, NOW)).reason).to.equal("INVALID_OPTION");
      expect(failure(() => planBatchSet([], { removeNulls: true }, NOW)).message).to.equal("You must provide at least one item");
      const plans = planBatchSet([input("a", 1)], { overwrite: true, removeNulls: true }, NOW);
      expect(plans[0].overwrite).to.equal(true);
    });
    it("SE3 names every bad index", () => {
      const error = failure(() => planSeed([input("ok", 1), input("ns:", 1), input("x", undefined)], NOW));
      expect(error.message).to.contain("item 1: Invalid key").and.to.contain("item 2:");
    });
  });

  describe("ttl T1-T4, T6", () => {
    it("T6: an item is expired from the instant its expiry is reached, live the millisecond before", () => {
      const item = { key: parseKey("t:6"), value: 1, created: NOW, modified: NOW, expires: NOW + 1000, labels: NO_LABELS, version: 1 };
      expect(isLive(item, NOW + 999)).to.equal(true);
      expect(isLive(item, NOW + 1000)).to.equal(false);
      expect(isLive({ ...item, expires: undefined }, Number.MAX_SAFE_INTEGER), "no expiry: never expires").to.equal(true);
    });

    it("T1 relative seconds, absolute epoch seconds and past values", () => {
      expect(resolveTtl({ seconds: 3600 }, NOW)).to.deep.equal({ op: "set", expires: NOW + 3_600_000 });
      expect(resolveTtl({ seconds: 4102444800 }, NOW)).to.deep.equal({ op: "set", expires: 4102444800000 });
      expect(resolveTtl({ seconds: -5 }, NOW)).to.deep.equal({ op: "set", expires: NOW - 5000 });
    });
    it("T2 full and partial ISO 8601, UTC without an offset", () => {
      const cases: [string, string][] = [
        ["2030", "2030-01-01T00:00:00.000Z"],
        ["2030-02", "2030-02-01T00:00:00.000Z"],
        ["2030-01-01T10:00", "2030-01-01T10:00:00.000Z"],
        ["2100-01-01T10:00:00.000+02:00", "2100-01-01T08:00:00.000Z"],
        ["2030-01-01T10:00:00.5Z", "2030-01-01T10:00:00.500Z"],
      ];
      for (const [text, iso] of cases) expect(new Date(parseIsoDate(text)!).toISOString(), text).to.equal(iso);
      for (const bad of ["soon", "2030-13", "2030-02-30", "30-01-01", ""]) expect(parseIsoDate(bad), bad).to.equal(undefined);
    });
    it("T2: the years 0000 to 0099 are those years (not 1900 to 1999); 0000 is then outside a Timestamp (T4)", () => {
      const cases: [string, string][] = [
        ["0001-01-01", "0001-01-01T00:00:00.000Z"],
        ["0050-06-01", "0050-06-01T00:00:00.000Z"],
        ["0099-12-31T23:59:59Z", "0099-12-31T23:59:59.000Z"],
        ["0100-01-01", "0100-01-01T00:00:00.000Z"],
        ["0000-12-31T23:00-02:00", "0001-01-01T01:00:00.000Z"],
      ];
      for (const [text, iso] of cases) expect(new Date(parseIsoDate(text)!).toISOString(), text).to.equal(iso);
      expect(parseIsoDate("0004-02-29"), "a leap day of year 4").to.equal(Date.parse("0004-02-29T00:00:00Z"));
      expect(parseIsoDate("0100-02-29"), "no leap day in year 100").to.equal(undefined);
      for (const year of ["0000", "0000-06-01"]) {
        expect(failure(() => resolveTtl({ date: year }, NOW)).message, year).to.equal("Invalid ttl value.");
      }
    });
    it("T4: an offset no clock has (hours past 23, minutes past 59) is no date", () => {
      for (const bad of ["2030-01-01T10:00+99:99", "2030-01-01T10:00+24:00", "2030-01-01T10:00+00:75", "2030-01-01T10:00-2400"]) {
        expect(parseIsoDate(bad), bad).to.equal(undefined);
      }
      expect(new Date(parseIsoDate("2030-01-01T10:00-23:59")!).toISOString()).to.equal("2030-01-02T09:59:00.000Z");
      expect(new Date(parseIsoDate("2030-01-01T10:00+0530")!).toISOString()).to.equal("2030-01-01T04:30:00.000Z");
    });
    it("T3 remove and keep; T4 everything else is INVALID_OPTION 'Invalid ttl value.'", () => {
      expect(resolveTtl(undefined, NOW)).to.deep.equal({ op: "keep" });
      expect(resolveTtl({ remove: true }, NOW)).to.deep.equal({ op: "remove" });
      for (const bad of [{ seconds: 1.5 }, { seconds: Number.NaN }, { date: "soon" }]) {
        const error = failure(() => resolveTtl(bad, NOW));
        expect([error.reason, error.message]).to.deep.equal(["INVALID_OPTION", "Invalid ttl value."]);
      }
    });
    it("T4: an expiry no Timestamp can carry (before 0001-01-01 or after 9999-12-31 UTC) is 'Invalid ttl value.'; the ends themselves are kept", () => {
      const last = Date.parse("9999-12-31T23:59:59.999Z");
      const first = Date.parse("0001-01-01T00:00:00.000Z");
      expect(resolveTtl({ at: last }, NOW)).to.deep.equal({ op: "set", expires: last });
      expect(resolveTtl({ at: first }, NOW)).to.deep.equal({ op: "set", expires: first });
      expect(resolveTtl({ seconds: 253402300799 }, NOW)).to.deep.equal({ op: "set", expires: 253402300799000 });
      for (const bad of [
        { seconds: 253402300800 },
        { seconds: 1e13 },
        { seconds: -1e13 },
        { at: last + 1 },
        { at: first - 1 },
        { at: Number.POSITIVE_INFINITY },
      ]) {
        const error = failure(() => resolveTtl(bad, NOW));
        expect([error.reason, error.message], JSON.stringify(bad)).to.deep.equal(["INVALID_OPTION", "Invalid ttl value."]);
      }
    });
  });
});
