import { Code } from "@connectrpc/connect";
import { expect } from "chai";
import fc from "fast-check";
import { describeContract, expectFailure } from "./harness.js";
import { json, plain } from "./values.js";

const utf8Order = (a: string, b: string) => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));

describeContract("contract: queries", ({ client }) => {
  async function seed(keys: string[], extra: (key: string, i: number) => object = () => ({})) {
    for (let i = 0; i < keys.length; i += 25) {
      await client.batchSet({
        items: keys.slice(i, i + 25).map((key, j) => ({ key, value: json(i + j), ...extra(key, i + j) })),
      });
    }
  }

  async function collect(expression: string, options: { limit?: number; reverse?: boolean; label?: string } = {}) {
    const keys: string[] = [];
    let start = "";
    for (let pages = 0; pages < 1000; pages++) {
      const page = await client.query({ expression, start, ...options });
      if (page.lastKey !== undefined) expect(page.items, "P6: a page with a lastKey is never empty").to.not.have.lengthOf(0);
      keys.push(...page.items.map((item) => item.key));
      if (page.lastKey === undefined) return keys;
      start = page.lastKey;
    }
    throw new Error("pagination did not end");
  }

  it("K7: keys beyond ASCII sort by UTF-8 bytes (fixed example)", async () => {
    const parts = ["😀", "～", "ä", "a", "B", "9", "10"];
    await seed(parts.map((p) => `u:${p}`));
    expect(await collect("u:*")).to.deep.equal(["10", "9", "B", "a", "ä", "～", "😀"].map((p) => `u:${p}`));
  });

  it("K7 property: any unicode keys come back in UTF-8 byte order, forward and reverse, in pages", async () => {
    const keyPart = fc
      .string({ unit: "grapheme", minLength: 1, maxLength: 6 })
      .map((s) => s.trim())
      .filter((s) => s.length > 0 && !/[*|:]/.test(s) && !/^[<>]/.test(s));
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(keyPart, { minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 7 }), async (parts, limit) => {
        await client.seed({ items: [], overwrite: true });
        await seed(parts.map((p) => `p:${p}`));
        const expected = parts.map((p) => `p:${p}`).sort(utf8Order);
        expect(await collect("p:*", { limit })).to.deep.equal(expected);
        expect(await collect("p:*", { limit, reverse: true })).to.deep.equal([...expected].reverse());
      }),
      { numRuns: 15 },
    );
  });

  it("Q1-Q5: every expression form, as a range over whole keys", async () => {
    await seed(["b", "a", "az", "b", "ba", "c", "2021-05-31", "2021-05-31T10:00"].filter((k, i, all) => all.indexOf(k) === i).map((k) => `q:${k}`));
    const parts = async (expression: string) => (await collect(expression)).map((key) => key.slice(2));
    expect(await parts("q:<b")).to.deep.equal(["2021-05-31", "2021-05-31T10:00", "a", "az"]);
    expect(await parts("q:<=b")).to.deep.equal(["2021-05-31", "2021-05-31T10:00", "a", "az", "b"]);
    expect(await parts("q:>b")).to.deep.equal(["ba", "c"]);
    expect(await parts("q:>=b")).to.deep.equal(["b", "ba", "c"]);
    expect(await parts("q:a|b")).to.deep.equal(["a", "az", "b"]);
    expect(await parts("q:2021-05-01|2021-05-31")).to.deep.equal(["2021-05-31"]);
    expect(await parts("q:b*")).to.deep.equal(["b", "ba"]);
    expect(await parts("q:zz*")).to.deep.equal([]);
  });

  it("K4: keys of 256 bytes can bound a range, by key and by label; a longer bound → INVALID_ARGUMENT INVALID_KEY", async () => {
    const [a, m, z] = ["a", "m", "z"].map((c) => c.repeat(256));
    for (const part of [a, m, z]) {
      await client.set({ key: `long:${part}`, value: json(part[0]), label4: { action: { case: "set", value: `tag:${part}` } } });
    }
    expect((await collect(`long:${a}|${m}`)).map((key) => key[5])).to.deep.equal(["a", "m"]);
    expect((await collect(`tag:>${a}`, { label: "label4" })).map((key) => key[5])).to.deep.equal(["m", "z"]);
    await expectFailure(
      client.query({ expression: `long:${a}|${m}z` }),
      Code.InvalidArgument,
      "INVALID_KEY",
      "Invalid key: Maximum Key size is 256 bytes",
    );
  });

  it("K8: a simple key is not a member of the collection of the same name", async () => {
    await client.set({ key: "users", value: json("simple") });
    await client.set({ key: "users:0", value: json("member") });
    expect(await collect("users:*")).to.deep.equal(["users:0"]);
    expect(plain((await client.get({ key: "users" })).item?.value)).to.equal("simple");
  });

  it("P6: expired items never leave short or empty pages, and the last page carries no lastKey", async () => {
    await seed(
      Array.from({ length: 30 }, (_, i) => `e:${String(i).padStart(2, "0")}`),
      (_, i) => (i % 3 === 0 ? {} : { ttl: { kind: { case: "seconds" as const, value: -1 } } }),
    );
    for (let start = "", pages = 0; ; pages++) {
      const page = await client.query({ expression: "e:*", limit: 3, start });
      if (page.lastKey === undefined) {
        expect(page.items.length).to.be.at.most(3);
        expect(pages).to.equal(3);
        break;
      }
      expect(page.items).to.have.length(3);
      start = page.lastKey;
    }
    expect(await collect("e:*", { limit: 10 })).to.have.length(10);
  });

  it("P7: a page stops at 1 MiB of values, with at least one item, and pagination still visits all", async () => {
    const big = "x".repeat(300_000);
    for (let i = 0; i < 8; i++) await client.set({ key: `big:${i}`, value: json(big) });
    const first = await client.query({ expression: "big:*", limit: 100 });
    expect(first.items).to.have.length(3);
    expect(first.lastKey).to.equal("big:2");
    expect(await collect("big:*")).to.have.length(8);
  });

  it("P2: limit outside 1..1000 → INVALID_ARGUMENT INVALID_OPTION; 0 means 100", async () => {
    await expectFailure(
      client.query({ expression: "x:*", limit: 1001 }),
      Code.InvalidArgument,
      "INVALID_OPTION",
      "'limit' must be between 1 and 1000",
    );
    await seed(Array.from({ length: 120 }, (_, i) => `d:${String(i).padStart(3, "0")}`));
    const page = await client.query({ expression: "d:*", limit: 0 });
    expect(page.items).to.have.length(100);
    expect(page.lastKey).to.equal("d:099");
  });

  it("P4: start must be in the queried namespace → INVALID_ARGUMENT INVALID_OPTION", async () => {
    await expectFailure(client.query({ expression: "p:*", start: "other:b" }), Code.InvalidArgument, "INVALID_OPTION");
    // K8: the simple key `p` is in no collection, not even `p`'s.
    for (const reverse of [false, true]) {
      await expectFailure(client.query({ expression: "p:*", start: "p", reverse }), Code.InvalidArgument, "INVALID_OPTION");
    }
  });

  it("Q2-Q4: malformed expressions → INVALID_ARGUMENT INVALID_EXPRESSION", async () => {
    for (const expression of ["q:a*b", "q:>", "q:a|", "q:a|b|c", "q:b|a"]) {
      await expectFailure(client.query({ expression }), Code.InvalidArgument, "INVALID_EXPRESSION");
    }
  });

  it("Get refuses expressions, pointing at Query", async () => {
    await expectFailure(client.get({ key: "q:a*" }), Code.InvalidArgument, "INVALID_KEY");
  });

  it("B1-B3: batch get keeps request order, leaves out missing keys, returns duplicates once", async () => {
    await seed(["bg:a", "bg:b", "bg:c"]);
    const result = await client.batchGet({ keys: ["bg:c", "bg:missing", " bg:a", "bg:c"] });
    expect(result.items.map((item) => item.key)).to.deep.equal(["bg:c", "bg:a"]);
    await expectFailure(client.batchGet({ keys: [] }), Code.InvalidArgument, "BATCH_SIZE", "You must provide at least one key");
    await expectFailure(client.batchGet({ keys: ["bg:*"] }), Code.InvalidArgument, "INVALID_KEY");
  });

  describe("labels", () => {
    it("L3/L5: label queries order by label value, ties by item key, and reverse both", async () => {
      const labelled: [string, string][] = [
        ["l:c", "t:1"],
        ["l:a", "t:2"],
        ["l:b", "t:1"],
        ["solo", "t:1"],
        ["l:d", "other"],
      ];
      for (const [key, label] of labelled) {
        await client.set({ key, value: json(key), label2: { action: { case: "set", value: label } } });
      }
      expect(await collect("t:*", { label: "label2" })).to.deep.equal(["l:b", "l:c", "solo", "l:a"]);
      expect(await collect("t:*", { label: "2", reverse: true, limit: 1 })).to.deep.equal(["l:a", "solo", "l:c", "l:b"]);
      expect(await collect("t:1", { label: "label2", limit: 2 })).to.deep.equal(["l:b", "l:c", "solo"]);
      expect(await collect("other", { label: "label2" })).to.deep.equal(["l:d"]);
      expect(await collect("t:3", { label: "label2" })).to.deep.equal([]);
    });

    it("L2: set-if-absent and remove", async () => {
      await client.set({ key: "lb:x", value: json(1), label1: { action: { case: "setIfAbsent", value: "first" } } });
      await client.set({ key: "lb:x", value: json(2), label1: { action: { case: "setIfAbsent", value: "second" } } });
      expect((await client.get({ key: "lb:x" })).item?.label1).to.equal("first");
      await client.set({ key: "lb:x", value: json(3), label1: { action: { case: "remove", value: true } } });
      expect((await client.get({ key: "lb:x" })).item?.label1).to.equal(undefined);
      expect(await collect("first", { label: "label1" })).to.deep.equal([]);
    });

    it("P4/Q5: a label start is a position, never a wider range: every stored position, every expression form", async () => {
      // Labels with ties and gaps; the positions are the lastKeys of real pages, as a client gets them.
      const labels = ["b", "b", "c", "a", "d", "b", "c", "a", "e", "c"];
      for (const [i, label] of labels.entries()) {
        await client.set({ key: `lp:${i}`, value: json(i), label3: { action: { case: "set", value: `tag:${label}` } } });
      }
      const byPosition = labels.map((label, i) => ({ label, key: `lp:${i}` })).sort((x, y) => utf8Order(x.label, y.label) || utf8Order(x.key, y.key));
      const positions: string[] = [];
      for (let start = "", i = 0; i < labels.length; i++) {
        const page = await client.query({ expression: "tag:*", label: "label3", limit: 1, start });
        if (page.lastKey === undefined) break;
        positions.push((start = page.lastKey));
      }
      expect(positions).to.have.length(labels.length - 1);
      const forms: [string, (label: string) => boolean][] = [
        ["tag:*", () => true],
        ["tag:c", (l) => l === "c"],
        ["tag:b*", (l) => l.startsWith("b")],
        ["tag:>b", (l) => l > "b"],
        ["tag:>=b", (l) => l >= "b"],
        ["tag:<c", (l) => l < "c"],
        ["tag:<=c", (l) => l <= "c"],
        ["tag:b|d", (l) => l >= "b" && l <= "d"],
      ];
      for (const [expression, matches] of forms) {
        for (const reverse of [false, true]) {
          const order = reverse ? [...byPosition].reverse() : byPosition;
          for (const [index, start] of positions.entries()) {
            // positions[index] is the position of byPosition[index] (forward pages of one item).
            const after = byPosition[index];
            const beyond = (x: { label: string; key: string }) => {
              const c = utf8Order(x.label, after.label) || utf8Order(x.key, after.key);
              return reverse ? c < 0 : c > 0;
            };
            const expected = order.filter((x) => matches(x.label) && beyond(x)).map((x) => x.key);
            const page = await client.query({ expression, label: "label3", reverse, start, limit: 100 });
            const where = `${expression}${reverse ? " reverse" : ""} after ${after.label} / ${after.key}`;
            expect(
              page.items.map((item) => item.key),
              where,
            ).to.deep.equal(expected);
          }
        }
      }
      // A position in another label namespace is no position in this one (P4).
      for (const key of ["lp:x", "lp:y"]) {
        await client.set({ key, value: json(0), label3: { action: { case: "set", value: "zzz:b" } } });
      }
      const foreign = (await client.query({ expression: "zzz:*", label: "label3", limit: 1 })).lastKey!;
      await expectFailure(
        client.query({ expression: "tag:*", label: "label3", start: foreign }),
        Code.InvalidArgument,
        "INVALID_OPTION",
        "'start' must be a key in the queried namespace",
      );
    });

    it("L4: bad label names → INVALID_ARGUMENT INVALID_LABEL; a bad label cursor → INVALID_OPTION", async () => {
      await expectFailure(
        client.query({ expression: "a", label: "label6" }),
        Code.InvalidArgument,
        "INVALID_LABEL",
        "Labels must be specified as 'label1' through 'label5'.",
      );
      await expectFailure(client.query({ expression: "a", label: "label1", start: "garbage" }), Code.InvalidArgument, "INVALID_OPTION");
    });
  });
});
