import { existsSync } from "node:fs";
import type { Browser } from "playwright-core";

/** Debian's Chromium (apt-get install chromium), or LARDER_CHROMIUM. */
export const CHROMIUM = process.env.LARDER_CHROMIUM ?? "/usr/bin/chromium";

/**
 * Chromium for the browser tests and the console's screenshots, headless and
 * quiet (no sandbox, GPU, QUIC or background traffic); undefined when none is
 * installed, so a test can skip and say why.
 */
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
