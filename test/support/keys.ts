import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Interceptor } from "@connectrpc/connect";
import { hashKey } from "../../services/access/api-keys.js";

/** A key a test presents, and what the keys file binds it to (no environment: an operator key). */
export interface TestKey {
  readonly id: string;
  readonly key: string;
  readonly environment?: string;
  readonly role: string;
}

/** A keys file as `npm run keys` writes it (hashes only), in a fresh temporary directory; returns its path. */
export function keysFile(keys: readonly TestKey[]): string {
  const path = join(mkdtempSync(join(tmpdir(), "larder-keys-")), "keys.json");
  const stored = keys.map(({ id, key, environment, role }) => ({ id, sha256: hashKey(key), environment, role }));
  writeFileSync(path, JSON.stringify({ keys: stored }));
  return path;
}

/** Sends `authorization: Bearer <key>` on every call of a Connect client. */
export const bearer =
  (key: string): Interceptor =>
  (next) =>
  (request) => {
    request.header.set("authorization", `Bearer ${key}`);
    return next(request);
  };
