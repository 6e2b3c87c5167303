import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { expect } from "chai";
import { bulkChunks } from "../../core/bulk-chunks.js";
import { planSeed, planSet, type SetPlan } from "../../core/set-plan.js";
import { EmbeddedStore, type EmbeddedStoreOptions } from "../../services/stores/embedded/embedded-store.js";
import { REPO_ROOT } from "../support/server.js";
import { setInput } from "../support/set-input.js";

/**
 * Issue 16: a replace of the whole environment (seed with overwrite, import
 * with overwrite, clone) shows the old content or the new, never a mix: when
 * its source fails part-way, when the call is cancelled, and when the process
 * dies part-way. Its events are those a clear and then the writes would emit.
 */
describe("embedded engine: replaceAll is all or nothing (issue 16)", function () {
  this.timeout(60_000);
  const T = Date.UTC(2026, 11, 5);
  let dataDir: string;
  const options = (environment = "prod"): EmbeddedStoreOptions => ({
    dataDir,
    environment,
    durability: "normal",
    changeRetentionMs: 3_600_000,
  });
  const opened: EmbeddedStore[] = [];
  const open = (environment?: string) => {
    const store = new EmbeddedStore(options(environment));
    opened.push(store);
    return store;
  };
  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), "larder-bulk-"));
  });
  afterEach(async () => {
    for (const store of opened.splice(0)) if (store.isOpen) await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const newPlans = (count: number) =>
    planSeed(
      Array.from({ length: count }, (_, i) => setInput(`new:${String(i).padStart(5, "0")}`, { i }, { labels: [{ set: `tag:${i % 3}` }] })),
      T,
    );
  async function* chunksOf(plans: SetPlan[], failAfter?: number) {
    let given = 0;
    for (const chunk of bulkChunks(plans)) {
      if (failAfter !== undefined && given === failAfter) throw new Error("the source failed part-way");
      given++;
      yield chunk;
    }
  }
  async function seedOld(store: EmbeddedStore) {
    await store.set(planSet(setInput("old:a", 1, { labels: [{ set: "tag:x" }] }), T), T);
    await store.set(planSet(setInput("old:b", { deep: [1, 2] }, { ttl: { at: T + 60_000 } }), T), T);
    // Expired but not yet swept: its removal is an expired `deleted` (EV6), as a clear would say.
    await store.set(planSet(setInput("old:gone", 3, { ttl: { at: T + 10 } }), T), T);
    await store.set(planSet(setInput("simple", "s"), T), T);
  }
  const keysOf = async (store: EmbeddedStore, now = T + 100) =>
    (await store.scan({ limit: 100_000, maxBytes: Number.MAX_SAFE_INTEGER }, now)).items.map((item) => item.key.full);
  const changesOf = (store: EmbeddedStore, after = 0) =>
    store.readChanges(after, 1_000_000).map(({ name, item, previous, expired }) => ({ name, item, previous, expired }));

  it("replaces the content, with exactly the events a clear and then the writes emit", async () => {
    const plans = newPlans(350);
    const bulk = open("bulk");
    const twin = open("twin");
    for (const store of [bulk, twin]) await seedOld(store);
    const head = bulk.headSequence();
    expect(twin.headSequence()).to.equal(head);

    const now = T + 100;
    expect(await bulk.replaceAll(chunksOf(plans), now)).to.equal(350);
    await twin.clear(now);
    for (const chunk of bulkChunks(plans)) await twin.setMany(chunk, now);

    expect(await keysOf(bulk)).to.deep.equal(await keysOf(twin));
    expect(await keysOf(bulk)).to.have.length(350);
    expect(changesOf(bulk, head)).to.deep.equal(changesOf(twin, head));
    const deleted = changesOf(bulk, head).filter((change) => change.name === "deleted");
    expect(deleted.map((change) => [change.item.key.full, change.expired])).to.deep.equal([
      ["old:a", false],
      ["old:b", false],
      ["old:gone", true],
      ["simple", false],
    ]);
    expect(
      (
        await bulk.queryLabel(
          { label: 1, range: { ns: "tag", lower: { value: "", inclusive: true }, exact: false }, reverse: false, limit: 1000 },
          now,
        )
      ).items.length,
    ).to.equal(350);
  });

  it("without events it writes none, and an empty replace empties the environment", async () => {
    const store = open();
    await seedOld(store);
    const head = store.headSequence();
    await store.replaceAll(chunksOf(newPlans(10)), T + 100, { events: false });
    expect(store.headSequence()).to.equal(head);
    expect(await keysOf(store)).to.have.length(10);
    await store.replaceAll(chunksOf([]), T + 100);
    expect(await keysOf(store)).to.deep.equal([]);
    expect(changesOf(store, head).map((change) => change.name)).to.deep.equal(Array(10).fill("deleted"));
  });

  it("a source that fails part-way, or a cancelled call, changes nothing and leaves no staging behind", async () => {
    const store = open();
    await seedOld(store);
    const before = await keysOf(store);
    const head = store.headSequence();
    let failure: unknown;
    await store.replaceAll(chunksOf(newPlans(500), 3), T + 100).catch((error: unknown) => (failure = error));
    expect((failure as Error).message).to.equal("the source failed part-way");
    const abort = new AbortController();
    async function* thenCancel() {
      const chunks = bulkChunks(newPlans(500));
      yield chunks.next().value!;
      abort.abort(new DOMException("the call was cancelled", "AbortError"));
      yield* chunks;
    }
    failure = undefined;
    await store.replaceAll(thenCancel(), T + 100, { signal: abort.signal }).catch((error: unknown) => (failure = error));
    expect((failure as Error).name).to.equal("AbortError");
    expect(await keysOf(store)).to.deep.equal(before);
    expect(store.headSequence(), "no event was written").to.equal(head);
    // Staging lives in TEMP tables: none is left on the connection, nothing in the file.
    const tables = (store as unknown as { db: Database.Database }).db.prepare("SELECT name FROM temp.sqlite_master WHERE type = 'table'").all();
    expect(tables).to.deep.equal([]);
    // And the store works on: a replace after the failures succeeds.
    await store.replaceAll(chunksOf(newPlans(5)), T + 100);
    expect(await keysOf(store)).to.have.length(5);
  });

  it("readers see the old content until the swap; the event loop runs between chunks; a write made meanwhile is replaced with its event", async () => {
    const store = open();
    await seedOld(store);
    const plans = newPlans(1_000);
    const seen: number[] = [];
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 0);
    async function* watched() {
      let index = 0;
      for (const chunk of bulkChunks(plans)) {
        if (index === 3) {
          // A racing write, between chunks: readers see it with the old content.
          await store.set(planSet(setInput("racer:1", "raced"), T + 50), T + 50);
          seen.push((await keysOf(store)).length);
        }
        index++;
        yield chunk;
      }
    }
    try {
      const head = store.headSequence();
      await store.replaceAll(watched(), T + 100);
      expect(seen, "old content (3 live items) and the racing write, nothing new").to.deep.equal([4]);
      expect(ticks, "timers ran while the replace staged its chunks").to.be.above(3);
      expect(await keysOf(store)).to.have.length(1_000);
      const deleted = changesOf(store, head)
        .filter((change) => change.name === "deleted")
        .map((change) => change.item.key.full);
      expect(deleted).to.include("racer:1");
    } finally {
      clearInterval(ticker);
    }
  });

  it("a process killed part-way leaves the old content, whole, and a store that opens and works", async function () {
    const store = open();
    await seedOld(store);
    const before = await keysOf(store);
    const head = store.headSequence();
    await store.close();
    // A child process stages a large replace and is SIGKILLed after some chunks: staging is TEMP, the swap never began.
    const script = join(dataDir, "crash.mts");
    writeFileSync(
      script,
      `import { bulkChunks } from ${JSON.stringify(join(REPO_ROOT, "core/bulk-chunks.ts"))};
import { planSeed } from ${JSON.stringify(join(REPO_ROOT, "core/set-plan.ts"))};
import { EmbeddedStore } from ${JSON.stringify(join(REPO_ROOT, "services/stores/embedded/embedded-store.ts"))};
const store = new EmbeddedStore(${JSON.stringify(options())});
const T = ${T};
const plans = planSeed(Array.from({ length: 20000 }, (_, i) => ({ key: "new:" + i, value: { i }, unsetAttributes: [], overwrite: true, labels: [], removeNulls: true })), T);
let chunks = 0;
async function* source() {
  for (const chunk of bulkChunks(plans)) {
    if (++chunks === 20) process.kill(process.pid, "SIGKILL");
    yield chunk;
  }
}
await store.replaceAll(source(), T + 100);
console.log("finished without being killed");
`,
    );
    const child = spawn(process.execPath, ["--import", "tsx", script], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    const signal = await new Promise((resolve) => child.once("exit", (_code, signal) => resolve(signal)));
    expect(signal, output).to.equal("SIGKILL");
    const reopened = open();
    expect(await keysOf(reopened)).to.deep.equal(before);
    expect(reopened.headSequence()).to.equal(head);
    await reopened.replaceAll(chunksOf(newPlans(3)), T + 100);
    expect(await keysOf(reopened)).to.have.length(3);
  });
});
