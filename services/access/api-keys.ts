import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { isRole, OPERATOR, ROLES, type Role } from "./roles.js";

/**
 * API keys as the keys file stores them: never the key itself, only its
 * SHA-256. Keys are 256 random bits, so a fast hash is enough; a slow
 * password hash would only slow every call down.
 */
export interface StoredKey {
  /** A name for logs and for revoking; never secret. */
  readonly id: string;
  readonly sha256: string;
  /** The environment the key acts in; absent only for an operator key, which is bound to none. */
  readonly environment?: string;
  readonly role: Role;
}

export interface Principal {
  readonly keyId: string;
  /** The environment every DataService call acts on; undefined for an operator, which has none. */
  readonly environment: string | undefined;
  readonly role: Role;
  /** Which environments AdminService calls may name: only its own, or (an operator) every one. */
  readonly manages: "own" | "every";
}

export const KEY_PREFIX = "lk_";
const ENVIRONMENT_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

export function isEnvironmentName(name: string): boolean {
  return ENVIRONMENT_NAME.test(name);
}

export function generateKey(): string {
  return KEY_PREFIX + randomBytes(32).toString("base64url");
}

export function hashKey(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

/**
 * Reads and validates a keys file: `{ "keys": [{ id, sha256, environment, role }] }`,
 * where an `operator` key has no environment and every other key has one.
 */
export function loadKeysFile(path: string): StoredKey[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new Error(`cannot read the keys file ${path}: ${(error as Error).message}`, { cause: error });
  }
  const keys = (parsed as { keys?: unknown })?.keys;
  if (!Array.isArray(keys)) throw new Error(`the keys file ${path} must hold {"keys": [...]}`);
  return keys.map((entry, index) => {
    const { id, sha256, environment, role } = (entry ?? {}) as Record<string, unknown>;
    const where = `the keys file ${path}, entry ${index}`;
    if (typeof id !== "string" || id === "") throw new Error(`${where}: "id" must be a non-empty string`);
    if (typeof sha256 !== "string" || !/^[0-9a-f]{64}$/.test(sha256)) {
      throw new Error(`${where}: "sha256" must be the hex SHA-256 of the key`);
    }
    if (!isRole(role)) throw new Error(`${where}: "role" must be one of ${ROLES.join(", ")}`);
    if (role === OPERATOR) {
      // An operator bound to an environment would read as a limit it does not have.
      if (environment !== undefined) {
        throw new Error(`${where}: an "operator" key manages every environment and takes no "environment"`);
      }
      return { id, sha256, role };
    }
    if (typeof environment !== "string" || !isEnvironmentName(environment)) {
      throw new Error(`${where}: "environment" must be an environment name (a-z, 0-9, - and _)`);
    }
    return { id, sha256, environment, role };
  });
}

/**
 * Finds the key a caller presented. Every stored hash is compared in
 * constant time and the loop never stops early, so the time taken says
 * nothing about which key, or how much of one, matched.
 */
export function authenticate(keys: readonly StoredKey[], presented: string): Principal | undefined {
  const digest = Buffer.from(hashKey(presented), "hex");
  let found: StoredKey | undefined;
  for (const key of keys) {
    if (timingSafeEqual(digest, Buffer.from(key.sha256, "hex")) && found === undefined) found = key;
  }
  return (
    found && {
      keyId: found.id,
      environment: found.environment,
      role: found.role,
      manages: found.role === OPERATOR ? "every" : "own",
    }
  );
}
