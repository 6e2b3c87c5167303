import { timestampDate } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { DataService } from "../../gen/larder/data/v1/data_pb.js";
import { describeContract } from "./harness.js";
import { json, plain } from "./values.js";
import { sleep } from "../support/async.js";

describeContract("contract: ttl", (context) => {
  const { client } = context;
  const past = { kind: { case: "seconds" as const, value: -1 } };

  it("T5: the last expiry a Timestamp carries (9999-12-31T23:59:59Z) is kept, and read back over Connect JSON too", async () => {
    await client.set({ key: "t:far", value: json(1), ttl: { kind: { case: "seconds", value: 253402300799 } } });
    // Connect's JSON is where a Timestamp out of its range would fail to encode.
    const overJson = createClient(DataService, createConnectTransport({ baseUrl: context.url, httpVersion: "1.1", useBinaryFormat: false }));
    const item = (await overJson.get({ key: "t:far" })).item;
    expect(item?.ttl && timestampDate(item.ttl).toISOString()).to.equal("9999-12-31T23:59:59.000Z");
  });

  it("T7/SC7: an expired item is invisible to get, batch get, key and label queries, scan and count", async () => {
    await client.set({ key: "t:live", value: json(1), label1: { action: { case: "set", value: "l:x" } } });
    await client.set({ key: "t:gone", value: json(2), ttl: past, label1: { action: { case: "set", value: "l:x" } } });
    await client.set({ key: "gone", value: json(3), ttl: past });
    expect((await client.get({ key: "t:gone" })).item).to.equal(undefined);
    expect((await client.get({ key: "gone" })).item).to.equal(undefined);
    expect((await client.batchGet({ keys: ["t:gone", "t:live", "gone"] })).items.map((i) => i.key)).to.deep.equal(["t:live"]);
    expect((await client.query({ expression: "t:*" })).items.map((i) => i.key)).to.deep.equal(["t:live"]);
    expect((await client.query({ expression: "t:gone" })).items).to.deep.equal([]);
    expect((await client.query({ expression: "l:*", label: "label1" })).items.map((i) => i.key)).to.deep.equal(["t:live"]);
    expect((await client.scan({})).items.map((i) => i.key)).to.deep.equal(["t:live"]);
    expect((await client.scan({ label: "label1" })).items.map((i) => i.key)).to.deep.equal(["t:live"]);
    expect((await client.scan({ count: true })).count).to.equal(1n);
  });

  it("T7: writes treat an expired item as absent: exists, merge, add and created start fresh", async () => {
    await client.set({
      key: "t:w",
      value: json({ old: true }),
      ttl: { kind: { case: "seconds", value: 1 } },
      label2: { action: { case: "set", value: "old" } },
    });
    await sleep(1100);
    const fresh = (await client.set({ key: "t:w", value: json({ new: true }), exists: false })).item!;
    expect(plain(fresh.value)).to.deep.equal({ new: true });
    expect(fresh.label2).to.equal(undefined);
    expect(fresh.ttl).to.equal(undefined);
    await client.set({ key: "t:c", value: json(5), ttl: past });
    expect(plain((await client.add({ key: "t:c", amount: 1 })).item?.value)).to.equal(1);
  });

  it("T1/T3: relative and absolute ttl, ttl removal, merges keep the ttl", async () => {
    const before = Date.now();
    const relative = (await client.set({ key: "t:r", value: json(1), ttl: { kind: { case: "seconds", value: 3600 } } })).item!;
    const expires = Number(relative.ttl!.seconds) * 1000;
    expect(expires).to.be.within(before + 3600_000 - 1000, Date.now() + 3600_000 + 1000);
    const merged = (await client.set({ key: "t:r", value: json(2) })).item!;
    expect(merged.ttl).to.deep.equal(relative.ttl);
    const absolute = (await client.set({ key: "t:r", value: json(3), ttl: { kind: { case: "seconds", value: 4102444800 } } })).item!;
    expect(Number(absolute.ttl!.seconds)).to.equal(4102444800);
    const removed = (await client.set({ key: "t:r", value: json(4), ttl: { kind: { case: "remove", value: true } } })).item!;
    expect(removed.ttl).to.equal(undefined);
  });

  it("T2: ISO dates without an offset are UTC, partial dates work, and expiries past 2038 stay in the future", async () => {
    const item = (await client.set({ key: "t:iso", value: json(1), ttl: { kind: { case: "date", value: "2040-01-01T10:00" } } })).item!;
    expect(new Date(Number(item.ttl!.seconds) * 1000).toISOString()).to.equal("2040-01-01T10:00:00.000Z");
    const year = (await client.set({ key: "t:iso", value: json(1), ttl: { kind: { case: "date", value: "2045" } } })).item!;
    expect(new Date(Number(year.ttl!.seconds) * 1000).toISOString()).to.equal("2045-01-01T00:00:00.000Z");
    expect((await client.get({ key: "t:iso" })).item).to.not.equal(undefined);
  });

  it("T2/T5: an expiry in the years 1 to 99 is that year, not 1901 to 1999; `at` and `date` truncate to the same millisecond", async () => {
    const expiry = async (ttl: Parameters<typeof client.set>[0]["ttl"]) =>
      timestampDate((await client.set({ key: "t:when", value: json(1), ttl })).item!.ttl!).toISOString();
    expect(await expiry({ kind: { case: "date", value: "0050-06-01" } })).to.equal("0050-06-01T00:00:00.000Z");
    const last = { seconds: 253402300799n, nanos: 999_500_000 };
    expect(await expiry({ kind: { case: "at", value: last } })).to.equal("9999-12-31T23:59:59.999Z");
    expect(await expiry({ kind: { case: "date", value: "9999-12-31T23:59:59.9995Z" } })).to.equal("9999-12-31T23:59:59.999Z");
  });
});
