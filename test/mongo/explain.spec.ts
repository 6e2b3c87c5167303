import { expect } from "chai";
import { MongoClient, type Collection, type Document } from "mongodb";
import { parseKeyExpression } from "../../core/expressions.js";
import { NO_LABELS, type LabelSlots } from "../../core/item.js";
import { parseKey } from "../../core/keys.js";
import { encodeItem, keyFilter, type ItemDocument } from "../../services/stores/mongodb/codec.js";
import { mongoTitle, mongoUri, skipWithoutMongo } from "./mongo-support.js";
import {
  batchGetFilter,
  countRangeShape,
  itemIndexes,
  KEY_INDEX,
  keyQueryPlan,
  labelQueryPlan,
  liveFilter,
  namespaceStep,
  scanPlan,
  type ReadPlan,
} from "../../services/stores/mongodb/queries.js";

/**
 * explain() on a real MongoDB: every key and label query, forward and
 * reverse, with and without a start, and every scan continuation, is made of
 * IXSCANs on the expected index with no SORT stage, and each step examines
 * at most the keys it returns plus one, so a late page costs what the first
 * does. Needs MONGODB_URI (npm run test:mongo); skipped without it.
 */
describe(mongoTitle("MongoDB: reads are index range scans without in-memory sorts (explain)"), function () {
  const uri = mongoUri();
  let client: MongoClient | undefined;
  let items: Collection<ItemDocument>;
  const database = `larder_explain_${process.pid}_${Date.now()}`;
  const LIMIT = 20;

  before(async function () {
    if (!uri) skipWithoutMongo(this);
    this.timeout(60_000);
    client = await MongoClient.connect(uri!);
    items = client.db(database).collection<ItemDocument>("items");
    await items.createIndexes(itemIndexes().map((index) => ({ ...index })));
    const documents: ItemDocument[] = [];
    for (const ns of ["a", "users", "z"]) {
      for (let i = 0; i < 500; i++) {
        const labels = [...NO_LABELS] as (ReturnType<typeof parseKey> | undefined)[];
        if (i % 3 === 0) labels[0] = parseKey(`team:t${String(i % 50).padStart(2, "0")}`);
        // 500 items share one label value: a continuation must not re-read the ties before it.
        if (ns === "users") labels[1] = parseKey("status:open");
        const item = {
          key: parseKey(`${ns}:k${String(i).padStart(4, "0")}`),
          value: { i },
          created: 1,
          modified: 1,
          labels: labels as unknown as LabelSlots,
          version: 1,
        };
        documents.push(encodeItem(item, { writeId: "seed", created: true }));
      }
    }
    await items.insertMany(documents);
  });

  after(async () => {
    await client?.db(database).dropDatabase();
    await client?.close();
  });

  /**
   * Every stage of a winning plan: through the slot-based engine's wrapper
   * (`queryPlan`, 6.3 to 7.0.16) and, behind mongos, through each shard's
   * plan (`shards[].winningPlan`; a test collection is unsharded, so one shard).
   */
  function stages(plan: Document | undefined, found: Document[] = []): Document[] {
    if (!plan) return found;
    if (plan.queryPlan) return stages(plan.queryPlan as Document, found);
    found.push(plan);
    stages(plan.inputStage as Document | undefined, found);
    for (const child of (plan.inputStages as Document[] | undefined) ?? []) stages(child, found);
    for (const shard of (plan.shards as Document[] | undefined) ?? []) stages(shard.winningPlan as Document | undefined, found);
    return found;
  }

  /** Explains each step of a plan with the limit the store would give it; returns what each examined. */
  async function explainPlan(plan: ReadPlan, expectedIndex: string) {
    expect(plan.length, "the plan reads something").to.be.greaterThan(0);
    let returned = 0;
    let keysExamined = 0;
    for (const shape of plan) {
      const wanted = LIMIT + 1 - returned;
      if (wanted <= 0) break;
      const explained = (await items.find(shape.filter).sort(shape.sort).hint(shape.hint).limit(wanted).explain("executionStats")) as Document;
      const winning = explained.queryPlanner.winningPlan as Document;
      const nodes = stages(winning);
      const names = nodes.map((node) => node.stage as string);
      expect(names, JSON.stringify(winning)).to.include("IXSCAN");
      expect(names, JSON.stringify(winning)).not.to.include("SORT");
      expect(nodes.filter((node) => node.stage === "IXSCAN").map((node) => node.indexName)).to.deep.equal([expectedIndex]);
      const stats = explained.executionStats as { totalKeysExamined: number; nReturned: number };
      expect(stats.totalKeysExamined, `keys examined by ${JSON.stringify(shape.filter)}`).to.be.at.most(stats.nReturned + 1);
      returned += stats.nReturned;
      keysExamined += stats.totalKeysExamined;
    }
    return { returned, keysExamined };
  }

  const keyCases: [string, boolean, string | undefined][] = [
    ["users:*", false, undefined],
    ["users:*", true, undefined],
    ["users:k01*", false, undefined],
    ["users:>k0100", false, undefined],
    ["users:<=k0400", true, undefined],
    ["users:k0100|k0300", false, "users:k0200"],
    ["users:k0100|k0300", true, "users:k0200"],
    ["users:*", false, "users:k0450"],
    ["users:k0007", false, undefined],
  ];
  for (const [expression, reverse, start] of keyCases) {
    it(`key query ${expression}${reverse ? " reverse" : ""}${start ? ` after ${start}` : ""}: IXSCAN on ${KEY_INDEX}, no SORT, ≤ limit + 1 keys`, async () => {
      const plan = keyQueryPlan(
        { range: parseKeyExpression(expression), reverse, limit: LIMIT + 1, after: start ? parseKey(start) : undefined },
        Date.now(),
      );
      expect(plan).to.have.length(1);
      const { returned, keysExamined } = await explainPlan(plan, KEY_INDEX);
      expect(returned).to.be.greaterThan(0);
      expect(keysExamined).to.be.at.most(LIMIT + 2);
    });
  }

  const labelCases: [string, string, boolean, [string, string] | undefined][] = [
    ["label1", "team:t1*", false, undefined],
    ["label1", "team:t1*", true, undefined],
    ["label1", "team:t1*", false, ["team:t12", "users:k0162"]],
    ["label1", "team:t1*", true, ["team:t12", "users:k0162"]],
    ["label2", "status:open", false, ["status:open", "users:k0400"]],
    ["label2", "status:open", true, ["status:open", "users:k0100"]],
  ];
  for (const [label, expression, reverse, start] of labelCases) {
    it(`label query ${label} ${expression}${reverse ? " reverse" : ""}${start ? ` after ${start.join(" / ")}` : ""}: IXSCAN on ${label}, no SORT, no re-reading of ties`, async () => {
      const slot = Number(label.slice(-1)) as 1 | 2;
      const after = start && { label: parseKey(start[0]), item: parseKey(start[1]) };
      const plan = labelQueryPlan({ label: slot, range: parseKeyExpression(expression), reverse, limit: LIMIT + 1, after }, Date.now());
      const { returned, keysExamined } = await explainPlan(plan, label);
      expect(returned).to.be.greaterThan(0);
      expect(keysExamined).to.be.at.most(LIMIT + 1 + plan.length);
    });
  }

  it("exact gets and batch gets read the key index (no collection scan), one namespace's batch in one IXSCAN", async () => {
    const now = Date.now();
    const batch = (...keys: string[]) =>
      batchGetFilter(
        keys.map((key) => parseKey(key)),
        now,
      );
    for (const [filter, scans] of [
      [{ ...keyFilter(parseKey("users:k0007")), ...liveFilter(now) }, 1],
      [batch("users:k0002", "users:k0400", "users:k0100", "users:nope"), 1],
      [batch("a:k0001", "users:k0002", "z:k0499", "z:k0001"), 3],
    ] as const) {
      const explained = (await items.find(filter).explain("executionStats")) as Document;
      const winning = explained.queryPlanner.winningPlan as Document;
      const nodes = stages(winning);
      expect(
        nodes.map((node) => node.stage),
        JSON.stringify(winning),
      ).not.to.include("COLLSCAN");
      const scanned = nodes.filter((node) => node.stage === "IXSCAN").map((node) => node.indexName);
      expect(scanned, JSON.stringify(winning)).to.deep.equal(Array(scans).fill(KEY_INDEX));
      const stats = explained.executionStats as { totalKeysExamined: number; nReturned: number };
      // Point intervals: each key looked up costs at most one key past it.
      expect(stats.totalKeysExamined).to.be.at.most(2 * (stats.nReturned + 1));
    }
  });

  it("scan continuations: key order and label order, late in a namespace, examine ≤ limit + steps keys", async () => {
    const byKey = await explainPlan(scanPlan({ after: parseKey("users:k0450") }, Date.now()), KEY_INDEX);
    expect(byKey.returned).to.equal(LIMIT + 1);
    expect(byKey.keysExamined).to.be.at.most(LIMIT + 3);
    const after = { label: parseKey("status:open"), item: parseKey("users:k0480") };
    const byLabel = await explainPlan(scanPlan({ label: 2, after }, Date.now()), "label2");
    expect(byLabel.keysExamined).to.be.at.most(LIMIT + 5);
  });

  it("a namespace step is one IXSCAN on the key index that skips the previous namespace's entries", async () => {
    for (const after of [undefined, "a", "users"]) {
      const step = namespaceStep(after, Date.now());
      const explained = (await items
        .find(step.filter, { projection: step.projection })
        .sort(step.sort)
        .hint(step.hint)
        .limit(1)
        .explain("executionStats")) as Document;
      const names = stages(explained.queryPlanner?.winningPlan as Document).map((stage) => stage.stage as string);
      expect(names).to.include("IXSCAN");
      expect(names).not.to.include("SORT");
      expect(names).not.to.include("COLLSCAN");
      const stats = explained.executionStats as { totalKeysExamined: number; nReturned: number };
      expect(stats.nReturned).to.equal(1);
      // The index bounds start past `after`: its 500 entries are never examined.
      expect(stats.totalKeysExamined).to.be.at.most(3);
    }
  });

  it("Count: an aggregate $count runs on the hinted index range (no COLLSCAN), and countDocuments gives the range's count", async () => {
    for (const [expression, label, index, expected] of [
      ["users:k01*", undefined, KEY_INDEX, 100],
      ["users:*", undefined, KEY_INDEX, 500],
      ["team:t1*", 1, "label1", 99],
      ["status:open", 2, "label2", 500],
    ] as const) {
      const shape = countRangeShape({ range: parseKeyExpression(expression), label }, Date.now())!;
      expect(await items.countDocuments(shape.filter, { hint: shape.hint })).to.equal(expected);
      const explained = (await items
        .aggregate([{ $match: shape.filter }, { $count: "n" }], { hint: shape.hint })
        .explain("executionStats")) as Document;
      const nodes = stages((explained.queryPlanner ?? explained.stages?.[0]?.$cursor?.queryPlanner)?.winningPlan as Document);
      expect(
        nodes.filter((node) => node.stage === "IXSCAN").map((node) => node.indexName),
        expression,
      ).to.deep.equal([index]);
      expect(nodes.map((node) => node.stage)).not.to.include("COLLSCAN");
    }
  });
});
