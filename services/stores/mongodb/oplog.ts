import type { Timestamp } from "mongodb";

/** What Larder reads of an oplog entry: its optime and, since MongoDB 4.2, its wall clock time. */
export interface OplogEntry {
  readonly ts?: Timestamp;
  readonly wall?: Date;
}

/**
 * The oplog's first and last entries, as mongosh's db.getReplicationInfo()
 * reads them: the oplog is a capped collection, so natural order is
 * insertion order and each end is one document away.
 */
export const OPLOG_ENDS = {
  db: "local",
  collection: "oplog.rs",
  first: { sort: { $natural: 1 }, limit: 1, projection: { ts: 1, wall: 1, _id: 0 } },
  last: { sort: { $natural: -1 }, limit: 1, projection: { ts: 1, wall: 1, _id: 0 } },
} as const;

/** When an entry was written, epoch ms: its wall time, else its optime's seconds. */
function entryTime(entry: OplogEntry): number | undefined {
  if (entry.wall instanceof Date) return entry.wall.getTime();
  return entry.ts ? entry.ts.getHighBits() * 1000 : undefined;
}

/** The window a change stream can resume within; undefined for an empty oplog. */
export function oplogWindow(first: OplogEntry | undefined, last: OplogEntry | undefined): { first: number; last: number } | undefined {
  const [from, to] = [first && entryTime(first), last && entryTime(last)];
  return from === undefined || to === undefined ? undefined : { first: from, last: to };
}
