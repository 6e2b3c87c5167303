import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { DataService } from "../../gen/larder/data/v1/data_pb.js";
import { describeContract } from "./harness.js";
import { json, plain } from "./values.js";
import { subscribe } from "./watching.js";

/** Every number in a JSON value, with where it is, so a -0 anywhere is named. */
function negativeZeros(value: unknown, path = "$"): string[] {
  if (typeof value === "number") return Object.is(value, -0) ? [path] : [];
  if (Array.isArray(value)) return value.flatMap((element, index) => negativeZeros(element, `${path}[${index}]`));
  if (value !== null && typeof value === "object") {
    return Object.entries(value).flatMap(([name, element]) => negativeZeros(element, `${path}.${name}`));
  }
  return [];
}

/** -0 at the top, in an object, in an array, deep down. */
const NESTED = { a: -0, list: [-0, 1, { deep: [-0] }], keep: -1.5 };
const NESTED_READ = { a: 0, list: [0, 1, { deep: [0] }], keep: -1.5 };

describeContract("contract: negative zero (V1)", (context) => {
  const { client } = context;

  async function expectZeroEverywhere(key: string, expected: unknown) {
    const read = plain((await client.get({ key })).item?.value);
    expect(read, `get ${key}`).to.deep.equal(expected);
    expect(negativeZeros(read), `get ${key}`).to.deep.equal([]);
    const listed = (await client.query({ expression: `${key.split(":")[0]}:*` })).items.map((item) => plain(item.value));
    expect(negativeZeros(listed), "query").to.deep.equal([]);
  }

  it("set stores and returns 0 for -0, at the top and nested, in its own reply and in every later read", async () => {
    const top = plain((await client.set({ key: "z:top", value: json(-0) })).item?.value);
    expect(Object.is(top, 0), "the set's own reply").to.equal(true);
    await expectZeroEverywhere("z:top", 0);

    const nested = plain((await client.set({ key: "z:nested", value: json(NESTED) })).item?.value);
    expect(nested).to.deep.equal(NESTED_READ);
    expect(negativeZeros(nested), "the set's own reply").to.deep.equal([]);
    await expectZeroEverywhere("z:nested", NESTED_READ);

    // A merge of -0 into an existing item, and a default of -0.
    const merged = plain((await client.set({ key: "z:nested", value: json({ b: -0 }) })).item?.value);
    expect(negativeZeros(merged), "a merge's reply").to.deep.equal([]);
    const defaulted = plain((await client.set({ key: "z:default", defaultValue: json({ d: -0 }) })).item?.value);
    expect(negativeZeros(defaulted), "a default's reply").to.deep.equal([]);
    await expectZeroEverywhere("z:default", { d: 0 });
  });

  it("add, batch set and seed store 0 for -0", async () => {
    const added = plain((await client.add({ key: "z:counter", amount: -0 })).item?.value);
    expect(Object.is(added, 0), "add of -0 onto nothing").to.equal(true);
    const attribute = plain((await client.add({ key: "z:counters", attribute: "n", amount: -0 })).item?.value);
    expect(negativeZeros(attribute)).to.deep.equal([]);
    const batch = await client.batchSet({
      items: [
        { key: "z:b1", value: json(-0) },
        { key: "z:b2", value: json(NESTED) },
      ],
      overwrite: true,
    });
    expect(negativeZeros(batch.items.map((item) => plain(item.value))), "batch set's reply").to.deep.equal([]);
    await client.seed({ items: [{ key: "z:s1", value: json(NESTED) }] });
    for (const key of ["z:counter", "z:b1"]) await expectZeroEverywhere(key, 0);
    for (const key of ["z:b2", "z:s1"]) await expectZeroEverywhere(key, NESTED_READ);
    await expectZeroEverywhere("z:counters", { n: 0 });
  });

  it("events carry 0, and Connect JSON never says -0", async () => {
    const watch = subscribe(client, { filters: ["*:z:*"] });
    await watch.started;
    try {
      await client.set({ key: "z:event", value: json(NESTED) });
      const [event] = await watch.until(1);
      expect(negativeZeros(plain(event.item?.value))).to.deep.equal([]);
    } finally {
      await watch.close();
    }
    const connect = createClient(DataService, createConnectTransport({ baseUrl: context.url, httpVersion: "1.1", useBinaryFormat: false }));
    const text = await fetch(`${context.url}/larder.data.v1.DataService/Get`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key: "z:event" }),
    }).then((response) => response.text());
    expect(text).to.contain('"a":0');
    // A JSON number -0 (dates such as 2026-12-05 hold "-0" too, but never after ':', ',' or '[').
    expect(text).not.to.match(/[:,[]\s*-0(?=[\s,\]}])/);
    expect(plain((await connect.get({ key: "z:event" })).item?.value)).to.deep.equal(NESTED_READ);
  });
});
