import { Code } from "@connectrpc/connect";
import { expect } from "chai";
import { describeContract, expectFailure } from "./harness.js";
import { subscribe } from "./watching.js";
import { json, plain } from "./values.js";
import { sleep } from "../support/async.js";

describeContract("contract: idempotency keys", ({ client }) => {
  const key = () => `idem-${Math.random().toString(36).slice(2)}`;

  it("add(key, 1) retried with its idempotency key counts once, and every retry gets the first outcome", async () => {
    const idempotencyKey = key();
    const first = await client.add({ key: "i:counter", amount: 1, idempotencyKey });
    for (let retry = 0; retry < 3; retry++) {
      const again = await client.add({ key: "i:counter", amount: 1, idempotencyKey });
      expect(again.item).to.deep.equal(first.item);
    }
    const stored = (await client.get({ key: "i:counter" })).item!;
    expect([plain(stored.value), stored.version]).to.deep.equal([1, 1n]);
    // Another key is another write.
    expect(plain((await client.add({ key: "i:counter", amount: 1, idempotencyKey: key() })).item!.value)).to.equal(2);
  });

  it("a replayed set writes nothing and emits no event, even after the item changed since", async () => {
    const watch = subscribe(client, { filters: ["*:i:*"] });
    await watch.started;
    const idempotencyKey = key();
    const first = await client.set({ key: "i:doc", value: json({ n: 1 }), idempotencyKey });
    await client.set({ key: "i:doc", value: json({ n: 2 }) });
    const replayed = await client.set({ key: "i:doc", value: json({ n: 1 }), idempotencyKey });
    expect(replayed.item).to.deep.equal(first.item);
    const stored = (await client.get({ key: "i:doc" })).item!;
    expect([plain(stored.value), stored.version]).to.deep.equal([{ n: 2 }, 2n]);
    await client.set({ key: "i:end", value: json(0) });
    const events = await watch.until(3);
    await watch.close();
    expect(events.map((event) => [event.name, event.item?.key])).to.deep.equal([
      ["created", "i:doc"],
      ["updated", "i:doc"],
      ["created", "i:end"],
    ]);
  });

  it("remove and batch set replay their first outcome", async () => {
    await client.set({ key: "i:gone", value: json(1) });
    const removeKey = key();
    expect((await client.remove({ keys: ["i:gone", "i:never"], idempotencyKey: removeKey })).removedKeys).to.deep.equal(["i:gone"]);
    expect((await client.remove({ keys: ["i:gone", "i:never"], idempotencyKey: removeKey })).removedKeys).to.deep.equal(["i:gone"]);
    const batchKey = key();
    const items = [
      { key: "i:b1", value: json(1) },
      { key: "i:b2", value: json(2) },
    ];
    const first = await client.batchSet({ items, idempotencyKey: batchKey });
    const again = await client.batchSet({ items, idempotencyKey: batchKey });
    expect(again.items).to.deep.equal(first.items);
    expect((await client.batchGet({ keys: ["i:b1", "i:b2"] })).items.map((item) => item.version)).to.deep.equal([1n, 1n]);
  });

  it("the same key with another request is FAILED_PRECONDITION IDEMPOTENCY_KEY_REUSED, and nothing is written", async () => {
    const idempotencyKey = key();
    await client.add({ key: "i:n", amount: 1, idempotencyKey });
    await expectFailure(client.add({ key: "i:n", amount: 2, idempotencyKey }), Code.FailedPrecondition, "IDEMPOTENCY_KEY_REUSED");
    await expectFailure(client.set({ key: "i:n", value: json(9), idempotencyKey }), Code.FailedPrecondition, "IDEMPOTENCY_KEY_REUSED");
    await expectFailure(client.remove({ keys: ["i:n"], idempotencyKey }), Code.FailedPrecondition, "IDEMPOTENCY_KEY_REUSED");
    expect(plain((await client.get({ key: "i:n" })).item!.value)).to.equal(1);
  });

  it("a failed write records nothing: its retry runs again once the precondition holds", async () => {
    await client.set({ key: "i:v", value: json(1) });
    const idempotencyKey = key();
    await expectFailure(client.set({ key: "i:v", value: json(3), ifVersion: 2n, idempotencyKey }), Code.FailedPrecondition, "VERSION_MISMATCH");
    await client.set({ key: "i:v", value: json(2) });
    expect((await client.set({ key: "i:v", value: json(3), ifVersion: 2n, idempotencyKey })).item!.version).to.equal(3n);
    expect((await client.set({ key: "i:v", value: json(3), ifVersion: 2n, idempotencyKey })).item!.version).to.equal(3n);
  });

  it("concurrent attempts with one key apply once", async () => {
    const idempotencyKey = key();
    const outcomes = await Promise.all(Array.from({ length: 8 }, () => client.add({ key: "i:race", amount: 1, idempotencyKey })));
    expect(new Set(outcomes.map((outcome) => plain(outcome.item!.value)))).to.deep.equal(new Set([1]));
    expect(plain((await client.get({ key: "i:race" })).item!.value)).to.equal(1);
  });

  it("a bad idempotency key → INVALID_ARGUMENT INVALID_OPTION, nothing written", async () => {
    await expectFailure(client.set({ key: "i:bad", value: json(1), idempotencyKey: "x".repeat(129) }), Code.InvalidArgument, "INVALID_OPTION");
    await expectFailure(client.add({ key: "i:bad", amount: 1, idempotencyKey: " padded " }), Code.InvalidArgument, "INVALID_OPTION");
    expect((await client.get({ key: "i:bad" })).item).to.equal(undefined);
  });
});

describeContract(
  "contract: idempotency window",
  ({ client }) => {
    it("past LARDER_IDEMPOTENCY_WINDOW_MS a key no longer replays: the same request writes again", async () => {
      const idempotencyKey = "window-key";
      await client.add({ key: "w:n", amount: 1, idempotencyKey });
      expect(plain((await client.add({ key: "w:n", amount: 1, idempotencyKey })).item!.value)).to.equal(1);
      await sleep(1_300);
      expect(plain((await client.add({ key: "w:n", amount: 1, idempotencyKey })).item!.value)).to.equal(2);
      // The new record answers from now on.
      expect(plain((await client.add({ key: "w:n", amount: 1, idempotencyKey })).item!.value)).to.equal(2);
    });
  },
  { env: { LARDER_IDEMPOTENCY_WINDOW_MS: "1000" } },
);
