import { buildConsole, type ConsoleBundle } from "../../scripts/build-console.js";

/**
 * What the console tests share: one build of the bundle per test process
 * (the server serves dist/console), and Chromium as scripts/chromium.ts launches it.
 */

let built: Promise<ConsoleBundle> | undefined;

export function consoleBuilt(): Promise<ConsoleBundle> {
  built ??= buildConsole();
  return built;
}

export { CHROMIUM, launchChromium } from "../../scripts/chromium.js";
