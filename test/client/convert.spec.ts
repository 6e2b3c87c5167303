import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { expect } from "chai";
import { fromValue, toJsonValue, toLabelUpdate, toMetaItem, toTtl, toValue, toWriteValue } from "../../client/convert.js";
import { LarderError } from "../../client/errors.js";
import { ItemSchema } from "../../gen/larder/data/v1/data_pb.js";

/** What the client refuses before sending: an Error with the code and reason the server would use. */
function refused(run: () => unknown, reason: string, message?: string): void {
  let failure: unknown;
  try {
    run();
  } catch (error) {
    failure = error;
  }
  expect(failure).to.be.instanceOf(LarderError);
  expect(failure).to.include({ code: "INVALID_ARGUMENT", reason });
  if (message) expect((failure as Error).message).to.contain(message);
}

describe("client conversion of values (V1, V2, V6)", () => {
  it("V1: a Date becomes its ISO 8601 string, as JSON.stringify does", () => {
    const when = new Date("2023-06-30T03:51:48.123Z");
    expect(toJsonValue({ at: when, list: [when] })).to.deep.equal({
      at: "2023-06-30T03:51:48.123Z",
      list: ["2023-06-30T03:51:48.123Z"],
    });
    expect(toJsonValue(when)).to.equal("2023-06-30T03:51:48.123Z");
  });

  it("V1: undefined inside arrays is null; below the root, an undefined attribute is left out", () => {
    expect(toJsonValue([1, undefined, 3])).to.deep.equal([1, null, 3]);
    expect(toJsonValue({ nested: { a: 1, b: undefined } })).to.deep.equal({ nested: { a: 1 } });
  });

  it("V1: BigInt, functions, symbols, NaN and Infinity are refused with INVALID_VALUE instead of lost", () => {
    refused(() => toJsonValue({ n: 10n }), "INVALID_VALUE", "bigint");
    refused(() => toJsonValue({ f: () => 1 }), "INVALID_VALUE", "function");
    refused(() => toJsonValue([Symbol("s")]), "INVALID_VALUE", "symbol");
    refused(() => toJsonValue({ n: Number.NaN }), "INVALID_VALUE");
    refused(() => toJsonValue(Number.POSITIVE_INFINITY), "INVALID_VALUE");
  });

  it("V1/V2: a lone surrogate in a string or an attribute name is refused before sending (the wire would make it U+FFFD)", () => {
    refused(() => toJsonValue("a\ud800"), "INVALID_VALUE", "lone surrogate");
    refused(() => toJsonValue({ nested: { ["x\udc00"]: 1 } }), "INVALID_VALUE", "lone surrogate");
    // A root attribute given as undefined is a removal by name: the name must reach the service intact too.
    refused(() => toWriteValue({ ["x\ud800"]: undefined }), "INVALID_VALUE", "lone surrogate");
    expect(toJsonValue({ "😀": ["😀"] })).to.deep.equal({ "😀": ["😀"] });
  });

  it("V1: nesting deeper than 32 levels (and so any cycle) is refused, 32 is fine", () => {
    const nest = (levels: number): unknown => (levels === 0 ? 1 : { a: nest(levels - 1) });
    expect(() => toJsonValue(nest(32))).to.not.throw();
    refused(() => toJsonValue(nest(33)), "INVALID_VALUE", "32");
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    refused(() => toJsonValue(cyclic), "INVALID_VALUE");
  });

  it("V2: odd attribute names, __proto__ included, survive the round trip as data", () => {
    const input = JSON.parse('{"__proto__":{"x":1},"":2,"a.b":3,"$x":4,"constructor":5,"😀":6}') as Record<string, unknown>;
    const back = fromValue(toValue(input)) as Record<string, unknown>;
    expect(Object.getPrototypeOf(back)).to.equal(Object.prototype);
    expect(Object.keys(back).sort()).to.deep.equal(["", "$x", "__proto__", "a.b", "constructor", "😀"].sort());
    expect(Object.getOwnPropertyDescriptor(back, "__proto__")?.value).to.deep.equal({ x: 1 });
  });

  it("V6: root attributes given as undefined travel as unset_attributes; nested ones do not", () => {
    const written = toWriteValue({ keep: 1, drop: undefined, nested: { gone: undefined } });
    expect(written.unsetAttributes).to.deep.equal(["drop"]);
    expect(fromValue(written.value)).to.deep.equal({ keep: 1, nested: {} });
  });

  it("V7, D3: an undefined value stays absent, so the server decides; null is sent as null", () => {
    expect(toWriteValue(undefined)).to.deep.equal({ unsetAttributes: [], chars: 0 });
    expect(fromValue(toWriteValue(null).value)).to.equal(null);
    expect(toWriteValue({ a: "é" }).chars, "the size a pipelined call is bounded by: JSON text").to.equal('{"a":"é"}'.length);
  });
});

describe("client conversion of options (T1-T4, L2)", () => {
  it("T1-T3: numbers go as seconds, strings as dates, a Date as a timestamp, null removes", () => {
    expect(toTtl(undefined)).to.equal(undefined);
    expect(toTtl(null)).to.deep.equal({ case: "remove", value: true });
    expect(toTtl(3600)).to.deep.equal({ case: "seconds", value: 3600 });
    // T4: the server gives `Invalid ttl value.` for a fractional number, so it is sent as is.
    expect(toTtl(1.5)).to.deep.equal({ case: "seconds", value: 1.5 });
    expect(toTtl("2030-01")).to.deep.equal({ case: "date", value: "2030-01" });
    const at = toTtl(new Date("2030-01-01T00:00:00Z"));
    expect(at?.case).to.equal("at");
  });

  it("T4: what the message cannot carry (a boolean, an object, an invalid Date) is refused here", () => {
    refused(() => toTtl(true), "INVALID_OPTION", "Invalid ttl value.");
    refused(() => toTtl({}), "INVALID_OPTION", "Invalid ttl value.");
    refused(() => toTtl(new Date(Number.NaN)), "INVALID_OPTION", "Invalid ttl value.");
    // T4: a Date no Timestamp carries would otherwise fail in the JSON transport, before the service could say so.
    refused(() => toTtl(new Date(Date.parse("9999-12-31T23:59:59.999Z") + 1)), "INVALID_OPTION", "Invalid ttl value.");
    refused(() => toTtl(new Date(Date.parse("0001-01-01T00:00:00Z") - 1)), "INVALID_OPTION", "Invalid ttl value.");
    expect(toTtl(new Date("9999-12-31T23:59:59Z"))?.case).to.equal("at");
  });

  it("L2: a string sets, [value] sets if absent, null or undefined removes, anything else is refused", () => {
    expect(toLabelUpdate("label1", "a:b")).to.deep.equal({ case: "set", value: "a:b" });
    expect(toLabelUpdate("label2", ["d"])).to.deep.equal({ case: "setIfAbsent", value: "d" });
    expect(toLabelUpdate("label3", null)).to.deep.equal({ case: "remove", value: true });
    expect(toLabelUpdate("label4", undefined)).to.deep.equal({ case: "remove", value: true });
    refused(() => toLabelUpdate("label5", ["a", "b"]), "INVALID_LABEL", "label5");
    refused(() => toLabelUpdate("label1", 7), "INVALID_LABEL");
  });
});

describe("client meta form (M4)", () => {
  it("created, modified and ttl are Dates; labels and ttl appear only when the item has them", () => {
    const created = new Date("2023-06-30T03:51:48.000Z");
    const modified = new Date("2023-07-01T00:00:00.250Z");
    const bare = create(ItemSchema, {
      key: "users:jane",
      value: toValue({ a: 1 }),
      created: timestampFromDate(created),
      modified: timestampFromDate(modified),
    });
    expect(toMetaItem(bare)).to.deep.equal({ key: "users:jane", value: { a: 1 }, created, modified });

    const full = create(ItemSchema, {
      ...bare,
      ttl: timestampFromDate(new Date("2030-01-01T00:00:00Z")),
      label1: "team:a",
      label5: "x",
    });
    const meta = toMetaItem(full);
    expect(meta.ttl).to.be.instanceOf(Date);
    expect(meta.ttl!.toISOString()).to.equal("2030-01-01T00:00:00.000Z");
    expect(Object.keys(meta).sort()).to.deep.equal(["created", "key", "label1", "label5", "modified", "ttl", "value"]);
  });
});
