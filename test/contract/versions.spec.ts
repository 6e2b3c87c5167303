import { Code } from "@connectrpc/connect";
import { expect } from "chai";
import { describeContract, expectFailure } from "./harness.js";
import { subscribe } from "./watching.js";
import { json, plain } from "./values.js";

describeContract("contract: versions and ifVersion", ({ client }) => {
  const label = (value: string) => ({ action: { case: "set" as const, value } });
  const versionOf = async (key: string) => (await client.get({ key })).item?.version;

  it("an item starts at version 1 and every write moves it on by one: merge, overwrite, add, counter attribute", async () => {
    expect((await client.set({ key: "v:a", value: json({ n: 1 }) })).item!.version).to.equal(1n);
    expect((await client.set({ key: "v:a", value: json({ m: 2 }) })).item!.version).to.equal(2n);
    expect((await client.set({ key: "v:a", value: json({ o: 3 }), overwrite: true })).item!.version).to.equal(3n);
    expect((await client.add({ key: "v:a", attribute: "n", amount: 5 })).item!.version).to.equal(4n);
    expect((await client.add({ key: "v:a", attribute: "n", amount: 5 })).item!.version).to.equal(5n);
    expect(await versionOf("v:a")).to.equal(5n);
    expect((await client.add({ key: "v:c", amount: 1 })).item!.version).to.equal(1n);
    expect((await client.add({ key: "v:c", amount: 1 })).item!.version).to.equal(2n);
    const page = await client.query({ expression: "v:*" });
    expect(page.items.map((item) => [item.key, item.version])).to.deep.equal([
      ["v:a", 5n],
      ["v:c", 2n],
    ]);
  });

  it("a batch set and a seed write versions too; an item made again after a remove or an expiry starts at 1", async () => {
    await client.set({ key: "v:b", value: json(1) });
    const batch = await client.batchSet({
      items: [
        { key: "v:b", value: json(2) },
        { key: "v:new", value: json(3) },
      ],
    });
    expect(batch.items.map((item) => item.version)).to.deep.equal([2n, 1n]);
    await client.seed({
      items: [
        { key: "v:b", value: json(4) },
        { key: "v:b", value: json(5) },
      ],
    });
    expect(await versionOf("v:b")).to.equal(4n);
    await client.remove({ keys: ["v:b"] });
    expect((await client.set({ key: "v:b", value: json(6) })).item!.version).to.equal(1n);
    await client.set({ key: "v:t", value: json(1) });
    await client.set({ key: "v:t", value: json(2), ttl: { kind: { case: "seconds", value: -1 } } });
    expect((await client.set({ key: "v:t", value: json(3) })).item!.version).to.equal(1n);
  });

  it("set with ifVersion writes only over that version; a mismatch is FAILED_PRECONDITION VERSION_MISMATCH and writes nothing", async () => {
    await client.set({ key: "v:s", value: json({ n: 1 }), label1: label("l:one") });
    const updated = await client.set({ key: "v:s", value: json({ n: 2 }), ifVersion: 1n });
    expect([plain(updated.item!.value), updated.item!.version]).to.deep.equal([{ n: 2 }, 2n]);
    const watch = subscribe(client, { filters: ["*:v:*"] });
    await watch.started;
    await expectFailure(
      client.set({ key: "v:s", value: json({ n: 3 }), ifVersion: 1n }),
      Code.FailedPrecondition,
      "VERSION_MISMATCH",
      "The version check failed: expected version 1, but the item is at version 2",
    );
    await expectFailure(
      client.set({ key: "v:s", value: json({ n: 3 }), ifVersion: 3n, overwrite: true }),
      Code.FailedPrecondition,
      "VERSION_MISMATCH",
    );
    await expectFailure(
      client.set({ key: "v:s", value: json({ n: 3 }), ifVersion: 0n }),
      Code.FailedPrecondition,
      "VERSION_MISMATCH",
      "The version check failed: expected no item, but the item exists at version 2",
    );
    await expectFailure(
      client.set({ key: "v:none", value: json(1), ifVersion: 1n }),
      Code.FailedPrecondition,
      "VERSION_MISMATCH",
      "The version check failed: expected version 1, but there is no live item",
    );
    const stored = (await client.get({ key: "v:s" })).item!;
    expect([plain(stored.value), stored.version, stored.label1]).to.deep.equal([{ n: 2 }, 2n, "l:one"]);
    expect((await client.get({ key: "v:none" })).item).to.equal(undefined);
    // A sentinel: a refused write emits no event, so the first event is the sentinel's.
    await client.set({ key: "v:end", value: json(0) });
    const events = await watch.until(1);
    await watch.close();
    expect(events.map((event) => event.item?.key)).to.deep.equal(["v:end"]);
  });

  it("ifVersion 0 creates only where no live item is (an expired one counts as none); with exists, S5's order decides the error", async () => {
    expect((await client.set({ key: "v:z", value: json(1), ifVersion: 0n })).item!.version).to.equal(1n);
    await client.set({ key: "v:x", value: json(1), ttl: { kind: { case: "seconds", value: -1 } } });
    expect((await client.set({ key: "v:x", value: json(2), ifVersion: 0n })).item!.version).to.equal(1n);
    // E1 before the version check (S5: exists, then created, then the version).
    await expectFailure(client.set({ key: "v:z", value: json(2), exists: false, ifVersion: 5n }), Code.AlreadyExists, "ITEM_EXISTS");
    await expectFailure(client.set({ key: "v:nothing", value: json(2), exists: true, ifVersion: 0n }), Code.NotFound, "ITEM_NOT_FOUND");
    const created = Number((await client.get({ key: "v:z" })).item!.created!.seconds);
    await expectFailure(client.set({ key: "v:z", value: json(2), created: created + 5, ifVersion: 1n }), Code.FailedPrecondition, "CREATED_MISMATCH");
    expect((await client.set({ key: "v:z", value: json(2), exists: true, created, ifVersion: 1n })).item!.version).to.equal(2n);
  });

  it("concurrent read-modify-writes with ifVersion: exactly one writer per version wins, none is lost", async () => {
    await client.set({ key: "v:rmw", value: json({ n: 0 }) });
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        for (let done = 0; done < 5;) {
          const item = (await client.get({ key: "v:rmw" })).item!;
          const n = (plain(item.value) as { n: number }).n;
          try {
            await client.set({ key: "v:rmw", value: json({ n: n + 1 }), ifVersion: item.version });
            done++;
          } catch (error) {
            expect((error as { code: Code }).code).to.equal(Code.FailedPrecondition);
          }
        }
      }),
    );
    const final = (await client.get({ key: "v:rmw" })).item!;
    expect(plain(final.value)).to.deep.equal({ n: 30 });
    expect(final.version).to.equal(31n);
  });

  it("add with ifVersion: counts only at that version, on the value and on an attribute", async () => {
    await client.add({ key: "v:n", amount: 1 });
    expect(plain((await client.add({ key: "v:n", amount: 1, ifVersion: 1n })).item!.value)).to.equal(2);
    await expectFailure(client.add({ key: "v:n", amount: 1, ifVersion: 1n }), Code.FailedPrecondition, "VERSION_MISMATCH");
    await client.set({ key: "v:o", value: json({ hits: 1 }) });
    expect(plain((await client.add({ key: "v:o", attribute: "hits", amount: 2, ifVersion: 1n })).item!.value)).to.deep.equal({ hits: 3 });
    await expectFailure(client.add({ key: "v:o", attribute: "hits", amount: 2, ifVersion: 1n }), Code.FailedPrecondition, "VERSION_MISMATCH");
    expect(plain((await client.add({ key: "v:fresh", amount: 7, ifVersion: 0n })).item!.value)).to.equal(7);
    await expectFailure(client.add({ key: "v:fresh", amount: 7, ifVersion: 0n }), Code.FailedPrecondition, "VERSION_MISMATCH");
    expect(plain((await client.get({ key: "v:n" })).item!.value)).to.equal(2);
    expect(plain((await client.get({ key: "v:o" })).item!.value)).to.deep.equal({ hits: 3 });
  });

  it("remove with ifVersion removes one key only at that version; a mismatch removes nothing", async () => {
    await client.set({ key: "v:r", value: json(1) });
    await client.set({ key: "v:r", value: json(2) });
    await expectFailure(client.remove({ keys: ["v:r"], ifVersion: 1n }), Code.FailedPrecondition, "VERSION_MISMATCH");
    expect(await versionOf("v:r")).to.equal(2n);
    expect((await client.remove({ keys: ["v:r"], ifVersion: 2n })).removedKeys).to.deep.equal(["v:r"]);
    await expectFailure(
      client.remove({ keys: ["v:r"], ifVersion: 2n }),
      Code.FailedPrecondition,
      "VERSION_MISMATCH",
      "The version check failed: expected version 2, but there is no live item",
    );
    // Duplicates name one item (R3).
    await client.set({ key: "v:d", value: json(1) });
    expect((await client.remove({ keys: ["v:d", " v:d"], ifVersion: 1n })).removedKeys).to.deep.equal(["v:d"]);
  });

  it("bad ifVersion use → INVALID_ARGUMENT INVALID_OPTION, nothing written", async () => {
    await client.set({ key: "v:a", value: json(1) });
    await client.set({ key: "v:b", value: json(1) });
    await expectFailure(client.remove({ keys: ["v:a", "v:b"], ifVersion: 1n }), Code.InvalidArgument, "INVALID_OPTION");
    await expectFailure(client.remove({ keys: ["v:a"], ifVersion: 0n }), Code.InvalidArgument, "INVALID_OPTION");
    await expectFailure(client.set({ key: "v:a", value: json(2), ifVersion: 2n ** 60n }), Code.InvalidArgument, "INVALID_OPTION");
    expect((await client.count({ expression: "v:*" })).count).to.equal(2n);
    expect(plain((await client.get({ key: "v:a" })).item!.value)).to.equal(1);
  });

  it("events carry the versions: the item's after the change, the previous item's before it", async () => {
    const watch = subscribe(client, { filters: ["*:v:*"] });
    await watch.started;
    await client.set({ key: "v:e", value: json(1) });
    await client.add({ key: "v:e", amount: 1 });
    await client.remove({ keys: ["v:e"] });
    const events = await watch.until(3);
    await watch.close();
    expect(events.map((event) => [event.name, event.item?.version, event.previous?.version])).to.deep.equal([
      ["created", 1n, undefined],
      ["updated", 2n, 1n],
      ["deleted", 2n, undefined],
    ]);
  });
});
