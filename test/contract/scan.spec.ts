import { Code } from "@connectrpc/connect";
import { expect } from "chai";
import { describeContract, expectFailure } from "./harness.js";
import { json, plain } from "./values.js";

describeContract("contract: scan", ({ client }) => {
  async function seedItems(count: number) {
    const items = Array.from({ length: count }, (_, i) => ({
      key: i % 10 === 0 ? `s${i}` : `ns${i % 3}:k${String(i).padStart(3, "0")}`,
      value: json({ i, even: i % 2 === 0 }),
      label3: i % 4 === 0 ? `lab:${String(100 - i).padStart(3, "0")}` : undefined,
    }));
    await client.seed({ items });
    return items.map((item) => item.key);
  }

  async function scanAll(request: Parameters<typeof client.scan>[0] = {}) {
    const keys: string[] = [];
    let start = "";
    for (;;) {
      const page = await client.scan({ ...request, start });
      keys.push(...page.items.map((item) => item.key));
      if (page.lastKey === undefined) return keys;
      expect(page.items).to.not.have.lengthOf(0);
      start = page.lastKey;
    }
  }

  it("SC2: a scan visits every item once in (namespace, simple key first, key part) order", async () => {
    const keys = await seedItems(60);
    await client.set({ key: "ns1", value: json("simple before its collection") });
    const scanned = await scanAll({ limit: 7 });
    expect(scanned).to.have.length(61);
    expect(scanned.indexOf("ns1")).to.equal(scanned.findIndex((key) => key.startsWith("ns1:")) - 1);
    expect(new Set(scanned)).to.deep.equal(new Set([...keys, "ns1"]));
  });

  it("SC5: the segments of a scan partition the items exactly", async () => {
    const keys = await seedItems(80);
    for (const total of [1, 3, 7]) {
      const seen: string[] = [];
      for (let segment = 0; segment < total; segment++) seen.push(...(await scanAll({ segment, totalSegments: total, limit: 9 })));
      expect(seen.sort()).to.deep.equal([...keys].sort());
    }
  });

  it("SC5: segment validation → INVALID_ARGUMENT INVALID_OPTION", async () => {
    await expectFailure(client.scan({ segment: 0 }), Code.InvalidArgument, "INVALID_OPTION");
    await expectFailure(client.scan({ segment: 2, totalSegments: 2 }), Code.InvalidArgument, "INVALID_OPTION");
    await expectFailure(client.scan({ segment: 0, totalSegments: 1001 }), Code.InvalidArgument, "INVALID_OPTION");
  });

  it("SC3/SC6: label scans and counts respect the label and segments, not limit or start", async () => {
    await seedItems(40);
    const labelled = await scanAll({ label: "label3", limit: 3 });
    expect(labelled).to.have.length(10);
    const labels = [];
    for (const key of labelled) labels.push((await client.get({ key })).item!.label3!);
    expect(labels).to.deep.equal([...labels].sort());
    expect((await client.scan({ count: true, limit: 1, label: "label3" })).count).to.equal(10n);
    expect((await client.scan({ count: true })).count).to.equal(40n);
    let segmented = 0n;
    for (let segment = 0; segment < 4; segment++) segmented += (await client.scan({ count: true, segment, totalSegments: 4 })).count!;
    expect(segmented).to.equal(40n);
  });

  it("SC4: attributes project object values; single values stay whole", async () => {
    await client.set({ key: "p:obj", value: json({ a: 1, b: 2, c: 3 }) });
    await client.set({ key: "p:single", value: json("text") });
    const page = await client.scan({ attributes: ["a", "c", "missing"] });
    expect(page.items.map((item) => plain(item.value))).to.deep.equal([{ a: 1, c: 3 }, "text"]);
  });
});
