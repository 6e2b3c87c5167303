import { isJsonObject, setOwn, utf8Length, type JsonObject, type JsonValue } from "../../../core/json.js";
import { LABEL_NUMBERS, perLabel, type ItemRecord, type LabelNumber } from "../../../core/item.js";
import { keyFromParts, type Key } from "../../../core/keys.js";
import { segmentHash } from "../../../core/segments.js";

/**
 * How an item is stored in MongoDB.
 *
 * V2 says every attribute name must round trip, and MongoDB gives `.` and a
 * leading `$` meaning in field paths (and `$`-prefixed names are refused in
 * some positions), so values never become BSON field names. An object value
 * is the list of its root attributes as cells `{ k, n | j, e? }`:
 *  - `n` a number, kept native so `$add` increments it inside the update
 *    pipeline (S4: no read-modify-write);
 *  - `j` any other JSON value as its JSON text, never interpreted by MongoDB,
 *    so nested names such as "$x", "a.b" or "__proto__" are just bytes;
 *  - `e` how many bytes JSON escaping adds to the name (only when it adds
 *    any), so the pipeline can measure V8's JSON size exactly.
 * A single value is one such cell without a name. Root merges, `$add` and
 * defaults then work on the list, in one atomic update (updates.ts).
 *
 * The alternative, the whole value as one JSON string, would round-trip just
 * as well but could not merge root attributes or increment a counter inside
 * one update: every set would become a transaction.
 */
export interface Cell {
  readonly n?: number;
  readonly j?: string;
}

export interface Attribute extends Cell {
  readonly k: string;
  /** Bytes JSON escaping adds to `k` (quotes, backslashes, control characters); absent when 0. */
  readonly e?: number;
}

/** A label slot's stored fields (labelFields): its namespace, its key part, and what JSON escaping adds to its size (V8). */
type LabelDocumentFields = { readonly [N in LabelNumber as `l${N}ns` | `l${N}part`]?: string } & { readonly [N in LabelNumber as `l${N}e`]?: number };

export interface ItemDocument extends LabelDocumentFields {
  readonly ns: string;
  /** The key part; "" for a simple key (see docs/decisions.md). */
  readonly part: string;
  /** "o": an object value in `vo`; "s": a single value in `vs`. */
  readonly vt: "o" | "s";
  readonly vo?: readonly Attribute[];
  readonly vs?: Cell;
  readonly created: Date;
  readonly modified: Date;
  /** The TTL index deletes the document once this has passed (T6, T7). */
  readonly expires?: Date;
  /** segmentHash of the full key (SC5). */
  readonly seg: number;
  /** The item's version (ItemRecord.version); absent on documents written before versions: 1. */
  readonly ver?: number;
  /** The id of the write that last changed the document: tells a writer whether its update applied. */
  readonly _w?: string;
  /** The last write found no live item (EV5: `created`, not `updated`). */
  readonly _n?: boolean;
  /**
   * A write that asked for no change events (WriteOptions.events === false):
   * "w" written quietly, "d" about to be deleted quietly. The feed skips
   * changes whose after-image carries it, and deletes whose before-image says "d".
   */
  readonly _q?: "w" | "d";
}

/**
 * The collections of an environment's database: the items, the acknowledged
 * positions of named subscriptions, one document whose updates mark
 * positions in the change stream (the feed's head()), and the records of
 * writes made with an idempotency key (idempotency.ts).
 */
export const COLLECTIONS = { items: "items", subscriptions: "subscriptions", heads: "heads", idempotency: "idempotency" } as const;

/** Field names of one label slot. */
export const labelFields = (label: LabelNumber) => ({ ns: `l${label}ns`, part: `l${label}part`, escape: `l${label}e` }) as const;

/** Bytes that JSON.stringify adds to a string beyond its UTF-8 bytes and the two quotes. */
export function jsonEscapeOverhead(text: string): number {
  return utf8Length(JSON.stringify(text)) - utf8Length(text) - 2;
}

export function encodeCell(value: JsonValue): Cell {
  return typeof value === "number" ? { n: value } : { j: JSON.stringify(value) };
}

export function encodeAttribute(name: string, value: JsonValue): Attribute {
  const escape = jsonEscapeOverhead(name);
  return escape > 0 ? { k: name, ...encodeCell(value), e: escape } : { k: name, ...encodeCell(value) };
}

export function decodeCell(cell: Cell | undefined): JsonValue {
  if (cell === undefined) return null;
  if (typeof cell.n === "number") return cell.n;
  // JSON.parse defines "__proto__" as an own property: attribute names stay data (V2).
  return JSON.parse(cell.j ?? "null") as JsonValue;
}

export function encodeValue(value: JsonValue): Pick<ItemDocument, "vt" | "vo" | "vs"> {
  if (isJsonObject(value)) return { vt: "o", vo: Object.keys(value).map((k) => encodeAttribute(k, value[k])) };
  return { vt: "s", vs: encodeCell(value) };
}

/**
 * P7's measure of a stored value, the UTF-8 bytes of its JSON, from the
 * document's cells without decoding them: JSON texts are counted as stored
 * (each is the JSON.stringify of its value), numbers as JSON writes them, and
 * attribute names with their quotes and escapes (`e`). Equal to
 * utf8Length(JSON.stringify(decodeValue(document))).
 */
export function valueJsonBytes(document: Pick<ItemDocument, "vt" | "vo" | "vs">): number {
  if (document.vt !== "o") return cellJsonBytes(document.vs);
  const attributes = document.vo ?? [];
  let bytes = 2 + Math.max(0, attributes.length - 1);
  for (const attribute of attributes) bytes += utf8Length(attribute.k) + 2 + (attribute.e ?? 0) + 1 + cellJsonBytes(attribute);
  return bytes;
}

function cellJsonBytes(cell: Cell | undefined): number {
  if (cell === undefined) return 4;
  if (typeof cell.n === "number") return JSON.stringify(cell.n).length;
  return cell.j === undefined ? 4 : utf8Length(cell.j);
}

export function decodeValue(document: Pick<ItemDocument, "vt" | "vo" | "vs">): JsonValue {
  if (document.vt !== "o") return decodeCell(document.vs);
  const object: JsonObject = {};
  for (const attribute of document.vo ?? []) setOwn(object, attribute.k, decodeCell(attribute));
  return object;
}

type Fields = Record<string, unknown>;

export function decodeItem(document: ItemDocument): ItemRecord {
  const fields = document as unknown as Fields;
  const labels = perLabel((label) => {
    const names = labelFields(label);
    const ns = fields[names.ns];
    return typeof ns === "string" ? keyFromParts(ns, (fields[names.part] as string | undefined) ?? "") : undefined;
  });
  const record: ItemRecord = {
    key: keyFromParts(document.ns, document.part),
    value: decodeValue(document),
    created: document.created.getTime(),
    modified: document.modified.getTime(),
    labels,
    version: storedVersion(document.ver),
  };
  return document.expires instanceof Date ? { ...record, expires: document.expires.getTime() } : record;
}

/** A version as stored: a number (int32, int64 promoted, or double), or absent from before versions (1). */
export function storedVersion(ver: unknown): number {
  return typeof ver === "number" ? ver : 1;
}

/** The stored fields of one label: its halves and, when JSON escaping adds bytes, how many (V8). */
export function encodeLabel(label: Key): { ns: string; part: string; e?: number } {
  const escape = jsonEscapeOverhead(label.full);
  return escape > 0 ? { ns: label.ns, part: label.part, e: escape } : { ns: label.ns, part: label.part };
}

/**
 * A whole item as a document, for writes that computed the item in the
 * service inside a transaction (the exact fallback of a set, see mongo-store.ts).
 */
export function encodeItem(item: ItemRecord, meta: { readonly writeId: string; readonly created: boolean }): ItemDocument {
  const document: Fields = {
    ns: item.key.ns,
    part: item.key.part,
    ...encodeValue(item.value),
    created: new Date(item.created),
    modified: new Date(item.modified),
    seg: segmentHash(item.key),
    ver: item.version,
  };
  if (item.expires !== undefined) document.expires = new Date(item.expires);
  item.labels.forEach((label, slot) => {
    if (!label) return;
    const names = labelFields(LABEL_NUMBERS[slot]);
    const stored = encodeLabel(label);
    document[names.ns] = stored.ns;
    document[names.part] = stored.part;
    if (stored.e !== undefined) document[names.escape] = stored.e;
  });
  document._w = meta.writeId;
  document._n = meta.created;
  return document as unknown as ItemDocument;
}

/** The filter that selects one item by key; the unique (ns, part) index serves it. */
export function keyFilter(key: Key): { ns: string; part: string } {
  return { ns: key.ns, part: key.part };
}
