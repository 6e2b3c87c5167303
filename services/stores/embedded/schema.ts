import { LABEL_NUMBERS, type LabelNumber } from "../../../core/item.js";

/**
 * Items are keyed by (ns, part) in a WITHOUT ROWID table, so the primary key
 * is the clustered index that every key range scans. Each label has a partial
 * index (label ns, label part, item ns, item part, expires): a label query is
 * one range scan in the order L5 asks for. TEXT compares with the BINARY
 * collation, i.e. as UTF-8 bytes (K7).
 *
 * Count reads indexes only: `items_live_keys` and the label indexes end with
 * `expires`, so a range count checks liveness (T7) without visiting a row,
 * whose value may be large and spill to overflow pages. The label indexes
 * before that column (items_labelN) are replaced at open.
 */
export const SCHEMA = `
CREATE TABLE IF NOT EXISTS items (
  ns TEXT NOT NULL,
  part TEXT NOT NULL,
  value TEXT NOT NULL,
  created INTEGER NOT NULL,
  modified INTEGER NOT NULL,
  expires INTEGER,
${LABEL_NUMBERS.map((label) => `  ${labelColumns(label).ns} TEXT, ${labelColumns(label).part} TEXT,`).join("\n")}
  seg INTEGER NOT NULL,
  version INTEGER NOT NULL DEFAULT 1,
  PRIMARY KEY (ns, part)
) WITHOUT ROWID;
${LABEL_NUMBERS.map((label) => `DROP INDEX IF EXISTS items_label${label};`).join("\n")}
${LABEL_NUMBERS.map(labelIndexSql).join("\n")}
CREATE INDEX IF NOT EXISTS items_live_keys ON items (ns, part, expires);
CREATE INDEX IF NOT EXISTS items_expires ON items (expires) WHERE expires IS NOT NULL;
CREATE TABLE IF NOT EXISTS changes (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  time INTEGER NOT NULL,
  body TEXT NOT NULL,
  key TEXT
);
CREATE INDEX IF NOT EXISTS changes_time ON changes (time);
CREATE TABLE IF NOT EXISTS meta (
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency (
  key TEXT PRIMARY KEY,
  fingerprint TEXT NOT NULL,
  outcome TEXT NOT NULL,
  time INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_time ON idempotency (time);
CREATE TABLE IF NOT EXISTS subscriptions (
  name TEXT PRIMARY KEY,
  seq INTEGER NOT NULL,
  updated INTEGER NOT NULL
) WITHOUT ROWID;
`;

/**
 * Columns added after files were first made: a file without one gets it at
 * open (ALTER TABLE ADD COLUMN rewrites nothing; old rows read the default).
 * Items written before versions existed are at version 1.
 */
export const ADDED_ITEM_COLUMNS = [{ name: "version", definition: "version INTEGER NOT NULL DEFAULT 1" }] as const;

/**
 * The change log's key column (the full key of the change's item), added
 * after files were first made, so History and asOf reads find a key's
 * changes through an index instead of reading the log. A file from before
 * gets the column, its rows' keys from their bodies, then the index.
 */
export const CHANGE_KEY_MIGRATION = `
ALTER TABLE changes ADD COLUMN key TEXT;
UPDATE changes SET key = json_extract(body, '$.item.key');
`;
export const CHANGE_KEY_INDEX = "CREATE INDEX IF NOT EXISTS changes_key ON changes (key, seq);";

/** A label slot's columns and its index. */
export function labelColumns<N extends LabelNumber>(label: N): { ns: `l${N}ns`; part: `l${N}part`; index: `items_live_label${N}` } {
  return { ns: `l${label}ns`, part: `l${label}part`, index: `items_live_label${label}` };
}

/** The columns of every label slot, in slot order: each slot's ns, then its part. */
export const LABEL_COLUMNS = LABEL_NUMBERS.flatMap((label) => [labelColumns(label).ns, labelColumns(label).part]);

function labelIndexSql(label: LabelNumber): string {
  const { ns, part, index } = labelColumns(label);
  return `CREATE INDEX IF NOT EXISTS ${index} ON items (${ns}, ${part}, ns, part, expires) WHERE ${ns} IS NOT NULL;`;
}

/** The covering index of key-range counts. */
export const LIVE_KEYS_INDEX = "items_live_keys";
