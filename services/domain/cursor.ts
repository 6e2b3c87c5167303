import { invalidArgument } from "./errors.js";
import { parseKey } from "./keys.js";
import type { LabelPosition } from "../stores/store.js";

/**
 * P5: a label query's lastKey must carry both the label value and the item
 * key, since labels are not unique. It is opaque to users: base64url of a
 * JSON pair, versioned so its form can change.
 */
const LABEL_CURSOR_VERSION = 1;

export function encodeLabelCursor(position: LabelPosition): string {
  const json = JSON.stringify([LABEL_CURSOR_VERSION, position.label.full, position.item.full]);
  return Buffer.from(json, "utf8").toString("base64url");
}

export function decodeLabelCursor(cursor: string): LabelPosition {
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
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
