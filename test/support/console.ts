import { existsSync } from "node:fs";
import type { Browser } from "playwright-core";
import { buildConsole, type ConsoleBundle } from "../../scripts/build-console.js";

/**
 * What the console tests share: one build of the bundle per test process
 * (the server serves dist/console), and Chromium as TEAM.md launches it.
 */

let built: Promise<ConsoleBundle> | undefined;

export function consoleBuilt(): Promise<ConsoleBundle> {
  built ??= buildConsole();
  return built;
}

export const CHROMIUM = process.env.LARDER_CHROMIUM ?? "/usr/bin/chromium";

/** undefined when no Chromium is installed (the caller skips, saying so). */
export async function launchChromium(): Promise<Browser | undefined> {
  if (!existsSync(CHROMIUM)) return undefined;
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}
