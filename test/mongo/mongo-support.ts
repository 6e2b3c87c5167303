import type { Context } from "mocha";

/**
 * The MongoDB suites run only against a real deployment (MONGODB_URI, a
 * replica set of MongoDB 6.0+). Without one they are reported as skipped,
 * with the reason in their title and in mocha's pending list, never as passed.
 */
export const SKIP_REASON = "MONGODB_URI is not set: MongoDB-only tests are skipped (see docs/mongodb.md)";

export function mongoUri(): string | undefined {
  return process.env.MONGODB_URI || undefined;
}

export function mongoTitle(title: string): string {
  return mongoUri() ? title : `${title} [SKIPPED: ${SKIP_REASON}]`;
}

export function skipWithoutMongo(context: Context): void {
  if (!warned) {
    warned = true;
    console.warn(`  ${SKIP_REASON}`);
  }
  context.skip();
}

let warned = false;
