import { Code } from "@connectrpc/connect";
import { timestampDate, timestampFromDate, timestampFromMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import { expect } from "chai";
import { describeContract, expectFailure } from "./harness.js";
import { json, plain } from "./values.js";
import { sleep } from "../support/async.js";

/** Changes a few ms apart have distinct commit times, so an instant can fall between them. */
const TICK_MS = 20;
const ms = (timestamp: Timestamp | undefined) => timestampDate(timestamp!).getTime();

describeContract("contract: history and asOf reads", ({ client }) => {
  // Each test its own keys: the clear before each test leaves `deleted` changes of the previous test's keys.
  const unique = (ns: string) => `${ns}${Math.random().toString(36).slice(2, 8)}`;
  const historyOf = async (key: string, limit = 0, start = "") => (await client.history({ key, limit, start })).entries;
  const asOf = async (key: string, at: number) => (await client.get({ key, asOf: timestampFromMs(at) })).item;

  it("lists a key's changes newest first: name, time, version and the item each left; a deletion shows the item deleted", async () => {
    const key = `${unique("h")}:doc`;
    await client.set({ key, value: json({ n: 1 }), label1: { action: { case: "set", value: "l:a" } } });
    await sleep(TICK_MS);
    await client.set({ key, value: json({ m: 2 }) });
    await sleep(TICK_MS);
    await client.add({ key, attribute: "n", amount: 5 });
    await sleep(TICK_MS);
    await client.remove({ keys: [key] });
    await client.set({ key: `${key}x`, value: json("another key") });
    const entries = await historyOf(key);
    expect(entries.map((entry) => [entry.name, entry.expired, entry.item?.key, entry.item?.version, plain(entry.item?.value)])).to.deep.equal([
      ["deleted", false, key, 3n, { n: 6, m: 2 }],
      ["updated", false, key, 3n, { n: 6, m: 2 }],
      ["updated", false, key, 2n, { n: 1, m: 2 }],
      ["created", false, key, 1n, { n: 1 }],
    ]);
    expect(entries[3].item?.label1).to.equal("l:a");
    const times = entries.map((entry) => ms(entry.time));
    expect([...times].sort((a, b) => b - a)).to.deep.equal(times);
    expect(times[0] - times[3]).to.be.greaterThanOrEqual(3 * TICK_MS - 5);
    expect(await historyOf(`${unique("h")}:never`)).to.deep.equal([]);
  });

  it("pages with limit and start (lastKey present iff older changes follow), each change once", async () => {
    const key = unique("page");
    for (let n = 1; n <= 5; n++) await client.set({ key, value: json(n) });
    const seen: unknown[] = [];
    let start = "";
    const pages: number[] = [];
    for (;;) {
      const page = await client.history({ key, limit: 2, start });
      pages.push(page.entries.length);
      seen.push(...page.entries.map((entry) => plain(entry.item?.value)));
      if (page.lastKey === undefined) break;
      start = page.lastKey;
    }
    expect(pages).to.deep.equal([2, 2, 1]);
    expect(seen).to.deep.equal([5, 4, 3, 2, 1]);
    const exact = await client.history({ key, limit: 5 });
    expect([exact.entries.length, exact.lastKey]).to.deep.equal([5, undefined]);
  });

  it("expiry is in the history: a write past its ttl is created then deleted with expired; a later write shows the expiry first (EV6)", async () => {
    const key = unique("exp");
    await client.set({ key, value: json(1), ttl: { kind: { case: "seconds", value: -1 } } });
    expect((await historyOf(key)).map((entry) => [entry.name, entry.expired])).to.deep.equal([
      ["deleted", true],
      ["created", false],
    ]);
    const late = unique("late");
    await client.set({ key: late, value: json(1), ttl: { kind: { case: "seconds", value: 1 } } });
    await sleep(1_200);
    await client.set({ key: late, value: json(2) });
    const entries = await historyOf(late);
    expect(entries.slice(0, 3).map((entry) => [entry.name, entry.expired, plain(entry.item?.value)])).to.deep.equal([
      ["created", false, 2],
      ["deleted", true, 1],
      ["created", false, 1],
    ]);
  });

  it("asOf: nothing before creation, each version between its writes, nothing after a delete, the new item after it is made again", async () => {
    const key = unique("asof");
    const beforeCreation = Date.now() - 1;
    await sleep(TICK_MS);
    const v1 = (await client.set({ key, value: json("one") })).item!;
    await sleep(TICK_MS);
    const v2 = (await client.set({ key, value: json("two") })).item!;
    await sleep(TICK_MS);
    await client.remove({ keys: [key] });
    await sleep(TICK_MS);
    const deletedAt = ms((await historyOf(key))[0].time);
    await sleep(TICK_MS);
    const again = (await client.set({ key, value: json("again") })).item!;
    const [created, updated] = (await historyOf(key)).slice(2).reverse();
    expect(await asOf(key, beforeCreation)).to.equal(undefined);
    const first = await asOf(key, ms(created.time));
    expect([plain(first?.value), first?.version, first?.modified]).to.deep.equal(["one", 1n, v1.modified]);
    expect(plain((await asOf(key, ms(updated.time) - 1))?.value)).to.equal("one");
    const second = await asOf(key, ms(updated.time));
    expect([plain(second?.value), second?.version, second?.modified]).to.deep.equal(["two", 2n, v2.modified]);
    expect(await asOf(key, deletedAt)).to.equal(undefined);
    expect(await asOf(key, deletedAt + 1)).to.equal(undefined);
    const now = await asOf(key, Date.now());
    expect([plain(now?.value), now?.version]).to.deep.equal([plain(again.value), 1n]);
    // Through the Timestamp form too, to the millisecond.
    const viaDate = await client.get({ key, asOf: timestampFromDate(new Date(ms(updated.time))) });
    expect(plain(viaDate.item?.value)).to.equal("two");
  });

  it("asOf an instant after an item's expiry is no item, even before the sweeper deleted it (T7)", async () => {
    const key = unique("ttl");
    const item = (await client.set({ key, value: json(1), ttl: { kind: { case: "seconds", value: 1 } } })).item!;
    const expires = ms(item.ttl);
    await sleep(Math.max(0, expires - Date.now()) + 50);
    expect(await asOf(key, expires - 1)).to.have.property("key", key);
    expect(await asOf(key, expires)).to.equal(undefined);
  });

  it("bad input → INVALID_ARGUMENT with a reason: a future asOf, an expression, a bad start, a bad limit, a Timestamp that is no instant", async () => {
    const key = unique("bad");
    await client.set({ key, value: json(1) });
    await expectFailure(client.get({ key, asOf: timestampFromMs(Date.now() + 60_000) }), Code.InvalidArgument, "INVALID_OPTION");
    await expectFailure(client.get({ key, asOf: { seconds: 1n, nanos: 1_000_000_000 } as Timestamp }), Code.InvalidArgument, "INVALID_OPTION");
    await expectFailure(client.get({ key: "bad:*", asOf: timestampFromMs(Date.now()) }), Code.InvalidArgument, "INVALID_KEY");
    await expectFailure(client.history({ key: "bad:*" }), Code.InvalidArgument, "INVALID_KEY");
    await expectFailure(client.history({ key: "" }), Code.InvalidArgument, "INVALID_KEY");
    await expectFailure(client.history({ key, start: "not-a-position" }), Code.InvalidArgument, "INVALID_OPTION");
    await expectFailure(client.history({ key, limit: 1001 }), Code.InvalidArgument, "INVALID_OPTION");
  });
});

/**
 * The history is the change log, bounded by its retention: these servers keep
 * a second of it, so the edge can be tested in real time.
 */
describeContract(
  "contract: history retention",
  ({ client }) => {
    it("asOf older than the retained history → OUT_OF_RANGE HISTORY_EXPIRED; History lists only retained changes", async () => {
      const key = `ret${Math.random().toString(36).slice(2, 8)}`;
      await client.set({ key, value: json("old") });
      const early = Date.now();
      // Past the 1 s retention by a margin: on MongoDB the change's time is the server's clock.
      await sleep(3_000);
      await expectFailure(client.get({ key, asOf: timestampFromMs(early) }), Code.OutOfRange, "HISTORY_EXPIRED");
      expect((await client.history({ key })).entries).to.deep.equal([]);
      // An item unchanged since before the retention is still known within it: nothing changed it since.
      const recent = await client.get({ key, asOf: timestampFromMs(Date.now() - 200) });
      expect(plain(recent.item?.value)).to.equal("old");
      await client.set({ key, value: json("new") });
      expect((await client.history({ key })).entries.map((entry) => [entry.name, plain(entry.item?.value)])).to.deep.equal([["updated", "new"]]);
    }).timeout(30_000);
  },
  { env: { LARDER_CHANGE_RETENTION_MS: "1000", LARDER_SWEEP_INTERVAL_MS: "200" } },
);
