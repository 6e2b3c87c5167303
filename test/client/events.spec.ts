import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "chai";
import { LarderError } from "../../client/errors.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { EventDispatcher, type DataEvent, type EventClock, type WatchMessage, type WatchSource } from "../../client/events.js";
import { sleep } from "../support/async.js";

/** A Watch source fed by the test: each connection records its request and reads from a shared script. */
function scriptedSource() {
  const requests: { resumeToken?: string; subscription?: string }[] = [];
  let push!: (message: WatchMessage | Error) => void;
  let sequence = 0;
  const source: WatchSource = async function* (request, signal) {
    requests.push(request);
    const inbox: (WatchMessage | Error)[] = [];
    let wake: (() => void) | undefined;
    push = (message) => {
      inbox.push(message);
      wake?.();
    };
    yield { started: request.resumeToken ?? "1.0" };
    while (!signal.aborted) {
      if (inbox.length === 0) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          signal.addEventListener("abort", () => resolve(), { once: true });
        });
        continue;
      }
      const next = inbox.shift()!;
      if (next instanceof Error) throw next;
      yield next;
    }
  };
  function emit(key: string, name: "created" | "updated" | "deleted" = "created") {
    sequence++;
    const event: DataEvent = {
      name,
      item: { key, value: sequence },
      id: String(sequence),
      time: new Date(),
      resumeToken: `1.${sequence}`,
      expired: false,
    };
    push({ event: { key, event } });
  }
  return { source, requests, emit, fail: (error: Error) => push(error) };
}

/** A clock whose sleeps resolve at once while recording the requested delays. */
function fastClock() {
  let now = 0;
  const sleeps: number[] = [];
  const clock: EventClock = {
    now: () => now,
    async sleep(ms) {
      sleeps.push(ms);
      now += ms;
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
  return { clock, sleeps };
}

const tick = (ms = 20) => sleep(ms);

describe("client events (data.on)", () => {
  it("EV1: an unknown event name throws at registration", () => {
    const dispatcher = new EventDispatcher(scriptedSource().source);
    expect(() => dispatcher.on("changed", () => {})).to.throw("Invalid event name: changed");
  });

  it("EV8: handlers run in registration order, one event at a time per namespace", async () => {
    const { source, emit } = scriptedSource();
    const dispatcher = new EventDispatcher(source);
    const calls: string[] = [];
    dispatcher.on("created", async (event) => {
      calls.push(`first ${event.id} start`);
      await tick(15);
      calls.push(`first ${event.id} end`);
    });
    dispatcher.on(["created", "updated"], (event) => void calls.push(`second ${event.id}`));
    dispatcher.on("*", (event) => void calls.push(`third ${event.id}`));
    await dispatcher.ready();
    emit("ns:a");
    emit("ns:b");
    await tick(100);
    await dispatcher.close();
    expect(calls).to.deep.equal(["first 1 start", "first 1 end", "second 1", "third 1", "first 2 start", "first 2 end", "second 2", "third 2"]);
  });

  it("EV8: different namespaces proceed in parallel", async () => {
    const { source, emit } = scriptedSource();
    const dispatcher = new EventDispatcher(source);
    const log: string[] = [];
    dispatcher.on("*", async (event) => {
      log.push(`start ${event.id}`);
      await tick(30);
      log.push(`end ${event.id}`);
    });
    await dispatcher.ready();
    emit("a:x");
    emit("b:x");
    await tick(120);
    await dispatcher.close();
    expect(log.slice(0, 2)).to.deep.equal(["start 1", "start 2"]);
  });

  it("EV9: a failing handler alone is retried with exponential backoff; later events of its namespace wait", async () => {
    const { source, emit } = scriptedSource();
    const { clock, sleeps } = fastClock();
    const dispatcher = new EventDispatcher(source, { clock, initialBackoffMs: 100, maxBackoffMs: 1000 });
    const calls: string[] = [];
    let failures = 3;
    dispatcher.on("*", (event) => void calls.push(`steady ${event.id}`));
    dispatcher.on("*", (event) => {
      calls.push(`flaky ${event.id}`);
      if (event.id === "1" && failures-- > 0) throw new Error("not yet");
    });
    await dispatcher.ready();
    emit("ns:a");
    emit("ns:a");
    await tick(100);
    await dispatcher.close();
    expect(calls).to.deep.equal(["steady 1", "flaky 1", "flaky 1", "flaky 1", "flaky 1", "steady 2", "flaky 2"]);
    expect(sleeps.filter((ms) => ms >= 100).slice(0, 3)).to.deep.equal([100, 200, 400]);
  });

  it("EV9: after the retry period the event is dropped with a log line and the namespace moves on", async () => {
    const { source, emit } = scriptedSource();
    const { clock } = fastClock();
    const logged: string[] = [];
    const dispatcher = new EventDispatcher(source, {
      clock,
      initialBackoffMs: 1000,
      maxBackoffMs: 60 * 60 * 1000,
      log: (message) => void logged.push(message),
    });
    const seen: string[] = [];
    dispatcher.on("*", (event) => {
      seen.push(event.id);
      if (event.id === "1") throw new Error("always");
    });
    await dispatcher.ready();
    emit("ns:a");
    emit("ns:a");
    await tick(300);
    await dispatcher.close();
    expect(logged.some((line) => line.startsWith("dropping created event 1 after"))).to.equal(true);
    expect(seen[seen.length - 1]).to.equal("2");
    expect(seen.filter((id) => id === "1").length).to.be.greaterThan(10);
  });

  it("EV10: a handler that runs past its timeout counts as failed", async () => {
    const { source, emit } = scriptedSource();
    const { clock } = fastClock();
    const dispatcher = new EventDispatcher(source, { clock, initialBackoffMs: 10 });
    let attempts = 0;
    dispatcher.on(
      "*",
      async () => {
        attempts++;
        if (attempts === 1) await tick(80);
      },
      20,
    );
    await dispatcher.ready();
    emit("ns:a");
    await tick(200);
    await dispatcher.close();
    expect(attempts).to.equal(2);
  });

  it("reconnects after a stream failure and resumes from the last token", async () => {
    const script = scriptedSource();
    const { clock } = fastClock();
    const dispatcher = new EventDispatcher(script.source, { clock, log: () => {} });
    const seen: string[] = [];
    dispatcher.on("*", (event) => void seen.push(event.id));
    await dispatcher.ready();
    script.emit("ns:a");
    await tick();
    script.fail(new Error("connection reset"));
    await tick();
    script.emit("ns:a");
    await tick();
    await dispatcher.close();
    expect(script.requests.map((r) => r.resumeToken)).to.deep.equal([undefined, "1.1"]);
    expect(seen).to.deep.equal(["1", "2"]);
  });

  it("named subscriptions acknowledge only positions before which everything was handled", async () => {
    const { source, emit } = scriptedSource();
    const acks: string[] = [];
    const dispatcher = new EventDispatcher(source, {
      subscription: "mailer",
      acknowledge: async (_name, token) => void acks.push(token),
    });
    dispatcher.on("*", async (event) => {
      if (event.id === "1") await tick(60);
    });
    await dispatcher.ready();
    emit("slow:a");
    emit("fast:b");
    await tick(20);
    expect(acks).to.deep.equal([]);
    await tick(100);
    await dispatcher.close();
    expect(acks).to.deep.equal(["1.2"]);
  });

  it("EV9/at-least-once: a close while a handler is still being retried leaves its event, and those after it, unacknowledged", async () => {
    const { source, emit } = scriptedSource();
    const acks: string[] = [];
    const dispatcher = new EventDispatcher(source, {
      subscription: "mailer",
      acknowledge: async (_name, token) => void acks.push(token),
      initialBackoffMs: 10,
      log: () => {},
    });
    let attempts = 0;
    dispatcher.on("created:orders:*", () => {
      attempts++;
      throw new Error("SMTP down");
    });
    await dispatcher.ready();
    emit("orders:1");
    emit("orders:2");
    await tick(60);
    await dispatcher.close();
    expect(attempts).to.be.at.least(2);
    expect(acks, "the next consumer of the subscription gets orders:1 again").to.deep.equal([]);
  });

  it("ready() rejects while the server refuses the stream for good (PERMISSION_DENIED, UNAUTHENTICATED)", async () => {
    for (const [code, name] of [
      [Code.PermissionDenied, "PERMISSION_DENIED"],
      [Code.Unauthenticated, "UNAUTHENTICATED"],
    ] as const) {
      // eslint-disable-next-line require-yield -- a source the server refuses before its first message
      const refusing: WatchSource = async function* () {
        throw new ConnectError("the key's role 'read' may not call Watch", code);
      };
      const { clock } = fastClock();
      const dispatcher = new EventDispatcher(refusing, { clock, log: () => {} });
      dispatcher.on("*", () => {});
      const failure = await dispatcher.ready().then(
        () => undefined,
        (error: unknown) => error,
      );
      await dispatcher.close();
      expect(failure, name).to.be.instanceOf(LarderError).and.include({ code: name, message: "the key's role 'read' may not call Watch" });
    }
  });

  it("a subscription whose position the server no longer keeps goes on from the head, not from that position again", async () => {
    const script = scriptedSource();
    const { clock } = fastClock();
    const dispatcher = new EventDispatcher(script.source, { clock, subscription: "mailer", acknowledge: async () => {}, log: () => {} });
    dispatcher.on("*", () => {});
    await dispatcher.ready();
    script.emit("ns:a");
    await tick();
    script.fail(new ConnectError("The resume token is older than the retained change history", Code.OutOfRange));
    await tick();
    await dispatcher.close();
    // The stored position would be refused again: a plain Watch gives the head, and the stream resumes there.
    expect(script.requests).to.deep.equal([{ resumeToken: undefined, subscription: "mailer" }, {}, { resumeToken: "1.0", subscription: "mailer" }]);
  });

  it("a refused stream is reported in one line (code, reason, message), once, not at every retry", async () => {
    // eslint-disable-next-line require-yield -- a source the server refuses before its first message
    const refusing: WatchSource = async function* () {
      throw new ConnectError("the key's role 'read' may not call Watch", Code.PermissionDenied, new Headers({ "x-noise": "headers" }), [
        { desc: ErrorInfoSchema, value: { reason: "ROLE_NOT_ALLOWED", domain: "larder.dev" } },
      ]);
    };
    const printed: unknown[][] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => void printed.push(args);
    try {
      const { clock, sleeps } = fastClock();
      const dispatcher = new EventDispatcher(refusing, { clock });
      dispatcher.on("*", () => {});
      while (sleeps.length < 4) await tick(1);
      await dispatcher.close();
    } finally {
      console.error = original;
    }
    expect(printed).to.deep.equal([
      [
        "[larder events] the server refuses the event stream: PERMISSION_DENIED (ROLE_NOT_ALLOWED): the key's role 'read' may not call Watch; retrying with backoff (data.ready() rejects meanwhile)",
      ],
    ]);
  });
});
