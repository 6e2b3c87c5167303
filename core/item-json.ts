import type { ItemRecord, LabelSlots } from "./item.js";
import type { JsonValue } from "./json.js";
import { parseKey } from "./keys.js";

/**
 * An item as plain JSON, for what engines keep as text: the embedded change
 * log, and the outcomes idempotency records replay (on every engine alike).
 */
export interface ItemJson {
  key: string;
  value: JsonValue;
  created: number;
  modified: number;
  expires?: number;
  labels: (string | null)[];
  /** Absent in what was stored before items had versions. */
  version?: number;
}

export function itemToJson(item: ItemRecord): ItemJson {
  return {
    key: item.key.full,
    value: item.value,
    created: item.created,
    modified: item.modified,
    ...(item.expires === undefined ? {} : { expires: item.expires }),
    labels: item.labels.map((label) => label?.full ?? null),
    version: item.version,
  };
}

export function itemFromJson(encoded: ItemJson): ItemRecord {
  return {
    key: parseKey(encoded.key),
    value: encoded.value,
    created: encoded.created,
    modified: encoded.modified,
    ...(encoded.expires === undefined ? {} : { expires: encoded.expires }),
    labels: encoded.labels.map((label) => (label === null ? undefined : parseKey(label))) as unknown as LabelSlots,
    version: encoded.version ?? 1,
  };
}
