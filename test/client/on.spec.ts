import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { createData as createBrowserData } from "../../client/browser.js";
import { createData, type DataChangeEvent, type LarderData } from "../../client/index.js";
import { startServer, useServer, type RunningServer } from "../support/server.js";
import { sleep } from "../support/async.js";

async function until(condition: () => boolean, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const keyOf = (event: DataChangeEvent): string => event.item.key;

describe("client on() against a live server", function () {
  this.timeout(30_000);
  const running = useServer();
  let data: LarderData;
  let writer: LarderData;

  beforeEach(async () => {
    data = createData({ url: running.url, events: { initialBackoffMs: 20, maxBackoffMs: 200 } });
    writer = createData({ url: running.url });
    await writer.seed([], { overwrite: true });
  });
  afterEach(async () => {
    await data.close();
    await writer.close();
  });

  it("EV4, EV5: created, updated (with previous) and deleted, items in the meta form with Dates", async () => {
    const events: DataChangeEvent[] = [];
    data.on("*:ev:*", (event) => void events.push(event));
    await data.ready();
    await writer.set("ev:a", { n: 1 }, { label1: "l:a" });
    await writer.set("ev:a", { m: 2 });
    await writer.remove("ev:a");
    await writer.remove("ev:a");
    await until(() => events.length >= 3, "three events");
    await sleep(100);
    expect(events.map((event) => event.name)).to.deep.equal(["created", "updated", "deleted"]);
    const [created, updated, deleted] = events;
    expect(created.item).to.deep.include({ key: "ev:a", value: { n: 1 }, label1: "l:a" });
    expect(created.item.created).to.be.instanceOf(Date);
    expect(created).to.not.have.property("previous");
    expect(updated.item).to.deep.include({ value: { n: 1, m: 2 } });
    expect(updated.previous).to.deep.include({ key: "ev:a", value: { n: 1 } });
    expect(updated.previous.modified).to.be.instanceOf(Date);
    expect(deleted.item).to.deep.include({ key: "ev:a", value: { n: 1, m: 2 } });
    // Larder's additions: a stable id, the change time and a resume token, distinct per event.
    expect(new Set(events.map((event) => event.id)).size).to.equal(3);
    expect(new Set(events.map((event) => event.resumeToken)).size).to.equal(3);
    events.forEach((event) => expect(event.time).to.be.instanceOf(Date));
  });

  it("EV7: 60 concurrent adds on one counter arrive in the order they were applied", async () => {
    const values: unknown[] = [];
    data.on(["created:count:*", "updated:count:*"], (event) => void values.push(event.item.value));
    await data.ready();
    await Promise.all(Array.from({ length: 60 }, () => writer.add("count:c", 1)));
    await until(() => values.length >= 60, "60 events");
    // Each add's event carries the value it produced: applied order is counting order.
    expect(values).to.deep.equal(Array.from({ length: 60 }, (_, i) => i + 1));
  });

  it("EV8: a slow handler holds up later events of its namespace only; others run meanwhile", async () => {
    const log: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    data.on("created", async (event) => {
      const key = keyOf(event);
      if (key === "slow:1") await gate;
      log.push(key);
    });
    await data.ready();
    await writer.set("slow:1", 1);
    await writer.set("slow:2", 2);
    await writer.set("fast:1", 1);
    await writer.set("fast:2", 2);
    await until(() => log.length >= 2, "the other namespace's events");
    await sleep(100);
    expect(log).to.deep.equal(["fast:1", "fast:2"]);
    release();
    await until(() => log.length >= 4, "the slow namespace's events");
    expect(log.slice(2)).to.deep.equal(["slow:1", "slow:2"]);
  });

  it("EV9: a handler that throws is retried alone; handlers before it are not re-run; the next event waits", async () => {
    const calls: string[] = [];
    let failures = 2;
    data.on("created:retry:*", (event) => void calls.push(`first ${keyOf(event)}`));
    data.on("created:retry:*", (event) => {
      const key = keyOf(event);
      calls.push(`second ${key}`);
      if (key === "retry:1" && failures-- > 0) throw new Error("not yet");
    });
    await data.ready();
    const quiet = console.error;
    console.error = () => undefined;
    try {
      await writer.set("retry:1", 1);
      await writer.set("retry:2", 2);
      await until(() => calls.length >= 6, "retries and the next event");
    } finally {
      console.error = quiet;
    }
    expect(calls).to.deep.equal(["first retry:1", "second retry:1", "second retry:1", "second retry:1", "first retry:2", "second retry:2"]);
  });

  it("close() ends the stream: later changes reach no handler", async () => {
    const keys: string[] = [];
    data.on("*", (event) => void keys.push(keyOf(event)));
    await data.ready();
    await writer.set("c:1", 1);
    await until(() => keys.length === 1, "the first event");
    await data.close();
    await writer.set("c:2", 2);
    await sleep(200);
    expect(keys).to.deep.equal(["c:1"]);
  });
});

describe("client on() across connections", function () {
  this.timeout(60_000);
  const directories: string[] = [];
  const servers: RunningServer[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.stop();
    for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
  });

  it("a server restart: the client reconnects from its last token, nothing lost, nothing repeated", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "larder-on-restart-"));
    directories.push(dataDir);
    const first = await startServer({ dataDir });
    const data = createData({ url: first.url, events: { initialBackoffMs: 50, maxBackoffMs: 200, log: () => undefined } });
    const keys: string[] = [];
    data.on("*", (event) => void keys.push(`${event.name} ${keyOf(event)}`));
    await data.ready();
    const writer = createData({ url: first.url });
    await writer.set("r:before", 1);
    await until(() => keys.length === 1, "the event before the restart");
    await writer.close();
    await first.stop();

    // Same data, same port: the client's transport reconnects by itself.
    const second = await startServer({ dataDir, env: { LARDER_PORT: String(first.port) } });
    servers.push(second);
    const after = createData({ url: second.url });
    // Written while the client may still be reconnecting: the resume token must bring them.
    await after.set("r:during", 1);
    await after.set("r:before", 2);
    await until(() => keys.length >= 3, "the events after the restart", 15_000);
    await sleep(200);
    expect(keys).to.deep.equal(["created r:before", "created r:during", "updated r:before"]);
    await after.close();
    await data.close();
  });

  it("a named subscription resumes after a client restart from its acknowledged position (at least once, stable ids)", async () => {
    const server = await startServer();
    servers.push(server);
    const writer = createData({ url: server.url });
    const seen = new Map<string, string>();

    const firstClient = createData({ url: server.url, events: { subscription: "mailer" } });
    firstClient.on("created:mail:*", (event) => void seen.set(event.id, keyOf(event)));
    await firstClient.ready();
    await writer.set("mail:1", 1);
    await writer.set("mail:2", 2);
    await until(() => seen.size === 2, "the first two events");
    await sleep(100); // the acknowledgement of the second event is on its way
    await firstClient.close();

    await writer.set("mail:3", 3);
    await writer.set("mail:4", 4);

    const secondClient = createData({ url: server.url, events: { subscription: "mailer" } });
    const secondKeys: string[] = [];
    secondClient.on("created:mail:*", (event) => {
      secondKeys.push(keyOf(event));
      seen.set(event.id, keyOf(event));
    });
    await until(() => secondKeys.includes("mail:4"), "the events written while no client ran");
    // Acknowledged events are not sent again; the ones written meanwhile are, in order.
    expect(secondKeys).to.deep.equal(["mail:3", "mail:4"]);
    expect([...seen.values()].sort()).to.deep.equal(["mail:1", "mail:2", "mail:3", "mail:4"]);
    await secondClient.close();
    await writer.close();
  });
});

/**
 * An @ampt/data app registers handlers and writes at once; it never calls
 * ready(). Every write this client makes after on() returns must reach the
 * handlers, on every transport (the Watch starts a round trip later).
 */
describe("client on() then an immediate write, without ready()", function () {
  this.timeout(60_000);
  const running = useServer();
  const transports: [string, (url: string) => LarderData][] = [
    ["grpc", (url) => createData({ url, transport: "grpc" })],
    ["connect", (url) => createData({ url, transport: "connect" })],
    ["browser grpc-web", (url) => createBrowserData({ url, transport: "grpc-web" })],
    ["browser connect", (url) => createBrowserData({ url, transport: "connect" })],
  ];

  for (const [name, create] of transports) {
    it(`${name}: both keys set right after on() are delivered, 5 runs of 5`, async () => {
      for (let run = 0; run < 5; run++) {
        const data = create(running.url);
        const namespace = `early${name.replace(/\W+/g, "")}${run}`;
        const seen: string[] = [];
        try {
          data.on(`created:${namespace}:*`, (event) => void seen.push(keyOf(event)));
          await data.set(`${namespace}:a`, 1);
          await data.set(`${namespace}:b`, 2);
          await until(() => seen.length >= 2, `two events (run ${run}; saw ${seen.join(", ") || "none"})`);
          expect(seen).to.deep.equal([`${namespace}:a`, `${namespace}:b`]);
        } finally {
          await data.close();
        }
      }
    });
  }

  it("writes are not held up by a stream that cannot open", async () => {
    // A stream that never opens (nothing listens there) must not stall the writes of an app.
    const data = createData({ url: running.url, events: { initialBackoffMs: 20, maxBackoffMs: 50, log: () => undefined } });
    const refused = createData({ url: "http://127.0.0.1:1", events: { initialBackoffMs: 20, maxBackoffMs: 50, log: () => undefined } });
    try {
      refused.on("*", () => undefined);
      const failure = await refused.set("x:a", 1).catch((error: unknown) => error);
      expect(failure).to.have.property("code", "UNAVAILABLE");
      data.on("*", () => undefined);
      expect(await data.set("x:b", 1)).to.equal(1);
    } finally {
      await refused.close();
      await data.close();
    }
  });
});
