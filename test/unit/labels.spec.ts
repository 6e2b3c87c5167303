import { expect } from "chai";
import fc from "fast-check";
import { LABEL_NAMES, LABEL_NUMBERS, labelsOf, namedLabels, NO_LABELS, type ItemRecord } from "../../core/item.js";
import { parseKey } from "../../core/keys.js";
import { parseLabelName } from "../../core/limits.js";
import { planSet } from "../../core/set-plan.js";
import { SCHEMA } from "../../services/stores/embedded/schema.js";
import { encodeItem } from "../../services/stores/mongodb/codec.js";
import { itemIndexes } from "../../services/stores/mongodb/queries.js";
import { setUpdate, sizeExpression } from "../../services/stores/mongodb/updates.js";

/**
 * The five label slots (L1) are defined once, in core/item.ts, and every
 * table, index, document and message derives its label fields from there.
 * What the derivations produce is pinned here as it was when each was
 * written out by hand: the same SQL, the same MongoDB index specs, update
 * stages and documents, byte for byte (JSON text, so field order counts).
 */
describe("label slots, defined once", () => {
  const T = 1_700_000_000_000;

  it("L1: five slots, label1 to label5, in slot order", () => {
    expect([...LABEL_NUMBERS]).to.deep.equal([1, 2, 3, 4, 5]);
    expect(LABEL_NAMES).to.deep.equal(["label1", "label2", "label3", "label4", "label5"]);
    expect(NO_LABELS).to.deep.equal([undefined, undefined, undefined, undefined, undefined]);
  });

  it("L4: a label is named `label1`..`label5` or by its bare digit, nothing else", () => {
    const accepted = (name: string) => {
      try {
        return parseLabelName(name);
      } catch {
        return undefined;
      }
    };
    expect(["1", "label1", "5", "label5"].map(accepted)).to.deep.equal([1, 1, 5, 5]);
    expect(["0", "6", "label6", "Label1", " label1", "label1\n", "label", "l1", "label01", ""].map(accepted)).to.deep.equal(
      Array(10).fill(undefined),
    );
    const text = fc
      .tuple(
        fc.constantFrom("", "label", "Label", "labe", " "),
        fc.constantFrom("", "0", "1", "3", "5", "6", "12"),
        fc.constantFrom("", " ", "\n", "x"),
      )
      .map((parts) => parts.join(""));
    fc.assert(
      fc.property(text, (name) => {
        const match = /^(?:label)?([1-5])$/.exec(name);
        expect(accepted(name), JSON.stringify(name)).to.equal(match ? Number(match[1]) : undefined);
      }),
      { numRuns: 500 },
    );
  });

  it("a message's label1..label5 fields and the slots convert both ways, each in its own slot", () => {
    const message = { label2: "b", label5: "e", other: "x" };
    expect(labelsOf(message)).to.deep.equal([undefined, "b", undefined, undefined, "e"]);
    expect(namedLabels(labelsOf(message), (label) => label?.toUpperCase())).to.deep.equal({
      label1: undefined,
      label2: "B",
      label3: undefined,
      label4: undefined,
      label5: "E",
    });
  });

  it("SQLite: the label columns and their indexes are the statements they were", () => {
    expect(SCHEMA).to.contain(
      `  expires INTEGER,
  l1ns TEXT, l1part TEXT,
  l2ns TEXT, l2part TEXT,
  l3ns TEXT, l3part TEXT,
  l4ns TEXT, l4part TEXT,
  l5ns TEXT, l5part TEXT,
  seg INTEGER NOT NULL,`,
    );
    expect(SCHEMA).to.contain(
      `) WITHOUT ROWID;
DROP INDEX IF EXISTS items_label1;
DROP INDEX IF EXISTS items_label2;
DROP INDEX IF EXISTS items_label3;
DROP INDEX IF EXISTS items_label4;
DROP INDEX IF EXISTS items_label5;
CREATE INDEX IF NOT EXISTS items_live_label1 ON items (l1ns, l1part, ns, part, expires) WHERE l1ns IS NOT NULL;
CREATE INDEX IF NOT EXISTS items_live_label2 ON items (l2ns, l2part, ns, part, expires) WHERE l2ns IS NOT NULL;
CREATE INDEX IF NOT EXISTS items_live_label3 ON items (l3ns, l3part, ns, part, expires) WHERE l3ns IS NOT NULL;
CREATE INDEX IF NOT EXISTS items_live_label4 ON items (l4ns, l4part, ns, part, expires) WHERE l4ns IS NOT NULL;
CREATE INDEX IF NOT EXISTS items_live_label5 ON items (l5ns, l5part, ns, part, expires) WHERE l5ns IS NOT NULL;
CREATE INDEX IF NOT EXISTS items_live_keys ON items (ns, part, expires);`,
    );
  });

  it("MongoDB: the item indexes are the specs they were", () => {
    const label = (n: number) =>
      `{"key":{"l${n}ns":1,"l${n}part":1,"ns":1,"part":1},"name":"label${n}","partialFilterExpression":{"l${n}ns":{"$exists":true}}}`;
    expect(JSON.stringify(itemIndexes())).to.equal(
      `[{"key":{"ns":1,"part":1},"name":"ns_1_part_1","unique":true},${[1, 2, 3, 4, 5].map(label).join(",")},` +
        `{"key":{"expires":1},"name":"expires_ttl","expireAfterSeconds":0}]`,
    );
  });

  it("MongoDB: a set's label fields in the update pipeline are the ones they were, in slot order", () => {
    const plan = planSet(
      {
        key: "a:b",
        value: { x: 1 },
        unsetAttributes: [],
        overwrite: false,
        labels: [{ set: "c:d" }, { setIfAbsent: 'e"f' }, { remove: true }, undefined, { set: "g" }],
        removeNulls: true,
      },
      T,
    );
    const stage = findObjectWith(setUpdate(plan, T, "w1").pipeline, "l1ns")!;
    const keys = Object.keys(stage);
    const from = keys.indexOf("l1ns");
    const labelFields = Object.fromEntries(keys.slice(from, from + 15).map((name) => [name, stage[name]]));
    const present = '{"$and":["$_live",{"$ne":[{"$type":"$l2ns"},"missing"]}]}';
    expect(JSON.stringify(labelFields)).to.equal(
      '{"l1ns":{"$literal":"c"},"l1part":{"$literal":"d"},"l1e":"$$REMOVE",' +
        `"l2ns":{"$cond":[${present},"$l2ns",{"$literal":"e\\"f"}]},"l2part":{"$cond":[${present},"$l2part",{"$literal":""}]},` +
        `"l2e":{"$cond":[${present},"$l2e",1]},` +
        '"l3ns":"$$REMOVE","l3part":"$$REMOVE","l3e":"$$REMOVE",' +
        '"l4ns":{"$cond":["$_live","$l4ns","$$REMOVE"]},"l4part":{"$cond":["$_live","$l4part","$$REMOVE"]},"l4e":{"$cond":["$_live","$l4e","$$REMOVE"]},' +
        '"l5ns":{"$literal":"g"},"l5part":{"$literal":""},"l5e":"$$REMOVE"}',
    );
    // V8's size expression ends with one term per slot, label1 first.
    const terms = (sizeExpression(plan) as { $add: unknown[] }).$add.slice(-5).map((term) => JSON.stringify(term));
    terms.forEach((term, slot) => {
      expect(term).to.contain(`"$l${slot + 1}ns"`);
      expect(term).not.to.contain(`"$l${((slot + 1) % 5) + 1}ns"`);
    });
  });

  it("MongoDB: an encoded item stores each label's fields where they were", () => {
    const item: ItemRecord = {
      key: parseKey("a:b"),
      value: { x: 1 },
      created: T,
      modified: T,
      labels: [parseKey("c:d"), undefined, parseKey('x"y'), undefined, parseKey("z")],
      version: 3,
    };
    expect(JSON.stringify(encodeItem(item, { writeId: "w", created: true }))).to.equal(
      '{"ns":"a","part":"b","vt":"o","vo":[{"k":"x","n":1}],"created":"2023-11-14T22:13:20.000Z","modified":"2023-11-14T22:13:20.000Z",' +
        '"seg":146638144,"ver":3,"l1ns":"c","l1part":"d","l3ns":"x\\"y","l3part":"","l3e":1,"l5ns":"z","l5part":"","_w":"w","_n":true}',
    );
  });
});

function findObjectWith(value: unknown, field: string): Record<string, unknown> | undefined {
  if (value === null || typeof value !== "object") return undefined;
  if (!Array.isArray(value) && field in value) return value as Record<string, unknown>;
  for (const nested of Object.values(value)) {
    const found = findObjectWith(nested, field);
    if (found) return found;
  }
  return undefined;
}
