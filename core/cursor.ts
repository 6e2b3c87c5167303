import { invalidArgument } from "./errors.js";
import { parseKey } from "./keys.js";
import type { LabelPosition } from "./item.js";

/**
 * P5: a label query's lastKey must carry both the label value and the item
 * key, since labels are not unique. It is opaque to users: base64url of a
 * JSON pair, versioned so its form can change.
 */
const LABEL_CURSOR_VERSION = 1;

export function encodeLabelCursor(position: LabelPosition): string {
  const json = JSON.stringify([LABEL_CURSOR_VERSION, position.label.full, position.item.full]);
  return toBase64Url(new TextEncoder().encode(json));
}

export function decodeLabelCursor(cursor: string): LabelPosition {
  let decoded: unknown;
  try {
    decoded = JSON.parse(new TextDecoder().decode(fromBase64Url(cursor)));
  } catch {
    decoded = undefined;
  }
  if (
    !Array.isArray(decoded) ||
    decoded.length !== 3 ||
    decoded[0] !== LABEL_CURSOR_VERSION ||
    typeof decoded[1] !== "string" ||
    typeof decoded[2] !== "string"
  ) {
    throw invalidArgument("INVALID_OPTION", "'start' must be the lastKey of a previous label query or label scan");
  }
  return { label: parseKey(decoded[1]), item: parseKey(decoded[2]) };
}

// btoa/atob rather than Buffer: the same code runs in browsers.
function toBase64Url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Throws on text that is not base64url (or base64). */
function fromBase64Url(text: string): Uint8Array {
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(binary, (char) => char.charCodeAt(0));
}
