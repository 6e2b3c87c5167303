import { isJsonObject, setOwn, type JsonObject, type JsonValue } from "../../domain/json.js";
import { LABEL_COUNT, type ItemRecord, type LabelSlots } from "../../domain/item.js";
import { keyFromParts, type Key } from "../../domain/keys.js";
import type { LabelNumber } from "../store.js";

/**
 * How an item is stored in MongoDB. V2 says every attribute name must round
 * trip, and MongoDB gives `.` and a leading `$` meaning in field paths, so
 * values never become BSON field names: an object value is a list of its
 * root attributes `{ k, n | j }` (n: a number, kept native so `$add` can be
 * one atomic update; j: any other JSON value as its JSON text), and a single
 * value is one such cell. Root merges, `$add` and defaults then work on the
 * list inside one update pipeline, and nested content is never interpreted.
 */
export interface Cell {
  readonly n?: number;
  readonly j?: string;
}

export interface Attribute extends Cell {
  readonly k: string;
}

export interface ItemDocument {
  readonly ns: string;
  readonly part: string;
  /** "o": an object value in `vo`; "s": a single value in `vs`. */
  readonly vt: "o" | "s";
  readonly vo?: readonly Attribute[];
  readonly vs?: Cell;
  readonly created: Date;
  readonly modified: Date;
  readonly expires?: Date;
  readonly seg: number;
  readonly l1ns?: string;
  readonly l1part?: string;
  readonly l2ns?: string;
  readonly l2part?: string;
  readonly l3ns?: string;
  readonly l3part?: string;
  readonly l4ns?: string;
  readonly l4part?: string;
  readonly l5ns?: string;
  readonly l5part?: string;
}

export const labelFields = (label: LabelNumber) => ({ ns: `l${label}ns`, part: `l${label}part` }) as const;

export function encodeCell(value: JsonValue): Cell {
  return typeof value === "number" ? { n: value } : { j: JSON.stringify(value) };
}

export function decodeCell(cell: Cell | undefined): JsonValue {
  if (cell === undefined) return null;
  if (typeof cell.n === "number") return cell.n;
  // JSON.parse defines "__proto__" as an own property: attribute names stay data.
  return JSON.parse(cell.j ?? "null") as JsonValue;
}

export function encodeValue(value: JsonValue): Pick<ItemDocument, "vt" | "vo" | "vs"> {
  if (isJsonObject(value)) {
    return { vt: "o", vo: Object.keys(value).map((k) => ({ k, ...encodeCell(value[k]) })) };
  }
  return { vt: "s", vs: encodeCell(value) };
}

export function decodeValue(document: Pick<ItemDocument, "vt" | "vo" | "vs">): JsonValue {
  if (document.vt !== "o") return decodeCell(document.vs);
  const object: JsonObject = {};
  for (const attribute of document.vo ?? []) setOwn(object, attribute.k, decodeCell(attribute));
  return object;
}

export function decodeItem(document: ItemDocument): ItemRecord {
  const labels = Array.from({ length: LABEL_COUNT }, (_, slot) => {
    const fields = labelFields((slot + 1) as LabelNumber);
    const ns = (document as unknown as Record<string, string | undefined>)[fields.ns];
    const part = (document as unknown as Record<string, string | undefined>)[fields.part];
    return ns === undefined || ns === null ? undefined : keyFromParts(ns, part ?? "");
  }) as unknown as LabelSlots;
  const record: ItemRecord = {
    key: keyFromParts(document.ns, document.part),
    value: decodeValue(document),
    created: document.created.getTime(),
    modified: document.modified.getTime(),
    labels,
  };
  return document.expires ? { ...record, expires: document.expires.getTime() } : record;
}

/** The filter that selects one item by key; the unique (ns, part) index serves it. */
export function keyFilter(key: Key): { ns: string; part: string } {
  return { ns: key.ns, part: key.part };
}
