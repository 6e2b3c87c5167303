import type { KeyRange } from "../../../core/expressions.js";
import type { CountQuery, NamespaceQuery, ScanFilter } from "../store.js";
import { LIVE_KEYS_INDEX, labelColumns } from "./schema.js";
import { SLOT_COLUMNS } from "./rows.js";

/** The SQL the embedded store runs that is worth reading, and testing, apart from running it. */

/** Whether an item is live at @now (T7): expired items wait for the sweeper but are never read. */
export const LIVE = "(expires IS NULL OR expires > @now)";

export function rangeConditions(column: string, range: KeyRange): string[] {
  const conditions = [`${column} ${range.lower.inclusive ? ">=" : ">"} @lower`];
  if (range.upper) conditions.push(`${column} ${range.upper.inclusive ? "<=" : "<"} @upper`);
  return conditions;
}

/**
 * A skip scan written out: each step of the recursion is one seek in the
 * covering key index (ns, part, expires) past the previous namespace, to its
 * first live collection item, so no item row is read. Simple keys (part = '')
 * and expired items awaiting the sweeper are stepped over, never the live
 * items of a namespace.
 */
export function namespacesStatement(query: NamespaceQuery, now: number): { sql: string; params: Record<string, unknown> } {
  const next = `SELECT ns FROM items INDEXED BY ${LIVE_KEYS_INDEX} WHERE ns > walk.ns AND part > '' AND ${LIVE} ORDER BY ns, part LIMIT 1`;
  const sql =
    `WITH RECURSIVE walk(ns) AS (SELECT @after UNION ALL SELECT (${next}) FROM walk WHERE walk.ns IS NOT NULL LIMIT @steps) ` +
    "SELECT ns FROM walk WHERE ns IS NOT NULL AND ns > @after";
  return { sql, params: { after: query.after ?? "", now, steps: query.limit + 1 } };
}

/**
 * A range count as one SQL statement over a covering index (schema.ts):
 * INDEXED BY pins the index, since the clustered primary key would answer too,
 * but by reading every row.
 */
export function countStatement(query: CountQuery, now: number): { sql: string; params: Record<string, unknown> } {
  const { range } = query;
  const columns = query.label ? labelColumns(query.label) : { ns: "ns", part: "part", index: LIVE_KEYS_INDEX };
  const params: Record<string, unknown> = { ns: range.ns, lower: range.lower.value, now };
  if (range.upper) params.upper = range.upper.value;
  const where = [`${columns.ns} = @ns`, ...rangeConditions(columns.part, range), LIVE];
  return { sql: `SELECT count(*) AS n FROM items INDEXED BY ${columns.index} WHERE ${where.join(" AND ")}`, params };
}

export function scanShape(filter: ScanFilter, now: number) {
  const where = [LIVE];
  const params: Record<string, unknown> = { now };
  let order = "ns, part";
  if (filter.label) {
    const { ns, part } = labelColumns(filter.label);
    where.push(`${ns} IS NOT NULL`);
    order = `${ns}, ${part}, ns, part`;
  }
  if (filter.segment) {
    where.push("seg % @total = @index");
    Object.assign(params, { total: filter.segment.total, index: filter.segment.index });
  }
  return { where, params, order };
}

/** A full key from its columns, as keyFromParts makes it: a simple key has no part. */
export function fullKeySql(ns: string, part: string): string {
  return `CASE WHEN ${ns} IS NULL THEN NULL WHEN ${part} = '' THEN ${ns} ELSE ${ns} || ':' || ${part} END`;
}

/**
 * The \`deleted\` change of an item row, as encodeChangeBody writes it (decodeChange reads
 * both): built by SQLite, so a replaceAll's swap runs no JavaScript per row. \`expires\`
 * is left out when there is none, as encodeItem leaves it out.
 */
export const DELETED_EVENT_SQL = `json_object(
  'name', 'deleted',
  'item', json_remove(
    json_object(
      'key', ${fullKeySql("ns", "part")},
      'value', json(value),
      'created', created,
      'modified', modified,
      'expires', expires,
      'labels', json_array(${SLOT_COLUMNS.map(({ ns, part }) => fullKeySql(ns, part)).join(", ")}),
      'version', version
    ),
    CASE WHEN expires IS NULL THEN '$.expires' ELSE '$.none' END
  ),
  'expired', json(CASE WHEN expires IS NOT NULL AND expires <= @now THEN 'true' ELSE 'false' END)
)`;
