import { LABEL_NUMBERS, perLabel, type ItemRecord, type LabelNumber, type LabelSlots } from "../../../core/item.js";
import type { JsonValue } from "../../../core/json.js";
import { keyFromParts, type Key } from "../../../core/keys.js";
import { LABEL_COLUMNS, labelColumns } from "./schema.js";

/** An items row as SQLite returns it. */
export type Row = {
  ns: string;
  part: string;
  value: string;
  created: number;
  modified: number;
  expires: number | null;
  version: number;
} & { [N in LabelNumber as `l${N}ns` | `l${N}part`]: string | null };

export const ITEM_COLUMNS = `ns, part, value, created, modified, expires, ${LABEL_COLUMNS.join(", ")}, version`;
/** Each label slot's columns, by slot: reading and writing rows looks them up, never rebuilds them. */
export const SLOT_COLUMNS = LABEL_NUMBERS.map((label) => labelColumns(label));
export const ITEM_VALUES = `@ns, @part, @value, @created, @modified, @expires, ${LABEL_COLUMNS.map((column) => `@${column}`).join(", ")}, @version, @seg`;

export function toRecord(row: Row): ItemRecord {
  return new StoredItem(row);
}

/**
 * An item as read: the value stays the JSON text SQLite holds until someone
 * reads `value`, so a caller that takes JSON text (value_json) gets it with no
 * parse at all. The getters live on the prototype, so a spread copy (`{ ...item,
 * value }`) keeps neither the text nor a stale parse.
 */
class StoredItem implements ItemRecord {
  readonly key: Key;
  readonly created: number;
  readonly modified: number;
  readonly expires?: number;
  readonly labels: LabelSlots;
  readonly version: number;
  #text: string;
  #parsed: JsonValue | undefined;

  constructor(row: Row) {
    this.key = keyFromParts(row.ns, row.part);
    this.created = row.created;
    this.modified = row.modified;
    if (row.expires !== null) this.expires = row.expires;
    this.labels = perLabel((_, slot) => labelKey(row[SLOT_COLUMNS[slot].ns], row[SLOT_COLUMNS[slot].part]));
    this.version = row.version;
    this.#text = row.value;
  }

  get value(): JsonValue {
    return (this.#parsed ??= JSON.parse(this.#text) as JsonValue);
  }

  get valueText(): string {
    return this.#text;
  }
}

/** The label columns of a row: each slot's halves, or nulls where the slot is empty. */
export function labelCells(labels: LabelSlots): Record<string, string | null> {
  const cells: Record<string, string | null> = {};
  SLOT_COLUMNS.forEach(({ ns, part }, slot) => {
    cells[ns] = labels[slot]?.ns ?? null;
    cells[part] = labels[slot]?.part ?? null;
  });
  return cells;
}

function labelKey(ns: string | null, part: string | null): Key | undefined {
  return ns === null ? undefined : keyFromParts(ns, part ?? "");
}
