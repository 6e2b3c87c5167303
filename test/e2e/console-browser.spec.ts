import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { DataService } from "../../gen/larder/data/v1/data_pb.js";
import { generateKey } from "../../services/access/api-keys.js";
import { CONSOLE_CSP } from "../../services/console-route.js";
import { json, plain } from "../contract/values.js";
import { CHROMIUM, consoleBuilt, launchChromium } from "../support/console.js";
import { useServer } from "../support/server.js";
import { sleep } from "../support/async.js";
import { keysFile } from "../support/keys.js";

/**
 * The console in a real Chromium against a real server: what a user does,
 * checked on the page and, independently, through a second client.
 */

function dataClient(url: string, apiKey?: string): Client<typeof DataService> {
  const interceptors: Interceptor[] = apiKey ? [(next) => (request) => (request.header.set("authorization", `Bearer ${apiKey}`), next(request))] : [];
  return createClient(DataService, createGrpcTransport({ baseUrl: url, interceptors }));
}

/** A browser for the suite; the suite is skipped, saying why, where Chromium is not installed. */
function useBrowser(): { readonly browser: Browser } {
  let browser: Browser | undefined;
  before(async function () {
    this.timeout(120_000);
    browser = await launchChromium();
    if (!browser) {
      console.log(`    (skipped: no Chromium at ${CHROMIUM}; apt-get install chromium, or set LARDER_CHROMIUM)`);
      this.skip();
    }
    await consoleBuilt();
  });
  after(async () => {
    await browser?.close();
  });
  return {
    get browser() {
      return browser!;
    },
  };
}

interface Watched {
  readonly page: Page;
  readonly context: BrowserContext;
  /** CSP violations and uncaught page errors seen so far. */
  problems(): Promise<string[]>;
}

async function openPage(browser: Browser, url: string, hash = "", viewport = { width: 1280, height: 800 }): Promise<Watched> {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(`page error: ${error.message}`));
  // Injected by the browser itself (not by the page), so the CSP does not stop it: it records what the CSP refused.
  await page.addInitScript(() => {
    const seen: string[] = [];
    (window as unknown as { __violations: string[] }).__violations = seen;
    document.addEventListener("securitypolicyviolation", (event) => seen.push(`${event.violatedDirective}: ${event.blockedURI} ${event.sample}`));
  });
  await page.goto(`${url}/console${hash}`);
  return {
    page,
    context,
    async problems() {
      const violations = await page.evaluate(() => (window as unknown as { __violations: string[] }).__violations);
      return [...errors, ...violations];
    },
  };
}

describe("e2e: the console in Chromium, loopback without keys", function () {
  this.timeout(120_000);
  const chromium = useBrowser();
  const server = useServer();
  const client = () => dataClient(server.url);

  beforeEach(async () => {
    await client().seed({ items: [], overwrite: true });
  });

  it("asks no key, then explore → create → edit → counter → delete, each checked through another client", async () => {
    const { page, context, problems } = await openPage(chromium.browser, server.url);
    // The item's own value, not a past one in its history.
    const currentValue = page.getByRole("tree", { name: "Value", exact: true });
    try {
      await page.getByRole("link", { name: "Explore" }).waitFor();
      expect(await page.getByRole("heading", { name: "Sign in" }).count()).to.equal(0);

      // Create.
      await page.getByRole("link", { name: "New item" }).click();
      await page.locator("form.editor [name=key]").fill("users:jane");
      await page.locator("form.editor [name=value]").fill('{ "name": "Jane", "age": 30 }');
      await page.locator("form.editor [name=label1]").fill("city:oslo");
      await page.locator("form.editor [name=ttl]").fill("3600");
      await page.getByRole("button", { name: "Create" }).click();
      await page.waitForURL(/#\/item\/users:jane$/);
      await currentValue.locator(".json-string", { hasText: '"Jane"' }).waitFor();
      expect(await page.getByRole("link", { name: "city:oslo" }).count()).to.equal(1);
      expect(await page.locator("dl.meta time").nth(2).textContent()).to.match(/^(59m \d\ds|1h 00m)$/);
      const created = (await client().get({ key: "users:jane" })).item!;
      expect(plain(created.value)).to.deep.equal({ name: "Jane", age: 30 });
      expect(created.label1).to.equal("city:oslo");
      expect(created.ttl).to.not.equal(undefined);

      // The list: the namespace, the row, its labels.
      await page.getByRole("link", { name: "← Back to the list" }).click();
      await page.waitForURL(/#\/query\?expression=users:\*$/);
      await page.locator("nav.namespaces").getByRole("link", { name: "users", exact: true }).waitFor();
      const row = page.locator("table.items tbody tr", { hasText: "users:jane" });
      await row.waitFor();
      expect(await row.locator(".label-chip").textContent()).to.equal("city:oslo");

      // Edit: a bad value is caught before sending; a good one replaces the value, drops the label, keeps created.
      await row.getByRole("link", { name: "users:jane" }).click();
      // Someone else writes while the editor is open: the save is refused, not a lost update.
      await page.getByRole("button", { name: "Edit" }).click();
      await client().set({ key: "users:jane", value: json({ age: 31 }) });
      await page.locator("form.editor [name=value]").fill('{ "name": "Overwrites" }');
      await page.getByRole("button", { name: "Save" }).click();
      await page.locator("form.editor .error", { hasText: "VERSION_MISMATCH" }).waitFor();
      expect(plain((await client().get({ key: "users:jane" })).item!.value)).to.deep.equal({ name: "Jane", age: 31 });
      await page.getByRole("button", { name: "Cancel" }).click();
      await page.getByRole("button", { name: "Reload" }).click();
      await currentValue.locator(".json-number", { hasText: "31" }).waitFor();
      await page.getByRole("button", { name: "Edit" }).click();
      await page.locator("form.editor [name=value]").fill('{ "name": "Jane Doe" ');
      expect(await page.locator("#editor-check").textContent()).to.match(/^The value is not JSON/);
      expect(await page.getByRole("button", { name: "Save" }).isDisabled()).to.equal(true);
      await page.locator("form.editor [name=value]").fill('{ "name": "Jane Doe" }');
      await page.locator("form.editor [name=label1]").fill("");
      await page.getByRole("button", { name: "Save" }).click();
      await currentValue.locator(".json-string", { hasText: '"Jane Doe"' }).waitFor();
      const edited = (await client().get({ key: "users:jane" })).item!;
      expect(plain(edited.value)).to.deep.equal({ name: "Jane Doe" });
      expect(edited.label1).to.equal(undefined);
      expect(edited.created).to.deep.equal(created.created);

      // The service's refusal is shown as the service words it.
      await page.goto(`${server.url}/console#/new?key=users:jane`);
      await page.locator("form.editor [name=value]").fill('"again"');
      await page.getByRole("button", { name: "Create" }).click();
      await page.locator("form.editor .error", { hasText: "Item already exists (ALREADY_EXISTS, ITEM_EXISTS)" }).waitFor();

      // Add to a counter.
      await client().set({ key: "counters:visits", value: json({ hits: 1 }) });
      await page.goto(`${server.url}/console#/item/counters:visits`);
      await page.locator("form.counter [name=attribute]").fill("hits");
      await page.locator("form.counter [name=amount]").fill("41");
      await page.locator("form.counter").getByRole("button", { name: "Add" }).click();
      await currentValue.locator(".json-number", { hasText: "42" }).waitFor();
      expect(plain((await client().get({ key: "counters:visits" })).item!.value)).to.deep.equal({ hits: 42 });

      // Delete, with confirmation.
      await page.goto(`${server.url}/console#/item/users:jane`);
      await page.getByRole("button", { name: "Delete" }).click();
      const dialog = page.getByRole("dialog");
      await dialog.getByRole("button", { name: "Delete" }).click();
      await page.waitForURL(/#\/query\?expression=users:\*$/);
      await page.getByText("No items match.").waitFor();
      expect((await client().get({ key: "users:jane" })).item).to.equal(undefined);
      expect(await problems()).to.deep.equal([]);
    } finally {
      await context.close();
    }
  });

  it("pages with next/previous, label queries from the URL, and a batch delete of a selection larger than one Remove", async () => {
    await client().seed({
      items: Array.from({ length: 30 }, (_, i) => ({
        key: `batch:${String(i).padStart(3, "0")}`,
        value: json({ i }),
        label2: `team:${i % 2 === 0 ? "even" : "odd"}`,
      })),
    });
    const { page, context, problems } = await openPage(chromium.browser, server.url, "#/query?expression=batch:*&limit=12");
    try {
      const firstKey = () => page.locator("table.items tbody tr td.key").first().textContent();
      await page.locator("table.items tbody tr").nth(11).waitFor();
      expect(await firstKey()).to.equal("batch:000");
      await page.getByRole("button", { name: "Next page" }).click();
      await page.waitForURL(/start=batch:011/);
      await page.locator("table.items tbody tr td.key", { hasText: "batch:012" }).waitFor();
      await page.getByRole("button", { name: "Next page" }).click();
      await page.locator("table.items tbody tr td.key", { hasText: "batch:024" }).waitFor();
      expect(await page.locator("table.items tbody tr").count()).to.equal(6);
      expect(await page.getByRole("button", { name: "Next page" }).isDisabled()).to.equal(true);
      await page.getByRole("button", { name: "Previous page" }).click();
      await page.locator("table.items tbody tr td.key", { hasText: "batch:012" }).waitFor();
      await page.getByRole("button", { name: "Previous page" }).click();
      await page.locator("table.items tbody tr td.key", { hasText: "batch:000" }).waitFor();

      await page.goto(`${server.url}/console#/query?expression=team:even&label=label2&limit=1000&reverse=true`);
      await page.locator("table.items tbody tr").nth(14).waitFor();
      expect(await page.locator("table.items tbody tr").count()).to.equal(15);
      expect(await firstKey()).to.equal("batch:028");
      expect(await page.locator("[name=label]").inputValue()).to.equal("label2");

      await page.goto(`${server.url}/console#/query?expression=batch:*&limit=1000`);
      await page.locator("table.items tbody tr").nth(29).waitFor();
      await page.getByRole("checkbox", { name: "Select every item on this page" }).check();
      await page.getByRole("button", { name: "Delete selected (30)" }).click();
      await page.getByRole("dialog").getByRole("button", { name: "Delete" }).click();
      await page.getByText("No items match.").waitFor();
      expect((await client().query({ expression: "batch:*" })).items).to.deep.equal([]);
      expect(await problems()).to.deep.equal([]);
    } finally {
      await context.close();
    }
  });

  it("explore counts every item an expression matches; an item shows its version and its history, newest first, paged", async () => {
    await client().seed({
      items: [
        ...Array.from({ length: 7 }, (_, i) => ({ key: `fruit:${i}`, value: json(i), label1: i % 2 === 0 ? "colour:red" : "colour:green" })),
        { key: "veg:leek", value: json("leek") },
      ],
    });
    // Three writes that record changes (a seed may skip them): created, then updated twice.
    await client().set({ key: "fruit:apple", value: json({ state: "picked" }) });
    await client().set({ key: "fruit:apple", value: json({ state: "ripe" }) });
    await client().set({ key: "fruit:apple", value: json({ state: "eaten" }) });
    const { page, context, problems } = await openPage(chromium.browser, server.url, "#/query?expression=fruit:*&limit=3");
    try {
      // The count is of every match, not of the page of 3.
      await page.locator(".match-count", { hasText: "8 items match" }).waitFor();
      // The count and the page are separate calls: either may be shown first.
      await page.locator("table.items tbody tr").nth(2).waitFor();
      expect(await page.locator("table.items tbody tr").count()).to.equal(3);
      await page.goto(`${server.url}/console#/query?expression=colour:red&label=label1`);
      await page.locator(".match-count", { hasText: "4 items match" }).waitFor();
      await page.goto(`${server.url}/console#/query?expression=veg:leek`);
      await page.locator(".match-count", { hasText: "1 item matches" }).waitFor();
      // A refused expression is shown as the service words it.
      await page.goto(`${server.url}/console#/query?expression=fruit:*&label=label9`);
      await page.locator(".error", { hasText: "Could not count the matching items" }).waitFor();

      await page.goto(`${server.url}/console#/item/fruit:apple`);
      await page.locator("dl.meta dt", { hasText: "Version" }).waitFor();
      expect(await page.locator("dl.meta dt:text-is('Version') + dd").textContent()).to.equal("3");
      const entries = page.locator("ol.history-entries > li");
      await entries.nth(2).waitFor();
      expect(await entries.count()).to.equal(3);
      expect(await entries.locator(".history-version").allTextContents()).to.deep.equal(["version 3", "version 2", "version 1"]);
      expect(await entries.locator(".history-name").allTextContents()).to.deep.equal(["updated", "updated", "created"]);
      expect(await entries.nth(0).locator(".json-string", { hasText: '"eaten"' }).count()).to.equal(1);
      expect(await entries.nth(2).locator(".json-string", { hasText: '"picked"' }).count()).to.equal(1);
      expect(await entries.nth(0).locator("time").getAttribute("datetime")).to.match(/^\d{4}-\d\d-\d\dT/);
      expect(await page.getByRole("button", { name: "More", exact: true }).count()).to.equal(0);

      // More than a page (20) of changes: "More" brings the older ones.
      for (let i = 0; i < 22; i++) await client().set({ key: "fruit:apple", value: json({ bite: i }) });
      await page.getByRole("button", { name: "Reload" }).click();
      await page.locator("dl.meta dt:text-is('Version') + dd", { hasText: "25" }).waitFor();
      await entries.nth(19).waitFor();
      expect(await entries.count()).to.equal(20);
      await page.getByRole("button", { name: "More", exact: true }).click();
      await entries.nth(24).waitFor();
      expect(await entries.locator(".history-version").last().textContent()).to.equal("version 1");
      expect(await page.getByRole("button", { name: "More", exact: true }).count()).to.equal(0);
      expect(await problems()).to.deep.equal([]);
    } finally {
      await context.close();
    }
  });

  it("the live tail shows a write made by another client, with the diff of an update, and pause/resume loses nothing", async () => {
    await client().set({ key: "users:diff", value: json({ a: 1, b: 2 }) });
    const { page, context, problems } = await openPage(chromium.browser, server.url, "#/events?filter=created:users:*&filter=updated:users:*");
    try {
      await page.getByRole("status").filter({ hasText: "Live" }).waitFor();
      await client().set({ key: "orders:ignored", value: json(1) });
      await client().set({ key: "users:tail", value: json({ hello: "world" }) });
      const created = page.locator("li.event", { hasText: "users:tail" });
      await created.waitFor();
      expect(await created.locator(".event-name").textContent()).to.equal("created");

      await client().set({ key: "users:diff", value: json({ b: 3, c: true }) });
      const updated = page.locator("li.event-updated", { hasText: "users:diff" });
      await updated.locator("summary").first().click();
      const changes = updated.locator("table.changes tbody tr");
      await changes.first().waitFor();
      const rows = await changes.evaluateAll((trs) => trs.map((tr) => Array.from(tr.querySelectorAll("td"), (td) => td.textContent)));
      expect(rows).to.deep.equal([
        ["b", "changed", "2", "3"],
        ["c", "added", "", "true"],
      ]);

      await page.getByRole("button", { name: "Pause" }).click();
      await page.getByRole("status").filter({ hasText: "Paused" }).waitFor();
      await client().set({ key: "users:while-paused", value: json(1) });
      // Nothing arrives while paused; it all arrives on resume, from the last token.
      await sleep(500);
      expect(await page.locator("li.event", { hasText: "users:while-paused" }).count()).to.equal(0);
      await page.getByRole("button", { name: "Resume" }).click();
      await page.locator("li.event", { hasText: "users:while-paused" }).waitFor();
      expect(await page.locator("li.event", { hasText: "users:while-paused" }).count()).to.equal(1);
      expect(await page.locator("li.event", { hasText: "users:tail" }).count()).to.equal(1);
      expect(await page.locator("li.event", { hasText: "orders:ignored" }).count()).to.equal(0);
      expect(await problems()).to.deep.equal([]);
    } finally {
      await context.close();
    }
  });

  it("hostile keys, values and labels render as text: no script runs, no element is made from data, links stay in the console", async () => {
    const hostile = {
      "<img src=x onerror=\"window.__pwned='attribute'\">": "<script>window.__pwned='script'</script>",
      link: "javascript:window.__pwned='link'",
      nested: { "</details><img src=x onerror=\"window.__pwned='nested'\">": ["<svg onload=\"window.__pwned='svg'\">"] },
    };
    await client().seed({
      items: [
        { key: "xss:a<script>window.__pwned='key'</script>", value: json(hostile), label1: "javascript:window.__pwned='label'" },
        { key: "<img src=x onerror=\"window.__pwned='simple'\">", value: json("<b>bold</b>") },
      ],
    });
    const { page, context, problems } = await openPage(chromium.browser, server.url, "#/events");
    try {
      await page.getByRole("status").filter({ hasText: "Live" }).waitFor();
      await client().set({
        key: "xss:a<script>window.__pwned='key'</script>",
        value: json({ ...hostile, more: "<iframe src=javascript:alert(1)>" }),
      });
      await page.locator("li.event").first().locator("summary").first().click();
      await page.locator("table.changes").waitFor();
      const views = [
        "#/query",
        "#/query?expression=xss:*",
        "#/query?expression=javascript:*&label=label1",
        `#/item/${encodeURIComponent("xss:a<script>window.__pwned='key'</script>")}`,
      ];
      for (const hash of views) {
        await page.goto(`${server.url}/console${hash}`);
        await page.locator("main").getByText("xss:a<script>window.__pwned='key'</script>").first().waitFor();
      }
      // The item view shows the nested attribute as text.
      await page.getByText('"</details><img src=x onerror=\\"window.__pwned=\'nested\'\\">": ').first().waitFor();
      await page.goto(`${server.url}/console#/query`);
      await page.getByText("<img src=x onerror=\"window.__pwned='simple'\">").first().waitFor();

      expect(await page.evaluate(() => (window as unknown as { __pwned?: string }).__pwned)).to.equal(undefined);
      expect(await page.locator("img, iframe, svg, b, object, embed").count()).to.equal(0);
      expect(await page.locator("script").count()).to.equal(1);
      const hrefs = await page.locator("a[href]").evaluateAll((links) => links.map((link) => link.getAttribute("href")!));
      for (const href of hrefs) expect(href, href).to.match(/^#\//);
      expect(await problems()).to.deep.equal([]);
    } finally {
      await context.close();
    }
  });

  it("a 1,000-item page and a large value stay usable: every row, select all, a long list shown in steps", async () => {
    for (let chunk = 0; chunk < 4; chunk++) {
      await client().seed({
        items: Array.from({ length: 250 }, (_, i) => ({
          key: `big:${String(chunk * 250 + i).padStart(4, "0")}`,
          value: json({ i, text: "x".repeat(200) }),
        })),
      });
    }
    const huge = Array.from({ length: 5000 }, (_, i) => ({ id: i, name: `entry ${i}`, tags: ["a", "b"] }));
    await client().set({ key: "huge:one", value: json(huge) });
    const { page, context, problems } = await openPage(chromium.browser, server.url, "#/query?expression=big:*&limit=1000");
    try {
      await page.locator("table.items tbody tr").nth(999).waitFor();
      expect(await page.locator("table.items tbody tr").count()).to.equal(1000);
      await page.getByRole("checkbox", { name: "Select every item on this page" }).check();
      await page.getByRole("button", { name: "Delete selected (1000)" }).waitFor();
      await page.goto(`${server.url}/console#/item/huge:one`);
      // The item's value; the history below shows the same value again once it has loaded.
      const value = page.getByRole("tree", { name: "Value", exact: true });
      const more = value.getByRole("button", { name: "Show 100 more of 4900" });
      await more.waitFor();
      await more.click();
      await value.getByRole("button", { name: "Show 100 more of 4800" }).waitFor();
      expect(await problems()).to.deep.equal([]);
    } finally {
      await context.close();
    }
  });

  it("keyboard: '/' focuses the query box and Enter runs it; a dialog opens with Enter and Escape cancels it", async () => {
    await client().set({ key: "keys:one", value: json(1) });
    const { page, context, problems } = await openPage(chromium.browser, server.url, "#/query");
    try {
      await page.getByRole("link", { name: "New item" }).waitFor();
      await page.locator("body").press("/");
      expect(await page.evaluate(() => document.activeElement?.getAttribute("name"))).to.equal("expression");
      await page.keyboard.type("keys:*");
      await page.keyboard.press("Enter");
      await page.waitForURL(/#\/query\?expression=keys:\*$/);
      await page.locator("table.items tbody tr td.key", { hasText: "keys:one" }).waitFor();
      await page.goto(`${server.url}/console#/item/keys:one`);
      await page.getByRole("button", { name: "Delete" }).focus();
      await page.keyboard.press("Enter");
      await page.getByRole("dialog").waitFor();
      await page.keyboard.press("Escape");
      await page.getByRole("dialog").waitFor({ state: "detached" });
      expect((await client().get({ key: "keys:one" })).item).to.not.equal(undefined);
      expect(await problems()).to.deep.equal([]);
    } finally {
      await context.close();
    }
  });

  it("the page carries the CSP; at 390 px wide the list and the editor still fit", async () => {
    const { page, context, problems } = await openPage(chromium.browser, server.url, "#/query", { width: 390, height: 844 });
    try {
      const response = await page.reload();
      expect(response!.headers()["content-security-policy"]).to.equal(CONSOLE_CSP);
      await page.getByRole("link", { name: "New item" }).waitFor();
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      expect(overflow).to.be.at.most(0);
      await page.getByRole("link", { name: "New item" }).click();
      await page.locator("form.editor [name=value]").waitFor();
      expect(await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)).to.be.at.most(0);
      expect(await problems()).to.deep.equal([]);
    } finally {
      await context.close();
    }
  });
});

describe("e2e: the console in Chromium, with API keys", function () {
  this.timeout(120_000);
  const keys = { read: generateKey(), admin: generateKey(), other: generateKey(), operator: generateKey() };
  const directory = mkdtempSync(join(tmpdir(), "larder-console-keys-"));
  const keysPath = keysFile([
    { id: "console-reader", key: keys.read, environment: "console", role: "read" },
    { id: "console-admin", key: keys.admin, environment: "console", role: "admin" },
    { id: "other-admin", key: keys.other, environment: "other", role: "admin" },
    { id: "operator", key: keys.operator, role: "operator" },
  ]);
  const chromium = useBrowser();
  const server = useServer({ env: { LARDER_KEYS_FILE: keysPath, LARDER_LOG_LEVEL: "debug" } });
  const admin = () => dataClient(server.url, keys.admin);

  async function signIn(page: Page, key: string, landing = "Explore"): Promise<void> {
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    await page.getByLabel("API key").fill(key);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("link", { name: landing }).waitFor();
  }

  it("signs in with the key (kept in session storage, never in the URL); an unknown key is refused", async () => {
    const { page, context, problems } = await openPage(chromium.browser, server.url);
    try {
      await page.getByRole("heading", { name: "Sign in" }).waitFor();
      await page.getByLabel("API key").fill(generateKey());
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("alert").filter({ hasText: "Unknown API key" }).waitFor();
      await signIn(page, keys.read);
      expect(await page.evaluate(() => sessionStorage.getItem("larder.console.apiKey"))).to.equal(keys.read);
      expect(page.url()).not.to.contain(keys.read);
      // A reload keeps the session (this tab only); a read key does not see environments.
      await page.reload();
      await page.getByRole("link", { name: "Explore" }).waitFor();
      expect(await page.getByRole("link", { name: "Environments" }).count()).to.equal(0);
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByRole("heading", { name: "Sign in" }).waitFor();
      expect(await page.evaluate(() => sessionStorage.getItem("larder.console.apiKey"))).to.equal(null);
      expect(await problems()).to.deep.equal([]);
    } finally {
      await context.close();
    }
  });

  it("a key without the write role sees its writes refused, in the service's words, and nothing is written", async () => {
    await admin().set({ key: "users:kept", value: json({ v: 1 }) });
    const { page, context, problems } = await openPage(chromium.browser, server.url);
    try {
      await signIn(page, keys.read);
      await page.locator("table.items tbody tr", { hasText: "users:kept" }).waitFor();
      await page.goto(`${server.url}/console#/new?key=users:new`);
      await page.locator("form.editor [name=value]").fill('{ "v": 2 }');
      await page.getByRole("button", { name: "Create" }).click();
      await page.locator("form.editor .error", { hasText: "PERMISSION_DENIED, ROLE_NOT_ALLOWED" }).waitFor();
      await page.goto(`${server.url}/console#/item/users:kept`);
      await page.getByRole("button", { name: "Delete" }).click();
      await page.getByRole("dialog").getByRole("button", { name: "Delete" }).click();
      await page.getByRole("alert").filter({ hasText: "ROLE_NOT_ALLOWED" }).waitFor();
      expect((await admin().get({ key: "users:new" })).item).to.equal(undefined);
      expect(plain((await admin().get({ key: "users:kept" })).item!.value)).to.deep.equal({ v: 1 });
      expect(await problems()).to.deep.equal([]);
    } finally {
      await context.close();
    }
  });

  it("environments: export to a file and import it back (the admin key's own environment); no key ever reaches the log", async () => {
    const items = [
      { key: "users:ann", value: json({ name: "Ann" }), label1: "city:oslo" },
      { key: "users:bob", value: json([1, "two", { three: 3 }]), ttl: { kind: { case: "seconds" as const, value: 86_400 } } },
      { key: "simple", value: json("text") },
    ];
    await admin().seed({ items, overwrite: true });
    const before = (await admin().scan({})).items;
    const { page, context, problems } = await openPage(chromium.browser, server.url);
    try {
      await signIn(page, keys.admin);
      await page.getByRole("link", { name: "Environments" }).click();
      const row = page.locator("table.items tbody tr", { hasText: "console" });
      await row.waitFor();
      expect(await row.locator("td").nth(1).textContent()).to.equal("3");

      const [download] = await Promise.all([page.waitForEvent("download"), row.getByRole("button", { name: "Export console" }).click()]);
      expect(download.suggestedFilename()).to.equal("console.json");
      const file = join(directory, "console.json");
      await download.saveAs(file);
      const exported = JSON.parse(readFileSync(file, "utf8")) as { key: string }[];
      expect(exported.map((item) => item.key)).to.deep.equal(["simple", "users:ann", "users:bob"]);

      await admin().seed({ items: [], overwrite: true });
      await page.reload();
      await row.getByRole("button", { name: "Import into console" }).click();
      const dialog = page.getByRole("dialog");
      await dialog.locator("input[type=file]").setInputFiles(file);
      await dialog.getByRole("button", { name: "Import 3 items" }).click();
      await page.getByRole("status").filter({ hasText: "Imported 3 items into console." }).waitFor();
      const after = (await admin().scan({})).items;
      expect(after.map((item) => [item.key, plain(item.value), item.label1, item.ttl?.seconds])).to.deep.equal(
        before.map((item) => [item.key, plain(item.value), item.label1, item.ttl?.seconds]),
      );
      expect(await problems()).to.deep.equal([]);
    } finally {
      await context.close();
    }
    const log = server.server.output();
    expect(log).to.contain("console-admin");
    for (const key of Object.values(keys)) expect(log).not.to.contain(key);
  });

  it("an operator key manages environments only: create, clone, and drop with the name typed to confirm", async () => {
    await admin().seed({
      items: [
        { key: "users:x", value: json(1) },
        { key: "users:y", value: json(2) },
      ],
      overwrite: true,
    });
    const { page, context, problems } = await openPage(chromium.browser, server.url);
    try {
      await signIn(page, keys.operator, "Environments");
      expect(await page.getByRole("link", { name: "Explore" }).count()).to.equal(0);
      const row = (name: string) => page.locator("table.items tbody tr", { has: page.locator("td.key", { hasText: new RegExp(`^${name}$`) }) });
      await row("console").waitFor();

      await page.locator("[name=environment]").fill("staging");
      await page.getByRole("button", { name: "Create" }).click();
      await page.getByRole("status").filter({ hasText: "Created staging." }).waitFor();
      await row("staging").waitFor();

      await row("console").getByRole("button", { name: "Clone console" }).click();
      await page.getByRole("dialog").locator("[name=target]").fill("copy");
      await page.getByRole("dialog").getByRole("button", { name: "Clone" }).click();
      await page.getByRole("status").filter({ hasText: "Cloned 2 items of console into copy." }).waitFor();
      expect(await row("copy").locator("td").nth(1).textContent()).to.equal("2");

      await row("copy").getByRole("button", { name: "Drop copy" }).click();
      const dialog = page.getByRole("dialog");
      const drop = dialog.getByRole("button", { name: "Drop" });
      expect(await drop.isDisabled()).to.equal(true);
      await dialog.getByRole("textbox").fill("cop");
      expect(await drop.isDisabled()).to.equal(true);
      await dialog.getByRole("textbox").fill("copy");
      await drop.click();
      await page.getByRole("status").filter({ hasText: "Dropped copy." }).waitFor();
      // The console reloads the list before it shows the notice.
      expect(await row("copy").count()).to.equal(0);
      expect((await admin().scan({ count: true })).count).to.equal(2n);
      expect(await problems()).to.deep.equal([]);
    } finally {
      await context.close();
    }
  });
});
