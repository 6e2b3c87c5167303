import type { Key } from "./keys.js";

/**
 * A stable 32-bit hash of the full key (FNV-1a over its UTF-8 bytes). Engines
 * store it with each item so that a segment (SC5) is `hash % total`: each item
 * falls in exactly one segment for any total, and engines agree on which.
 */
const UTF8 = new TextEncoder();

export function segmentHash(key: Key): number {
  let hash = 0x811c9dc5;
  for (const byte of UTF8.encode(key.full)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}
