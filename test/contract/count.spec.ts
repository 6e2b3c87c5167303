import { Code } from "@connectrpc/connect";
import { expect } from "chai";
import { describeContract, expectFailure } from "./harness.js";
import { json } from "./values.js";
import { sleep } from "../support/async.js";

describeContract("contract: count", ({ client }) => {
  const label = (value: string) => ({ action: { case: "set" as const, value } });

  async function seedUsers() {
    for (let i = 0; i < 30; i++) {
      await client.set({ key: `users:u${String(i).padStart(2, "0")}`, value: json({ i }), label1: label(i % 3 === 0 ? "city:oslo" : "city:rome") });
    }
    await client.set({ key: "users", value: json("the simple key of the same name") });
    await client.set({ key: "orders:1", value: json(1), label1: label("city:oslo") });
  }

  async function queried(expression: string, labelName = "") {
    let total = 0;
    let start = "";
    for (;;) {
      const page = await client.query({ expression, label: labelName, start, limit: 7 });
      total += page.items.length;
      if (page.lastKey === undefined) return total;
      start = page.lastKey;
    }
  }

  it("counts what a query of the same key expression pages through (Q1-Q5, K8)", async () => {
    await seedUsers();
    for (const expression of ["users:*", "users:u1*", "users:>u25", "users:<=u04", "users:u05|u14", "users:u07", "users", "users:zz*", "none:*"]) {
      const { count } = await client.count({ expression });
      expect(count, expression).to.equal(BigInt(await queried(expression)));
    }
    expect((await client.count({ expression: "users:*" })).count).to.equal(30n);
    expect((await client.count({ expression: "users" })).count).to.equal(1n);
  });

  it("counts by label, with `labelN` or the bare digit (L3, L4)", async () => {
    await seedUsers();
    expect((await client.count({ expression: "city:oslo", label: "label1" })).count).to.equal(11n);
    expect((await client.count({ expression: "city:*", label: "1" })).count).to.equal(31n);
    expect((await client.count({ expression: "city:r*", label: "label1" })).count).to.equal(20n);
    expect((await client.count({ expression: "city:*", label: "label2" })).count).to.equal(0n);
  });

  it("T7: expired items are never counted, by key or by label; removed ones neither", async () => {
    await seedUsers();
    await client.set({ key: "users:u00", value: json({ i: 0 }), ttl: { kind: { case: "seconds", value: -1 } } });
    await client.set({ key: "users:u03", value: json({ i: 3 }), ttl: { kind: { case: "seconds", value: 1 } } });
    await client.remove({ keys: ["users:u06"] });
    await sleep(1_100);
    expect((await client.count({ expression: "users:*" })).count).to.equal(27n);
    expect((await client.count({ expression: "city:oslo", label: "label1" })).count).to.equal(8n);
    expect((await client.count({ expression: "users:u03" })).count).to.equal(0n);
  });

  it("bad expressions and labels → INVALID_ARGUMENT with the query's reasons", async () => {
    await expectFailure(client.count({ expression: "users:a*b" }), Code.InvalidArgument, "INVALID_EXPRESSION");
    await expectFailure(client.count({ expression: "" }), Code.InvalidArgument, "INVALID_KEY");
    await expectFailure(client.count({ expression: "city:*", label: "label6" }), Code.InvalidArgument, "INVALID_LABEL");
  });
});
