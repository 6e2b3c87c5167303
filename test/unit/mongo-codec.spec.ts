import { expect } from "chai";
import fc from "fast-check";
import { NO_LABELS, type ItemRecord, type LabelSlots } from "../../core/item.js";
import type { JsonValue } from "../../core/json.js";
import { jsonValues } from "../mongo/arbitraries.js";
import { parseKey } from "../../core/keys.js";
import { segmentHash } from "../../core/segments.js";
import {
  decodeItem,
  decodeValue,
  encodeAttribute,
  encodeItem,
  encodeLabel,
  encodeValue,
  jsonEscapeOverhead,
  valueJsonBytes,
  type ItemDocument,
} from "../../services/stores/mongodb/codec.js";
import { PageBudget } from "../../core/paging.js";

/**
 * How items are stored in MongoDB (V2): values never become BSON field
 * names, numbers stay native for $add, and what JSON escaping adds to names
 * and labels is recorded so the update pipeline can measure V8 exactly.
 */
describe("MongoDB engine: value codec (V2)", () => {
  it("round-trips any JSON value, attribute names such as '.', '$x', '' and __proto__ included", () => {
    fc.assert(
      fc.property(jsonValues, (value) => {
        const decoded = decodeValue(encodeValue(value));
        expect(JSON.stringify(decoded)).to.equal(JSON.stringify(JSON.parse(JSON.stringify(value))));
      }),
    );
    const odd = JSON.parse('{"__proto__":{"$e":1},"a.b":2,"":{"$set":3}}') as JsonValue;
    const decoded = decodeValue(encodeValue(odd)) as Record<string, unknown>;
    expect(Object.keys(decoded)).to.deep.equal(["__proto__", "a.b", ""]);
    expect(Object.getPrototypeOf(decoded)).to.equal(Object.prototype);
  });

  it("keeps root numbers native (so $add increments them in place) and everything else as JSON text", () => {
    expect(encodeValue({ c: 1, s: "x", o: { $in: [1] } })).to.deep.equal({
      vt: "o",
      vo: [
        { k: "c", n: 1 },
        { k: "s", j: '"x"' },
        { k: "o", j: '{"$in":[1]}' },
      ],
    });
    expect(encodeValue(5)).to.deep.equal({ vt: "s", vs: { n: 5 } });
    expect(encodeValue(null)).to.deep.equal({ vt: "s", vs: { j: "null" } });
    expect(encodeValue([1, "a"])).to.deep.equal({ vt: "s", vs: { j: '[1,"a"]' } });
  });

  it("records what JSON escaping adds to an attribute name, only when it adds something", () => {
    expect(encodeAttribute("plain é😀", 1)).to.deep.equal({ k: "plain é😀", n: 1 });
    expect(encodeAttribute('a"b\\c', 1)).to.deep.equal({ k: 'a"b\\c', n: 1, e: 2 });
    expect(encodeAttribute("\n\u0001", "v")).to.deep.equal({ k: "\n\u0001", j: '"v"', e: 1 + 5 });
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), (name) => {
        expect(Buffer.byteLength(name) + 2 + jsonEscapeOverhead(name)).to.equal(Buffer.byteLength(JSON.stringify(name)));
      }),
    );
  });

  it("stores a label as its two halves, with its escape overhead when it has one", () => {
    expect(encodeLabel(parseKey("team:a"))).to.deep.equal({ ns: "team", part: "a" });
    expect(encodeLabel(parseKey('q"t'))).to.deep.equal({ ns: 'q"t', part: "", e: 1 });
  });

  it("encodes a whole item and decodes it back, labels, ttl and write metadata included", () => {
    const labels: LabelSlots = [undefined, parseKey("team:x"), undefined, undefined, parseKey("solo")];
    const item: ItemRecord = {
      key: parseKey("users:jane"),
      value: { a: 1, "b.c": [true] },
      created: 1000,
      modified: 2000,
      expires: 3000,
      labels,
      version: 7,
    };
    const document = encodeItem(item, { writeId: "w1", created: true });
    expect(document).to.deep.include({
      ns: "users",
      part: "jane",
      vt: "o",
      seg: segmentHash(item.key),
      l2ns: "team",
      l2part: "x",
      l5ns: "solo",
      l5part: "",
      _w: "w1",
      _n: true,
    });
    expect(document).not.to.have.property("l1ns");
    expect(decodeItem(document)).to.deep.equal(item);
    const single: ItemRecord = { key: parseKey("k"), value: "v", created: 1, modified: 1, labels: NO_LABELS, version: 1 };
    const decoded = decodeItem(encodeItem(single, { writeId: "w2", created: false }));
    expect(decoded).to.deep.equal(single);
    expect(decoded).not.to.have.property("expires");
  });

  it("decodes a stored document whatever the helper fields it carries", () => {
    const document = {
      ns: "users",
      part: "jane",
      vt: "o",
      vo: [{ k: "a", n: 1, e: 0 }],
      created: new Date(1000),
      modified: new Date(2000),
      seg: 7,
      l2ns: "team",
      l2part: "x",
      _w: "w",
      _n: false,
      _q: "w",
    } as ItemDocument;
    const item = decodeItem(document);
    expect([item.key.full, item.value, item.created, item.modified, item.expires]).to.deep.equal(["users:jane", { a: 1 }, 1000, 2000, undefined]);
    expect(item.labels.map((label) => label?.full)).to.deep.equal([undefined, "team:x", undefined, undefined, undefined]);
    // Written before items had versions: version 1, as the pipeline and the filters count it.
    expect(item.version).to.equal(1);
    expect(decodeItem({ ...document, ver: 12 } as ItemDocument).version).to.equal(12);
  });
});

/** Issue 22: a page is cut by bytes before any document is decoded, by the same measure as P7's. */
describe("MongoDB codec: value sizes measured without decoding", () => {
  it("valueJsonBytes is the UTF-8 bytes of the value's JSON, for any value", () => {
    fc.assert(
      fc.property(jsonValues, (value) => {
        expect(valueJsonBytes(encodeValue(value))).to.equal(Buffer.byteLength(JSON.stringify(value), "utf8"));
      }),
      { numRuns: 500 },
    );
    for (const value of [{}, [], -0, 'é\n"', { 'a"b\\': [1, { "\u0000": null }], $add: 1, __proto__: "x" }, 1e21, 400_000]) {
      expect(valueJsonBytes(encodeValue(value as JsonValue)), JSON.stringify(value)).to.equal(Buffer.byteLength(JSON.stringify(value), "utf8"));
    }
  });

  it("PageBudget: the first item always joins; later ones only within the limit and the byte budget", () => {
    const budget = new PageBudget(3, 100);
    expect([budget.admits(500), budget.admits(0), budget.admits(1)]).to.deep.equal([true, false, false]);
    const counted = new PageBudget(2, 100);
    expect([counted.admits(10), counted.admits(90), counted.admits(0)]).to.deep.equal([true, true, false]);
    const bytes = new PageBudget(1000, 100);
    expect([bytes.admits(60), bytes.admits(40), bytes.admits(1)]).to.deep.equal([true, true, false]);
  });
});
