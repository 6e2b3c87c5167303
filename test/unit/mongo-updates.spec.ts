import { expect } from "chai";
import fc from "fast-check";
import { Double, type Document } from "mongodb";
import { isJsonObject, setOwn, type JsonObject } from "../../core/json.js";
import { NO_LABELS, type ItemRecord, type LabelSlots } from "../../core/item.js";
import { parseKey } from "../../core/keys.js";
import { segmentHash } from "../../core/segments.js";
import { applySet } from "../../core/apply-set.js";
import { planAdd, planBatchSet, planSet, type SetInput, type SetPlan } from "../../core/set-plan.js";
import { itemSize, MAX_ITEM_BYTES } from "../../core/values.js";
import { encodeItem, type Attribute, type Cell, type ItemDocument } from "../../services/stores/mongodb/codec.js";
import {
  createdCondition,
  versionCondition,
  expiresAtWrite,
  incrementUpdate,
  isUnconditionalOverwrite,
  MAX_NUMBER_TEXT,
  PIPELINE_FIELDS,
  setUpdate,
  sizeExpression,
} from "../../services/stores/mongodb/updates.js";
import { attributeNames, jsonValues } from "../mongo/arbitraries.js";
import { setInput as input } from "../support/set-input.js";

/**
 * Each set as ONE update (S4): the documents sent to findOneAndUpdate,
 * checked without a server. Whether MongoDB then computes what applySet
 * computes is for `npm run test:mongo` (the contract suite runs every write
 * rule against a replica set).
 */
const NOW = Date.UTC(2026, 10, 25);
const AT = new Date(NOW);
const update = (each: SetInput, quiet = false) => setUpdate(planSet(each, NOW), NOW, "w1", { quiet });
const stage = (pipeline: Document[], index: number) => pipeline[index].$set as Document;

/**
 * The arithmetic of sizeExpression, restated in JavaScript over a stored
 * document; the properties below show that the fields the codec stores
 * are enough for it to equal core/values.ts itemSize (integers) or
 * bound it from above (other numbers), and that the counter fast path's
 * margin keeps V8. MongoDB's evaluation of the expression itself is
 * exercised by the contract suite (V8 tests).
 */
function boundOf(key: string, document: ItemDocument): number {
  const number = (n: number) => (Number.isInteger(n) && Math.abs(n) < 2 ** 53 ? String(n).length : MAX_NUMBER_TEXT);
  const cell = (c: Cell) => (typeof c.n === "number" ? number(c.n) : Buffer.byteLength(c.j ?? "null"));
  const cells: readonly Attribute[] = document.vo ?? [];
  const value =
    document.vt === "o"
      ? 2 + Math.max(cells.length - 1, 0) + cells.reduce((sum, a) => sum + 3 + Buffer.byteLength(a.k) + (a.e ?? 0) + cell(a), 0)
      : cell(document.vs!);
  const fields = document as unknown as Record<string, string | number | undefined>;
  let labels = 0;
  for (let slot = 1; slot <= 5; slot++) {
    const ns = fields[`l${slot}ns`] as string | undefined;
    if (ns === undefined) continue;
    const part = fields[`l${slot}part`] as string;
    labels += 12 + Buffer.byteLength(ns) + (part === "" ? 0 : 1 + Buffer.byteLength(part)) + ((fields[`l${slot}e`] as number | undefined) ?? 0);
  }
  return Buffer.byteLength(JSON.stringify({ key, value: null })) - 4 + value + labels;
}

describe("MongoDB engine: each set is one atomic update (S4)", () => {
  describe("the filter carries the existence and created checks (E1, E2, C1, C2)", () => {
    it("a plain set upserts on the key with no condition", () => {
      const { filter, upsert } = update(input("users:jane", { a: 1 }));
      expect([filter, upsert]).to.deep.equal([{ ns: "users", part: "jane" }, true]);
    });

    it("E1: exists:false matches only an expired item; a live one makes the upsert collide on the unique index", () => {
      const { filter, upsert } = update(input("k", 1, { exists: false }));
      expect([filter, upsert]).to.deep.equal([{ ns: "k", part: "", expires: { $lte: AT } }, true]);
    });

    it("E2: exists:true matches only a live item and never inserts", () => {
      const { filter, upsert } = update(input("k", 1, { exists: true }));
      expect([filter, upsert]).to.deep.equal([{ ns: "k", part: "", expires: { $not: { $lte: AT } } }, false]);
    });

    it("C1/C2: the created check in seconds matches that whole second, in milliseconds the instant", () => {
      const seconds = update(input("k", 1, { created: 1688097108 }));
      expect(seconds.filter).to.deep.equal({
        ns: "k",
        part: "",
        expires: { $not: { $lte: AT } },
        created: { $gte: new Date(1688097108000), $lt: new Date(1688097109000) },
      });
      expect(seconds.upsert).to.equal(false);
      expect(update(input("k", 1, { created: 1688097108250, overwrite: true })).filter.created).to.deep.equal(new Date(1688097108250));
    });

    it("E1 with C1 (exists:false and created): no stored state passes both, so the filter matches nothing and nothing is inserted", () => {
      const { filter, upsert } = update(input("k", 1, { exists: false, created: 1688097108 }));
      expect(filter.expires, "no document has an expires in the empty set, live or not").to.deep.equal({ $in: [] });
      expect(upsert).to.equal(false);
    });

    it("ifVersion N ≥ 1 matches only a live item at version N (a document from before versions is at 1) and never inserts", () => {
      const at3 = update(input("k", 1, { ifVersion: 3 }));
      expect([at3.filter, at3.upsert]).to.deep.equal([{ ns: "k", part: "", expires: { $not: { $lte: AT } }, ver: 3 }, false]);
      expect(update(input("k", 1, { ifVersion: 1 })).filter.ver).to.deep.equal({ $in: [1, null] });
      expect(versionCondition(7)).to.deep.equal({ ver: 7 });
    });

    it("ifVersion 0 wants no live item, as exists:false does; with exists:true or created nothing can match", () => {
      const none = update(input("k", 1, { ifVersion: 0 }));
      expect([none.filter, none.upsert]).to.deep.equal([{ ns: "k", part: "", expires: { $lte: AT } }, true]);
      for (const both of [
        { ifVersion: 0, exists: true },
        { ifVersion: 0, created: 1688097108 },
        { ifVersion: 2, exists: false },
      ]) {
        const { filter, upsert } = update(input("k", 1, both));
        expect([filter.expires, upsert], JSON.stringify(both)).to.deep.equal([{ $in: [] }, false]);
      }
    });

    it("C2: a created no stored time can equal (a fraction, out of Date's range) matches nothing", () => {
      expect(createdCondition({ unit: "seconds", value: 1688097108.5 })).to.deep.equal({ created: { $in: [] } });
      expect(createdCondition({ unit: "millis", value: 1688097108250.5 })).to.deep.equal({ created: { $in: [] } });
      expect(createdCondition({ unit: "millis", value: 9e15 })).to.deep.equal({ created: { $in: [] } });
    });
  });

  describe("the pipeline", () => {
    it("user data reaches the pipeline only inside $literal (a '$x' name, value, key or label is never a field path)", () => {
      const { filter, pipeline } = update(
        input(
          "$userNs:$userKey",
          { $userName: "$userValue", a: { $add: 1 }, $userGone: null },
          {
            defaultValue: { $userDefault: "$userFill" },
            labels: [{ set: "$userLabel:$userPart" }, { setIfAbsent: "$userOther" }],
          },
        ),
      );
      const unsafe: string[] = [];
      const visit = (node: unknown, inLiteral: boolean): void => {
        if (typeof node === "string") {
          if (!inLiteral && node.includes("$user")) unsafe.push(node);
        } else if (Array.isArray(node)) {
          node.forEach((each) => visit(each, inLiteral));
        } else if (node && typeof node === "object" && !(node instanceof Date)) {
          for (const [name, child] of Object.entries(node)) {
            if (!inLiteral && name.includes("$user")) unsafe.push(name);
            visit(child, inLiteral || name === "$literal");
          }
        }
      };
      visit(pipeline, false);
      expect(unsafe).to.deep.equal([]);
      for (const text of ["$userName", "$userValue", "$userFill", "$userLabel", "$userGone", "$userOther"]) {
        expect(JSON.stringify(pipeline), text).to.contain(text);
      }
      // The key is only in the filter, as plain equality values (a query never reads a value as an operator).
      expect(filter).to.deep.equal({ ns: "$userNs", part: "$userKey" });
    });

    it("stamps the next version: one more than the live item's (a document without `ver` counts as 1), 1 where none is live", () => {
      for (const each of [input("k", "x"), input("k", { a: 1 }, { overwrite: true }), input("k", { a: { $add: 1 } })]) {
        expect(stage(update(each).pipeline, 2).ver).to.deep.equal({ $cond: ["$_live", { $add: [{ $ifNull: ["$ver", 1] }, 1] }, 1] });
      }
    });

    it("refuses by restoring the document it started from (a byte-identical no-op), and always stamps the write", () => {
      const { pipeline } = update(input("k", "x"));
      expect(stage(pipeline, 0)).to.have.property("_old", "$$ROOT");
      expect(pipeline.at(-2)).to.deep.equal({
        $replaceWith: { $cond: [{ $eq: [{ $ifNull: ["$_fail", null] }, null] }, "$$ROOT", "$_old"] },
      });
      expect(pipeline.at(-1)).to.deep.equal({ $unset: [...PIPELINE_FIELDS] });
      expect(stage(pipeline, 2)).to.deep.include({ _w: "w1", modified: AT, _n: { $not: ["$_live"] }, _q: "$$REMOVE" });
    });

    it("T7: liveness is computed from the stored document: present and not expired at now", () => {
      expect(stage(update(input("k", "x")).pipeline, 0)._live).to.deep.equal({
        $and: [{ $ne: [{ $type: "$created" }, "missing"] }, { $or: [{ $eq: [{ $type: "$expires" }, "missing"] }, { $gt: ["$expires", AT] }] }],
      });
    });

    it("an overwrite has nothing to refuse: no V5/A4/V8 stages (planSet measured it whole)", () => {
      const { pipeline } = update(input("k", { a: { $add: 2 } }, { overwrite: true }));
      expect(pipeline).to.have.length(4);
      expect(stage(pipeline, 1)).to.deep.equal({ vt: "o", vo: { $literal: [{ k: "a", n: 2 }] }, vs: "$$REMOVE" });
    });

    it("V5: a single value onto a live object is refused; otherwise it replaces (V3)", () => {
      const value = stage(update(input("k", "x")).pipeline, 1);
      expect(value).to.deep.equal({
        _fail: { $cond: [{ $and: ["$_live", { $eq: ["$vt", "o"] }] }, "V5", null] },
        vt: "s",
        vs: { $literal: { j: '"x"' } },
        vo: "$$REMOVE",
      });
    });

    it("A1/A4/A6: a whole-value counter adds in doubles onto a live number, starts at the amount otherwise", () => {
      const value = stage(update(input("k", { $add: 2 })).pipeline, 1);
      const sum = { $add: [{ $toDouble: "$vs.n" }, 2] };
      expect(value.vs).to.deep.equal({ $cond: ["$_live", { n: sum }, { n: 2 }] });
      expect(value._fail.$switch.branches.map((branch: Document) => branch.then)).to.deep.equal(["V5", "A4", "A6"]);
      // A6: the very sum written is refused past the largest double (the domain's NUMBER_OVERFLOW).
      expect(value._fail.$switch.branches[2].case).to.deep.equal({
        $and: ["$_live", { $not: [{ $lte: [{ $abs: sum }, Number.MAX_VALUE] }] }],
      });
    });

    it("D3: a single default keeps a live single value, and is written only where nothing is live", () => {
      const value = stage(update(input("k", undefined, { defaultValue: "d" })).pipeline, 1);
      expect(value.vs).to.deep.equal({ $cond: ["$_live", "$vs", { $literal: { j: '"d"' } }] });
      expect(value._fail).to.deep.equal({ $cond: [{ $and: ["$_live", { $eq: ["$vt", "o"] }] }, "V5", null] });
    });

    it("V4/V6/A1/D2: a merge keeps stored attributes minus removed ones, replaces and increments in place, appends the rest", () => {
      const value = stage(update(input("k", { s: "x", c: { $add: 1 }, gone: null }, { defaultValue: { f: 1, s: "y" } })).pipeline, 1);
      const text = JSON.stringify(value);
      expect(value.vt).to.equal("o");
      expect(value.vs).to.equal("$$REMOVE");
      // The stored attributes only when a live object is stored.
      expect(text).to.contain(JSON.stringify({ $cond: [{ $and: ["$_live", { $eq: ["$vt", "o"] }] }, { $ifNull: ["$vo", []] }, []] }));
      expect(text).to.contain(JSON.stringify({ $not: [{ $in: ["$$e.k", { $literal: ["gone"] }] }] }));
      // Set attributes replace (the default deep-merged into them), counters add in doubles.
      expect(text).to.contain(JSON.stringify({ $literal: [{ k: "s", j: '"x"' }] }));
      expect(text).to.contain(JSON.stringify({ $add: [{ $toDouble: "$$e.n" }, "$$g.n"] }));
      expect(text).to.contain(JSON.stringify({ $literal: [{ k: "c", n: 1 }] }));
      expect(text).to.contain(JSON.stringify({ $literal: [{ k: "f", n: 1 }] }));
      expect(value._fail.$switch.branches.map((branch: Document) => branch.then)).to.deep.equal(["A4", "A6"]);
      // A6: each counter's sum, the same expression as the one written, must stay a finite double.
      const counted = JSON.stringify({ $add: [{ $toDouble: "$$e.n" }, "$$g.n"] });
      expect(JSON.stringify(value._fail.$switch.branches[1].case))
        .to.contain(`{"$not":[{"$lte":[{"$abs":{"$let":{"vars":{"g":`)
        .and.contain(`"in":${counted}}}},${Number.MAX_VALUE}]}]}`);
    });

    it("a merge of defaults only (D5) needs no $switch, and without counters cannot fail A4", () => {
      const value = stage(update(input("k", {}, { defaultValue: { f: 1 } })).pipeline, 1);
      expect(JSON.stringify(value.vo)).not.to.contain("$switch");
      expect(JSON.stringify(value.vo)).to.contain('"$concatArrays":["$$kept"');
      expect(value._fail).to.equal(null);
    });

    it("M1/M2/C1: created survives merges and checked overwrites, and starts afresh otherwise", () => {
      expect(stage(update(input("k", 1, { overwrite: true })).pipeline, 2).created).to.deep.equal(AT);
      const merge = { $cond: ["$_live", "$created", AT] };
      expect(stage(update(input("k", 1)).pipeline, 2).created).to.deep.equal(merge);
      expect(stage(update(input("k", 1, { overwrite: true, created: 1688097108 })).pipeline, 2).created).to.deep.equal(merge);
    });

    it("L2/M2: labels keep (on a live merge), set, set if absent, remove; an overwrite drops labels not given", () => {
      const merged = stage(update(input("k", 1, { labels: [undefined, { set: 'team:"x"' }, { setIfAbsent: "t:y" }, { remove: true }] })).pipeline, 2);
      expect([merged.l1ns, merged.l1part, merged.l1e]).to.deep.equal([
        { $cond: ["$_live", "$l1ns", "$$REMOVE"] },
        { $cond: ["$_live", "$l1part", "$$REMOVE"] },
        { $cond: ["$_live", "$l1e", "$$REMOVE"] },
      ]);
      expect([merged.l2ns, merged.l2part, merged.l2e]).to.deep.equal([{ $literal: "team" }, { $literal: '"x"' }, 2]);
      const present = { $and: ["$_live", { $ne: [{ $type: "$l3ns" }, "missing"] }] };
      expect([merged.l3ns, merged.l3part, merged.l3e]).to.deep.equal([
        { $cond: [present, "$l3ns", { $literal: "t" }] },
        { $cond: [present, "$l3part", { $literal: "y" }] },
        { $cond: [present, "$l3e", "$$REMOVE"] },
      ]);
      expect([merged.l4ns, merged.l4part, merged.l4e]).to.deep.equal(["$$REMOVE", "$$REMOVE", "$$REMOVE"]);
      const overwritten = stage(update(input("k", 1, { overwrite: true, labels: [undefined, undefined, { setIfAbsent: "t:y" }] })).pipeline, 2);
      expect([overwritten.l1ns, overwritten.l3ns]).to.deep.equal(["$$REMOVE", { $literal: "t" }]);
    });

    it("T1/T3: ttl set, removed, kept by a live merge, gone on an overwrite", () => {
      expect(stage(update(input("k", 1, { ttl: { seconds: 60 } })).pipeline, 2).expires).to.deep.equal(new Date(NOW + 60_000));
      expect(stage(update(input("k", 1, { ttl: { remove: true } })).pipeline, 2).expires).to.equal("$$REMOVE");
      expect(stage(update(input("k", 1)).pipeline, 2).expires).to.deep.equal({ $cond: ["$_live", "$expires", "$$REMOVE"] });
      expect(stage(update(input("k", 1, { overwrite: true })).pipeline, 2).expires).to.equal("$$REMOVE");
    });

    it("writes without events are marked for the feed: 'w', or 'd' when the ttl has already passed (EV6)", () => {
      expect(stage(update(input("k", 1, { overwrite: true }), true).pipeline, 2)._q).to.equal("w");
      expect(stage(update(input("k", 1, { overwrite: true, ttl: { seconds: -1 } }), true).pipeline, 2)._q).to.equal("d");
    });

    it("the segment hash is written with the value; the key comes from the filter (an upsert seeds it)", () => {
      const metadata = stage(update(input("users:jane", 1)).pipeline, 2);
      expect(metadata).to.deep.include({ seg: segmentHash(parseKey("users:jane")) });
      expect(metadata).not.to.have.any.keys("ns", "part");
    });
  });

  describe("V8 in the pipeline: exact, or an upper bound that the exact path settles", () => {
    const keys = fc.constantFrom("k", "users:jane", 'q"uote:x', "ns:😀");
    const labelValues = fc.constantFrom(undefined, "team", "team:x", 'a"b:c\\d', "t:\u0001");

    it("equals itemSize when root numbers are integers, and is never below it", () => {
      fc.assert(
        fc.property(keys, jsonValues, fc.array(labelValues, { minLength: 5, maxLength: 5 }), (raw, value, labelTexts) => {
          const key = parseKey(raw);
          const labels = labelTexts.map((text) => (text === undefined ? undefined : parseKey(text))) as unknown as LabelSlots;
          const item: ItemRecord = { key, value, created: 1, modified: 1, labels, version: 1 };
          const bound = boundOf(key.full, encodeItem(item, { writeId: "w", created: true }));
          const exact = itemSize(key, value, labels);
          const roots = isJsonObject(value) ? Object.values(value) : [value];
          const integral = roots.every((root) => typeof root !== "number" || (Number.isInteger(root) && Math.abs(root) < 2 ** 53));
          if (integral) expect(bound).to.equal(exact);
          else expect(bound).to.be.at.least(exact);
        }),
      );
    });

    it("the expression has the same parts: the key's bytes, the value by kind, five label terms", () => {
      const plan = planSet(input("users:jane", { a: 1 }), NOW);
      const expression = sizeExpression(plan);
      expect(expression.$add[0]).to.equal(Buffer.byteLength('{"key":"users:jane","value":}'));
      expect(expression.$add).to.have.length(1 + 1 + 5);
      expect(JSON.stringify(expression)).to.contain(`${MAX_NUMBER_TEXT}`).and.contain('"$toLong"');
      expect(MAX_NUMBER_TEXT).to.be.at.least(
        Math.max(
          ...[-1.2345678901234567e-123, -0.0000012345678901234567, -1.7976931348623157e308, -123456789012345.67].map((n) => JSON.stringify(n).length),
        ),
      );
    });

    it("V8 is checked after every change that can grow a live item, and refuses only a live one", () => {
      const { pipeline } = update(input("k", { a: 1 }));
      const check = stage(pipeline, 3)._fail;
      expect(check.$cond[0].$and.slice(0, 2)).to.deep.equal([{ $eq: [{ $ifNull: ["$_fail", null] }, null] }, "$_live"]);
      expect(check.$cond[0].$and[2].$gt[1]).to.equal(409_600);
    });
  });

  describe("counters on live numbers are one $inc (AD1, A1, A6)", () => {
    const increment = (plan: SetPlan) => incrementUpdate(plan, NOW, "w1");
    const add = (key: string, amount: number, attribute?: string) => planAdd({ key, amount, attribute, overwrite: false }, NOW);
    // A document from before versions has no `ver`: $inc would start it at 1, so it takes the pipeline once.
    const live = { expires: { $not: { $lte: AT } }, ver: { $exists: true } };
    // EV5: found live, so `updated`; a quiet batch's marker must not hide this change.
    const stamp = { $set: { modified: AT, _w: "w1", _n: false }, $unset: { _q: "" } };

    it("add(key, n): $inc of a double amount, matching only a live stored number", () => {
      const built = increment(add("hits:home", 2))!;
      expect(built.filter).to.deep.equal({
        ns: "hits",
        part: "home",
        ...live,
        vt: "s",
        "vs.n": { $type: "number" },
        // A6: a sum past the largest double does not match; the pipeline then refuses it (NUMBER_OVERFLOW).
        $expr: { $lte: [{ $abs: { $add: ["$vs.n", new Double(2)] } }, Number.MAX_VALUE] },
      });
      expect(built.update).to.deep.equal({ $inc: { "vs.n": new Double(2), ver: 1 }, ...stamp });
      // A6: int32 + double adds in doubles, where int32 + int32 would turn int64 past 2^31.
      expect((built.update.$inc as Document)["vs.n"]).to.be.instanceOf(Double);
      expect(built.arrayFilters).to.equal(undefined);
    });

    it("add(key, attribute, n) and $add merges: $inc through arrayFilters on live numeric attributes, names only as values", () => {
      const plan = planSet(input("page:home", { views: { $add: 1 }, "$x.y": { $add: -0.5 } }), NOW);
      const built = increment(plan)!;
      const storedNumber = (name: string) => ({
        $let: {
          vars: { a: { $arrayElemAt: [{ $filter: { input: "$vo", as: "x", cond: { $eq: ["$$x.k", { $literal: name }] } } }, 0] } },
          in: "$$a.n",
        },
      });
      expect(built.filter).to.deep.equal({
        ns: "page",
        part: "home",
        ...live,
        vt: "o",
        vo: { $all: [{ $elemMatch: { k: "views", n: { $type: "number" } } }, { $elemMatch: { k: "$x.y", n: { $type: "number" } } }] },
        $expr: {
          $and: [
            { $lte: [sizeExpression(plan), MAX_ITEM_BYTES - 2 * MAX_NUMBER_TEXT] },
            // A6: each sum stays a finite double; the '$'-leading name is a $literal, not a field path.
            { $lte: [{ $abs: { $add: [storedNumber("views"), new Double(1)] } }, Number.MAX_VALUE] },
            { $lte: [{ $abs: { $add: [storedNumber("$x.y"), new Double(-0.5)] } }, Number.MAX_VALUE] },
          ],
        },
      });
      expect(built.update).to.deep.equal({ $inc: { "vo.$[c0].n": new Double(1), "vo.$[c1].n": new Double(-0.5), ver: 1 }, ...stamp });
      expect(built.arrayFilters).to.deep.equal([{ "c0.k": "views" }, { "c1.k": "$x.y" }]);
      expect(increment(add("page:home", 3, "views"))!.arrayFilters).to.deep.equal([{ "c0.k": "views" }]);
    });

    it("C1: a created check rides in the filter; exists:true needs nothing more than the live condition", () => {
      const checked = increment(planSet(input("k", { $add: 1 }, { created: 1688097108, exists: true }), NOW))!;
      expect(checked.filter).to.deep.include({
        ...live,
        created: { $gte: new Date(1688097108000), $lt: new Date(1688097109000) },
      });
      expect(increment(planSet(input("k", { $add: 1 }, { exists: true }), NOW))!.filter).to.deep.equal(increment(add("k", 1))!.filter);
    });

    it("ifVersion rides in the filter as the stored version; ifVersion 0 (no live item) is left to the pipeline", () => {
      const at = (ifVersion: number) => increment(planAdd({ key: "k", amount: 1, overwrite: false, ifVersion }, NOW))!;
      expect(at(4).filter).to.deep.include({ ver: 4 });
      expect(at(4).update.$inc).to.deep.include({ ver: 1 });
      expect(increment(planAdd({ key: "k", amount: 1, overwrite: false, ifVersion: 0 }, NOW))).to.equal(undefined);
    });

    it("a plan that changes more than counters is left to the pipeline", () => {
      const others = [
        planAdd({ key: "k", amount: 1, overwrite: true }, NOW), // A5: sets
        planSet(input("k", { $add: 1 }, { exists: false }), NOW), // E1 wants no live item
        planSet(input("k", { $add: 1 }, { ttl: { seconds: 60 } }), NOW),
        planSet(input("k", { $add: 1 }, { labels: [{ set: "team:a" }] }), NOW),
        planSet(input("k", { c: { $add: 1 }, s: "x" }), NOW),
        planSet(input("k", { c: { $add: 1 }, gone: null }), NOW),
        planSet(input("k", { c: { $add: 1 } }, { defaultValue: { d: 1 } }), NOW),
        planSet(input("k", 5), NOW),
        planSet(input("k", { a: 1 }), NOW),
      ];
      for (const plan of others) expect(increment(plan), JSON.stringify(plan.value)).to.equal(undefined);
    });

    it("V8: a stored item within the filter's bound stays within 400 KB after the increments", () => {
      const numbers = fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }));
      fc.assert(
        fc.property(
          fc.dictionary(attributeNames, fc.tuple(numbers, numbers), { minKeys: 1, maxKeys: 3 }),
          fc.integer({ min: -40, max: 0 }),
          (counters, slack) => {
            fc.pre(!Object.keys(counters).includes("pad"));
            // Sums past the largest double are A6's (the filter's staysFinite), not this property's.
            fc.pre(Object.values(counters).every(([stored, amount]) => Number.isFinite(stored + amount)));
            const key = parseKey("k");
            const stored = (pad: string): ItemRecord => {
              const value: JsonObject = { pad };
              for (const name of Object.keys(counters)) setOwn(value, name, counters[name][0]);
              return { key, value, created: 1, modified: 1, labels: NO_LABELS, version: 1 };
            };
            const room = MAX_ITEM_BYTES - MAX_NUMBER_TEXT * Object.keys(counters).length;
            const padding = room - boundOf(key.full, encodeItem(stored(""), { writeId: "w", created: false })) + slack;
            fc.pre(padding >= 0);
            const item = stored("x".repeat(padding));
            expect(boundOf(key.full, encodeItem(item, { writeId: "w", created: false }))).to.equal(room + slack);
            const adds: JsonObject = {};
            for (const name of Object.keys(counters)) setOwn(adds, name, { $add: counters[name][1] });
            const plan = planSet(input("k", adds), NOW);
            expect(increment(plan)).to.not.equal(undefined);
            expect(() => applySet(item, plan, NOW)).not.to.throw();
          },
        ),
        { numRuns: 300 },
      );
    });
  });

  describe("batches and expiry at write", () => {
    it("BS2: batch items are unconditional overwrites, written without reading what is stored", () => {
      const plans = planBatchSet([input("a", 1), input("b", { x: 1 }, { ttl: { seconds: -5 } })], { overwrite: true, removeNulls: true }, NOW);
      expect(plans.every(isUnconditionalOverwrite)).to.equal(true);
      expect(plans.map((plan) => expiresAtWrite(plan, NOW))).to.deep.equal([false, true]);
      const conditional: SetPlan[] = [planSet(input("a", 1), NOW), planSet(input("a", 1, { overwrite: true, exists: true }), NOW)];
      expect(conditional.some(isUnconditionalOverwrite)).to.equal(false);
    });

    it("the encoded item a transaction writes marks what the pipeline would (write id, created)", () => {
      const document = encodeItem(
        { key: parseKey("k"), value: 1, created: 1, modified: 2, labels: NO_LABELS, version: 1 },
        { writeId: "w9", created: false },
      );
      expect([document._w, document._n, document._q]).to.deep.equal(["w9", false, undefined]);
    });
  });
});
