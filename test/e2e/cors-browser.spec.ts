import { existsSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { expect } from "chai";
import type { Browser } from "playwright-core";
import type { LarderData } from "../../client/index.js";
import { CHROMIUM, launchChromium } from "../support/console.js";
import { REPO_ROOT, startServer, type RunningServer } from "../support/server.js";

const unavailable = existsSync(CHROMIUM) ? "" : ` (skipped: no Chromium at ${CHROMIUM}; apt-get install chromium, or set LARDER_CHROMIUM)`;

/** client/browser.ts bundled for the page, as an app would ship it; it exposes createData on window. */
async function bundleClient(): Promise<string> {
  const esbuild = await import("esbuild");
  const result = await esbuild.build({
    absWorkingDir: REPO_ROOT,
    stdin: { contents: 'import { createData } from "./client/browser.ts"; window.larder = { createData };', resolveDir: REPO_ROOT, loader: "ts" },
    bundle: true,
    platform: "browser",
    format: "esm",
    write: false,
    logLevel: "silent",
  });
  return result.outputFiles[0].text;
}

/** The page's own server: another origin than Larder's (another port). */
async function startPageServer(script: string): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer((request, response) => {
    if (request.url === "/client.js") {
      response.writeHead(200, { "content-type": "text/javascript" }).end(script);
      return;
    }
    response.writeHead(200, { "content-type": "text/html" }).end('<!doctype html><title>app</title><script type="module" src="/client.js"></script>');
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

interface PageResult {
  got: unknown;
  page: unknown;
  added: unknown;
  events: string[];
  sse: string[];
}

/** Runs in the page: the drop-in client over one browser transport, and an EventSource on /events. */
async function useClientInPage(args: { url: string; transport: "grpc-web" | "connect" }): Promise<PageResult> {
  const { createData } = (window as unknown as { larder: { createData: (options: object) => LarderData } }).larder;
  const ns = `x${args.transport.replace("-", "")}`;
  const sse: string[] = [];
  const source = new EventSource(`${args.url}/events?filter=created:${ns}:*`);
  source.onmessage = (message) => sse.push(JSON.parse(message.data).item.key);
  await new Promise((resolve, reject) => {
    source.addEventListener("started", resolve);
    source.onerror = () => reject(new Error("EventSource failed"));
  });
  const data = createData({ url: args.url, transport: args.transport });
  const events: string[] = [];
  data.on(`*:${ns}:*`, (event: { name: string; item: { key: string } }) => void events.push(`${event.name} ${event.item.key}`));
  await data.set(`${ns}:a`, { n: 1 });
  await data.set(`${ns}:b`, { n: 2 });
  const added = await data.add(`${ns}:a`, "n", 5);
  const got = await data.get(`${ns}:a`);
  const page = await data.get(`${ns}:*`, { limit: 1 });
  const deadline = Date.now() + 10_000;
  // Not test/support's sleep: this function runs in the page, where no module is imported.
  // eslint-disable-next-line no-restricted-syntax
  while ((events.length < 3 || sse.length < 2) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  source.close();
  await data.close();
  return { got, page: { items: page.items, lastKey: page.lastKey }, added, events, sse };
}

/** Runs in the page: a call that the browser must block (no CORS headers for this origin). */
async function blockedInPage(args: { url: string; transport: "grpc-web" | "connect" }): Promise<string> {
  const { createData } = (window as unknown as { larder: { createData: (options: object) => LarderData } }).larder;
  try {
    await createData({ url: args.url, transport: args.transport }).get("x:a");
    return "not blocked";
  } catch (error) {
    return String((error as Error).message);
  }
}

describe(`e2e: browser apps at another origin (CORS, real Chromium)${unavailable}`, function () {
  this.timeout(120_000);
  let browser: Browser | undefined;
  let larder: RunningServer | undefined;
  let pages: { server: http.Server; port: number } | undefined;

  before(async function () {
    if (!existsSync(CHROMIUM)) this.skip();
    pages = await startPageServer(await bundleClient());
    // Only the page's exact origin is allowed; http://localhost:<same port> is another origin.
    larder = await startServer({ env: { LARDER_CORS_ORIGINS: `http://127.0.0.1:${pages.port}` } });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await larder?.stop();
    pages?.server.close();
  });

  async function openPage(host: string) {
    const page = await browser!.newPage();
    const problems: string[] = [];
    page.on("pageerror", (error) => problems.push(String(error)));
    await page.goto(`http://${host}:${pages!.port}/`);
    await page.waitForFunction(() => "larder" in window);
    return { page, problems };
  }

  for (const transport of ["grpc-web", "connect"] as const) {
    it(`${transport}: get, query, set, add and data.on() events, and an EventSource on /events, from an allowed origin`, async () => {
      const { page, problems } = await openPage("127.0.0.1");
      try {
        const result = await page.evaluate(useClientInPage, { url: larder!.url, transport });
        const ns = `x${transport.replace("-", "")}`;
        expect(result.added).to.deep.equal({ n: 6 });
        expect(result.got).to.deep.equal({ n: 6 });
        expect(result.page).to.deep.equal({ items: [{ key: `${ns}:a`, value: { n: 6 } }], lastKey: `${ns}:a` });
        expect(result.events).to.deep.equal([`created ${ns}:a`, `created ${ns}:b`, `updated ${ns}:a`]);
        expect(result.sse).to.deep.equal([`${ns}:a`, `${ns}:b`]);
        expect(problems).to.deep.equal([]);
      } finally {
        await page.close();
      }
    });

    it(`${transport}: a page from an origin not in LARDER_CORS_ORIGINS is blocked by the browser`, async () => {
      const { page } = await openPage("localhost");
      try {
        const message = await page.evaluate(blockedInPage, { url: larder!.url, transport });
        expect(message).not.to.equal("not blocked");
        expect(message.toLowerCase()).to.contain("fetch");
      } finally {
        await page.close();
      }
    });
  }
});
