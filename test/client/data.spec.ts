import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { createData, LarderError, type LarderData } from "../../client/index.js";
import { generateKey } from "../../services/access/api-keys.js";
import { useServer } from "../support/server.js";
import { sleep } from "../support/async.js";
import { keysFile } from "../support/keys.js";

type Ready = LarderData;

describe("client against a live server", () => {
  const running = useServer();

  for (const transport of ["grpc", "connect"] as const) {
    it(`the ${transport} transport: set, get, a paged query with next(), add and remove`, async () => {
      const data = createData({ url: running.url, transport });
      await data.seed([], true);
      await data.set(
        [1, 2, 3, 4, 5].map((n) => ({ key: `t:${n}`, value: { n } })),
        { overwrite: true },
      );
      expect(await data.get("t:3")).to.deep.equal({ n: 3 });
      const seen: string[] = [];
      let page = await data.get<{ n: number }>("t:*", { limit: 2 });
      for (;;) {
        seen.push(...page.items.map((item) => item.key));
        if (!page.next) break;
        page = await page.next();
      }
      expect(seen).to.deep.equal(["t:1", "t:2", "t:3", "t:4", "t:5"]);
      expect(await data.add("t:count", 2)).to.equal(2);
      expect(await data.remove(["t:1", "t:count"])).to.equal(true);
      expect(await data.get("t:1")).to.equal(undefined);
      await data.close();
    });
  }

  it("count(expression) and count(label, expression) count live items from the index", async () => {
    const data = createData({ url: running.url });
    await data.seed([], true);
    await data.set("users:a", { n: 1 }, { label1: "city:oslo" });
    await data.set("users:b", { n: 2 }, { label1: "city:rome" });
    await data.set("users:c", { n: 3 }, { label1: "city:oslo", ttl: -1 });
    expect(await data.count("users:*")).to.equal(2);
    expect(await data.count("users:a|b")).to.equal(2);
    expect(await data.count("label1", "city:oslo")).to.equal(1);
    expect(await data.count("1", "city:*")).to.equal(2);
    expect(await data.count("label2", "city:*")).to.equal(0);
    expect(await data.count("users:*x").catch((error: unknown) => error)).to.include({ code: "INVALID_ARGUMENT", reason: "INVALID_EXPRESSION" });
    expect(await data.count("label9" as "label1", "city:*").catch((error: unknown) => error)).to.include({
      code: "INVALID_ARGUMENT",
      reason: "INVALID_LABEL",
    });
    await data.close();
  });

  it("versions: the meta form carries `version`; set, add and remove take `ifVersion`", async () => {
    const data = createData({ url: running.url });
    await data.seed([], true);
    const first = await data.set("doc:1", { title: "a" }, { meta: true });
    expect(first.version).to.equal(1);
    const second = await data.set("doc:1", { title: "b" }, { meta: true, ifVersion: first.version });
    expect(second.version).to.equal(2);
    const stale = await data.set("doc:1", { title: "c" }, { ifVersion: 1 }).catch((error: unknown) => error);
    expect(stale).to.be.instanceOf(LarderError).and.include({ code: "FAILED_PRECONDITION", reason: "VERSION_MISMATCH" });
    expect(await data.get("doc:1")).to.deep.equal({ title: "b" });
    expect(await data.add("doc:n", 1, { ifVersion: 0 })).to.equal(1);
    expect(await data.add("doc:n", 1, { ifVersion: 1, meta: true })).to.deep.include({ value: 2, version: 2 });
    expect(await data.remove("doc:1", { ifVersion: 1 }).catch((error: unknown) => error)).to.include({ reason: "VERSION_MISMATCH" });
    expect(await data.remove("doc:1", { ifVersion: 2 })).to.equal(true);
    expect(await data.get("doc:1")).to.equal(undefined);
    expect(await data.set("doc:2", 1, { ifVersion: -1 }).catch((error: unknown) => error)).to.include({
      code: "INVALID_ARGUMENT",
      reason: "INVALID_OPTION",
    });
    const events: unknown[] = [];
    data.on("updated:doc:*", (event) => void events.push([event.item.version, event.previous.version]));
    await data.set("doc:3", 1);
    await data.set("doc:3", 2);
    const deadline = Date.now() + 5_000;
    while (events.length === 0 && Date.now() < deadline) await sleep(10);
    expect(events).to.deep.equal([[2, 1]]);
    await data.close();
  });

  it("history(key, { limit, start }) pages a key's changes newest first; get(key, { asOf }) reads it as it was", async () => {
    const data = createData({ url: running.url });
    const tick = () => sleep(20);
    const before = new Date(Date.now() - 1);
    await tick();
    await data.set("hist:1", { title: "a" }, { label1: "tag:x" });
    await tick();
    await data.set("hist:1", { title: "b" });
    await tick();
    await data.remove("hist:1");
    const first = await data.history<{ title: string }>("hist:1", { limit: 2 });
    expect(first.entries.map((entry) => [entry.name, entry.expired, entry.item.value.title, entry.item.version])).to.deep.equal([
      ["deleted", false, "b", 2],
      ["updated", false, "b", 2],
    ]);
    expect(first.entries[0].time).to.be.instanceOf(Date);
    expect(first.lastKey).to.be.a("string");
    const second = await first.next!();
    expect(second.entries.map((entry) => [entry.name, entry.item.value.title, entry.item.label1])).to.deep.equal([["created", "a", "tag:x"]]);
    expect([second.lastKey, second.next]).to.deep.equal([undefined, undefined]);
    expect(await data.history("hist:1", { start: first.lastKey, limit: 5 })).to.have.nested.property("entries.length", 1);
    const created = second.entries[0].time;
    const updated = first.entries[1].time;
    expect(await data.get("hist:1", { asOf: before })).to.equal(undefined);
    expect(await data.get("hist:1", { asOf: created })).to.deep.equal({ title: "a" });
    expect(await data.get("hist:1", { asOf: updated, meta: true })).to.deep.include({ key: "hist:1", value: { title: "b" }, version: 2 });
    expect(await data.get("hist:1", { asOf: new Date() })).to.equal(undefined);
    const refused = (promise: Promise<unknown>) => promise.catch((error: unknown) => error);
    expect(await refused(data.get("hist:1", { asOf: new Date(Date.now() + 60_000) }))).to.include({
      code: "INVALID_ARGUMENT",
      reason: "INVALID_OPTION",
    });
    expect(await refused(data.get("hist:1", { asOf: new Date(Number.NaN) }))).to.include({ code: "INVALID_ARGUMENT", reason: "INVALID_OPTION" });
    expect(await refused(data.get("hist:1", { asOf: "yesterday" as unknown as Date }))).to.include({ reason: "INVALID_OPTION" });
    expect(await refused(data.get("hist:*", { asOf: created }))).to.include({ reason: "INVALID_OPTION" });
    expect(await refused(data.get(["hist:1"], { asOf: created } as never))).to.include({ reason: "INVALID_OPTION" });
    expect(await refused(data.history("hist:*"))).to.include({ code: "INVALID_ARGUMENT", reason: "INVALID_KEY" });
    expect(await refused(data.history("hist:1", { limit: 0.5 }))).to.include({ reason: "INVALID_OPTION" });
    expect(await refused(data.history("hist:1", { start: "nope" }))).to.include({ reason: "INVALID_OPTION" });
    await data.close();
  });

  it("errors are Errors with @ampt/data's message, the gRPC code and the reason (§14)", async () => {
    const data = createData({ url: running.url });
    await data.set("e:1", "x", { exists: false });
    const failure = await data.set("e:1", "y", { exists: false }).catch((error: unknown) => error);
    expect(failure).to.be.instanceOf(Error).and.instanceOf(LarderError);
    expect(failure).to.include({ message: "Item already exists", code: "ALREADY_EXISTS", reason: "ITEM_EXISTS" });
    const invalid = await data.get("e:*a").catch((error: unknown) => error);
    expect(invalid).to.include({ code: "INVALID_ARGUMENT", reason: "INVALID_EXPRESSION" });
    await data.close();
  });

  it("seed reads a JSON file when given a path (SE1)", async () => {
    const data = createData({ url: running.url });
    const file = join(mkdtempSync(join(tmpdir(), "larder-seed-")), "data.json");
    writeFileSync(
      file,
      JSON.stringify([
        { key: "s:1", value: 1, label1: "l:1" },
        { key: "s:2", value: { a: 2 } },
      ]),
    );
    expect(await data.seed(file, { overwrite: true })).to.deep.equal({ items: 2 });
    expect(await data.getByLabel("label1", "l:*")).to.deep.equal({ items: [{ key: "s:1", value: 1 }] });
    const missing = await data.seed(join(tmpdir(), "no-such-file.json")).catch((error: unknown) => error);
    expect(missing).to.include({ code: "INVALID_ARGUMENT" });
    await data.close();
  });

  it("§15.17: for one event, every matching handler runs, one after another, in registration order", async () => {
    const data = createData({ url: running.url }) as Ready;
    const calls: string[] = [];
    const slowly = (name: string) => async (event: unknown) => {
      calls.push(`${name}:start:${(event as { name: string }).name}`);
      await sleep(20);
      calls.push(`${name}:end`);
    };
    data.on("created", slowly("a"));
    data.on(["created", "updated"], slowly("b"));
    data.on("*", slowly("c"));
    await data.ready();
    await data.set("order:1", 1);
    const deadline = Date.now() + 5_000;
    while (calls.length < 6 && Date.now() < deadline) await sleep(10);
    expect(calls).to.deep.equal(["a:start:created", "a:end", "b:start:created", "b:end", "c:start:created", "c:end"]);
    await data.close();
  });

  it("on() refuses an unknown event name at registration (EV1)", () => {
    const data = createData({ url: running.url });
    expect(() => data.on("changed" as "created", () => undefined)).to.throw("Invalid event name: changed");
  });

  it("data.removeNulls refuses a non-boolean (V9)", () => {
    const data = createData({ url: running.url });
    expect(() => ((data as { removeNulls: unknown }).removeNulls = "no")).to.throw("removeNulls must be a boolean value");
    expect(data.removeNulls).to.equal(true);
  });
});

describe("client with an API key", () => {
  const key = generateKey();
  const running = useServer({ env: { LARDER_KEYS_FILE: keysFile([{ id: "app", key, environment: "app", role: "admin" }]) } });

  for (const transport of ["grpc", "connect"] as const) {
    it(`sends the key on every call over ${transport}, Watch included; without it calls are UNAUTHENTICATED`, async () => {
      const data = createData({ url: running.url, apiKey: key, transport }) as Ready;
      await data.set("k:1", transport);
      expect(await data.get("k:1")).to.equal(transport);
      const events: string[] = [];
      data.on("created:w:*", (event) => void events.push((event as { item: { key: string } }).item.key));
      await data.ready();
      await data.set(`w:${transport}`, 1);
      const deadline = Date.now() + 5_000;
      while (events.length === 0 && Date.now() < deadline) await sleep(10);
      expect(events).to.deep.equal([`w:${transport}`]);
      await data.close();
      const anonymous = createData({ url: running.url, transport });
      expect(await anonymous.get("k:1").catch((error: unknown) => error)).to.include({ code: "UNAUTHENTICATED" });
    });
  }
});
