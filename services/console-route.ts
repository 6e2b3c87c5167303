import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type http from "node:http";
import type { NodeRequest, NodeResponse } from "./http/node-handler.js";

/**
 * The browser console's static files (`npm run build` writes them to
 * dist/console), served at /console on the service's own port and TLS. The
 * console is a client like any other: it calls DataService and AdminService
 * with the API key its user signs in with, so serving it grants nothing.
 */

export const CONSOLE_PATH = "/console";

/**
 * Nothing but the console's own files may run or load: no inline script or
 * style, no eval, no other origin, no framing (clickjacking), no plugins, and
 * Trusted Types so that no string can ever become markup through a DOM sink.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "object-src 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join("; ");

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": CONSOLE_CSP,
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
  "permissions-policy": "camera=(), microphone=(), geolocation=()",
};

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
};

/** Built assets carry a content hash in their names (console-3F7KQ2.js): they never change, so they may be kept for good. */
const HASHED_ASSET = /^[a-z]+-[A-Z0-9]{8}\.(js|css|map)$/;
/** Only plain names of files at the top of the directory: no path, so nothing outside it can be named. */
const SERVABLE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*\.[a-z]{2,4}$/;

/**
 * Where `npm run build` puts the console: dist/console from the repository
 * root, whether this module runs from the sources (services/) or from the
 * build (dist/services/).
 */
export function consoleDirectory(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const root = basename(dirname(here)) === "dist" ? resolve(here, "../..") : resolve(here, "..");
  return join(root, "dist", "console");
}

export function isConsolePath(url: string | undefined): boolean {
  const path = (url ?? "").split("?")[0];
  return path === CONSOLE_PATH || path.startsWith(`${CONSOLE_PATH}/`);
}

/** Answers a request whose path is under /console (see isConsolePath). */
export async function serveConsole(request: NodeRequest, response: NodeResponse, directory = consoleDirectory()): Promise<void> {
  const method = request.method ?? "GET";
  if (method !== "GET" && method !== "HEAD") {
    return send(response, method, 405, "text/plain; charset=utf-8", "Method not allowed: the console is read with GET\n", {
      allow: "GET, HEAD",
      "cache-control": "no-store",
    });
  }
  const path = (request.url ?? "").split("?")[0];
  const name = path === CONSOLE_PATH || path === `${CONSOLE_PATH}/` ? "index.html" : path.slice(CONSOLE_PATH.length + 1);
  if (!SERVABLE_NAME.test(name)) return notFound(response, method);
  let body: Buffer;
  try {
    body = await readFile(join(directory, name));
  } catch {
    if (name === "index.html") {
      return send(
        response,
        method,
        404,
        "text/plain; charset=utf-8",
        "The console is not built: run `npm run build` (npm start does), then reload.\n",
        { "cache-control": "no-store" },
      );
    }
    return notFound(response, method);
  }
  const extension = name.slice(name.lastIndexOf("."));
  const type = CONTENT_TYPES[extension];
  if (type === undefined) return notFound(response, method);
  // The page names the current assets, so it is checked on every load; the assets themselves never change.
  const caching = HASHED_ASSET.test(name) ? "public, max-age=31536000, immutable" : "no-cache";
  const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`;
  const headers = { "cache-control": caching, etag };
  if (request.headers["if-none-match"] === etag) return send(response, method, 304, type, "", headers);
  return send(response, method, 200, type, body, headers);
}

function notFound(response: NodeResponse, method: string): void {
  send(response, method, 404, "text/plain; charset=utf-8", "Not found\n", { "cache-control": "no-store" });
}

function send(response: NodeResponse, method: string, status: number, type: string, body: string | Buffer, headers: Record<string, string>): void {
  const bytes = typeof body === "string" ? Buffer.from(body) : body;
  (response as http.ServerResponse).writeHead(status, {
    ...SECURITY_HEADERS,
    ...headers,
    "content-type": type,
    ...(status === 304 ? {} : { "content-length": String(bytes.length) }),
  });
  (response as http.ServerResponse).end(method === "HEAD" || status === 304 ? undefined : bytes);
}
