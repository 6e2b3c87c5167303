import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AdminService } from "../../gen/larder/admin/v1/admin_pb.js";
import { expect } from "chai";
import { describeContract, expectFailure } from "./harness.js";
import { subscribe } from "./watching.js";
import { json, plain } from "./values.js";
import vectors from "../fixtures/vectors.json" with { type: "json" };
import { sleep } from "../support/async.js";
import { reasonOf } from "../support/errors.js";

describeContract("contract: change events", ({ client }) => {
  it("EV4/EV5: created, updated with previous, no event for a missing remove, deleted with the item", async () => {
    const watch = subscribe(client, { filters: ["*"] });
    await watch.started;
    await client.set({ key: "ev:a", value: json(1) });
    await client.set({ key: "ev:a", value: json(2) });
    await client.remove({ keys: ["ev:nothing"] });
    await client.remove({ keys: ["ev:a"] });
    // A last write as a sentinel: events come in commit order, so anything extra would arrive before it.
    await client.set({ key: "ev:end", value: json(0) });
    const events = await watch.until(4);
    await watch.close();
    expect(events.map((e) => [e.name, e.item?.key, plain(e.item?.value), plain(e.previous?.value)])).to.deep.equal([
      ["created", "ev:a", 1, undefined],
      ["updated", "ev:a", 2, 1],
      ["deleted", "ev:a", 2, undefined],
      ["created", "ev:end", 0, undefined],
    ]);
    expect(new Set(events.map((e) => e.id)).size).to.equal(4);
  });

  it("EV7: one subscriber sees concurrent writes across namespaces in commit order", async () => {
    const watch = subscribe(client);
    await watch.started;
    await Promise.all(
      Array.from({ length: 8 }, async (_, ns) => {
        for (let i = 0; i < 10; i++) await client.set({ key: `o${ns}:k`, value: json(i) });
      }),
    );
    const events = await watch.until(80);
    await watch.close();
    for (let ns = 0; ns < 8; ns++) {
      const values = events.filter((e) => e.item?.key === `o${ns}:k`).map((e) => plain(e.item?.value));
      expect(values).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }
    const second = subscribe(client, { resumeToken: watch.token });
    const replay = await second.until(80);
    await second.close();
    expect(replay.map((e) => e.id)).to.deep.equal(events.map((e) => e.id));
  });

  it("resume: a token resumes right after its event, with nothing lost or repeated", async () => {
    const first = subscribe(client, { filters: ["created:r:*", "updated:r:*"] });
    await first.started;
    for (let i = 0; i < 5; i++) await client.set({ key: `r:${i}`, value: json(i) });
    const seen = await first.until(5);
    await first.close();
    const resumeAfter = seen[2].resumeToken;
    for (let i = 5; i < 8; i++) await client.set({ key: `r:${i}`, value: json(i) });
    await client.set({ key: "r:end", value: json(0) }); // the sentinel: nothing may come between
    const second = subscribe(client, { filters: ["created:r:*", "updated:r:*"], resumeToken: resumeAfter });
    const rest = await second.until(6);
    await second.close();
    expect(rest.map((e) => e.item?.key)).to.deep.equal(["r:3", "r:4", "r:5", "r:6", "r:7", "r:end"]);
  });

  it("durable subscriptions: a named subscription resumes after its acknowledged position", async () => {
    const first = subscribe(client, { subscription: "mailer" });
    await first.started;
    await client.set({ key: "d:1", value: json(1) });
    await client.set({ key: "d:2", value: json(2) });
    const [one] = await first.until(2);
    await client.ack({ subscription: "mailer", resumeToken: one.resumeToken });
    await first.close();
    await client.set({ key: "d:3", value: json(3) });
    const again = subscribe(client, { subscription: "mailer" });
    const events = await again.until(2);
    await again.close();
    expect(events.map((e) => e.item?.key)).to.deep.equal(["d:2", "d:3"]);
  });

  it("EV1: an unknown event name → INVALID_ARGUMENT INVALID_FILTER", async () => {
    const watch = subscribe(client, { filters: ["changed"] });
    await watch.started;
    await watch.close();
    const failure = ConnectError.from(watch.failure);
    expect(failure.code).to.equal(Code.InvalidArgument);
    expect(failure.rawMessage).to.equal("Invalid event name: changed");
  });

  it("a named subscription that never acknowledged resumes where it began, not at the head (at-least-once)", async () => {
    const first = subscribe(client, { subscription: "fresh", filters: ["*:fresh:*"] });
    await first.started;
    await client.set({ key: "fresh:a", value: json(1) });
    await first.until(1);
    await first.close(); // stopped before any Ack
    await client.set({ key: "fresh:b", value: json(2) });
    const next = subscribe(client, { subscription: "fresh", filters: ["*:fresh:*"] });
    await next.started;
    expect(next.token, "it starts where the first began").to.equal(first.token);
    expect((await next.until(2)).map((event) => event.item?.key)).to.deep.equal(["fresh:a", "fresh:b"]);
    await next.close();
  });

  it("a malformed resume token → INVALID_ARGUMENT", async () => {
    const watch = subscribe(client, { resumeToken: "not-a-token" });
    await watch.started;
    await watch.close();
    expect(ConnectError.from(watch.failure).code).to.equal(Code.InvalidArgument);
    await expectFailure(client.ack({ subscription: "", resumeToken: "x" }), Code.InvalidArgument, "INVALID_OPTION");
  });

  it("EV6: an expiry emits one deleted event marked expired; a write onto it emits deleted then created", async () => {
    const watch = subscribe(client, { filters: ["*:x:*"] });
    await watch.started;
    await client.set({ key: "x:a", value: json(1), ttl: { kind: { case: "seconds", value: -1 } } });
    await client.set({ key: "x:b", value: json(1), ttl: { kind: { case: "seconds", value: 1 } } });
    await sleep(1100);
    await client.set({ key: "x:b", value: json(2) });
    const events = await watch.until(5);
    await watch.close();
    expect(events.map((e) => [e.name, e.item?.key, e.expired])).to.deep.equal([
      ["created", "x:a", false],
      ["deleted", "x:a", true],
      ["created", "x:b", false],
      ["deleted", "x:b", true],
      ["created", "x:b", false],
    ]);
  });

  it("EV2/EV3: the spec's filter table, applied by Watch to real changes", async () => {
    const table = vectors.filters as [string | string[], string, string, boolean][];
    const watches = table.map(([specifier]) => subscribe(client, { filters: [specifier].flat() }));
    await Promise.all(watches.map((watch) => watch.started));
    const keys = [...new Set(table.map(([, , key]) => key))];
    for (const key of keys) {
      await client.set({ key, value: json(1) });
      await client.set({ key, value: json(2) });
      await client.remove({ keys: [key] });
    }
    // Every Watch sees the commit order, so once a catch-all has seen the last change, all have passed it.
    const all = subscribe(client, { resumeToken: watches[0].token });
    await all.until(keys.length * 3);
    await all.close();
    await sleep(200);
    table.forEach(([specifier, name, key, receives], row) => {
      const received = watches[row].events.some((event) => event.name === name && event.item?.key === key);
      expect(received, `row ${row}: ${JSON.stringify(specifier)} ${name} ${key}`).to.equal(receives);
    });
    await Promise.all(watches.map((watch) => watch.close()));
  });
});

/**
 * One slow-subscriber policy on every engine: a Watch more than
 * LARDER_WATCH_MAX_LAG changes behind is ended, resumably. The bound is
 * small here so a thousand events of 2 KB pass it, more than the transport
 * holds on the way (HTTP/2 flow control stops the server's writes).
 */
describeContract(
  "contract: a slow subscriber (LARDER_WATCH_MAX_LAG)",
  ({ client }) => {
    it("is ended with SUBSCRIBER_TOO_SLOW and, resuming from its last token, receives every event exactly once in order; a fast one is never ended", async () => {
      const total = 1_000;
      const filler = "x".repeat(2_000);
      const fast = subscribe(client, { filters: ["created:slow:*"] });
      await fast.started;
      const received: string[] = [];
      const endings: string[] = [];
      let token = fast.token!;
      let slowStarted!: () => void;
      const started = new Promise<void>((resolve) => (slowStarted = resolve));
      let allWritten!: () => void;
      const written = new Promise<void>((resolve) => (allWritten = resolve));
      const reader = (async () => {
        while (received.length < total) {
          try {
            for await (const message of client.watch({ filters: ["created:slow:*"], resumeToken: token })) {
              if (message.kind.case === "started") slowStarted();
              if (message.kind.case !== "event") continue;
              received.push(message.kind.value.item!.key);
              token = message.kind.value.resumeToken;
              if (received.length === total) break;
              // Reads nothing more until every event is written: far more than the bound behind.
              if (received.length === 1) await written;
            }
          } catch (error) {
            endings.push(reasonOf(ConnectError.from(error)) ?? String(error));
          }
        }
      })();
      await started;
      for (let batch = 0; batch < total / 25; batch++) {
        const items = Array.from({ length: 25 }, (_, i) => ({ key: `slow:${String(batch * 25 + i).padStart(4, "0")}`, value: json(filler) }));
        await client.batchSet({ items, overwrite: true });
      }
      await fast.until(total, 30_000);
      allWritten();
      await reader;
      await fast.close();
      const expected = Array.from({ length: total }, (_, i) => `slow:${String(i).padStart(4, "0")}`);
      expect(fast.failure, "the fast subscriber is never ended").to.equal(undefined);
      expect(fast.events.map((event) => event.item?.key)).to.deep.equal(expected);
      expect(endings.length, "the slow subscriber was ended").to.be.at.least(1);
      expect(new Set(endings)).to.deep.equal(new Set(["SUBSCRIBER_TOO_SLOW"]));
      expect(received, `ended ${endings.length} times and resumed`).to.deep.equal(expected);
    }).timeout(60_000);
  },
  { env: { LARDER_WATCH_MAX_LAG: "200" } },
);

describeContract("contract: dropping an environment ends its history", (context) => {
  const { client } = context;
  /** Waits (up to 5 s) for a stream to fail: on MongoDB a catch-up fails after `started`, once it reaches the drop. */
  const streamFailure = async (watch: ReturnType<typeof subscribe>) => {
    const deadline = Date.now() + 5000;
    while (watch.failure === undefined && Date.now() < deadline) await sleep(10);
    await watch.close();
    return ConnectError.from(watch.failure);
  };

  it("open Watch streams end UNAVAILABLE (resumable), and a token of the dropped history is TOKEN_EXPIRED, never a silent gap", async () => {
    const admin = createClient(AdminService, createGrpcTransport({ baseUrl: context.url }));
    await client.set({ key: "drop:a", value: json(1) });
    const before = subscribe(client);
    await before.started;
    await client.set({ key: "drop:b", value: json(2) });
    const [seen] = await before.until(1);
    await admin.dropEnvironment({ name: "default" });
    // The stream ends by itself, with a status a client answers by resuming.
    expect((await streamFailure(before)).code, String(before.failure)).to.equal(Code.Unavailable);

    // The environment starts afresh at its next use; its change history does not continue the old one.
    for (const key of ["drop:c", "drop:d", "drop:e"]) await client.set({ key, value: json(0) });
    for (const token of [seen.resumeToken, before.token!]) {
      const resumed = subscribe(client, { resumeToken: token });
      const failure = await streamFailure(resumed);
      expect([failure.code, reasonOf(failure)], `resuming from ${token}`).to.deep.equal([Code.OutOfRange, "TOKEN_EXPIRED"]);
      // The old history's own later events may come first (MongoDB replays its oplog up to the drop), never the new one's.
      const keys = resumed.events.map((event) => event.item?.key);
      expect(
        keys.filter((key) => key !== "drop:b"),
        "events of the new history passed off as following the old one",
      ).to.deep.equal([]);
    }
    const after = subscribe(client);
    await after.started;
    await client.set({ key: "drop:f", value: json(0) });
    expect((await after.until(1)).map((event) => event.item?.key)).to.deep.equal(["drop:f"]);
    await after.close();
  });
});
