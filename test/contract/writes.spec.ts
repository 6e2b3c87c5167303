import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { DataService } from "../../gen/larder/data/v1/data_pb.js";
import { expect } from "chai";
import { describeContract, expectFailure } from "./harness.js";
import { json, plain } from "./values.js";
import { subscribe } from "./watching.js";
import { sleep } from "../support/async.js";

describeContract("contract: writes", (context) => {
  const { client } = context;
  async function valueOf(key: string) {
    return plain((await client.get({ key })).item?.value);
  }

  it("S2/V4: set upserts and merges root attributes; the response is the merged value (S3)", async () => {
    await client.set({ key: "w:a", value: json({ x: 1, y: { deep: 1 } }) });
    const merged = await client.set({ key: "w:a", value: json({ y: { other: 2 }, z: 3 }) });
    expect(plain(merged.item?.value)).to.deep.equal({ x: 1, y: { other: 2 }, z: 3 });
    expect(await valueOf("w:a")).to.deep.equal({ x: 1, y: { other: 2 }, z: 3 });
  });

  it("M1: created is kept by merges, modified moves; times have millisecond precision (M3)", async () => {
    const first = (await client.set({ key: "w:m", value: json({ a: 1 }) })).item!;
    await sleep(5);
    const second = (await client.set({ key: "w:m", value: json({ b: 2 }) })).item!;
    expect(second.created).to.deep.equal(first.created);
    expect(Number(second.modified!.seconds) * 1000 + second.modified!.nanos / 1e6).to.be.greaterThan(
      Number(first.modified!.seconds) * 1000 + first.modified!.nanos / 1e6,
    );
    expect(first.created!.nanos % 1_000_000).to.equal(0);
  });

  it("V6: unset_attributes removes root attributes; nulls below the root are kept", async () => {
    await client.set({ key: "w:n", value: json({ a: 1, b: 2, c: { d: null } }) });
    await client.set({ key: "w:n", value: json({}), unsetAttributes: ["a"] });
    expect(await valueOf("w:n")).to.deep.equal({ b: 2, c: { d: null } });
  });

  it("V2: odd attribute names round trip exactly", async () => {
    const value = JSON.parse('{"":1,"a.b":2,"$x":3,"__proto__":{"p":4},"constructor":5,"😀":6}');
    await client.set({ key: "w:names", value: json(value) });
    const stored = (await valueOf("w:names")) as Record<string, unknown>;
    expect(Object.keys(stored).sort()).to.deep.equal(Object.keys(value).sort());
    expect(Object.getOwnPropertyDescriptor(stored, "__proto__")?.value).to.deep.equal({ p: 4 });
  });

  it("E1: of 20 concurrent exists:false sets of one key, exactly one succeeds", async () => {
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => client.set({ key: "w:race", value: json(i), exists: false })));
    const won = results.filter((r) => r.status === "fulfilled");
    expect(won).to.have.length(1);
    for (const lost of results.filter((r) => r.status === "rejected")) {
      expect(String((lost as PromiseRejectedResult).reason)).to.contain("Item already exists");
    }
    expect(await valueOf("w:race")).to.equal(plain((won[0] as PromiseFulfilledResult<{ item?: { value?: never } }>).value.item?.value));
  });

  it("AD6/S4: 50 concurrent adds of 1 end at exactly 50, and $add in set never loses an update", async () => {
    await Promise.all(Array.from({ length: 50 }, () => client.add({ key: "w:counter", amount: 1 })));
    expect(await valueOf("w:counter")).to.equal(50);
    await Promise.all(Array.from({ length: 30 }, (_, i) => client.set({ key: "w:obj", value: json({ n: { $add: 2 }, [`k${i}`]: i }) })));
    const stored = (await valueOf("w:obj")) as Record<string, number>;
    expect(stored.n).to.equal(60);
    expect(Object.keys(stored)).to.have.length(31);
  });

  it("A6: a counter past the largest double → OUT_OF_RANGE NUMBER_OVERFLOW; nothing is written, no event", async () => {
    const max = Number.MAX_VALUE;
    await client.set({ key: "w:big", value: json(max) });
    await client.set({ key: "w:bigs", value: json({ low: -max, n: 1 }) });
    const before = await client.batchGet({ keys: ["w:big", "w:bigs"] });
    const watch = subscribe(client, { filters: ["*:w:*"] });
    await watch.started;
    try {
      const overflow = `Adding ${max} to 'value' overflows the largest number`;
      await expectFailure(client.add({ key: "w:big", amount: max }), Code.OutOfRange, "NUMBER_OVERFLOW", overflow);
      await expectFailure(client.set({ key: "w:big", value: json({ $add: max }) }), Code.OutOfRange, "NUMBER_OVERFLOW", overflow);
      const low = `Adding ${-max} to 'low' overflows the largest number`;
      await expectFailure(client.add({ key: "w:bigs", attribute: "low", amount: -max }), Code.OutOfRange, "NUMBER_OVERFLOW", low);
      // Both counters in one set: the one that overflows refuses the whole write, the other is not added either.
      await expectFailure(
        client.set({ key: "w:bigs", value: json({ n: { $add: 1 }, low: { $add: -max } }) }),
        Code.OutOfRange,
        "NUMBER_OVERFLOW",
        low,
      );
      expect(await client.batchGet({ keys: ["w:big", "w:bigs"] })).to.deep.equal(before);
      await client.set({ key: "w:sentinel", value: json(0) });
      const events = await watch.until(1);
      expect(events.map((event) => [event.name, event.item?.key])).to.deep.equal([["created", "w:sentinel"]]);
    } finally {
      await watch.close();
    }
    // Up to the largest double is an ordinary sum.
    expect(plain((await client.add({ key: "w:bigs", attribute: "low", amount: max })).item?.value)).to.deep.equal({ low: 0, n: 1 });
    await client.remove({ keys: ["w:big", "w:bigs", "w:sentinel"] });
  });

  describe("bad input gets a precise status and reason, and nothing is written", () => {
    beforeEach(async () => {
      await client.set({ key: "w:keep", value: json({ kept: true }) });
    });
    afterEach(async () => {
      expect(await valueOf("w:keep")).to.deep.equal({ kept: true });
      const scan = await client.scan({});
      expect(scan.items.map((item) => item.key)).to.deep.equal(["w:keep"]);
    });

    it("K3: an empty key part → INVALID_ARGUMENT INVALID_KEY", async () => {
      await expectFailure(client.set({ key: "w:", value: json(1) }), Code.InvalidArgument, "INVALID_KEY", "Invalid key");
    });
    it("K4: a key part over 256 bytes → INVALID_ARGUMENT INVALID_KEY", async () => {
      await expectFailure(
        client.set({ key: `w:${"é".repeat(129)}`, value: json(1) }),
        Code.InvalidArgument,
        "INVALID_KEY",
        "Invalid key: Maximum Key size is 256 bytes",
      );
    });
    it("K6: reserved characters in a collection key → INVALID_ARGUMENT INVALID_KEY", async () => {
      await expectFailure(client.set({ key: "w:a*", value: json(1) }), Code.InvalidArgument, "INVALID_KEY");
      await expectFailure(client.set({ key: "w:>a", value: json(1) }), Code.InvalidArgument, "INVALID_KEY");
    });
    it("V7: no value and no default → INVALID_ARGUMENT INVALID_VALUE", async () => {
      await expectFailure(
        client.set({ key: "w:keep" }),
        Code.InvalidArgument,
        "INVALID_VALUE",
        "Value can not be undefined without setting a 'default'",
      );
    });
    it("V1: nesting deeper than 32 → INVALID_ARGUMENT INVALID_VALUE", async () => {
      let deep: unknown = 1;
      for (let i = 0; i < 40; i++) deep = { d: deep };
      await expectFailure(client.set({ key: "w:deep", value: json(deep) }), Code.InvalidArgument, "INVALID_VALUE");
    });
    it("V8: a request over 400 KB → INVALID_ARGUMENT ITEM_TOO_LARGE", async () => {
      const failure = await expectFailure(client.set({ key: "w:big", value: json("x".repeat(409_600)) }), Code.InvalidArgument, "ITEM_TOO_LARGE");
      expect(failure.rawMessage).to.match(/^Item size of \d+\.\d\d KB is greater than the maximum size of 400 KB\.$/);
    });
    it("V8: a merge whose result is over 400 KB → FAILED_PRECONDITION ITEM_TOO_LARGE", async () => {
      await client.set({ key: "w:merge", value: json({ a: "x".repeat(300_000) }) });
      const failure = await expectFailure(
        client.set({ key: "w:merge", value: json({ b: "y".repeat(200_000) }) }),
        Code.FailedPrecondition,
        "ITEM_TOO_LARGE",
      );
      expect(failure.rawMessage).to.equal("Item size of 488.32 KB is greater than the maximum size of 400 KB.");
      expect(Object.keys((await valueOf("w:merge")) as object)).to.deep.equal(["a"]);
      await client.remove({ keys: ["w:merge"] });
    });
    it("V1/V2: a lone surrogate in a string or attribute name (Connect JSON lets it through) → INVALID_ARGUMENT INVALID_VALUE", async () => {
      // gRPC's binary strings cannot carry one (UTF-8 makes it U+FFFD); JSON's "\ud800" escapes can.
      const overJson = createClient(DataService, createConnectTransport({ baseUrl: context.url, httpVersion: "1.1", useBinaryFormat: false }));
      const message = "'value' may only hold well-formed Unicode text (no lone surrogates)";
      for (const value of ["a\ud800", { ["x\udc00"]: 1 }, { kept: { ["\ud800"]: 1 } }]) {
        await expectFailure(overJson.set({ key: "w:keep", value: json(value) }), Code.InvalidArgument, "INVALID_VALUE", message);
      }
      await expectFailure(
        overJson.set({ key: "w:keep", defaultValue: json({ d: "\udfff" }) }),
        Code.InvalidArgument,
        "INVALID_VALUE",
        "'default' may only hold well-formed Unicode text (no lone surrogates)",
      );
    });
    it("V5: a single value onto an object → FAILED_PRECONDITION NOT_A_SIMPLE_VALUE", async () => {
      await expectFailure(
        client.set({ key: "w:keep", value: json("text") }),
        Code.FailedPrecondition,
        "NOT_A_SIMPLE_VALUE",
        "Cannot convert an existing object to a simple value.",
      );
    });
    it("A4: $add onto a non-number → FAILED_PRECONDITION NOT_A_NUMBER", async () => {
      await expectFailure(client.set({ key: "w:keep", value: json({ kept: { $add: 1 } }) }), Code.FailedPrecondition, "NOT_A_NUMBER");
      await expectFailure(client.add({ key: "w:keep", attribute: "kept", amount: 1 }), Code.FailedPrecondition, "NOT_A_NUMBER");
    });
    it("AD4/A2: a non-finite amount, or a counter named '$add' → INVALID_ARGUMENT INVALID_VALUE", async () => {
      await expectFailure(client.add({ key: "w:n", amount: Number.NaN }), Code.InvalidArgument, "INVALID_VALUE", "Values must be numeric");
      await expectFailure(
        client.add({ key: "w:keep", attribute: "$add", amount: 5 }),
        Code.InvalidArgument,
        "INVALID_VALUE",
        "'$add' is a reserved keyword and cannot be the name of a counter",
      );
    });
    it("E1: exists:false on a live item → ALREADY_EXISTS ITEM_EXISTS", async () => {
      await expectFailure(
        client.set({ key: "w:keep", value: json({ x: 1 }), exists: false }),
        Code.AlreadyExists,
        "ITEM_EXISTS",
        "Item already exists",
      );
    });
    it("E3: the checks hold with overwrite too, and a failed one changes no metadata", async () => {
      const before = (await client.get({ key: "w:keep" })).item!;
      await expectFailure(client.set({ key: "w:keep", value: json(1), exists: false, overwrite: true }), Code.AlreadyExists, "ITEM_EXISTS");
      await expectFailure(client.set({ key: "w:gone", value: json(1), exists: true, overwrite: true }), Code.NotFound, "ITEM_NOT_FOUND");
      const after = (await client.get({ key: "w:keep" })).item!;
      expect([after.created, after.modified]).to.deep.equal([before.created, before.modified]);
    });
    it("E2: exists:true on a missing item → NOT_FOUND ITEM_NOT_FOUND", async () => {
      await expectFailure(client.set({ key: "w:missing", value: json(1), exists: true }), Code.NotFound, "ITEM_NOT_FOUND", "Item does not exist");
    });
    it("C1: a created mismatch → FAILED_PRECONDITION CREATED_MISMATCH, with and without overwrite", async () => {
      for (const overwrite of [false, true]) {
        await expectFailure(
          client.set({ key: "w:keep", value: json({ x: 1 }), overwrite, created: 1 }),
          Code.FailedPrecondition,
          "CREATED_MISMATCH",
          "The 'created' date integrity check failed. The dates must match.",
        );
      }
    });
    it("S5: exists:false with created → ALREADY_EXISTS on a live item (E1 comes first), CREATED_MISMATCH on a missing one", async () => {
      const live = (await client.get({ key: "w:keep" })).item!;
      const created = Number(live.created!.seconds) * 1000 + live.created!.nanos / 1e6;
      await expectFailure(
        client.set({ key: "w:keep", value: json({ x: 1 }), exists: false, created }),
        Code.AlreadyExists,
        "ITEM_EXISTS",
        "Item already exists",
      );
      await expectFailure(
        client.set({ key: "w:absent", value: json(1), exists: false, created }),
        Code.FailedPrecondition,
        "CREATED_MISMATCH",
        "The 'created' date integrity check failed. The dates must match.",
      );
    });
    it("T4: an invalid ttl → INVALID_ARGUMENT INVALID_OPTION", async () => {
      await expectFailure(
        client.set({ key: "w:t", value: json(1), ttl: { kind: { case: "seconds", value: 1.5 } } }),
        Code.InvalidArgument,
        "INVALID_OPTION",
        "Invalid ttl value.",
      );
      // A date no clock shows (an offset past 23:59) and the year 0, before the first Timestamp.
      for (const value of ["not a date", "2030-01-01T10:00+99:99", "0000"]) {
        await expectFailure(
          client.set({ key: "w:t", value: json(1), ttl: { kind: { case: "date", value } } }),
          Code.InvalidArgument,
          "INVALID_OPTION",
          "Invalid ttl value.",
        );
      }
    });
    it("T4: an expiry past 9999-12-31 (the last instant a Timestamp carries) → INVALID_ARGUMENT INVALID_OPTION", async () => {
      for (const seconds of [253402300800, 1e13]) {
        await expectFailure(
          client.set({ key: "w:far", value: json(1), ttl: { kind: { case: "seconds", value: seconds } } }),
          Code.InvalidArgument,
          "INVALID_OPTION",
          "Invalid ttl value.",
        );
      }
    });
    it("L1: a label value that breaks the key rules → INVALID_ARGUMENT INVALID_KEY", async () => {
      await expectFailure(
        client.set({ key: "w:l", value: json(1), label1: { action: { case: "set", value: "ns:a|b" } } }),
        Code.InvalidArgument,
        "INVALID_KEY",
      );
    });
    it("BS1: more than 25 items → INVALID_ARGUMENT BATCH_SIZE", async () => {
      const items = Array.from({ length: 26 }, (_, i) => ({ key: `w:b${i}`, value: json(i) }));
      await expectFailure(
        client.batchSet({ items }),
        Code.InvalidArgument,
        "BATCH_SIZE",
        "You may only provide a maximum of 25 items in one batch set request",
      );
    });
    it("BS3: one bad item fails the whole batch", async () => {
      await expectFailure(
        client.batchSet({
          items: [
            { key: "w:ok", value: json(1) },
            { key: "w:", value: json(2) },
          ],
        }),
        Code.InvalidArgument,
        "INVALID_KEY",
      );
    });
    it("BS3: two items with the same key → INVALID_ARGUMENT", async () => {
      const failure = await expectFailure(
        client.batchSet({
          items: [
            { key: "w:d", value: json(1) },
            { key: " w:d ", value: json(2) },
          ],
        }),
        Code.InvalidArgument,
        "INVALID_KEY",
      );
      expect(failure.rawMessage).to.contain("w:d");
    });
    it("BS2: overwrite:false → INVALID_ARGUMENT", async () => {
      await expectFailure(client.batchSet({ items: [{ key: "w:o", value: json(1) }], overwrite: false }), Code.InvalidArgument, "INVALID_OPTION");
    });
    it("R2/R3: remove with an expression or over 25 keys → INVALID_ARGUMENT; nothing is removed", async () => {
      await expectFailure(
        client.remove({ keys: ["w:keep", "w:<b"] }),
        Code.InvalidArgument,
        "INVALID_KEY",
        "You cannot delete items using conditionals. Please remove each item separately.",
      );
      await expectFailure(
        client.remove({ keys: Array.from({ length: 26 }, () => "w:keep") }),
        Code.InvalidArgument,
        "BATCH_SIZE",
        "You may only provide a maximum of 25 keys in one batch remove request",
      );
    });
    it("SE3: one bad seed item → INVALID_ARGUMENT naming its index; nothing removed or written", async () => {
      const failure = await expectFailure(
        client.seed({
          items: [
            { key: "w:s1", value: json(1) },
            { key: "", value: json(2) },
          ],
          overwrite: true,
        }),
        Code.InvalidArgument,
        "INVALID_KEY",
      );
      expect(failure.rawMessage).to.contain("1");
    });
  });

  it("R1/R5: remove reports the keys that held a live item; a later set starts a fresh item (R4)", async () => {
    await client.set({ key: "w:r1", value: json(1), label1: { action: { case: "set", value: "lab" } } });
    const removed = await client.remove({ keys: ["w:r1", "w:none", " w:r1 "] });
    expect(removed.removedKeys).to.deep.equal(["w:r1"]);
    expect((await client.query({ expression: "lab", label: "label1" })).items).to.deep.equal([]);
  });

  it("SE1/SE2: seed writes every item as an overwrite; overwrite empties first; later duplicates win", async () => {
    await client.set({ key: "w:old", value: json(1) });
    const seeded = await client.seed({
      items: Array.from({ length: 130 }, (_, i) => ({ key: `w:s${String(i).padStart(3, "0")}`, value: json(i) })).concat([
        { key: "w:s000", value: json("last") },
      ]),
      overwrite: true,
    });
    expect(seeded.items, "every item given counts (SE1)").to.equal(131n);
    const count = await client.scan({ count: true });
    expect(count.count).to.equal(130n);
    expect(await valueOf("w:s000")).to.equal("last");
    expect(await valueOf("w:old")).to.equal(undefined);
  });
});
