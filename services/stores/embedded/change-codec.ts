import type { Change, ChangeName, ItemRecord, LabelSlots } from "../../domain/item.js";
import { parseKey } from "../../domain/keys.js";
import type { JsonValue } from "../../domain/json.js";

/** The JSON form of an item inside the change log. */
interface EncodedItem {
  key: string;
  value: JsonValue;
  created: number;
  modified: number;
  expires?: number;
  labels: (string | null)[];
  /** Absent in changes logged before items had versions. */
  version?: number;
}

export interface ChangeRow extends Change {
  readonly sequence: number;
  readonly time: number;
}

export function encodeItem(item: ItemRecord): EncodedItem {
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

function decodeItem(encoded: EncodedItem): ItemRecord {
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

export function decodeChange(row: { seq: number; time: number; body: string }): ChangeRow {
  const body = JSON.parse(row.body) as { name: ChangeName; item: EncodedItem; previous?: EncodedItem; expired: boolean };
  return {
    sequence: row.seq,
    time: row.time,
    name: body.name,
    item: decodeItem(body.item),
    ...(body.previous ? { previous: decodeItem(body.previous) } : {}),
    expired: body.expired,
  };
}
