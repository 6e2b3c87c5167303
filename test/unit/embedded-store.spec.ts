import Database from "better-sqlite3";
import { expect } from "chai";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseKeyExpression } from "../../core/expressions.js";
import { parseKey } from "../../core/keys.js";
import { planSet } from "../../core/set-plan.js";
import { EmbeddedStore, type EmbeddedStoreOptions } from "../../services/stores/embedded/embedded-store.js";
import { countStatement, namespacesStatement } from "../../services/stores/embedded/statements.js";
import { setInput } from "../support/set-input.js";
import { sleep } from "../support/async.js";

/** The embedded engine's own SQL, where the contract suite cannot see it: plans, migrations, clocks. */
describe("embedded engine", () => {
  let dataDir: string;
  let store: EmbeddedStore;
  const options = (): EmbeddedStoreOptions => ({
    dataDir,
    environment: "prod",
    durability: "normal",
    changeRetentionMs: 3_600_000,
  });
  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), "larder-embedded-"));
    store = new EmbeddedStore(options());
  });
  afterEach(async () => {
    if (store.isOpen) await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  describe("versions", () => {
    it("a file made before versions gets the column at open; its items are at version 1 and go on from there", async () => {
      const T = Date.now();
      await store.set(planSet(setInput("k:a", 1), T), T);
      await store.close();
      const db = new Database(join(dataDir, "prod.sqlite"));
      // The table as files before versions have it: no version column.
      db.exec("ALTER TABLE items DROP COLUMN version");
      db.close();
      store = new EmbeddedStore(options());
      expect((await store.get(parseKey("k:a"), T))?.version).to.equal(1);
      const outcome = await store.set(planSet(setInput("k:a", 2, { ifVersion: 1 }), T), T);
      expect(outcome.item.version).to.equal(2);
      expect((await store.get(parseKey("k:a"), T))?.version).to.equal(2);
    });
  });

  describe("History and asOf", () => {
    const write = (key: string, value: number) => {
      const now = Date.now();
      return store.set(planSet(setInput(key, value), now), now);
    };
    const tick = () => sleep(5);

    it("a file made before the change log had keys gets the column (from each change's body) and its index at open", async () => {
      await write("k:a", 1);
      await write("k:b", 1);
      await write("k:a", 2);
      await store.close();
      const db = new Database(join(dataDir, "prod.sqlite"));
      // The log as files before it had keys: no key column, no index on it.
      db.exec("DROP INDEX changes_key; ALTER TABLE changes DROP COLUMN key");
      db.close();
      store = new EmbeddedStore(options());
      const { entries } = await store.history({ key: parseKey("k:a"), limit: 10 }, Date.now());
      expect(entries.map((entry) => [entry.name, entry.item.value])).to.deep.equal([
        ["updated", 2],
        ["created", 1],
      ]);
      await store.close();
      const reopened = new Database(join(dataDir, "prod.sqlite"));
      try {
        const plan = (
          reopened
            .prepare("EXPLAIN QUERY PLAN SELECT seq, time, body FROM changes WHERE key = ? AND seq < ? ORDER BY seq DESC LIMIT 2")
            .all("k:a", 99) as { detail: string }[]
        ).map((row) => row.detail);
        expect(plan.join("\n")).to.match(/SEARCH changes USING INDEX changes_key \(key=\? AND seq<\?\)/);
      } finally {
        reopened.close();
      }
    });

    it("a prune's cutoff bounds asOf even when the retention is made longer afterwards: never an answer the log cannot give", async () => {
      await write("k:a", 1);
      await tick();
      const between = Date.now();
      await tick();
      await write("k:a", 2);
      await tick();
      store.pruneChanges(Date.now());
      // A retention of an hour would cover `between`, but the changes before the cutoff are gone.
      let failure: unknown;
      await store.getAsOf(parseKey("k:a"), between, Date.now()).catch((error: unknown) => (failure = error));
      expect(failure).to.include({ code: "OUT_OF_RANGE", reason: "HISTORY_EXPIRED" });
      await store.close();
      store = new EmbeddedStore(options());
      failure = undefined;
      await store.getAsOf(parseKey("k:a"), between, Date.now()).catch((error: unknown) => (failure = error));
      expect(failure).to.include({ code: "OUT_OF_RANGE", reason: "HISTORY_EXPIRED" });
      // After the cutoff, nothing changed the item: the stored item is its state.
      await tick();
      expect((await store.getAsOf(parseKey("k:a"), Date.now(), Date.now()))?.value).to.equal(2);
    });

    it("a write without events (an import or clone that skips them) starts the history over after it: never a wrong asOf", async () => {
      await write("k:a", 1);
      await tick();
      const before = Date.now();
      await tick();
      const now = Date.now();
      await store.setMany([planSet(setInput("k:a", 2), now)], now, { events: false });
      await tick();
      let failure: unknown;
      await store.getAsOf(parseKey("k:a"), before, Date.now()).catch((error: unknown) => (failure = error));
      expect(failure).to.include({ code: "OUT_OF_RANGE", reason: "HISTORY_EXPIRED" });
      expect((await store.getAsOf(parseKey("k:a"), Date.now(), Date.now()))?.value).to.equal(2);
      expect(await store.history({ key: parseKey("k:a"), limit: 10 }, Date.now())).to.deep.equal({ entries: [], more: false });
      await store.replaceAll(
        (async function* () {
          yield [planSet(setInput("k:b", 1), now)];
        })(),
        now,
        { events: false },
      );
      await tick();
      expect(await store.getAsOf(parseKey("k:a"), Date.now(), Date.now())).to.equal(undefined);
    });

    it("a page stops at its byte budget, measured on the stored change before decoding: never empty, and says more follow", async () => {
      for (let n = 1; n <= 3; n++) await write("k:big", n);
      const key = parseKey("k:big");
      const first = await store.history({ key, limit: 10, maxBytes: 1 }, Date.now());
      expect([first.entries.map((entry) => entry.item.value), first.more]).to.deep.equal([[3], true]);
      const rest = await store.history({ key, limit: 10, before: first.entries[0].position }, Date.now());
      expect([rest.entries.map((entry) => entry.item.value), rest.more]).to.deep.equal([[2, 1], false]);
      const exact = await store.history({ key, limit: 3 }, Date.now());
      expect([exact.entries.length, exact.more]).to.deep.equal([3, false]);
      const short = await store.history({ key, limit: 2 }, Date.now());
      expect([short.entries.length, short.more]).to.deep.equal([2, true]);
    });

    it("a seed that replaces the environment is in the history: the deleted items, then the new ones", async () => {
      await write("k:a", 1);
      const now = Date.now();
      await store.replaceAll(
        (async function* () {
          yield [planSet(setInput("k:a", 5), now)];
        })(),
        now,
      );
      const { entries } = await store.history({ key: parseKey("k:a"), limit: 10 }, Date.now());
      expect(entries.map((entry) => [entry.name, entry.item.value])).to.deep.equal([
        ["created", 5],
        ["deleted", 1],
        ["created", 1],
      ]);
    });
  });

  describe("Count", () => {
    const T = Date.UTC(2026, 11, 5);
    const write = (key: string, value: number, extra: Parameters<typeof setInput>[2] = {}) => store.set(planSet(setInput(key, value, extra), T), T);

    it("counts a key range and a label range, and never an item expired at `now` (T7) even before the sweeper ran", async () => {
      await write("users:a", 1, { labels: [{ set: "city:oslo" }] });
      await write("users:b", 2, { labels: [{ set: "city:oslo" }], ttl: { at: T + 1_000 } });
      await write("users:c", 3, { labels: [{ set: "city:rome" }] });
      await write("users", 4);
      await write("other:a", 5, { labels: [{ set: "city:oslo" }] });
      const count = (expression: string, now: number, label?: 1) => store.countRange({ range: parseKeyExpression(expression), label }, now);
      expect(await count("users:*", T)).to.equal(3);
      expect(await count("users:*", T + 1_000)).to.equal(2);
      expect(await count("users:a|b", T)).to.equal(2);
      expect(await count("users:>a", T + 5_000)).to.equal(1);
      expect(await count("users", T)).to.equal(1);
      expect(await count("city:*", T, 1)).to.equal(4);
      expect(await count("city:oslo", T, 1)).to.equal(3);
      expect(await count("city:oslo", T + 1_000, 1)).to.equal(2);
      expect(await count("city:r*", T, 1)).to.equal(1);
      expect(await count("nothing:*", T)).to.equal(0);
    });

    it("reads a covering index only, never the item rows (the values)", async () => {
      await store.close();
      const db = new Database(join(dataDir, "prod.sqlite"));
      try {
        for (const [expression, label] of [["users:*"], ["users:a|b"], ["users"], ["city:*", 2], ["city:x", 5]] as const) {
          const { sql, params } = countStatement({ range: parseKeyExpression(expression), label }, T);
          const plan = (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(params) as { detail: string }[]).map((row) => row.detail);
          expect(plan, `${expression} ${label ?? ""}`).to.have.length(1);
          expect(plan[0]).to.match(/^SEARCH items USING COVERING INDEX items_live_(keys|label[1-5]) \(/);
        }
      } finally {
        db.close();
      }
    });

    it("a file made before the covering label indexes gets them at open, and its old label indexes are dropped", async () => {
      await write("users:a", 1, { labels: [undefined, undefined, { set: "city:oslo" }] });
      await store.close();
      const db = new Database(join(dataDir, "prod.sqlite"));
      db.exec(
        "DROP INDEX items_live_label3; DROP INDEX items_live_keys; CREATE INDEX items_label3 ON items (l3ns, l3part, ns, part) WHERE l3ns IS NOT NULL",
      );
      db.close();
      store = new EmbeddedStore(options());
      expect(await store.countRange({ range: parseKeyExpression("city:*"), label: 3 }, T)).to.equal(1);
      await store.close();
      const reopened = new Database(join(dataDir, "prod.sqlite"));
      const names = (reopened.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'items'").all() as { name: string }[]).map(
        (row) => row.name,
      );
      reopened.close();
      expect(names).to.include.members(["items_live_keys", "items_live_label3"]);
      expect(names).to.not.include("items_label3");
    });
  });

  describe("Namespaces", () => {
    const T = Date.UTC(2026, 11, 5);
    const write = (key: string, extra: Parameters<typeof setInput>[2] = {}) => store.set(planSet(setInput(key, 1, extra), T), T);

    it("steps namespace to namespace, hiding simple keys (K8) and namespaces with only expired items (T7)", async () => {
      for (const key of ["b:1", "b:2", "b", "a:1", "c", "d:1", "e:1"]) await write(key);
      await write("d:2", { ttl: { at: T + 1_000 } });
      await write("dd:1", { ttl: { at: T + 1_000 } });
      const page = (limit: number, after?: string, now = T) => store.namespaces({ limit, after }, now);
      expect(await page(10)).to.deep.equal(["a", "b", "d", "dd", "e"]);
      expect(await page(10, undefined, T + 1_000)).to.deep.equal(["a", "b", "d", "e"]);
      expect(await page(2)).to.deep.equal(["a", "b"]);
      expect(await page(2, "b")).to.deep.equal(["d", "dd"]);
      expect(await page(2, "bz")).to.deep.equal(["d", "dd"]);
      expect(await page(5, "e")).to.deep.equal([]);
    });

    it("each step is a seek in the covering key index: no item row is read", async () => {
      await store.close();
      const db = new Database(join(dataDir, "prod.sqlite"));
      try {
        const { sql, params } = namespacesStatement({ limit: 10, after: "users" }, T);
        const plan = (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(params) as { detail: string }[]).map((row) => row.detail);
        expect(plan).to.include("SEARCH items USING COVERING INDEX items_live_keys (ns>?)");
        expect(plan.filter((detail) => /\bitems\b/.test(detail))).to.have.length(1);
      } finally {
        db.close();
      }
    });
  });
});
