import { build } from "esbuild";
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { gzipSync } from "node:zlib";
import { REPO_ROOT } from "./larder-process.js";

/**
 * Bundles the browser console (console/) with esbuild into dist/console: one
 * script and one stylesheet, each named by its content hash, and the page
 * that loads them. `npm run build` (and so `npm start`) runs it; the tests
 * that drive the console in Chromium run it first too.
 */

export interface ConsoleBundle {
  readonly directory: string;
  /** Bytes of each file, and gzipped (what a browser downloads from a compressing proxy). */
  readonly files: readonly { readonly name: string; readonly bytes: number; readonly gzipBytes: number }[];
}

export async function buildConsole(outDirectory = join(REPO_ROOT, "dist", "console")): Promise<ConsoleBundle> {
  // Built next to its final place and swapped in whole: a running server never serves half a build.
  const staging = `${outDirectory}.staging-${process.pid}-${Date.now()}`;
  mkdirSync(staging, { recursive: true });
  try {
    const result = await build({
      entryPoints: { console: join(REPO_ROOT, "console", "main.tsx") },
      outdir: staging,
      entryNames: "[name]-[hash]",
      bundle: true,
      minify: true,
      format: "iife",
      target: ["chrome110", "firefox115", "safari16"],
      platform: "browser",
      jsx: "automatic",
      jsxImportSource: "preact",
      define: { "process.env.NODE_ENV": '"production"' },
      legalComments: "none",
      metafile: true,
      logLevel: "silent",
    });
    const outputs = Object.keys(result.metafile.outputs).map((path) => basename(path));
    const script = outputs.find((name) => name.endsWith(".js"));
    const style = outputs.find((name) => name.endsWith(".css"));
    if (!script || !style) throw new Error(`the console build made ${outputs.join(", ")}: a script and a stylesheet were expected`);
    writeFileSync(join(staging, "index.html"), page(script, style));
    writeFileSync(join(staging, "favicon.svg"), FAVICON);
    const files = [...outputs, "index.html", "favicon.svg"].map((name) => {
      const body = readFileSync(join(staging, name));
      return { name, bytes: body.length, gzipBytes: gzipSync(body).length };
    });
    const previous = `${outDirectory}.previous-${process.pid}-${Date.now()}`;
    try {
      renameSync(outDirectory, previous);
    } catch {
      // No earlier build.
    }
    renameSync(staging, outDirectory);
    rmSync(previous, { recursive: true, force: true });
    return { directory: outDirectory, files };
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    throw error;
  }
}

const FAVICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#14202e"/><path d="M5 3v10h6" stroke="#fff" stroke-width="2" fill="none"/></svg>
`;

/** No inline script or style: the Content-Security-Policy (services/console-route.ts) would refuse them. */
function page(script: string, style: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Larder console</title>
<link rel="icon" href="/console/favicon.svg">
<link rel="stylesheet" href="/console/${style}">
<script defer src="/console/${script}"></script>
</head>
<body>
<noscript>The Larder console needs JavaScript.</noscript>
<div id="app"></div>
</body>
</html>
`;
}

const invokedDirectly = process.argv[1] !== undefined && /build-console\.[tj]s$/.test(process.argv[1]);
if (invokedDirectly) {
  const bundle = await buildConsole();
  if (process.argv.includes("--report")) {
    for (const file of bundle.files) console.log(`${file.name}\t${(file.bytes / 1024).toFixed(1)} KB\t${(file.gzipBytes / 1024).toFixed(1)} KB gzip`);
  }
}
