import { expect } from "chai";
import fc from "fast-check";
import type { ChangeStreamDocument } from "mongodb";
import { parseKeyExpression } from "../../services/domain/expressions.js";
import type { JsonValue } from "../../services/domain/json.js";
import { parseKey } from "../../services/domain/keys.js";
import { planSet, type SetInput } from "../../services/domain/set-plan.js";
import { decodeItem, decodeValue, encodeValue, type ItemDocument } from "../../services/stores/mongodb/codec.js";
import { checkDeployment } from "../../services/stores/mongodb/mongo-engine.js";
import { toFeedEvents } from "../../services/stores/mongodb/mongo-feed.js";
import { itemIndexes, KEY_INDEX, keyQueryShape, labelQueryShape, scanShape } from "../../services/stores/mongodb/queries.js";
import { setUpdate } from "../../services/stores/mongodb/updates.js";

/**
 * The documents the MongoDB engine sends, checked without a server: what
 * each expression becomes (one hinted index range, sort matching the index),
 * what each set plan becomes (checks in the filter, user data only inside
 * $literal). Whether MongoDB then does the right thing is for
 * `npm run test:mongo` (the contract suite and explain() assertions).
 */
const NOW = Date.UTC(2026, 10, 25);
const input = (key: string, value: JsonValue | undefined, options: Partial<SetInput> = {}): SetInput => ({
  key,
  value,
  unsetAttributes: [],
  overwrite: false,
  labels: [],
  removeNulls: true,
  ...options,
});
const live = { $or: [{ expires: { $exists: false } }, { expires: { $gt: new Date(NOW) } }] };

describe("MongoDB engine builders (no server needed)", () => {
  describe("value codec (V2)", () => {
    it("round-trips any JSON value, attribute names such as '.', '$x', '' and __proto__ included", () => {
      const names = fc.oneof(fc.constantFrom("a.b", "$x", "", "__proto__", "constructor", "😀"), fc.string());
      const json = fc.letrec((tie) => ({
        value: fc.oneof(
          { depthSize: "small" },
          fc.string(),
          fc.double({ noNaN: true, noDefaultInfinity: true }),
          fc.boolean(),
          fc.constant(null),
          fc.array(tie("value"), { maxLength: 4 }),
          fc.dictionary(names, tie("value"), { maxKeys: 4 }),
        ),
      })).value as fc.Arbitrary<JsonValue>;
      fc.assert(
        fc.property(json, (value) => {
          const decoded = decodeValue(encodeValue(value));
          expect(JSON.stringify(decoded)).to.equal(JSON.stringify(JSON.parse(JSON.stringify(value))));
        }),
      );
      const odd = JSON.parse('{"__proto__":{"$e":1},"a.b":2}') as JsonValue;
      expect(Object.keys(decodeValue(encodeValue(odd)) as object)).to.deep.equal(["__proto__", "a.b"]);
    });

    it("keeps numbers at the root native, so $add can increment them in place", () => {
      expect(encodeValue({ c: 1, s: "x" })).to.deep.equal({ vt: "o", vo: [{ k: "c", n: 1 }, { k: "s", j: '"x"' }] });
      expect(encodeValue(5)).to.deep.equal({ vt: "s", vs: { n: 5 } });
    });

    it("decodes a stored document into an item with labels and times", () => {
      const document: ItemDocument = {
        ns: "users",
        part: "jane",
        vt: "o",
        vo: [{ k: "a", n: 1 }],
        created: new Date(1000),
        modified: new Date(2000),
        expires: new Date(3000),
        seg: 7,
        l2ns: "team",
        l2part: "x",
      };
      const item = decodeItem(document);
      expect([item.key.full, item.value, item.created, item.modified, item.expires]).to.deep.equal(["users:jane", { a: 1 }, 1000, 2000, 3000]);
      expect(item.labels.map((label) => label?.full)).to.deep.equal([undefined, "team:x", undefined, undefined, undefined]);
    });
  });

  describe("reads: every expression is one hinted range on (ns, part), sorted as the index", () => {
    const shape = (expression: string, reverse = false, after?: string) =>
      keyQueryShape({ range: parseKeyExpression(expression), reverse, limit: 10, after: after ? parseKey(after) : undefined }, NOW);

    const cases: [string, object][] = [
      ["users:*", { $gt: "" }],
      ["users:ja*", { $gte: "ja", $lt: "jb" }],
      ["users:>b", { $gt: "b" }],
      ["users:>=b", { $gte: "b" }],
      ["users:<b", { $gt: "", $lt: "b" }],
      ["users:<=b", { $gt: "", $lte: "b" }],
      ["users:a|c", { $gte: "a", $lte: "c" }],
      ["users:jane", { $gte: "jane", $lte: "jane" }],
    ];
    for (const [expression, part] of cases) {
      it(`${expression} → part ${JSON.stringify(part)}`, () => {
        const { filter, sort, hint } = shape(expression);
        expect(filter).to.deep.equal({ ns: "users", part, ...live });
        expect(sort).to.deep.equal({ ns: 1, part: 1 });
        expect(hint).to.equal(KEY_INDEX);
      });
    }

    it("reverse sorts both index fields descending", () => {
      expect(shape("users:*", true).sort).to.deep.equal({ ns: -1, part: -1 });
    });

    it("P4: start narrows the side the query moves from, and never widens the range", () => {
      expect(shape("users:b|d", false, "users:c").filter.part).to.deep.equal({ $gt: "c", $lte: "d" });
      expect(shape("users:b|d", false, "users:a").filter.part).to.deep.equal({ $gte: "b", $lte: "d" });
      expect(shape("users:b|d", true, "users:c").filter.part).to.deep.equal({ $gte: "b", $lt: "c" });
      expect(shape("users:b|d", true, "users:z").filter.part).to.deep.equal({ $gte: "b", $lte: "d" });
      expect(shape("users:*", true, "users:m").filter.part).to.deep.equal({ $gt: "", $lt: "m" });
    });

    it("K7: a start is compared in UTF-8 byte order, not UTF-16 (U+FF5E < U+1F600)", () => {
      expect(shape("users:～|😀", false, "users:😀").filter.part).to.deep.equal({ $gt: "😀", $lte: "😀" });
    });

    it("label queries use the label's index: label ns equality, label part range, then the item key", () => {
      const { filter, sort, hint } = labelQueryShape({ label: 2, range: parseKeyExpression("team:a*"), reverse: false, limit: 5 }, NOW);
      expect(filter).to.deep.equal({ l2ns: "team", l2part: { $gte: "a", $lt: "b" }, ...live });
      expect(sort).to.deep.equal({ l2ns: 1, l2part: 1, ns: 1, part: 1 });
      expect(hint).to.equal("label2");
      const after = labelQueryShape(
        { label: 2, range: parseKeyExpression("team:*"), reverse: true, limit: 5, after: { label: parseKey("team:b"), item: parseKey("x:1") } },
        NOW,
      );
      expect((after.filter as { $and: unknown[] }).$and).to.deep.equal([
        { $or: [{ l2part: { $lt: "b" } }, { l2part: "b", ns: { $lt: "x" } }, { l2part: "b", ns: "x", part: { $lt: "1" } }] },
      ]);
      expect(after.sort).to.deep.equal({ l2ns: -1, l2part: -1, ns: -1, part: -1 });
    });

    it("scans: key order or label order, segments by the stored hash, continuing after a position", () => {
      const plain = scanShape({ segment: { index: 2, total: 4 }, after: parseKey("b:1") }, NOW);
      expect(plain.filter).to.deep.equal({
        $and: [live, { seg: { $mod: [4, 2] } }, { $or: [{ ns: { $gt: "b" } }, { ns: "b", part: { $gt: "1" } }] }],
      });
      expect([plain.sort, plain.hint]).to.deep.equal([{ ns: 1, part: 1 }, KEY_INDEX]);
      const labelled = scanShape({ label: 3 }, NOW);
      expect(labelled.filter).to.deep.equal({ $and: [live, { l3ns: { $exists: true } }] });
      expect([labelled.sort, labelled.hint]).to.deep.equal([{ l3ns: 1, l3part: 1, ns: 1, part: 1 }, "label3"]);
    });

    it("indexes: unique key, one partial index per label ending in the item key, a TTL index", () => {
      const indexes = itemIndexes();
      expect(indexes[0]).to.deep.equal({ key: { ns: 1, part: 1 }, name: KEY_INDEX, unique: true });
      expect(indexes.slice(1, 6).map((index) => [index.name, Object.keys(index.key), index.partialFilterExpression])).to.deep.equal(
        [1, 2, 3, 4, 5].map((n) => [`label${n}`, [`l${n}ns`, `l${n}part`, "ns", "part"], { [`l${n}ns`]: { $exists: true } }]),
      );
      expect(indexes[6]).to.deep.equal({ key: { expires: 1 }, name: "expires_ttl", expireAfterSeconds: 0 });
    });
  });

  describe("writes: one atomic update per set", () => {
    const update = (each: SetInput) => setUpdate(planSet(each, NOW), NOW, "w1");

    it("a plain set upserts on the key with no conditions", () => {
      const { filter, upsert } = update(input("users:jane", { a: 1 }));
      expect([filter, upsert]).to.deep.equal([{ ns: "users", part: "jane" }, true]);
    });

    it("E1: exists:false matches only a missing or expired item, so a live one collides on the unique index", () => {
      const { filter, upsert } = update(input("k", 1, { exists: false }));
      expect(filter).to.deep.equal({
        ns: "k",
        part: "",
        $and: [{ $or: [{ created: { $exists: false } }, { expires: { $lte: new Date(NOW) } }] }],
      });
      expect(upsert).to.equal(true);
    });

    it("E2 and C1/C2: exists:true and the created check are conditions on a live item, without upsert", () => {
      const seconds = update(input("k", 1, { exists: true, created: 1688097108 }));
      expect(seconds.upsert).to.equal(false);
      expect(seconds.filter.$and).to.deep.equal([
        { created: { $exists: true }, $or: [{ expires: { $exists: false } }, { expires: { $gt: new Date(NOW) } }] },
        { created: { $gte: new Date(1688097108000), $lt: new Date(1688097109000) } },
      ]);
      const millis = update(input("k", 1, { created: 1688097108250 }));
      expect(millis.filter.$and[1]).to.deep.equal({ created: new Date(1688097108250) });
    });

    it("user data reaches the pipeline only inside $literal (a '$x' name or value is never a field path)", () => {
      const { pipeline } = update(
        input("ns:$userKey", { $userName: "$userValue", a: { $add: 1 } }, {
          defaultValue: { $userDefault: "$userFill" },
          labels: [{ set: "$userLabel:$userPart" }],
        }),
      );
      const unsafe: string[] = [];
      const visit = (node: unknown, inLiteral: boolean): void => {
        if (typeof node === "string") {
          if (!inLiteral && node.includes("$user")) unsafe.push(node);
        } else if (Array.isArray(node)) {
          node.forEach((each) => visit(each, inLiteral));
        } else if (node && typeof node === "object" && !(node instanceof Date)) {
          for (const [name, child] of Object.entries(node)) visit(child, inLiteral || name === "$literal");
        }
      };
      visit(pipeline, false);
      expect(unsafe).to.deep.equal([]);
      // And the data is there, inside literals: the check above is not vacuous.
      for (const text of ["$userKey", "$userName", "$userValue", "$userFill", "$userLabel"]) {
        expect(JSON.stringify(pipeline)).to.contain(text);
      }
    });

    it("the pipeline refuses by restoring the document it started from, and always stamps the write id", () => {
      const { pipeline } = update(input("k", "x"));
      expect(pipeline[0]).to.have.nested.property("$set._old", "$$ROOT");
      expect(pipeline.at(-2)).to.deep.equal({ $replaceWith: { $cond: [{ $eq: ["$_fail", null] }, "$$ROOT", "$_old"] } });
      expect(pipeline.at(-1)).to.deep.equal({ $unset: ["_old", "_live", "_fail", "_size"] });
      expect(pipeline[2]).to.have.nested.property("$set._w", "w1");
    });

    it("V5/A4 are computed in the pipeline: a single value onto an object, a counter onto a non-number", () => {
      const single = update(input("k", "x")).pipeline[1].$set;
      expect(single._fail).to.deep.equal({ $cond: [{ $and: ["$_live", { $eq: ["$vt", "o"] }] }, "V5", null] });
      const counter = update(input("k", { $add: 2 })).pipeline[1].$set;
      expect(JSON.stringify(counter._fail)).to.contain('"A4"').and.contain('"V5"');
      expect(counter.vs).to.deep.equal({ $cond: ["$_live", { n: { $add: ["$vs.n", 2] } }, { n: 2 }] });
    });

    it("M2: an overwrite drops labels and ttl not given, and starts created afresh", () => {
      const stage = update(input("k", 1, { overwrite: true })).pipeline[2].$set;
      expect([stage.l1ns, stage.l1part, stage.expires]).to.deep.equal(["$$REMOVE", "$$REMOVE", "$$REMOVE"]);
      expect(stage.created).to.deep.equal(new Date(NOW));
      const merge = update(input("k", 1)).pipeline[2].$set;
      expect(merge.l1ns).to.deep.equal({ $cond: ["$_live", "$l1ns", "$$REMOVE"] });
      expect(merge.created).to.deep.equal({ $cond: ["$_live", "$created", new Date(NOW)] });
    });
  });

  describe("change events from change stream documents (EV5, EV6)", () => {
    const document = (value: number, expires?: number): ItemDocument => ({
      ns: "ev",
      part: "a",
      vt: "s",
      vs: { n: value },
      created: new Date(NOW - 10_000),
      modified: new Date(NOW - 10_000),
      seg: 1,
      ...(expires ? { expires: new Date(expires) } : {}),
    });
    const base = { _id: { _data: "82" }, wallTime: new Date(NOW) };

    it("insert → created; update of a live item → updated with previous; delete → deleted", () => {
      const created = toFeedEvents({ ...base, operationType: "insert", fullDocument: document(1) } as unknown as ChangeStreamDocument<ItemDocument>);
      expect(created.map((event) => event.name)).to.deep.equal(["created"]);
      const updated = toFeedEvents({
        ...base,
        operationType: "update",
        fullDocument: document(2),
        fullDocumentBeforeChange: document(1),
      } as unknown as ChangeStreamDocument<ItemDocument>);
      expect(updated.map((event) => [event.name, event.item.value, event.previous?.value])).to.deep.equal([["updated", 2, 1]]);
      const deleted = toFeedEvents({ ...base, operationType: "delete", fullDocumentBeforeChange: document(2) } as unknown as ChangeStreamDocument<ItemDocument>);
      expect(deleted.map((event) => [event.name, event.expired])).to.deep.equal([["deleted", false]]);
    });

    it("EV6: a write onto an expired item not yet purged is its expiry, then a new item; a TTL delete is marked expired", () => {
      const events = toFeedEvents({
        ...base,
        operationType: "update",
        fullDocument: document(2),
        fullDocumentBeforeChange: document(1, NOW - 1),
      } as unknown as ChangeStreamDocument<ItemDocument>);
      expect(events.map((event) => [event.name, event.expired ?? false])).to.deep.equal([["deleted", true], ["created", false]]);
      expect(new Set(events.map((event) => event.id)).size).to.equal(2);
      const ttl = toFeedEvents({ ...base, operationType: "delete", fullDocumentBeforeChange: document(1, NOW - 5) } as unknown as ChangeStreamDocument<ItemDocument>);
      expect(ttl.map((event) => [event.name, event.expired])).to.deep.equal([["deleted", true]]);
    });
  });

  describe("deployment checks at start", () => {
    it("refuses MongoDB older than 6.0 and standalone servers, saying how to fix it", () => {
      expect(checkDeployment("5.0.14", { setName: "rs0" })).to.contain("Larder needs 6.0 or newer");
      expect(checkDeployment("7.0.2", {})).to.contain("--replSet rs0").and.contain("rs.initiate()");
      expect(checkDeployment("7.0.2", { setName: "rs0" })).to.equal(undefined);
      expect(checkDeployment("6.0.0", { msg: "isdbgrid" })).to.equal(undefined);
    });
  });
});
