import type { ChangeStreamDocument, Document, ResumeToken } from "mongodb";
import { isLive, type Change } from "../../../core/item.js";
import type { SourceChange } from "../../feed/feed-source.js";
import { invalidToken } from "../../feed/token.js";
import { COLLECTIONS, decodeItem, type ItemDocument } from "./codec.js";

/**
 * Change stream documents as Larder's change events (EV4-EV6), and the
 * positions in resume tokens (services/feed/token.ts). Pure: the change log
 * (change-log.ts) does the I/O.
 *
 * A position is where a subscriber resumes: right after one event. Most
 * changes are one event, and resume right after them is MongoDB's own resume
 * token. One change can be two events (EV6: a write onto an expired item not
 * yet deleted is that item's expiry, then a new item); resuming between them
 * means reading that change again and skipping its first event, so that
 * token also holds the stream's position before the change.
 */
export interface FeedPosition {
  /** Identifies the position among the feed's entries (the event id of the event it follows). */
  readonly key: string;
  /** Where a change stream resumes from (resumeAfter). */
  readonly resume?: ResumeToken;
  /** Between the events of one change: that change's key, and how many of its events were delivered. */
  readonly change?: string;
  readonly skip?: number;
}

/** One change stream document, as the feed keeps it. `position` is encodePosition's. */
export type FeedEntry =
  /** Something subscribers receive. */
  | { readonly kind: "event"; readonly key: string; readonly position: string; readonly event: SourceChange; readonly bytes: number }
  /** A position marker written by head(): never delivered, but a place a subscriber can start after. */
  | { readonly kind: "marker"; readonly key: string; readonly position: string; readonly marker: number }
  /** Nothing for subscribers (writes without events, other collections, index builds...). */
  | { readonly kind: "skip"; readonly key: string };

/** MongoDB names no histories apart: a catch-up that meets the drop of the environment's database ends there. */
export const HISTORY = "m";

/**
 * A change whose pre- or post-image MongoDB no longer has: images expire
 * with the oplog or earlier (changeStreamOptions.preAndPostImages
 * .expireAfterSeconds), and writes from before images were enabled have
 * none. Its events cannot be told, so history there counts as lost
 * (TOKEN_EXPIRED for a catch-up, a reset for the consumer), never skipped.
 */
export class MissingImageError extends Error {
  constructor(operation: string, image: "pre" | "post") {
    super(`MongoDB has no ${image}-image for this ${operation} change any more; its events cannot be told`);
    this.name = "MissingImageError";
  }
}

/** The ordering key MongoDB gives each change: its resume token's `_data`, a hex string since 4.2. */
export function changeKey(id: ResumeToken): string {
  const data = (id as { _data?: unknown } | null)?._data;
  return typeof data === "string" ? data : JSON.stringify(id);
}

/** A position as the text of a token: base64url of its JSON. */
export function encodePosition(position: FeedPosition): string {
  const body: Record<string, unknown> = { k: position.key, r: position.resume };
  if (position.change !== undefined) Object.assign(body, { c: position.change, s: position.skip });
  return Buffer.from(JSON.stringify(body), "utf8").toString("base64url");
}

/** Anything encodePosition did not write is INVALID_ARGUMENT (INVALID_OPTION). */
export function decodePosition(text: string): FeedPosition {
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(text, "base64url").toString("utf8"));
  } catch {
    throw invalidToken();
  }
  if (typeof body !== "object" || body === null) throw invalidToken();
  const { k, r, c, s } = body as Record<string, unknown>;
  if (typeof k !== "string" || k === "") throw invalidToken();
  // MongoDB's tokens (4.2+) are {_data: "<hex>"}: anything else is not one of its positions.
  if (r !== undefined && !(typeof r === "object" && r !== null && /^[0-9A-Fa-f]+$/.test(String((r as { _data?: unknown })._data))))
    throw invalidToken();
  if (c === undefined) return { key: k, resume: r as ResumeToken | undefined };
  if (typeof c !== "string" || typeof s !== "number" || !Number.isInteger(s) || s < 1) throw invalidToken();
  return { key: k, resume: r as ResumeToken | undefined, change: c, skip: s };
}

/** When the change was applied: the server's wall clock (6.0+), else the cluster time's seconds. */
export function timeOf(change: ChangeStreamDocument<Document>): number {
  if ("wallTime" in change && change.wallTime instanceof Date) return change.wallTime.getTime();
  const clusterTime = (change as { clusterTime?: { getHighBits(): number } }).clusterTime;
  return clusterTime ? clusterTime.getHighBits() * 1000 : Date.now();
}

/** A rough size of a stored item in memory, so the feed can bound what it keeps by bytes too. */
export function approximateBytes(document: ItemDocument | undefined): number {
  if (!document) return 0;
  let bytes = 256 + document.ns.length + document.part.length + (document.vs?.j?.length ?? 8);
  for (const cell of document.vo ?? []) bytes += 16 + cell.k.length + (cell.j?.length ?? 8);
  return bytes;
}

/**
 * The entries of one change stream document. `before` is the stream's
 * position just before it (for the tokens of events that share a change).
 */
export function entriesOf(change: ChangeStreamDocument<Document>, streamPosition: ResumeToken | null | undefined): FeedEntry[] {
  // A driver stream reports null before its first batch (a stream reopened with no position).
  const before = streamPosition ?? undefined;
  const key = changeKey(change._id);
  const collection = "ns" in change ? (change.ns as { coll?: string } | undefined)?.coll : undefined;
  if (collection === COLLECTIONS.heads) {
    const marker = markerOf(change);
    if (marker === undefined) return [{ kind: "skip", key }];
    return [{ kind: "marker", key, position: encodePosition({ key, resume: change._id }), marker }];
  }
  if (collection !== COLLECTIONS.items) return [{ kind: "skip", key }];
  const time = timeOf(change);
  const changes = changesOf(change as ChangeStreamDocument<ItemDocument>, time);
  if (changes.length === 0) return [{ kind: "skip", key }];
  const post = "fullDocument" in change ? (change.fullDocument as ItemDocument | undefined) : undefined;
  const pre = "fullDocumentBeforeChange" in change ? (change.fullDocumentBeforeChange as ItemDocument | undefined) : undefined;
  const bytes = approximateBytes(post ?? undefined) + approximateBytes(pre ?? undefined);
  return changes.map((each, index) => {
    const last = index === changes.length - 1;
    // Without a position before the change (a stream's very first batch) the
    // pair can only be resumed whole; the first event then resumes after both.
    const position: FeedPosition =
      last || before === undefined
        ? { key: last ? key : `${key}:${index}`, resume: change._id }
        : { key: `${key}:${index}`, resume: before, change: key, skip: index + 1 };
    return { kind: "event", key: position.key, position: encodePosition(position), event: { ...each, id: position.key, time }, bytes };
  });
}

function markerOf(change: ChangeStreamDocument<Document>): number | undefined {
  if (change.operationType === "update") {
    const n = change.updateDescription?.updatedFields?.n ?? change.fullDocument?.n;
    return typeof n === "number" ? n : undefined;
  }
  if (change.operationType === "insert" || change.operationType === "replace") {
    const n = change.fullDocument?.n;
    return typeof n === "number" ? n : undefined;
  }
  return undefined;
}

/**
 * EV5/EV6 from one items change. The write's own record of whether it found
 * a live item (`_n`) names created vs updated, so the event agrees with the
 * write even at the instant an item expires. A delete is marked expired when
 * the item had expired by the delete's time (the TTL monitor's, the
 * sweeper's) or already at its own last write (EV6: written with a past
 * ttl): each comparison is between times of one clock, so a MongoDB clock
 * behind Larder's cannot turn an expiry into a plain delete.
 */
export function changesOf(change: ChangeStreamDocument<ItemDocument>, time: number): Change[] {
  switch (change.operationType) {
    case "insert": {
      const post = change.fullDocument;
      if (!post) throw new MissingImageError("insert", "post");
      if (post._q) return [];
      return [{ name: "created", item: decodeItem(post) }];
    }
    case "update":
    case "replace": {
      const post = change.fullDocument;
      if (!post) throw new MissingImageError(change.operationType, "post");
      if (post._q) return [];
      // An upsert that inserts is an insert change: an update or replace always had a document before.
      const pre = change.fullDocumentBeforeChange;
      if (!pre) throw new MissingImageError(change.operationType, "pre");
      const item = decodeItem(post);
      const previous = decodeItem(pre);
      if (post._n === true)
        return [
          { name: "deleted", item: previous, expired: true },
          { name: "created", item },
        ];
      return [{ name: "updated", item, previous }];
    }
    case "delete": {
      const pre = change.fullDocumentBeforeChange;
      if (!pre) throw new MissingImageError("delete", "pre");
      if (pre._q === "d") return [];
      const item = decodeItem(pre);
      return [{ name: "deleted", item, expired: !isLive(item, Math.max(time, item.modified)) }];
    }
    default:
      return [];
  }
}
