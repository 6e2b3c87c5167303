import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { expect } from "chai";
import { createData } from "../../client/index.js";
import { generateKey } from "../../services/access/api-keys.js";
import { useServer } from "../support/server.js";
import { sleep } from "../support/async.js";
import { keysFile } from "../support/keys.js";

interface SseMessage {
  event?: string;
  id?: string;
  data: string;
}

/** An open SSE response, read message by message (what an EventSource does). */
class SseReader {
  private buffered = "";
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();

  constructor(
    readonly response: Response,
    private readonly abort: AbortController,
  ) {
    this.reader = response.body!.getReader();
  }

  async next(ms = 10_000): Promise<SseMessage> {
    const deadline = Date.now() + ms;
    for (;;) {
      const end = this.buffered.indexOf("\n\n");
      if (end !== -1) {
        const block = this.buffered.slice(0, end);
        this.buffered = this.buffered.slice(end + 2);
        if (block.startsWith(":")) continue;
        const message: SseMessage = { data: "" };
        for (const line of block.split("\n")) {
          const [field, ...rest] = line.split(": ");
          const value = rest.join(": ");
          if (field === "event") message.event = value;
          else if (field === "id") message.id = value;
          else if (field === "data") message.data += value;
        }
        return message;
      }
      if (Date.now() > deadline) throw new Error(`no SSE message within ${ms} ms (have: ${this.buffered})`);
      const { value, done } = await this.reader.read();
      if (done) throw new Error("the event stream ended");
      this.buffered += this.decoder.decode(value, { stream: true });
    }
  }

  close(): void {
    this.abort.abort();
  }
}

async function openEvents(url: string, query: string, headers: Record<string, string> = {}): Promise<SseReader> {
  const abort = new AbortController();
  const response = await fetch(`${url}/events?${query}`, { headers, signal: abort.signal });
  if (response.status !== 200) {
    abort.abort();
    throw Object.assign(new Error(`HTTP ${response.status}`), { status: response.status, body: await response.text().catch(() => "") });
  }
  return new SseReader(response, abort);
}

async function refusalOf(url: string, query: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${url}/events?${query}`, { headers });
  const body = (await response.json()) as { code: string; message: string; details?: { debug?: { reason?: string } }[] };
  return { status: response.status, code: body.code, message: body.message, reason: body.details?.[0]?.debug?.reason };
}

describe("e2e: change events as server-sent events (GET /events)", function () {
  this.timeout(60_000);

  describe("without keys", () => {
    const running = useServer();

    it("started, then each matching event with its resume token as the SSE id; other events are left out", async () => {
      const stream = await openEvents(running.url, "filter=created:sse:*&filter=deleted:sse:*");
      try {
        expect(stream.response.headers.get("content-type")).to.match(/^text\/event-stream/);
        const started = await stream.next();
        expect(started.event).to.equal("started");
        expect(JSON.parse(started.data)).to.deep.equal({ resumeToken: started.id });
        const data = createData({ url: running.url });
        await data.set("sse:a", { n: 1 });
        await data.set("sse:a", { n: 2 });
        await data.set("other:b", 1);
        await data.remove("sse:a");
        await data.close();
        const created = await stream.next();
        const deleted = await stream.next();
        const [first, second] = [JSON.parse(created.data), JSON.parse(deleted.data)];
        expect([created.event, first.name, first.item.key, first.item.value]).to.deep.equal([undefined, "created", "sse:a", { n: 1 }]);
        expect([second.name, second.item.value]).to.deep.equal(["deleted", { n: 2 }]);
        expect(created.id).to.equal(first.resumeToken);
        expect(deleted.id).to.equal(second.resumeToken);
      } finally {
        stream.close();
      }
    });

    it("resumes right after an event: Last-Event-ID (what EventSource sends on reconnect) and ?token=", async () => {
      const data = createData({ url: running.url });
      const first = await openEvents(running.url, "filter=created:resume:*");
      await first.next();
      await data.set("resume:1", 1);
      const one = await first.next();
      first.close();
      await data.set("resume:2", 2);
      await data.set("resume:3", 3);
      await data.close();
      for (const [how, query, headers] of [
        ["Last-Event-ID", "filter=created:resume:*", { "last-event-id": one.id! }],
        ["token", `filter=created:resume:*&token=${encodeURIComponent(one.id!)}`, {}],
      ] as const) {
        const resumed = await openEvents(running.url, query, headers);
        try {
          expect((await resumed.next()).event, how).to.equal("started");
          expect(JSON.parse((await resumed.next()).data).item.key, how).to.equal("resume:2");
          expect(JSON.parse((await resumed.next()).data).item.key, how).to.equal("resume:3");
        } finally {
          resumed.close();
        }
      }
    });

    it("a bad filter or token is an HTTP error with a Connect JSON body (EventSource does not retry it)", async () => {
      expect(await refusalOf(running.url, "filter=changed:x")).to.deep.include({ status: 400, code: "invalid_argument", reason: "INVALID_FILTER" });
      const token = await refusalOf(running.url, "token=nonsense");
      expect([token.status, token.code]).to.deep.equal([400, "invalid_argument"]);
    });

    it("curl -N follows it", async function () {
      const curl = ["/usr/bin/curl", "/bin/curl"].find((path) => existsSync(path));
      if (!curl) {
        console.log("      (skipped: no curl in /usr/bin or /bin)");
        this.skip();
      }
      const child = spawn(curl!, ["-sN", "--max-time", "10", `${running.url}/events?filter=created:curl:*`]);
      let output = "";
      child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
      try {
        const deadline = Date.now() + 10_000;
        while (!output.includes("event: started") && Date.now() < deadline) await sleep(20);
        const data = createData({ url: running.url });
        await data.set("curl:a", "hello");
        await data.close();
        while (!output.includes('"key":"curl:a"') && Date.now() < deadline) await sleep(20);
        expect(output).to.contain("event: started").and.contain('"name":"created"').and.contain('"value":"hello"');
      } finally {
        child.kill();
      }
    });
  });

  describe("with keys: the same keys, roles and environments as Watch", () => {
    const watchKey = generateKey();
    const readKey = generateKey();
    const otherKey = generateKey();
    const file = keysFile([
      { id: "watcher", key: watchKey, environment: "prod", role: "app" },
      { id: "reader", key: readKey, environment: "prod", role: "read" },
      { id: "other", key: otherKey, environment: "stage", role: "app" },
    ]);
    const running = useServer({ env: { LARDER_KEYS_FILE: file, LARDER_MAX_STREAMS: "2" } });

    it("no key: 401 API_KEY_MISSING; a read key: 403 ROLE_NOT_ALLOWED", async () => {
      expect(await refusalOf(running.url, "filter=*")).to.deep.include({ status: 401, reason: "API_KEY_MISSING" });
      expect(await refusalOf(running.url, "filter=*", { authorization: `Bearer ${readKey}` })).to.deep.include({
        status: 403,
        reason: "ROLE_NOT_ALLOWED",
      });
    });

    it("a Bearer key sees its own environment's events only", async () => {
      const stream = await openEvents(running.url, "filter=created:env:*", { authorization: `Bearer ${watchKey}` });
      try {
        await stream.next();
        const stage = createData({ url: running.url, apiKey: otherKey });
        const prod = createData({ url: running.url, apiKey: watchKey });
        await stage.set("env:stage", 1);
        await prod.set("env:prod", 1);
        await stage.close();
        await prod.close();
        expect(JSON.parse((await stream.next()).data).item.key).to.equal("env:prod");
      } finally {
        stream.close();
      }
    });

    it("EventSource's way: a ticket (POST /events/ticket with the key) opens one stream, once; the key never goes in the URL", async () => {
      const issue = await fetch(`${running.url}/events/ticket`, { method: "POST", headers: { authorization: `Bearer ${watchKey}` } });
      expect(issue.status).to.equal(200);
      const { ticket, expiresInSeconds } = (await issue.json()) as { ticket: string; expiresInSeconds: number };
      expect(ticket).to.be.a("string").and.not.contain(watchKey);
      expect(expiresInSeconds).to.equal(60);
      const stream = await openEvents(running.url, `filter=*&ticket=${ticket}`);
      expect((await stream.next()).event).to.equal("started");
      stream.close();
      expect(await refusalOf(running.url, `filter=*&ticket=${ticket}`)).to.deep.include({ status: 401, reason: "API_KEY_UNKNOWN" });
      const denied = await fetch(`${running.url}/events/ticket`, { method: "POST", headers: { authorization: `Bearer ${readKey}` } });
      expect(denied.status).to.equal(403);
      const missing = await fetch(`${running.url}/events/ticket`, { method: "POST" });
      expect(missing.status).to.equal(401);
    });

    it("LARDER_MAX_STREAMS bounds SSE streams like Watch streams: past it 429 RESOURCE_EXHAUSTED", async () => {
      const headers = { authorization: `Bearer ${watchKey}` };
      const open = [await openEvents(running.url, "filter=*", headers), await openEvents(running.url, "filter=*", headers)];
      try {
        await Promise.all(open.map((stream) => stream.next()));
        const refused = await refusalOf(running.url, "filter=*", headers);
        expect([refused.status, refused.code]).to.deep.equal([429, "resource_exhausted"]);
      } finally {
        open.forEach((stream) => stream.close());
      }
    });
  });
});
