import type { AnyBulkWriteOperation, ChangeStreamDocument, Document } from "mongodb";
import { invalidArgument } from "../../../core/errors.js";
import type { HistoryEntry } from "../../../core/history.js";
import { itemFromJson, itemToJson, type ItemJson } from "../../../core/item-json.js";
import type { ChangeName } from "../../../core/item.js";
import type { Key } from "../../../core/keys.js";
import type { SourceChange } from "../../feed/feed-source.js";
import { COLLECTIONS, type ItemDocument } from "./codec.js";

/**
 * History on MongoDB. The oplog cannot be read by key, so the environment's
 * one change-feed consumer (change-log.ts) copies every event it reads into
 * the `history` collection: one document per event, with the event's key,
 * its place in the change stream and its commit time, and a TTL index that
 * drops it after the retention (LARDER_CHANGE_RETENTION_MS). Reads first
 * wait until the consumer has written everything committed before them
 * (MongoChangeLog.historySynced), so none misses a committed write. Pure: the
 * builders here are unit-tested as data; the I/O is in mongo-store.ts.
 */
export interface HistoryDocument {
  /** `<o>.<i>`: the event's identity, so consumers of several Larder servers write it once. */
  readonly _id: string;
  /** The full key of the event's item. */
  readonly k: string;
  /** The change's place in the stream: its resume token's `_data` (hex, ordered as the stream is). */
  readonly o: string;
  /** The event's index within its change (an expiry noticed by a write, then the write: EV6). */
  readonly i: number;
  /** Commit time (MongoDB's clock). */
  readonly at: Date;
  /** When the TTL index may drop the document: `at` plus the longest retention any writer asked for. */
  readonly expireAt: Date;
  /** The change: name, item, previous, expired, as JSON text (values never become BSON field names). */
  readonly c: string;
}

interface ChangeJson {
  readonly name: ChangeName;
  readonly item: ItemJson;
  readonly previous?: ItemJson;
  readonly expired: boolean;
}

export const HISTORY_COLLECTION = "history";

export const HISTORY_INDEXES = [
  { key: { k: 1, o: -1, i: -1 }, name: "key_order" },
  { key: { expireAt: 1 }, name: "expire_ttl", expireAfterSeconds: 0 },
] as const;

/** The history documents of one change stream document's events, in their order. */
export function historyDocuments(order: string, events: readonly SourceChange[], retentionMs: number): HistoryDocument[] {
  return events.map((event, index) => {
    const change: ChangeJson = {
      name: event.name,
      item: itemToJson(event.item),
      ...(event.previous ? { previous: itemToJson(event.previous) } : {}),
      expired: event.expired ?? false,
    };
    return {
      _id: `${order}.${index}`,
      k: event.item.key.full,
      o: order,
      i: index,
      at: new Date(event.time),
      expireAt: new Date(event.time + retentionMs),
      c: JSON.stringify(change),
    };
  });
}

/**
 * Written in stream order with ordered bulk writes: a reader that sees an
 * event has every earlier one too. An upsert, since another server's
 * consumer may have written the same event; `$max` keeps the longer of
 * their retentions, so no server's reads find a document dropped early.
 */
export function historyWrites(documents: readonly HistoryDocument[]): AnyBulkWriteOperation<HistoryDocument>[] {
  return documents.map(({ _id, expireAt, ...rest }) => ({
    updateOne: { filter: { _id }, update: { $setOnInsert: rest, $max: { expireAt } }, upsert: true },
  }));
}

export interface HistoryRead {
  readonly filter: Document;
  readonly sort: Document;
  readonly limit: number;
  readonly hint: string;
}

const NEWEST_FIRST = { o: -1, i: -1 } as const;
const OLDEST_FIRST = { o: 1, i: 1 } as const;

/** A page of a key's retained changes, newest first, before a previous page's last position. */
export function historyPage(key: Key, horizon: number, limit: number, before?: string): HistoryRead {
  const filter: Document = { k: key.full, at: { $gte: new Date(horizon) } };
  if (before !== undefined) {
    const { o, i } = decodeHistoryPosition(before);
    filter.$or = [{ o: { $lt: o } }, { o, i: { $lt: i } }];
  }
  return { filter, sort: NEWEST_FIRST, limit, hint: HISTORY_INDEXES[0].name };
}

/** The last change of a key at or before `at`, among those the history holds in full (from `horizon`). */
export function lastChangeAtOrBefore(key: Key, at: number, horizon: number): HistoryRead {
  return {
    filter: { k: key.full, at: { $gte: new Date(horizon), $lte: new Date(at) } },
    sort: NEWEST_FIRST,
    limit: 1,
    hint: HISTORY_INDEXES[0].name,
  };
}

/** The first change of a key after `at`. */
export function firstChangeAfter(key: Key, at: number): HistoryRead {
  return { filter: { k: key.full, at: { $gt: new Date(at) } }, sort: OLDEST_FIRST, limit: 1, hint: HISTORY_INDEXES[0].name };
}

export function decodeHistoryDocument(document: HistoryDocument): HistoryEntry {
  const change = JSON.parse(document.c) as ChangeJson;
  return {
    position: `${document.o}.${document.i}`,
    name: change.name,
    expired: change.expired,
    time: document.at.getTime(),
    item: itemFromJson(change.item),
    ...(change.previous ? { previous: itemFromJson(change.previous) } : {}),
  };
}

/** A History page's `start` on MongoDB: `<o>.<i>` of the last entry of the previous page. */
export function decodeHistoryPosition(position: string): { o: string; i: number } {
  const match = /^([0-9A-Fa-f]{2,1024})\.(0|[1-9][0-9]{0,3})$/.exec(position);
  if (!match) throw invalidArgument("INVALID_OPTION", "'start' must be a previous page's lastKey");
  return { o: match[1], i: Number(match[2]) };
}

/**
 * A write without events (an import or clone that skips them, codec.ts `_q`):
 * it changes items the history does not record, so the history is complete
 * only from after it.
 */
export function isQuietItemChange(change: ChangeStreamDocument<Document>): boolean {
  const collection = "ns" in change ? (change.ns as { coll?: string } | undefined)?.coll : undefined;
  if (collection !== COLLECTIONS.items) return false;
  const post = "fullDocument" in change ? (change.fullDocument as ItemDocument | null | undefined) : undefined;
  const pre = "fullDocumentBeforeChange" in change ? (change.fullDocumentBeforeChange as ItemDocument | null | undefined) : undefined;
  return post?._q !== undefined || pre?._q === "d";
}
