import { expect } from "chai";
import { MongoClient, type CommandStartedEvent, type Document } from "mongodb";
import pino from "pino";
import { DomainError } from "../../core/errors.js";
import { NO_LABELS } from "../../core/item.js";
import type { JsonValue } from "../../core/json.js";
import { parseKey } from "../../core/keys.js";
import { planAdd, planSet, type SetInput } from "../../core/set-plan.js";
import { itemSize, MAX_ITEM_BYTES } from "../../core/values.js";
import type { FeedEvent } from "../../services/feed/change-feed.js";
import { COLLECTIONS, type ItemDocument } from "../../services/stores/mongodb/codec.js";
import { openMongoEngine, sweepTime } from "../../services/stores/mongodb/mongo-engine.js";
import { MongoStore } from "../../services/stores/mongodb/mongo-store.js";
import { TTL_INDEX } from "../../services/stores/mongodb/queries.js";
import { mongoTitle, mongoUri, skipWithoutMongo } from "./mongo-support.js";
import { setInput as input } from "../support/set-input.js";
import { sleep } from "../support/async.js";

/**
 * The MongoDB store against a real replica set, for what the contract suite
 * (which runs the same rules over gRPC) does not show: that a refused write
 * is a true no-op, that V8's line is the embedded engine's to the byte, that
 * counters stay doubles, that writes without events emit none, and that an
 * old token catches up from the oplog. Needs MONGODB_URI; skipped without it.
 */
describe(mongoTitle("MongoDB store against a real server"), function () {
  this.timeout(60_000);
  const log = pino({ level: "silent" });
  const database = `larder_store_${process.pid}_${Date.now()}`;
  let client: MongoClient;
  let store: MongoStore;

  const set = (key: string, value: JsonValue | undefined, options: Partial<SetInput> = {}) => {
    const now = Date.now();
    return store.set(planSet(input(key, value, options), now), now);
  };
  const raw = (key: string) =>
    client
      .db(database)
      .collection<ItemDocument>(COLLECTIONS.items)
      .findOne({ ns: parseKey(key).ns, part: parseKey(key).part });

  async function events(token: string, count: number, timeoutMs = 10_000): Promise<FeedEvent[]> {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    const found: FeedEvent[] = [];
    try {
      for await (const event of store.feed.follow(token, abort.signal)) {
        found.push(event);
        if (found.length >= count) break;
      }
    } finally {
      clearTimeout(timer);
    }
    return found;
  }

  async function failure(call: Promise<unknown>): Promise<DomainError> {
    try {
      await call;
    } catch (error) {
      expect(error).to.be.instanceOf(DomainError);
      return error as DomainError;
    }
    throw new Error("the call should have failed");
  }

  before(async function () {
    const uri = mongoUri();
    if (!uri) return skipWithoutMongo(this);
    // monitorCommands: the counter test reads which updates the store sent.
    client = await MongoClient.connect(uri, { monitorCommands: true });
    store = await MongoStore.open({
      client,
      db: client.db(database),
      environment: "store-test",
      changeRetentionMs: 3_600_000,
      log,
      watchMaxLag: 8,
    });
  });

  after(async () => {
    await store?.close();
    await client?.db(database).dropDatabase();
    await client?.close();
  });

  it("V5: a refused write is a true no-op (the document is byte for byte the same, and no event is emitted)", async () => {
    await set("noop:a", { a: 1 });
    const before = await raw("noop:a");
    const head = await store.feed.head();
    const refused = await failure(set("noop:a", "text"));
    expect([refused.code, refused.reason]).to.deep.equal(["FAILED_PRECONDITION", "NOT_A_SIMPLE_VALUE"]);
    expect(await raw("noop:a")).to.deep.equal(before);
    await set("noop:a", { b: 2 });
    const [next] = await events(head, 1);
    expect([next.name, next.item.value, next.previous?.value]).to.deep.equal(["updated", { a: 1, b: 2 }, { a: 1 }]);
  });

  it("V8: a merge to exactly 400 KB is written and one byte more is refused, as on the embedded engine", async () => {
    const a = "x".repeat(200_000);
    const key = parseKey("v8:k");
    const fill = (extra: number) => "y".repeat(MAX_ITEM_BYTES - itemSize(key, { a, b: "" }, NO_LABELS) + extra);
    await set("v8:k", { a });
    const tooBig = await failure(set("v8:k", { b: fill(1) }));
    expect([tooBig.code, tooBig.reason, tooBig.message]).to.deep.equal([
      "FAILED_PRECONDITION",
      "ITEM_TOO_LARGE",
      "Item size of 400.00 KB is greater than the maximum size of 400 KB.",
    ]);
    const written = await set("v8:k", { b: fill(0) });
    expect(itemSize(key, written.item.value, NO_LABELS)).to.equal(MAX_ITEM_BYTES);
  });

  it("V8: with a non-integer counter the pipeline's bound is above the exact size, and the exact path still writes", async () => {
    const key = parseKey("v8:c");
    const a = "x".repeat(200_000);
    await set("v8:c", { a, c: 0.1 });
    const b = "y".repeat(MAX_ITEM_BYTES - itemSize(key, { a, c: 0.1, b: "" }, NO_LABELS));
    const written = await set("v8:c", { b });
    expect(itemSize(key, written.item.value, NO_LABELS)).to.equal(MAX_ITEM_BYTES);
    expect((await store.get(key, Date.now()))?.value).to.deep.equal({ a, c: 0.1, b });
  });

  it("A6: counters add in doubles, past 2^31 without becoming int64, and 0.1 + 0.2 as JavaScript does", async () => {
    const add = (key: string, amount: number, attribute?: string) => {
      const now = Date.now();
      return store.set(planAdd({ key, amount, attribute, overwrite: false }, now), now);
    };
    await add("a6:big", 2 ** 31 - 1);
    expect((await add("a6:big", 1)).item.value).to.equal(2 ** 31);
    expect((await add("a6:big", 2 ** 53)).item.value).to.equal(2 ** 31 + 2 ** 53);
    await add("a6:frac", 0.1, "n");
    expect((await add("a6:frac", 0.2, "n")).item.value).to.deep.equal({ n: 0.1 + 0.2 });
  });

  it("AD1/A1: a counter on a live number is one $inc; a new counter and a refusal are the pipeline's; events as ever", async () => {
    const add = (key: string, amount: number, attribute?: string) => {
      const now = Date.now();
      return store.set(planAdd({ key, amount, attribute, overwrite: false }, now), now);
    };
    const sent: string[] = [];
    const record = (event: CommandStartedEvent) => {
      if (event.commandName !== "findAndModify" || event.command.findAndModify !== COLLECTIONS.items) return;
      const update = event.command.update as Document | Document[];
      sent.push(Array.isArray(update) ? "pipeline" : Object.keys(update)[0]);
    };
    const head = await store.feed.head();
    client.on("commandStarted", record);
    try {
      expect((await add("inc:n", 5)).item.value).to.equal(5);
      expect((await add("inc:n", 2)).item.value).to.equal(7);
      expect((await add("inc:o", 1, "views")).item.value).to.deep.equal({ views: 1 });
      expect((await add("inc:o", 2, "views")).item.value).to.deep.equal({ views: 3 });
      await set("inc:s", "text");
      const refused = await failure(add("inc:s", 1));
      expect([refused.code, refused.reason]).to.deep.equal(["FAILED_PRECONDITION", "NOT_A_NUMBER"]);
    } finally {
      client.off("commandStarted", record);
    }
    expect(sent).to.deep.equal(["$inc", "pipeline", "$inc", "$inc", "pipeline", "$inc", "pipeline", "$inc", "pipeline"]);
    expect((await raw("inc:n"))?.vs?.n).to.equal(7);
    await set("inc:sentinel", 1);
    const seen = (await events(head, 6)).map((event) => [event.name, event.item.key.full, event.item.value, event.previous?.value]);
    expect(seen).to.deep.equal([
      ["created", "inc:n", 5, undefined],
      ["updated", "inc:n", 7, 5],
      ["created", "inc:o", { views: 1 }, undefined],
      ["updated", "inc:o", { views: 3 }, { views: 1 }],
      ["created", "inc:s", "text", undefined],
      ["created", "inc:sentinel", 1, undefined],
    ]);
  });

  it("E1/AD6: on a new key, of 20 concurrent exists:false sets exactly one succeeds, and 50 concurrent adds make 50", async () => {
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => set("race:e1", i, { exists: false })));
    expect(results.filter((result) => result.status === "fulfilled")).to.have.length(1);
    for (const result of results) {
      if (result.status === "rejected") expect((result.reason as DomainError).reason).to.equal("ITEM_EXISTS");
    }
    await Promise.all(
      Array.from({ length: 50 }, () => {
        const now = Date.now();
        return store.set(planAdd({ key: "race:ad6", amount: 1, overwrite: false }, now), now);
      }),
    );
    expect((await store.get(parseKey("race:ad6"), Date.now()))?.value).to.equal(50);
  });

  it("head() comes after every acknowledged write; events carry item, previous and the time", async () => {
    await set("head:before", 1);
    const head = await store.feed.head();
    await set("head:after", 2);
    await set("head:after", 3);
    const [created, updated] = await events(head, 2);
    expect([created.name, created.item.key.full, updated.name, updated.previous?.value, updated.item.value]).to.deep.equal([
      "created",
      "head:after",
      "updated",
      2,
      3,
    ]);
    expect(Math.abs(updated.time - Date.now())).to.be.below(30_000);
  });

  it("writes without events (WriteOptions.events === false) emit none; later normal changes to those items do", async () => {
    const head = await store.feed.head();
    const now = Date.now();
    await store.setMany([planSet(input("q:1", 1, { overwrite: true }), now), planSet(input("q:2", 2, { overwrite: true }), now)], now, {
      events: false,
    });
    await set("q:3", 3);
    expect(await store.remove([parseKey("q:1")], Date.now())).to.deep.equal([parseKey("q:1")]);
    await store.clear(Date.now(), { events: false });
    await set("q:4", 4);
    const seen = await events(head, 3);
    expect(seen.map((event) => [event.name, event.item.key.full])).to.deep.equal([
      ["created", "q:3"],
      ["deleted", "q:1"],
      ["created", "q:4"],
    ]);
  });

  it("EV6: a write whose ttl has passed is created then deleted (expired); the sweep's deletes are marked expired", async () => {
    const head = await store.feed.head();
    await set("ttl:past", 1, { ttl: { seconds: -1 } });
    await set("ttl:soon", 1, { ttl: { seconds: 1 } });
    // The sweep deletes what both clocks find expired: sweep until MongoDB's clock agrees too
    // (or the TTL monitor was quicker, and there is nothing left to delete).
    let swept = 0;
    for (let tries = 0; tries < 50 && (await raw("ttl:soon")) !== null; tries++) {
      await sleep(200);
      swept += await store.purgeExpired(await sweepTime(client, Date.now()));
    }
    expect(swept).to.be.at.most(1);
    expect(await raw("ttl:soon"), "deleted within 10 s").to.equal(null);
    const seen = await events(head, 4);
    expect(seen.map((event) => [event.name, event.item.key.full, event.expired ?? false])).to.deep.equal([
      ["created", "ttl:past", false],
      ["deleted", "ttl:past", true],
      ["created", "ttl:soon", false],
      ["deleted", "ttl:soon", true],
    ]);
    expect(await raw("ttl:past")).to.equal(null);
  });

  it("an old token (beyond the in-memory ring) catches up from the oplog, then joins the ring, nothing lost or repeated", async () => {
    const head = await store.feed.head();
    for (let i = 0; i < 30; i++) await set(`old:${String(i).padStart(2, "0")}`, i);
    const all = await events(head, 30);
    expect(all.map((event) => event.item.key.full)).to.deep.equal(Array.from({ length: 30 }, (_, i) => `old:${String(i).padStart(2, "0")}`));
    const rest = await events(all[3].token, 26);
    expect(rest.map((event) => event.id)).to.deep.equal(all.slice(4).map((event) => event.id));
    await set("old:late", 1);
    const joined = await events(all[29].token, 1);
    expect(joined.map((event) => event.item.key.full)).to.deep.equal(["old:late"]);
  });

  it("BS3: a batch that fails on one item writes none of them", async () => {
    const now = Date.now();
    const plans = [planSet(input("bs3:a", 1, { overwrite: true }), now), planSet(input("bs3:missing", 1, { exists: true }), now)];
    const refused = await failure(store.setMany(plans, now));
    expect(refused.reason).to.equal("ITEM_NOT_FOUND");
    expect(await store.get(parseKey("bs3:a"), Date.now())).to.equal(undefined);
  });

  it("R5: remove reports only keys that held a live item", async () => {
    await set("rm:a", 1);
    await set("rm:b", 1, { ttl: { seconds: 1 } });
    await sleep(1_100);
    const removed = await store.remove([parseKey("rm:a"), parseKey("rm:b"), parseKey("rm:none")], Date.now());
    expect(removed.map((key) => key.full)).to.deep.equal(["rm:a"]);
  });

  it("the engine accepts this deployment, lists environments by prefix and drops them", async () => {
    const prefix = `larder_engine_${process.pid}_`;
    const engine = await openMongoEngine({ uri: mongoUri()!, dbPrefix: prefix, changeRetentionMs: 60_000 }, log);
    try {
      await engine.environment("alpha");
      expect(await engine.list()).to.include("alpha");
      await engine.drop("alpha");
      expect(await engine.list()).not.to.include("alpha");
    } finally {
      await engine.close();
    }
  });

  describe("preparing an environment's collection", () => {
    /** Opens a store on a fresh database with a client that records every command it sends. */
    async function prepared(setUp?: (db: ReturnType<MongoClient["db"]>) => Promise<unknown>) {
      const name = `larder_prep_${process.pid}_${Date.now()}`;
      const watched = await MongoClient.connect(mongoUri()!, { monitorCommands: true });
      const commands: string[] = [];
      watched.on("commandStarted", (event) => commands.push(event.commandName));
      try {
        await setUp?.(watched.db(name));
        const prepared = await MongoStore.open({ client: watched, db: watched.db(name), environment: "prep", changeRetentionMs: 60_000, log });
        await prepared.close();
        const [info] = await watched.db(name).listCollections({ name: COLLECTIONS.items }).toArray();
        return { commands, options: (info as { options?: Document }).options };
      } finally {
        await watched.db(name).dropDatabase();
        await watched.close();
      }
    }

    it("a new one is created with pre- and post-images and needs no collMod (a readWrite user can open it)", async () => {
      const { commands, options } = await prepared();
      expect(commands).to.include("create");
      expect(commands, "collMod needs dbAdmin").not.to.include("collMod");
      expect(options?.changeStreamPreAndPostImages).to.deep.equal({ enabled: true });
    });

    it("one made elsewhere without pre- and post-images gets them with one collMod", async () => {
      const { commands, options } = await prepared((db) => db.createCollection(COLLECTIONS.items));
      expect(commands.filter((name) => name === "collMod")).to.have.length(1);
      expect(options?.changeStreamPreAndPostImages).to.deep.equal({ enabled: true });
    });

    it("an index of Larder's name with another definition is refused with the index to drop", async () => {
      const refused = await prepared((db) =>
        db.collection(COLLECTIONS.items).createIndex({ expires: 1 }, { name: TTL_INDEX, expireAfterSeconds: 3600 }),
      ).catch((error: Error) => error);
      expect((refused as Error).message)
        .to.contain("another definition")
        .and.contain("dropIndex");
    });

    it("one with a collation is refused (K7 needs binary string order)", async () => {
      const refused = await prepared((db) => db.createCollection(COLLECTIONS.items, { collation: { locale: "en" } })).catch((error: Error) => error);
      expect((refused as Error).message).to.contain("has the collation 'en'");
    });
  });
});
