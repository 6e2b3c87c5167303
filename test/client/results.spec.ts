import { expect } from "chai";
import { createData, type KeyValue, type LarderData } from "../../client/index.js";
import { useServer } from "../support/server.js";

type Page<T> = { items: KeyValue<T>[]; lastKey?: string; next?: () => Promise<Page<T>> };

/** §15 item 13: the documentation's `while (result) … result = await result.next()` loop, verbatim in spirit. */
async function everyPage<T>(first: Page<T>): Promise<{ keys: string[]; pages: number }> {
  const keys: string[] = [];
  let pages = 0;
  let result: Page<T> | undefined = first;
  while (result) {
    pages++;
    // P6: a page that promises more is never empty.
    if (result.lastKey !== undefined) expect(result.items, `page ${pages}`).to.not.have.lengthOf(0);
    // P8: next() exactly when there is a lastKey.
    expect(typeof result.next === "function", `page ${pages} next`).to.equal(result.lastKey !== undefined);
    keys.push(...result.items.map((item) => item.key));
    result = result.next ? await result.next() : undefined;
  }
  return { keys, pages };
}

const pad = (n: number) => String(n).padStart(3, "0");

describe("client results against a live server", () => {
  const running = useServer();
  let data: LarderData;

  beforeEach(async () => {
    data = createData({ url: running.url });
    await data.seed([], { overwrite: true });
  });
  afterEach(async () => {
    data.removeNulls = true;
    await data.close();
  });

  it("Q6, M5: an exact key gives the bare value or undefined; expressions, labels and arrays give { items }", async () => {
    await data.set("users:jane", { name: "Jane" }, { label1: "team:a" });
    expect(await data.get("users:jane")).to.deep.equal({ name: "Jane" });
    expect(await data.get("users:nobody")).to.equal(undefined);
    expect(await data.get("users:*")).to.deep.equal({ items: [{ key: "users:jane", value: { name: "Jane" } }] });
    expect(await data.get("users:x*")).to.deep.equal({ items: [] });
    expect(await data.getByLabel("label1", "team:a")).to.deep.equal({ items: [{ key: "users:jane", value: { name: "Jane" } }] });
    expect(await data.get(["users:nobody", "users:jane"])).to.deep.equal({ items: [{ key: "users:jane", value: { name: "Jane" } }] });
  });

  it("M4: meta objects hold Dates to the millisecond, labels and ttl only when present, the trimmed key", async () => {
    const before = Date.now();
    const written = await data.set(" users : jane ", { a: 1 }, { meta: true, label2: "x", ttl: 3600 });
    expect(Object.keys(written).sort()).to.deep.equal(["created", "key", "label2", "modified", "ttl", "value", "version"]);
    expect(written.key).to.equal("users:jane");
    expect(written.created).to.be.instanceOf(Date);
    expect(written.modified).to.be.instanceOf(Date);
    expect(written.created!.getTime()).to.be.within(before - 1000, Date.now() + 1000);
    expect(written.ttl!.getTime()).to.be.closeTo(before + 3_600_000, 5_000);

    const plain = await data.set("plain", 1, true);
    expect(Object.keys(plain).sort()).to.deep.equal(["created", "key", "modified", "value", "version"]);
    const read = await data.get("users:jane", true);
    expect(read).to.deep.equal(written);
    const added = await data.add("n", 0, { meta: true });
    // AD3: a zero result is 0, not undefined.
    expect(added).to.deep.include({ key: "n", value: 0 });
    expect(await data.add("n", 0)).to.equal(0);
  });

  it("§15.13: the next() loop visits every item exactly once, forwards and in reverse, for every page size", async () => {
    const keys = Array.from({ length: 57 }, (_, i) => `many:${pad(i)}`);
    for (let i = 0; i < keys.length; i += 25) {
      await data.set(
        keys.slice(i, i + 25).map((key, j) => ({ key, value: i + j })),
        { overwrite: true },
      );
    }
    await data.set("manyother:1", 1);
    for (const limit of [1, 3, 7, 19, 57, 100]) {
      const forwards = await everyPage(await data.get<number>("many:*", { limit }));
      expect(forwards.keys, `limit ${limit}`).to.deep.equal(keys);
      expect(forwards.pages, `limit ${limit} pages`).to.equal(Math.ceil(keys.length / limit));
      const backwards = await everyPage(await data.get<number>("many:*", { limit, reverse: true }));
      expect(backwards.keys, `limit ${limit} reverse`).to.deep.equal([...keys].reverse());
    }
  });

  it("P4, P5: lastKey of a key query is the full key, usable as start by hand", async () => {
    await data.set(
      ["a", "b", "c", "d"].map((k) => ({ key: `p:${k}`, value: k })),
      { overwrite: true },
    );
    const first = await data.get<string>("p:*", { limit: 2 });
    expect(first.lastKey).to.equal("p:b");
    const byHand = await data.get<string>("p:*", { limit: 2, start: first.lastKey });
    expect(byHand.items.map((item) => item.value)).to.deep.equal(["c", "d"]);
    expect(byHand).to.not.have.property("lastKey");
    expect(byHand).to.not.have.property("next");
  });

  it("P8, L5: label queries page with next() through ties in label value, each item exactly once", async () => {
    // Labels are not unique: 12 items share 3 label values, so pages end in the middle of ties.
    const items = Array.from({ length: 12 }, (_, i) => ({ key: `lbl:${pad(i)}`, value: i, label3: `group:${i % 3}` }));
    await data.set(items, { overwrite: true });
    await data.set("lbl:none", 1);
    const expected = [...items].sort((x, y) => (x.label3 === y.label3 ? (x.key < y.key ? -1 : 1) : x.label3 < y.label3 ? -1 : 1)).map((i) => i.key);
    for (const limit of [1, 2, 5, 12]) {
      const all = await everyPage(await data.getByLabel<number>("label3", "group:*", { limit }));
      expect(all.keys, `limit ${limit}`).to.deep.equal(expected);
      const reversed = await everyPage(await data.getByLabel<number>("label3", "group:*", { limit, reverse: true }));
      expect(reversed.keys, `limit ${limit} reverse`).to.deep.equal([...expected].reverse());
    }
    const exact = await everyPage(await data.getByLabel<number>("3", "group:1", { limit: 2 }));
    expect(exact.keys).to.deep.equal(["lbl:001", "lbl:004", "lbl:007", "lbl:010"]);
  });

  it("SC1, SC2, SC5: scan pages with next() in a stable order; the segments together hold every item once", async () => {
    const keys = ["a", "a:1", "a:2", "b", "b:x", "c:1", "c:2", "c:3", "zz"];
    await data.set(
      keys.map((key) => ({ key, value: key })),
      { overwrite: true },
    );
    const scanned = await everyPage((await data.scan({ limit: 2 })) as Page<string>);
    expect(scanned.keys).to.deep.equal(keys);
    const fromSegments: string[] = [];
    for (let segment = 0; segment < 4; segment++) {
      fromSegments.push(...(await everyPage((await data.scan({ limit: 1, segment, totalSegments: 4 })) as Page<string>)).keys);
    }
    expect(fromSegments.sort()).to.deep.equal([...keys].sort());
    expect(await data.scan({ count: true })).to.deep.equal({ items: [], count: keys.length });
  });

  it("V6, V9: data.removeNulls = false keeps null root attributes in every later set until switched back", async () => {
    data.removeNulls = false;
    expect(await data.set("o", { a: null, b: 1 })).to.deep.equal({ a: null, b: 1 });
    expect(await data.set("o", { c: null })).to.deep.equal({ a: null, b: 1, c: null });
    // V7: with removeNulls false a whole null value is stored and read back as null.
    expect(await data.set("n", null)).to.equal(null);
    expect(await data.get("n")).to.equal(null);
    // A per-call option still wins over the switch.
    expect(await data.set("o", { c: null }, { removeNulls: true })).to.deep.equal({ a: null, b: 1 });
    data.removeNulls = true;
    expect(await data.set("o", { a: null })).to.deep.equal({ b: 1 });
    // V6: undefined always removes, whatever the switch says.
    data.removeNulls = false;
    expect(await data.set("o", { b: undefined, d: 2 })).to.deep.equal({ d: 2 });
  });

  it("V1: Dates are stored as ISO strings; BigInt fails before reaching the server with its code", async () => {
    const when = new Date("2024-02-29T12:00:00.000Z");
    expect(await data.set("d", { when, list: [when, undefined] })).to.deep.equal({
      when: "2024-02-29T12:00:00.000Z",
      list: ["2024-02-29T12:00:00.000Z", null],
    });
    const failure = await data.set("d", { n: 1n }).catch((error: unknown) => error);
    expect(failure).to.include({ code: "INVALID_ARGUMENT", reason: "INVALID_VALUE" });
    expect(await data.get("d")).to.have.property("when");
  });

  it("§14: server errors keep the spec's message and carry code and reason", async () => {
    // [call, code, reason (undefined: §14 does not fix it, any is fine), message prefix]
    const cases: [() => Promise<unknown>, string, string | undefined, string][] = [
      [() => data.get("ns:"), "INVALID_ARGUMENT", "INVALID_KEY", "Invalid key"],
      [() => data.get("ns:a*b"), "INVALID_ARGUMENT", "INVALID_EXPRESSION", "Wildcards ('*') can only be used at the end of a key expression"],
      [
        () => data.getByLabel("label6" as "label1", "x"),
        "INVALID_ARGUMENT",
        "INVALID_LABEL",
        "Labels must be specified as 'label1' through 'label5'.",
      ],
      [() => data.set("k", "v", { exists: true }), "NOT_FOUND", "ITEM_NOT_FOUND", "Item does not exist"],
      [() => data.set("k", "v", { ttl: "soon" }), "INVALID_ARGUMENT", "INVALID_OPTION", "Invalid ttl value."],
      [() => data.remove("ns:*"), "INVALID_ARGUMENT", undefined, "You cannot delete items using conditionals."],
    ];
    await data.set("obj", { a: "text" });
    cases.push(
      [() => data.set("obj", "single"), "FAILED_PRECONDITION", "NOT_A_SIMPLE_VALUE", "Cannot convert an existing object to a simple value."],
      [() => data.add("obj", "a", 1), "FAILED_PRECONDITION", "NOT_A_NUMBER", "'a' is not a number"],
    );
    for (const [run, code, reason, message] of cases) {
      const failure = (await run().catch((error: unknown) => error)) as Error & { code: string; reason: string };
      expect(failure, message).to.be.instanceOf(Error);
      expect({ code: failure.code, message: failure.message.slice(0, message.length) }, message).to.deep.equal({ code, message });
      if (reason) expect(failure.reason, message).to.equal(reason);
      else expect(failure.reason, message).to.be.a("string").and.not.equal("");
    }
  });
});
