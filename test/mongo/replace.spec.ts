import { expect } from "chai";
import { MongoClient } from "mongodb";
import pino from "pino";
import { bulkChunks } from "../../core/bulk-chunks.js";
import { planSeed, planSet, type SetPlan } from "../../core/set-plan.js";
import type { FeedEvent } from "../../services/feed/change-feed.js";
import { MongoStore } from "../../services/stores/mongodb/mongo-store.js";
import { setInput } from "../support/set-input.js";
import { mongoTitle, mongoUri, skipWithoutMongo } from "./mongo-support.js";

/**
 * Issue 16 on MongoDB: a replace is one transaction whatever its size (held
 * and rerunnable up to four chunks, streamed past them), all or nothing, and
 * its events are a `deleted` per old item, then a `created` per new one, or
 * none. Needs MONGODB_URI; skipped without it.
 */
describe(mongoTitle("MongoDB store: replaceAll is all or nothing"), function () {
  this.timeout(60_000);
  const database = `larder_replace_${process.pid}_${Date.now()}`;
  let client: MongoClient;
  let store: MongoStore;

  before(async function () {
    const uri = mongoUri();
    if (!uri) return skipWithoutMongo(this);
    client = await MongoClient.connect(uri);
    store = await MongoStore.open({
      client,
      db: client.db(database),
      environment: "replace-test",
      changeRetentionMs: 3_600_000,
      log: pino({ level: "silent" }),
    });
  });
  after(async () => {
    await store?.close();
    await client?.db(database).dropDatabase();
    await client?.close();
  });

  const now = () => Date.now();
  const plans = (prefix: string, count: number) =>
    planSeed(
      Array.from({ length: count }, (_, i) => setInput(`${prefix}:${String(i).padStart(3, "0")}`, { i }, { overwrite: true })),
      now(),
    );
  async function* chunks(all: SetPlan[], failAfter?: number) {
    let given = 0;
    for (const chunk of bulkChunks(all)) {
      if (given++ === failAfter) throw new Error("the source failed part-way");
      yield chunk;
    }
  }
  const keys = async () => (await store.scan({ limit: 10_000, maxBytes: Number.MAX_SAFE_INTEGER }, now())).items.map((item) => item.key.full);
  async function eventsAfter(token: string, count: number): Promise<FeedEvent[]> {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 10_000);
    const found: FeedEvent[] = [];
    try {
      for await (const event of store.feed.follow(token, abort.signal)) {
        found.push(event);
        if (found.length >= count) break;
      }
    } catch (error) {
      if (!abort.signal.aborted) throw error;
    } finally {
      clearTimeout(timer);
    }
    return found;
  }

  it("replaces in one transaction: every deleted, then every created; a failing source changes nothing", async () => {
    for (let i = 0; i < 3; i++) await store.set(planSet(setInput(`old:${i}`, i), now()), now());
    const head = await store.feed.head();
    let failure: unknown;
    await store.replaceAll(chunks(plans("new", 250), 2), now()).catch((error: unknown) => (failure = error));
    expect((failure as Error).message).to.equal("the source failed part-way");
    expect(await keys()).to.deep.equal(["old:0", "old:1", "old:2"]);
    expect(await store.replaceAll(chunks(plans("new", 250)), now())).to.equal(250);
    const found = await keys();
    expect(found).to.have.length(250);
    expect(found.every((key) => key.startsWith("new:"))).to.equal(true);
    const events = await eventsAfter(head, 253);
    expect(events.slice(0, 3).map((event) => [event.name, event.item.key.full])).to.deep.equal([
      ["deleted", "old:0"],
      ["deleted", "old:1"],
      ["deleted", "old:2"],
    ]);
    expect(events.slice(3).every((event) => event.name === "created")).to.equal(true);
  });

  it("a replace past four chunks streams through one transaction: a source failing in chunk 9 leaves the old content and no event", async () => {
    await store.replaceAll(chunks(plans("before", 30)), now());
    const head = await store.feed.head();
    let failure: unknown;
    await store.replaceAll(chunks(plans("large", 1_000), 8), now()).catch((error: unknown) => (failure = error));
    expect((failure as Error).message).to.equal("the source failed part-way");
    const found = await keys();
    expect(found).to.have.length(30);
    expect(found.every((key) => key.startsWith("before:"))).to.equal(true);
    expect(await store.replaceAll(chunks(plans("large", 1_000)), now())).to.equal(1_000);
    const events = await eventsAfter(head, 1_030);
    expect(events.slice(0, 30).every((event) => event.name === "deleted" && event.item.key.full.startsWith("before:"))).to.equal(true);
    expect(events.slice(30).every((event) => event.name === "created" && event.item.key.full.startsWith("large:"))).to.equal(true);
    expect(await keys()).to.have.length(1_000);
  });

  it("without events it emits none; an empty replace empties the environment", async () => {
    await store.replaceAll(chunks(plans("quiet", 20)), now(), { events: false });
    const head = await store.feed.head();
    await store.replaceAll(chunks([]), now(), { events: false });
    expect(await keys()).to.deep.equal([]);
    await store.set(planSet(setInput("after:1", 1), now()), now());
    const [next] = await eventsAfter(head, 1);
    expect([next.name, next.item.key.full]).to.deep.equal(["created", "after:1"]);
  });
});
