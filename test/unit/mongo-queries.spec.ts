import { expect } from "chai";
import fc from "fast-check";
import type { Document } from "mongodb";
import { parseKeyExpression, rangeIncludes, type KeyRange } from "../../core/expressions.js";
import { compareUtf8, keyFromParts, parseKey, type Key } from "../../core/keys.js";
import {
  batchGetFilter,
  countRangeShape,
  countShape,
  expiredChunk,
  expiredChunkDelete,
  expiredFilter,
  forgettableSubscription,
  SWEEP_CHUNK,
  isEmptyRange,
  itemIndexes,
  KEY_INDEX,
  keyQueryPlan,
  labelQueryPlan,
  namespaceStep,
  readTimeLimit,
  scanPlan,
  TTL_INDEX,
  type ReadPlan,
  type ReadShape,
} from "../../services/stores/mongodb/queries.js";

/**
 * What every read becomes (no server needed): hinted index ranges whose sort
 * is the index's, so MongoDB never sorts in memory (test/mongo/explain.spec.ts
 * checks the same on a real server). Continuations split into exact ranges;
 * the property tests check that the steps of a plan, read in order, are
 * exactly the positions after the cursor, in order.
 */
const NOW = Date.UTC(2026, 10, 25);
const live = { expires: { $not: { $lte: new Date(NOW) } } };

describe("MongoDB engine: reads are hinted index ranges (K7, Q1-Q5, P3, P4, L3, L5, SC2-SC6, T7)", () => {
  const keyPlan = (expression: string, reverse = false, after?: string, limit = 10) =>
    keyQueryPlan({ range: parseKeyExpression(expression), reverse, limit, after: after ? parseKey(after) : undefined }, NOW);

  describe("key queries", () => {
    const cases: [string, object][] = [
      ["users:*", { $gt: "" }],
      ["users:ja*", { $gte: "ja", $lt: "jb" }],
      ["users:>b", { $gt: "b" }],
      ["users:>=b", { $gte: "b" }],
      ["users:<b", { $gt: "", $lt: "b" }],
      ["users:<=b", { $gt: "", $lte: "b" }],
      ["users:a|c", { $gte: "a", $lte: "c" }],
      ["users:jane", { $gte: "jane", $lte: "jane" }],
      ["users:😀*", { $gte: "😀", $lt: "😁" }],
    ];
    for (const [expression, part] of cases) {
      it(`${expression} → ns equality, part ${JSON.stringify(part)}, never a regex`, () => {
        const [shape, ...more] = keyPlan(expression);
        expect(more).to.deep.equal([]);
        expect(shape.filter).to.deep.equal({ ns: "users", part, ...live });
        expect(shape.sort).to.deep.equal({ ns: 1, part: 1 });
        expect(shape.hint).to.equal(KEY_INDEX);
        expect(JSON.stringify(shape.filter)).not.to.contain("$regex");
      });
    }

    it("K8: a simple key is the one entry of its namespace with part ''; a collection range starts after it", () => {
      expect(keyPlan("users")[0].filter).to.deep.equal({ ns: "users", part: { $gte: "", $lte: "" }, ...live });
      expect(keyPlan("users:*")[0].filter.part).to.deep.equal({ $gt: "" });
    });

    it("P3: reverse sorts both index fields descending", () => {
      expect(keyPlan("users:*", true)[0].sort).to.deep.equal({ ns: -1, part: -1 });
    });

    it("P4: a start replaces the bound on its side (one bound per side), and never widens the range", () => {
      expect(keyPlan("users:b|d", false, "users:c")[0].filter.part).to.deep.equal({ $gt: "c", $lte: "d" });
      expect(keyPlan("users:b|d", false, "users:a")[0].filter.part).to.deep.equal({ $gte: "b", $lte: "d" });
      expect(keyPlan("users:b|d", true, "users:c")[0].filter.part).to.deep.equal({ $gte: "b", $lt: "c" });
      expect(keyPlan("users:b|d", true, "users:z")[0].filter.part).to.deep.equal({ $gte: "b", $lte: "d" });
      expect(keyPlan("users:*", true, "users:m")[0].filter.part).to.deep.equal({ $gt: "", $lt: "m" });
    });

    it("P4: a start past the end reads nothing at all", () => {
      expect(keyPlan("users:b|d", false, "users:d")).to.deep.equal([]);
      expect(keyPlan("users:b|d", true, "users:b")).to.deep.equal([]);
      expect(keyPlan("users:jane", false, "users:jane")).to.deep.equal([]);
    });

    it("K7: a start is compared in UTF-8 byte order, not UTF-16 (U+FF5E < U+1F600)", () => {
      expect(keyPlan("users:～|😀", false, "users:～")[0].filter.part).to.deep.equal({ $gt: "～", $lte: "😀" });
      expect(keyPlan("users:～|😀", false, "users:😀")).to.deep.equal([]);
    });

    it("isEmptyRange: only ranges that hold no key part", () => {
      const bound = (value: string, inclusive: boolean) => ({ value, inclusive });
      expect(isEmptyRange({ lower: bound("a", true) })).to.equal(false);
      expect(isEmptyRange({ lower: bound("a", true), upper: bound("a", true) })).to.equal(false);
      expect(isEmptyRange({ lower: bound("a", false), upper: bound("a", true) })).to.equal(true);
      expect(isEmptyRange({ lower: bound("b", true), upper: bound("a", true) })).to.equal(true);
      expect(isEmptyRange({ lower: bound("～", true), upper: bound("😀", false) })).to.equal(false);
    });
  });

  describe("label queries", () => {
    const labelPlan = (expression: string, reverse = false, after?: [string, string]) =>
      labelQueryPlan(
        {
          label: 2,
          range: parseKeyExpression(expression),
          reverse,
          limit: 5,
          after: after ? { label: parseKey(after[0]), item: parseKey(after[1]) } : undefined,
        },
        NOW,
      );

    it("L3/L5: the label's partial index, label ns equality (with $exists, so the hint is provably complete), label part range", () => {
      const [shape, ...more] = labelPlan("team:a*");
      expect(more).to.deep.equal([]);
      expect(shape.filter).to.deep.equal({ l2ns: { $eq: "team", $exists: true }, l2part: { $gte: "a", $lt: "b" }, ...live });
      expect(shape.sort).to.deep.equal({ l2ns: 1, l2part: 1, ns: 1, part: 1 });
      expect(shape.hint).to.equal("label2");
      expect(labelPlan("team:a*", true)[0].sort).to.deep.equal({ l2ns: -1, l2part: -1, ns: -1, part: -1 });
    });

    it("a continuation reads the rest of the label value's ties, then the range beyond it, each an exact range", () => {
      const shapes = labelPlan("team:*", false, ["team:b", "x:1"]);
      const ns = { $eq: "team", $exists: true };
      expect(shapes.map((shape) => shape.filter)).to.deep.equal([
        { l2ns: ns, l2part: "b", ns: "x", part: { $gt: "1" }, ...live },
        { l2ns: ns, l2part: "b", ns: { $gt: "x" }, ...live },
        { l2ns: ns, l2part: { $gt: "b" }, ...live },
      ]);
      const reverse = labelPlan("team:*", true, ["team:b", "x:1"]);
      expect(reverse.map((shape) => shape.filter)).to.deep.equal([
        { l2ns: ns, l2part: "b", ns: "x", part: { $lt: "1" }, ...live },
        { l2ns: ns, l2part: "b", ns: { $lt: "x" }, ...live },
        { l2ns: ns, l2part: { $gt: "", $lt: "b" }, ...live },
      ]);
      for (const shape of [...shapes, ...reverse]) expect(shape.hint).to.equal("label2");
    });

    it("a cursor outside the range reads the range (before it) or nothing (past it)", () => {
      expect(labelPlan("team:c|d", false, ["team:a", "x:1"]).map((shape) => shape.filter.l2part)).to.deep.equal([{ $gte: "c", $lte: "d" }]);
      expect(labelPlan("team:c|d", false, ["team:e", "x:1"])).to.deep.equal([]);
    });
  });

  describe("scans and counts", () => {
    it("SC2: key order on the key index; a continuation is the rest of its namespace, then later namespaces", () => {
      expect(scanPlan({}, NOW)).to.deep.equal([{ filter: live, sort: { ns: 1, part: 1 }, hint: KEY_INDEX }]);
      const shapes = scanPlan({ after: parseKey("b:1") }, NOW);
      expect(shapes.map((shape) => shape.filter)).to.deep.equal([
        { ns: "b", part: { $gt: "1" }, ...live },
        { ns: { $gt: "b" }, ...live },
      ]);
    });

    it("SC5: a segment is a modulus of the stored hash, filtered along the way", () => {
      const [shape] = scanPlan({ segment: { index: 2, total: 4 } }, NOW);
      expect(shape.filter).to.deep.equal({ ...live, seg: { $mod: [4, 2] } });
    });

    it("SC3: a label scan is in label order on the label's index, continuing in four exact steps", () => {
      const [whole] = scanPlan({ label: 3 }, NOW);
      expect(whole).to.deep.equal({
        filter: { l3ns: { $exists: true }, ...live },
        sort: { l3ns: 1, l3part: 1, ns: 1, part: 1 },
        hint: "label3",
      });
      const steps = scanPlan({ label: 3, after: { label: parseKey("t:b"), item: parseKey("x:1") } }, NOW);
      expect(steps.map((shape) => shape.filter)).to.deep.equal([
        { l3ns: { $eq: "t", $exists: true }, l3part: "b", ns: "x", part: { $gt: "1" }, ...live },
        { l3ns: { $eq: "t", $exists: true }, l3part: "b", ns: { $gt: "x" }, ...live },
        { l3ns: { $eq: "t", $exists: true }, l3part: { $gt: "b" }, ...live },
        { l3ns: { $gt: "t", $exists: true }, ...live },
      ]);
    });

    it("SC6: a count is the scan's filter and index, without start or limit", () => {
      expect(countShape({ label: 1, segment: { index: 0, total: 2 } }, NOW)).to.deep.equal({
        filter: { l1ns: { $exists: true }, ...live, seg: { $mod: [2, 0] } },
        hint: "label1",
      });
    });

    it("Count: a key or label range is the first page's filter on the same hinted index, with the expiry filter", () => {
      const count = (expression: string, label?: 2) => countRangeShape({ range: parseKeyExpression(expression), label }, NOW);
      expect(count("users:*")).to.deep.equal({ filter: { ns: "users", part: { $gt: "" }, ...live }, hint: KEY_INDEX });
      expect(count("users:a|c")).to.deep.equal({ filter: { ns: "users", part: { $gte: "a", $lte: "c" }, ...live }, hint: KEY_INDEX });
      // K8: a simple key is the one entry of its namespace with part "".
      expect(count("users")).to.deep.equal({ filter: { ns: "users", part: { $gte: "", $lte: "" }, ...live }, hint: KEY_INDEX });
      expect(count("city:os*", 2)).to.deep.equal({
        filter: { l2ns: { $eq: "city", $exists: true }, l2part: { $gte: "os", $lt: "ot" }, ...live },
        hint: "label2",
      });
    });

    it("T7: every read hides items expired at the caller's now, without an $or", () => {
      for (const shape of [...keyPlan("a:*"), ...scanPlan({}, NOW), ...scanPlan({ label: 1 }, NOW)]) {
        expect(shape.filter.expires).to.deep.equal({ $not: { $lte: new Date(NOW) } });
        expect(shape.filter).not.to.have.property("$or");
      }
    });
  });

  it("B3: a batch get is one query: one $in of key parts per namespace, several namespaces as their $or", () => {
    const keys = (...texts: string[]) => texts.map((text) => parseKey(text));
    expect(batchGetFilter(keys("users:a", "users:$b", "users:a"), NOW)).to.deep.equal({ ns: "users", part: { $in: ["a", "$b", "a"] }, ...live });
    expect(batchGetFilter(keys("users:a"), NOW)).to.deep.equal({ ns: "users", part: "a", ...live });
    expect(batchGetFilter(keys("users:a", "k", "orders:1", "users:b"), NOW)).to.deep.equal({
      $or: [
        { ns: "users", part: { $in: ["a", "b"] } },
        // K8: a simple key is its namespace's entry with part "".
        { ns: "k", part: "" },
        { ns: "orders", part: "1" },
      ],
      ...live,
    });
  });

  it("indexes: unique key, one partial index per label ending in the item key, a TTL index", () => {
    const indexes = itemIndexes();
    expect(indexes[0]).to.deep.equal({ key: { ns: 1, part: 1 }, name: KEY_INDEX, unique: true });
    expect(indexes.slice(1, 6).map((index) => [index.name, Object.keys(index.key), index.partialFilterExpression])).to.deep.equal(
      [1, 2, 3, 4, 5].map((n) => [`label${n}`, [`l${n}ns`, `l${n}part`, "ns", "part"], { [`l${n}ns`]: { $exists: true } }]),
    );
    expect(indexes[6]).to.deep.equal({ key: { expires: 1 }, name: TTL_INDEX, expireAfterSeconds: 0 });
    expect(indexes).to.have.length(7);
  });

  describe("plans, read in order, are exactly the positions after the cursor (property)", () => {
    /**
     * Evaluates only the operators the builders emit ($eq / equality,
     * $gt/$gte/$lt/$lte on strings, $exists), on the fields of an index
     * entry, comparing strings in UTF-8 byte order as MongoDB's simple
     * collation does. It checks the builders' arithmetic, not MongoDB.
     */
    type Entry = Record<string, string | undefined>;
    const matches = (entry: Entry, filter: Document): boolean =>
      Object.entries(filter).every(([field, condition]) => {
        if (field === "expires" || field === "seg") return true;
        const value = entry[field];
        if (typeof condition === "string") return value === condition;
        return Object.entries(condition as Record<string, unknown>).every(([operator, operand]) => {
          if (operator === "$exists") return (value !== undefined) === operand;
          if (value === undefined) return false;
          const order = compareUtf8(value, operand as string);
          return { $eq: order === 0, $gt: order > 0, $gte: order >= 0, $lt: order < 0, $lte: order <= 0 }[operator];
        });
      });
    const ordered = (sort: ReadShape["sort"]) => (a: Entry, b: Entry) => {
      for (const [field, direction] of Object.entries(sort)) {
        const order = compareUtf8(a[field] ?? "", b[field] ?? "");
        if (order !== 0) return order * direction;
      }
      return 0;
    };
    const run = (plan: ReadPlan, entries: Entry[], limit: number): Entry[] => {
      const found: Entry[] = [];
      for (const shape of plan) {
        if (found.length >= limit) break;
        found.push(
          ...entries
            .filter((entry) => matches(entry, shape.filter))
            .sort(ordered(shape.sort))
            .slice(0, limit - found.length),
        );
      }
      return found;
    };
    const text = fc.constantFrom("", "a", "b", "ab", "～", "😀", "a:b");
    const namespaceText = fc.constantFrom("a", "b", "c", "😀");
    const keys = fc.uniqueArray(fc.tuple(namespaceText, text), { selector: ([ns, part]) => `${ns}\u0000${part}`, maxLength: 30 });

    it("label queries, forward and reverse, from any cursor", () => {
      fc.assert(
        fc.property(
          keys,
          fc.array(fc.tuple(namespaceText, text), { minLength: 30, maxLength: 30 }),
          fc.constantFrom("t:*", "t:a*", "t:a|b", "t:>a", "t:<=ab", "t"),
          fc.boolean(),
          fc.integer({ min: 1, max: 8 }),
          fc.nat(40),
          (itemKeys, labels, expression, reverse, limit, cursor) => {
            const range = parseKeyExpression(expression);
            const entries: Entry[] = itemKeys.map(([ns, part], i) => ({
              ns,
              part,
              l4ns: labels[i][0] === "a" ? undefined : "t",
              l4part: labels[i][1],
            }));
            const order = ordered({ l4ns: reverse ? -1 : 1, l4part: reverse ? -1 : 1, ns: reverse ? -1 : 1, part: reverse ? -1 : 1 });
            const inRange = entries
              .filter((entry) => entry.l4ns === "t" && rangeIncludes(range, keyFromParts("t", entry.l4part!)) && range.ns === "t")
              .sort(order);
            const start = inRange[cursor % (inRange.length + 1)] as Entry | undefined;
            const after = start && { label: keyFromParts("t", start.l4part!), item: keyFromParts(start.ns!, start.part!) };
            const plan = labelQueryPlan({ label: 4, range, reverse, limit, after }, NOW);
            const expected = (start ? inRange.slice(inRange.indexOf(start) + 1) : inRange).slice(0, limit);
            expect(run(plan, entries, limit)).to.deep.equal(expected);
          },
        ),
      );
    });

    it("scans in key order and in label order, from any cursor", () => {
      fc.assert(
        fc.property(
          keys,
          fc.array(fc.tuple(namespaceText, text), { minLength: 30, maxLength: 30 }),
          fc.boolean(),
          fc.integer({ min: 1, max: 8 }),
          fc.nat(40),
          (itemKeys, labels, byLabel, limit, cursor) => {
            const entries: Entry[] = itemKeys.map(([ns, part], i) => ({
              ns,
              part,
              ...(labels[i][1] === "b" ? {} : { l1ns: labels[i][0], l1part: labels[i][1] }),
            }));
            const sort: ReadShape["sort"] = byLabel ? { l1ns: 1, l1part: 1, ns: 1, part: 1 } : { ns: 1, part: 1 };
            const all = entries.filter((entry) => !byLabel || entry.l1ns !== undefined).sort(ordered(sort));
            const start = all[cursor % (all.length + 1)] as Entry | undefined;
            const item = start && keyFromParts(start.ns!, start.part!);
            const after: Key | { label: Key; item: Key } | undefined =
              start && (byLabel ? { label: keyFromParts(start.l1ns!, start.l1part!), item: item! } : item);
            const plan = scanPlan({ label: byLabel ? 1 : undefined, after }, NOW);
            const expected = (start ? all.slice(all.indexOf(start) + 1) : all).slice(0, limit);
            expect(run(plan, entries, limit)).to.deep.equal(expected);
          },
        ),
      );
    });

    it("key queries with a start, forward and reverse", () => {
      fc.assert(
        fc.property(
          keys,
          fc.constantFrom("a:*", "a:a*", "a:a|b", "a:>a", "a:<ab", "a"),
          fc.boolean(),
          fc.integer({ min: 1, max: 8 }),
          text,
          (itemKeys, expression, reverse, limit, startPart) => {
            const range: KeyRange = parseKeyExpression(expression);
            const entries: Entry[] = itemKeys.map(([ns, part]) => ({ ns, part }));
            const after = keyFromParts("a", startPart);
            const d = reverse ? -1 : 1;
            const expected = entries
              .filter((entry) => rangeIncludes(range, keyFromParts(entry.ns!, entry.part!)))
              .filter((entry) => compareUtf8(entry.part!, startPart) * d > 0)
              .sort(ordered({ ns: d, part: d }))
              .slice(0, limit);
            expect(run(keyQueryPlan({ range, reverse, limit, after }, NOW), entries, limit)).to.deep.equal(expected);
          },
        ),
      );
    });
  });
});

describe("MongoDB engine: a read stops at its caller's deadline", () => {
  it("the time left becomes maxTimeMS, rounded up and never 0 (MongoDB's 'no limit'); no deadline, no limit", () => {
    expect(readTimeLimit({ timeoutMs: 2_500 })).to.deep.equal({ maxTimeMS: 2_500 });
    expect(readTimeLimit({ timeoutMs: 0.2 })).to.deep.equal({ maxTimeMS: 1 });
    expect(readTimeLimit({ timeoutMs: 0 })).to.deep.equal({ maxTimeMS: 1 });
    expect(readTimeLimit({})).to.deep.equal({});
    expect(readTimeLimit()).to.deep.equal({});
  });

  it("a later step of a plan gets what the earlier steps left", () => {
    expect(readTimeLimit({ timeoutMs: 2_500 }, 1_000.5)).to.deep.equal({ maxTimeMS: 1_500 });
    expect(readTimeLimit({ timeoutMs: 2_500 }, 3_000)).to.deep.equal({ maxTimeMS: 1 });
    expect(readTimeLimit({}, 3_000)).to.deep.equal({});
  });
});

describe("MongoDB engine: the sweeper deletes what both clocks find expired (EV6)", () => {
  it("a range of the TTL index up to the bound the store gives (the earlier of the two clocks), and nothing the delete command refuses", () => {
    expect(expiredFilter(NOW)).to.deep.equal({ expires: { $lte: new Date(NOW) } });
  });

  describe("namespaces", () => {
    it("each step seeks the key index past the last namespace, to a live collection item (K8, T7)", () => {
      const first = namespaceStep(undefined, NOW);
      expect(first.filter).to.deep.equal({ ns: { $gt: "" }, part: { $gt: "" }, ...live });
      expect(first.sort).to.deep.equal({ ns: 1, part: 1 });
      expect(first.hint).to.equal(KEY_INDEX);
      expect(first.projection).to.deep.equal({ _id: 0, ns: 1 });
      expect(namespaceStep("users", NOW).filter).to.deep.equal({ ns: { $gt: "users" }, part: { $gt: "" }, ...live });
    });
  });
});

describe("MongoDB sweep in bounded steps (issue 22)", () => {
  const NOW = Date.UTC(2026, 0, 1);
  it("a step reads at most SWEEP_CHUNK ids of expired items from the TTL index, oldest first, and no document bodies", () => {
    expect(expiredChunk(NOW)).to.deep.equal({
      filter: { expires: { $lte: new Date(NOW) } },
      options: { projection: { _id: 1, expires: 1 }, sort: { expires: 1 }, hint: "expires_ttl", limit: SWEEP_CHUNK },
    });
    expect(SWEEP_CHUNK).to.be.within(1, 1000);
  });

  it("a step deletes those ids only while still expired, so an item rewritten meanwhile stays", () => {
    expect(expiredChunkDelete(["a", "b"], NOW)).to.deep.equal({ _id: { $in: ["a", "b"] }, expires: { $lte: new Date(NOW) } });
  });
});

describe("MongoDB named subscriptions are bounded (issue 22)", () => {
  it("past the bound, the one a new name may replace is the least recently acknowledged, unacknowledged for the retention", () => {
    const now = Date.UTC(2026, 0, 2);
    expect(forgettableSubscription(now, 86_400_000)).to.deep.equal({
      filter: { at: { $lt: new Date(Date.UTC(2026, 0, 1)) } },
      sort: { at: 1 },
    });
  });
});
