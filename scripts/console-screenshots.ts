import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { DataService } from "../gen/larder/data/v1/data_pb.js";
import { buildConsole } from "./build-console.js";
import { CHROMIUM, launchChromium } from "./chromium.js";
import { REPO_ROOT, startLarder } from "./larder-process.js";

/**
 * Takes the screenshots of docs/console.md with Chromium: builds the
 * console, starts a server on a fresh data directory, writes sample data and
 * photographs the main views. `npm run console:screenshots`.
 */

const OUT = join(REPO_ROOT, "docs", "console");
const value = (json: unknown) => fromJson(ValueSchema, json as JsonValue);

const bundle = await buildConsole();
const dataDir = mkdtempSync(join(tmpdir(), "larder-screenshots-"));
const server = await startLarder({ env: { LARDER_DATA_DIR: dataDir, LARDER_LOG_LEVEL: "warn" } });
const browser = await launchChromium();
if (!browser) throw new Error(`No Chromium at ${CHROMIUM}: apt-get install chromium, or set LARDER_CHROMIUM`);
try {
  const data = createClient(DataService, createGrpcTransport({ baseUrl: server.url }));
  const cities = ["oslo", "lima", "kyoto", "accra", "quito"];
  await data.seed({
    items: [
      ...Array.from({ length: 24 }, (_, i) => ({
        key: `users:${["ann", "bob", "cho", "dev", "eve", "fay"][i % 6]}${String(i).padStart(2, "0")}@example.com`,
        value: value({
          name: `User ${i}`,
          plan: i % 3 === 0 ? "pro" : "free",
          logins: i * 7,
          tags: ["beta", "emea"].slice(0, i % 3),
          address: { city: cities[i % 5], zip: `${10_000 + i}` },
        }),
        label1: `city:${cities[i % 5]}`,
        ttl: i % 4 === 0 ? { kind: { case: "seconds" as const, value: 3600 * (i + 1) } } : undefined,
      })),
      ...Array.from({ length: 8 }, (_, i) => ({
        key: `orders:2025-0${(i % 9) + 1}-1${i}`,
        value: value({ total: 19.5 * (i + 1), items: i + 1 }),
        label2: `status:${i % 2 ? "open" : "shipped"}`,
      })),
      { key: "counters:visits", value: value(1234) },
      { key: "settings", value: value({ theme: "dark" }) },
    ],
  });
  mkdirSync(OUT, { recursive: true });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const shoot = async (hash: string, name: string, ready: () => Promise<unknown>) => {
    await page.goto(`${server.url}/console${hash}`);
    await ready();
    await page.screenshot({ path: join(OUT, `${name}.png`) });
  };
  await shoot("#/query?expression=users:*&limit=12", "explore", () => page.locator("table.items tbody tr").nth(11).waitFor());
  await shoot("#/item/users:ann00@example.com", "item", () => page.locator(".json-string").first().waitFor());
  await page.getByRole("button", { name: "Edit" }).click();
  await page.locator("form.editor [name=value]").fill('{\n  "name": "Ann",\n  "plan": "pro",\n  "logins": 12,\n}');
  await page.screenshot({ path: join(OUT, "edit.png") });
  await page.goto(`${server.url}/console#/events?filter=created:users:*&filter=updated:users:*`);
  await page.getByRole("status").filter({ hasText: "Live" }).waitFor();
  await data.set({ key: "users:new@example.com", value: value({ name: "New", plan: "free" }) });
  await data.set({ key: "users:ann00@example.com", value: value({ plan: "team", seats: 5 }) });
  const update = page.locator("li.event-updated").first();
  await update.waitFor();
  await update.locator("summary").first().click();
  await page.screenshot({ path: join(OUT, "watch.png") });
  await shoot("#/environments", "environments", () => page.locator("table.items tbody tr").first().waitFor());
  await context.close();
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1 });
  const small = await phone.newPage();
  await small.goto(`${server.url}/console#/query?expression=users:*&limit=20`);
  await small.locator("table.items tbody tr").nth(10).waitFor();
  await small.screenshot({ path: join(OUT, "explore-390.png") });
  await phone.close();
  const script = bundle.files.find((file) => file.name.endsWith(".js"))!;
  console.log(
    `screenshots in ${OUT}; bundle ${script.name}: ${(script.bytes / 1024).toFixed(1)} KB (${(script.gzipBytes / 1024).toFixed(1)} KB gzip)`,
  );
} finally {
  await browser.close();
  server.child.kill("SIGTERM");
  await server.exited;
  rmSync(dataDir, { recursive: true, force: true });
}
