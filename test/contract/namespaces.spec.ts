import { Code } from "@connectrpc/connect";
import { expect } from "chai";
import { describeContract, expectFailure } from "./harness.js";
import { json } from "./values.js";

describeContract("contract: namespaces", ({ client }) => {
  async function allNamespaces(limit: number): Promise<string[]> {
    const found: string[] = [];
    let start = "";
    for (;;) {
      const page = await client.namespaces({ limit, start });
      found.push(...page.namespaces);
      if (page.lastNamespace === undefined) return found;
      // P6: a page that says more follow is full.
      expect(page.namespaces).to.have.length(limit);
      expect(page.lastNamespace).to.equal(page.namespaces[limit - 1]);
      start = page.lastNamespace;
    }
  }

  it("lists each namespace with a live item once, in bytewise UTF-8 order (K7), simple keys in none (K8)", async () => {
    const namespaces = ["users", "orders", "a", "B", "ä", "😀", "～", "10", "9"];
    const items = namespaces.flatMap((ns) => Array.from({ length: 7 }, (_, i) => ({ key: `${ns}:k${i}`, value: json(i) })));
    await client.seed({ items: [...items, { key: "simple", value: json(1) }, { key: "users", value: json("simple too") }] });
    const expected = ["10", "9", "B", "a", "orders", "users", "ä", "～", "😀"];
    expect((await client.namespaces({})).namespaces).to.deep.equal(expected);
    expect((await client.namespaces({})).lastNamespace).to.equal(undefined);
    for (const limit of [1, 2, 4, 9]) expect(await allNamespaces(limit), `limit ${limit}`).to.deep.equal(expected);
  });

  it("T7: a namespace whose items have all expired is not listed; one with a live item among expired ones is", async () => {
    const past = { kind: { case: "seconds" as const, value: -1 } };
    await client.set({ key: "gone:a", value: json(1), ttl: past });
    await client.set({ key: "half:a", value: json(1), ttl: past });
    await client.set({ key: "half:b", value: json(2) });
    await client.set({ key: "later:a", value: json(3), ttl: { kind: { case: "seconds", value: 3600 } } });
    expect((await client.namespaces({})).namespaces).to.deep.equal(["half", "later"]);
    expect(await allNamespaces(1)).to.deep.equal(["half", "later"]);
  });

  it("a removed namespace's last item takes the namespace with it; start continues after any namespace", async () => {
    await client.seed({ items: ["a:1", "b:1", "b:2", "c:1", "d:1"].map((key) => ({ key, value: json(key) })) });
    await client.remove({ keys: ["c:1"] });
    expect((await client.namespaces({})).namespaces).to.deep.equal(["a", "b", "d"]);
    expect((await client.namespaces({ start: "b" })).namespaces).to.deep.equal(["d"]);
    expect((await client.namespaces({ start: "bb" })).namespaces).to.deep.equal(["d"]);
    expect((await client.namespaces({ start: "zzz" })).namespaces).to.deep.equal([]);
    const empty = await client.namespaces({ start: "d" });
    expect(empty.namespaces).to.deep.equal([]);
    expect(empty.lastNamespace).to.equal(undefined);
  });

  it("an empty environment has no namespaces", async () => {
    await client.set({ key: "only-simple", value: json(1) });
    const page = await client.namespaces({ limit: 5 });
    expect(page.namespaces).to.deep.equal([]);
    expect(page.lastNamespace).to.equal(undefined);
  });

  it("P2 and bad starts → INVALID_ARGUMENT INVALID_OPTION", async () => {
    await expectFailure(client.namespaces({ limit: 1001 }), Code.InvalidArgument, "INVALID_OPTION", "'limit' must be between 1 and 1000");
    await expectFailure(client.namespaces({ start: "users:jane" }), Code.InvalidArgument, "INVALID_OPTION");
    await expectFailure(client.namespaces({ start: "x".repeat(257) }), Code.InvalidArgument, "INVALID_OPTION");
  });
});
