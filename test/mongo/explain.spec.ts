import { expect } from "chai";
import { MongoClient, type Document } from "mongodb";
import { parseKeyExpression } from "../../services/domain/expressions.js";
import { parseKey } from "../../services/domain/keys.js";
import { encodeValue, type ItemDocument } from "../../services/stores/mongodb/codec.js";
import { itemIndexes, keyQueryShape, labelQueryShape, type ReadShape } from "../../services/stores/mongodb/queries.js";

/**
 * explain() on a real MongoDB: every key and label query, forward and
 * reverse, with and without a start, is one IXSCAN on the expected index
 * with no SORT stage, and simple ranges examine at most limit + 1 keys.
 * Needs MONGODB_URI (npm run test:mongo); without it the suite is skipped.
 */
describe("MongoDB: queries are single index range scans (explain)", function () {
  const uri = process.env.MONGODB_URI;
  let client: MongoClient | undefined;
  const database = `larder_explain_${process.pid}_${Date.now()}`;

  before(async function () {
    if (!uri) this.skip();
    this.timeout(60_000);
    client = await MongoClient.connect(uri!);
    const items = client.db(database).collection<ItemDocument>("items");
    await items.createIndexes(itemIndexes());
    const documents: ItemDocument[] = [];
    for (const ns of ["a", "users", "z"]) {
      for (let i = 0; i < 500; i++) {
        const part = `k${String(i).padStart(4, "0")}`;
        documents.push({
          ns,
          part,
          ...encodeValue({ i }),
          created: new Date(),
          modified: new Date(),
          seg: i,
          ...(i % 3 === 0 ? { l1ns: "team", l1part: `t${String(i % 50).padStart(2, "0")}` } : {}),
        });
      }
    }
    await items.insertMany(documents);
  });

  after(async () => {
    await client?.db(database).dropDatabase();
    await client?.close();
  });

  function stages(plan: Document): string[] {
    const found: string[] = [];
    const visit = (node: Document | undefined) => {
      if (!node) return;
      if (node.stage) found.push(node.stage as string);
      visit(node.inputStage as Document | undefined);
      for (const child of (node.inputStages as Document[] | undefined) ?? []) visit(child);
    };
    visit(plan);
    return found;
  }

  async function explain(shape: ReadShape, limit: number) {
    const items = client!.db(database).collection<ItemDocument>("items");
    const result = (await items.find(shape.filter).sort(shape.sort).hint(shape.hint).limit(limit).explain("executionStats")) as Document;
    const winning = result.queryPlanner.winningPlan as Document;
    return {
      stages: stages((winning.queryPlan as Document | undefined) ?? winning),
      indexes: JSON.stringify(winning).match(/"indexName":"([^"]+)"/g) ?? [],
      keysExamined: result.executionStats.totalKeysExamined as number,
      returned: result.executionStats.nReturned as number,
    };
  }

  const keyCases: [string, boolean, string | undefined][] = [
    ["users:*", false, undefined],
    ["users:*", true, undefined],
    ["users:k01*", false, undefined],
    ["users:>k0100", false, undefined],
    ["users:<=k0400", true, undefined],
    ["users:k0100|k0300", false, "users:k0200"],
    ["users:k0100|k0300", true, "users:k0200"],
  ];
  for (const [expression, reverse, start] of keyCases) {
    it(`${expression}${reverse ? " reverse" : ""}${start ? ` after ${start}` : ""}: IXSCAN on ns_1_part_1, no SORT, ≤ limit + 1 keys`, async () => {
      const limit = 20;
      const shape = keyQueryShape({ range: parseKeyExpression(expression), reverse, limit: limit + 1, after: start ? parseKey(start) : undefined }, Date.now());
      const plan = await explain(shape, limit + 1);
      expect(plan.stages).to.include("IXSCAN");
      expect(plan.stages).not.to.include("SORT");
      expect(plan.indexes.join()).to.contain("ns_1_part_1");
      expect(plan.returned).to.be.greaterThan(0);
      expect(plan.keysExamined).to.be.at.most(limit + 2);
    });
  }

  for (const reverse of [false, true]) {
    it(`label query${reverse ? " reverse" : ""} with a start: IXSCAN on label1, no SORT`, async () => {
      const shape = labelQueryShape(
        { label: 1, range: parseKeyExpression("team:t1*"), reverse, limit: 11, after: { label: parseKey("team:t12"), item: parseKey("users:k0100") } },
        Date.now(),
      );
      const plan = await explain(shape, 11);
      expect(plan.stages).to.include("IXSCAN");
      expect(plan.stages).not.to.include("SORT");
      expect(plan.indexes.join()).to.contain("label1");
    });
  }
});
