import Database from "better-sqlite3";
import { randomInt } from "node:crypto";
import { join } from "node:path";
import { EventEmitter } from "node:events";
import { narrowRange, rangeIncludes, type KeyRange } from "../../../core/expressions.js";
import { isLive, type Change, type ItemRecord, type LabelPosition } from "../../../core/item.js";
import type { Key } from "../../../core/keys.js";
import { segmentHash } from "../../../core/segments.js";
import { invalidArgument } from "../../../core/errors.js";
import { applySet, type SetOutcome } from "../../../core/apply-set.js";
import type { SetPlan } from "../../../core/set-plan.js";
import { versionMismatch } from "../../../core/write-refusals.js";
import type {
  BulkOptions,
  CountQuery,
  FetchedPage,
  HistoryQuery,
  KeyQuery,
  LabelQuery,
  NamespaceQuery,
  PageBounds,
  RemoveOptions,
  ScanFilter,
  ScanQuery,
  Store,
  WriteOptions,
} from "../store.js";
import { PageBudget } from "../../../core/paging.js";
import { MAX_SUBSCRIPTIONS, tooManySubscriptions } from "../../../core/limits.js";
import { ADDED_ITEM_COLUMNS, CHANGE_KEY_INDEX, CHANGE_KEY_MIGRATION, SCHEMA, labelColumns } from "./schema.js";
import { ITEM_COLUMNS, ITEM_VALUES, labelCells, toRecord, type Row } from "./rows.js";
import { countStatement, DELETED_EVENT_SQL, fullKeySql, LIVE, namespacesStatement, rangeConditions, scanShape } from "./statements.js";
import { checkAsOf, stateAt, type HistoryEntry } from "../../../core/history.js";
import { decodeChange, encodeChangeBody, type ChangeRow } from "./change-codec.js";
import { DEFAULT_IDEMPOTENCY_WINDOW_MS, idempotencyKeyReused, REMOVED_KEYS, SET_OUTCOME, SET_OUTCOMES, type OutcomeCodec } from "../replay.js";
import { EmbeddedChangeLog } from "./change-log.js";
import { withSqliteErrorsMapped } from "./errors.js";
import { privateCompanions, privateDirectory, privateFile } from "./private-files.js";
import { DEFAULT_MAX_LAG, DEFAULT_RING_BYTES, FeedHub } from "../../feed/feed-hub.js";
import type { EnvironmentFigures } from "../engine-observer.js";

/**
 * How much a commit survives (see docs/durability.md): `normal` survives a
 * crash of the process (WAL, synchronous=NORMAL), `full` also survives a
 * crash of the machine or power loss, at the cost of an fsync per commit.
 */
export type Durability = "normal" | "full";

export interface EmbeddedStoreOptions {
  readonly dataDir: string;
  readonly environment: string;
  readonly durability: Durability;
  /** How long the change log keeps changes for resuming subscribers. */
  readonly changeRetentionMs: number;
  /** How long an idempotency record answers retries (replay.ts). */
  readonly idempotencyWindowMs?: number;
  /** How many changes a Watch may fall behind before it is ended, resumably (LARDER_WATCH_MAX_LAG). */
  readonly watchMaxLag?: number;
  /** Told when the change feed starts or stops failing, with the reason (health). */
  readonly onFeedHealth?: (environment: string, failure: string | undefined) => void;
}

export const FILE_SUFFIX = ".sqlite";

/** An environment's files: the database, and SQLite's write-ahead log and shared-memory index beside it. */
export function environmentFiles(dataDir: string, environment: string): { database: string; wal: string; sharedMemory: string } {
  const database = join(dataDir, `${environment}${FILE_SUFFIX}`);
  return { database, wal: `${database}-wal`, sharedMemory: `${database}-shm` };
}

/**
 * The sweeper (../sweeper.ts) deletes expired items in chunks of at most
 * this many rows and this many bytes of values (at least one row), each its
 * own transaction, yielding to the event loop between chunks: a backlog of
 * any size drains while health and calls keep answering, holding one chunk
 * at a time.
 */
const SWEEP_CHUNK_ROWS = 256;
const SWEEP_CHUNK_BYTES = 4 * 1024 * 1024;
/** The change log is read in chunks bounded the same way: a change holds an item and its previous version. */
const CHANGE_READ_BYTES = 1024 * 1024;

/**
 * The embedded engine: one SQLite file per environment. SQLite's BINARY
 * collation compares TEXT as UTF-8 bytes, which is the order K7 asks for, and
 * better-sqlite3 runs each write as one synchronous transaction, so applying
 * the domain's pure applySet inside it is atomic (S4) without any lock of ours.
 * Every change is appended to the `changes` table in the same transaction.
 */
export class EmbeddedStore implements Store {
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();
  /** Emits "commit" after each transaction that appended changes, and once at close (to wake followers). */
  readonly commits = new EventEmitter();
  /**
   * A random number drawn when the database file is made: an environment
   * dropped and made again is another database, whose change sequence starts
   * over, so resume tokens carry this to tell the two histories apart.
   */
  readonly incarnation: number;
  /** prunedThrough, kept between prunes (undefined: read it again). */
  private pruned?: number;
  /** Names each replaceAll's staging tables apart. */
  private bulkRuns = 0;
  readonly feed: FeedHub;

  constructor(private readonly options: EmbeddedStoreOptions) {
    privateDirectory(options.dataDir);
    const file = environmentFiles(options.dataDir, options.environment).database;
    privateFile(file);
    this.db = new Database(file);
    this.db.pragma("journal_mode = WAL");
    privateCompanions(file);
    this.db.pragma(`synchronous = ${options.durability === "full" ? "FULL" : "NORMAL"}`);
    this.db.pragma("busy_timeout = 5000");
    this.db.exec(SCHEMA);
    this.addMissingColumns();
    this.db.prepare("INSERT OR IGNORE INTO meta (name, value) VALUES ('incarnation', @value)").run({ value: randomInt(1, 2 ** 48) });
    this.incarnation = (this.db.prepare("SELECT value FROM meta WHERE name = 'incarnation'").get() as { value: number }).value;
    this.feed = new FeedHub(withSqliteErrorsMapped(new EmbeddedChangeLog(this)), {
      maxLag: options.watchMaxLag ?? DEFAULT_MAX_LAG,
      maxBytes: DEFAULT_RING_BYTES,
      retentionMs: options.changeRetentionMs,
      onHealth: options.onFeedHealth && ((failure) => options.onFeedHealth!(options.environment, failure)),
    });
    this.commits.setMaxListeners(0);
  }

  describe(): string {
    return `embedded, data ${this.options.dataDir}`;
  }

  private addMissingColumns(): void {
    const present = new Set((this.db.pragma("table_info(items)") as { name: string }[]).map((column) => column.name));
    for (const column of ADDED_ITEM_COLUMNS) {
      if (!present.has(column.name)) this.db.exec(`ALTER TABLE items ADD COLUMN ${column.definition}`);
    }
    const changeColumns = new Set((this.db.pragma("table_info(changes)") as { name: string }[]).map((column) => column.name));
    if (!changeColumns.has("key")) this.db.transaction(() => this.db.exec(CHANGE_KEY_MIGRATION)).immediate();
    this.db.exec(CHANGE_KEY_INDEX);
  }

  async get(key: Key, now: number): Promise<ItemRecord | undefined> {
    const row = this.statement(`SELECT ${ITEM_COLUMNS} FROM items WHERE ns = @ns AND part = @part AND ${LIVE}`).get({
      ns: key.ns,
      part: key.part,
      now,
    }) as Row | undefined;
    return row && toRecord(row);
  }

  async getAsOf(key: Key, at: number, now: number): Promise<ItemRecord | undefined> {
    const horizon = this.historyHorizon(now);
    checkAsOf(at, now, horizon);
    const read = this.db.transaction(() => {
      const params = { key: key.full, at, horizon };
      // Only from the horizon on: a change before it may be followed by an unrecorded one (a write without events).
      const atOrBefore = this.statement(
        "SELECT seq, time, body FROM changes WHERE key = @key AND time <= @at AND time >= @horizon ORDER BY seq DESC LIMIT 1",
      ).get(params) as ChangeText | undefined;
      const after = atOrBefore
        ? undefined
        : (this.statement("SELECT seq, time, body FROM changes WHERE key = @key AND time > @at ORDER BY seq LIMIT 1").get({ key: key.full, at }) as
            ChangeText | undefined);
      const stored = atOrBefore || after ? undefined : this.readRow(key);
      return stateAt(
        {
          atOrBefore: atOrBefore && decodeChange(atOrBefore),
          after: after && decodeChange(after),
          stored: stored && toRecord(stored),
        },
        at,
      );
    });
    return read();
  }

  async history(query: HistoryQuery, now: number): Promise<{ entries: HistoryEntry[]; more: boolean }> {
    const before = query.before === undefined ? Number.MAX_SAFE_INTEGER : historyPosition(query.before);
    const budget = new PageBudget(query.limit, query.maxBytes);
    const rows: ChangeText[] = [];
    let more = false;
    const params = { key: query.key.full, before, horizon: this.historyHorizon(now), limit: query.limit + 1 };
    const sql =
      "SELECT seq, time, body, octet_length(body) AS bytes FROM changes WHERE key = @key AND seq < @before AND time >= @horizon ORDER BY seq DESC LIMIT @limit";
    for (const row of this.statement(sql).iterate(params) as IterableIterator<ChangeText & { bytes: number }>) {
      if (!budget.admits(row.bytes)) {
        more = true;
        break;
      }
      rows.push(row);
    }
    return {
      more,
      entries: rows.map((row) => {
        const change = decodeChange(row);
        return {
          position: String(change.sequence),
          name: change.name,
          expired: change.expired ?? false,
          time: change.time,
          item: change.item,
          ...(change.previous ? { previous: change.previous } : {}),
        };
      }),
    };
  }

  /**
   * The oldest instant the change log still fully covers: the retention
   * before now, and never before the cutoff of a prune already made (a
   * retention made longer since does not bring pruned changes back). A file
   * pruned before cutoffs were recorded is covered from its oldest change on.
   */
  private historyHorizon(now: number): number {
    const cutoff = (this.statement("SELECT value FROM meta WHERE name = 'pruned_before'").get() as { value: number } | undefined)?.value;
    let covered = cutoff ?? 0;
    if (cutoff === undefined && this.prunedThrough() > 0) {
      const oldest = this.statement("SELECT time FROM changes ORDER BY seq LIMIT 1").get() as { time: number } | undefined;
      covered = oldest?.time ?? now;
    }
    return Math.max(now - this.options.changeRetentionMs, covered);
  }

  async getMany(keys: readonly Key[], now: number): Promise<ItemRecord[]> {
    const found: ItemRecord[] = [];
    const read = this.db.transaction(() => {
      for (const key of keys) {
        const row = this.statement(`SELECT ${ITEM_COLUMNS} FROM items WHERE ns = @ns AND part = @part AND ${LIVE}`).get({
          ns: key.ns,
          part: key.part,
          now,
        }) as Row | undefined;
        if (row) found.push(toRecord(row));
      }
    });
    read();
    return found;
  }

  async queryKeys(query: KeyQuery, now: number): Promise<FetchedPage> {
    const range = narrowRange(query.range, query.after?.part, query.reverse);
    const where = ["ns = @ns", ...rangeConditions("part", range), LIVE];
    const params: Record<string, unknown> = { ns: range.ns, lower: range.lower.value, now };
    if (range.upper) params.upper = range.upper.value;
    const direction = query.reverse ? "DESC" : "ASC";
    return this.readPage(`WHERE ${where.join(" AND ")} ORDER BY part ${direction}`, params, query);
  }

  async queryLabel(query: LabelQuery, now: number): Promise<FetchedPage> {
    const { ns, part } = labelColumns(query.label);
    // A continuation inside the range replaces the range's bound on its side, so the index range
    // has one bound per side (see narrowRange). One outside it keeps the range's bounds: before the
    // range they are the tighter ones (an exclusive bound at the position's own label too, Q5), and
    // past it the position leaves no row (P4).
    const after = query.after;
    const range: KeyRange =
      after && rangeIncludes(query.range, after.label)
        ? query.reverse
          ? { ...query.range, upper: undefined }
          : { ...query.range, lower: { value: after.label.part, inclusive: true } }
        : query.range;
    const where = [`${ns} = @lns`, ...rangeConditions(part, range), LIVE];
    const params: Record<string, unknown> = { lns: range.ns, lower: range.lower.value, now };
    if (range.upper) params.upper = range.upper.value;
    if (after) {
      // Row values let SQLite continue inside the index (label part, item ns, item part).
      where.push(`(${part}, ns, part) ${query.reverse ? "<" : ">"} (@alpart, @ans, @apart)`);
      Object.assign(params, { alpart: after.label.part, ans: after.item.ns, apart: after.item.part });
    }
    const d = query.reverse ? "DESC" : "ASC";
    return this.readPage(`WHERE ${where.join(" AND ")} ORDER BY ${part} ${d}, ns ${d}, part ${d}`, params, query);
  }

  async scan(query: ScanQuery, now: number): Promise<FetchedPage> {
    const { where, params, order } = scanShape(query, now);
    if (query.after) {
      if (query.label) {
        const { ns, part } = labelColumns(query.label);
        const after = query.after as LabelPosition;
        where.push(`(${ns}, ${part}, ns, part) > (@alns, @alpart, @ans, @apart)`);
        Object.assign(params, {
          alns: after.label.ns,
          alpart: after.label.part,
          ans: after.item.ns,
          apart: after.item.part,
        });
      } else {
        const after = query.after as Key;
        where.push("(ns, part) > (@ans, @apart)");
        Object.assign(params, { ans: after.ns, apart: after.part });
      }
    }
    return this.readPage(`WHERE ${where.join(" AND ")} ORDER BY ${order}`, params, query);
  }

  /**
   * One page of rows, read one at a time and measured (octet_length: the
   * bytes of the value's JSON as stored) before any is decoded; the first
   * row that does not fit ends the page and says more follow (PageBudget).
   */
  private readPage(condition: string, params: Record<string, unknown>, bounds: PageBounds): FetchedPage {
    const budget = new PageBudget(bounds.limit, bounds.maxBytes);
    const sql = `SELECT ${ITEM_COLUMNS}, octet_length(value) AS bytes FROM items ${condition} LIMIT @limit`;
    const rows: Row[] = [];
    let more = false;
    for (const row of this.statement(sql).iterate({ ...params, limit: bounds.limit + 1 }) as IterableIterator<Row & { bytes: number }>) {
      if (!budget.admits(row.bytes)) {
        more = true;
        break;
      }
      rows.push(row);
    }
    return { items: rows.map(toRecord), more };
  }

  async countRange(query: CountQuery, now: number): Promise<number> {
    const { sql, params } = countStatement(query, now);
    return (this.statement(sql).get(params) as { n: number }).n;
  }

  async count(filter: ScanFilter, now: number): Promise<number> {
    const { where, params } = scanShape(filter, now);
    const row = this.statement(`SELECT count(*) AS n FROM items WHERE ${where.join(" AND ")}`).get(params) as { n: number };
    return row.n;
  }

  async namespaces(query: NamespaceQuery, now: number): Promise<string[]> {
    const { sql, params } = namespacesStatement(query, now);
    return (this.statement(sql).all(params) as { ns: string }[]).map((row) => row.ns);
  }

  async set(plan: SetPlan, now: number, options: Pick<WriteOptions, "idempotency"> = {}): Promise<SetOutcome> {
    return this.write((changes) => this.applyPlan(plan, now, changes), options, SET_OUTCOME);
  }

  async setMany(plans: readonly SetPlan[], now: number, options: WriteOptions = {}): Promise<SetOutcome[]> {
    return this.write((changes) => plans.map((plan) => this.applyPlan(plan, now, changes)), options, SET_OUTCOMES);
  }

  async remove(keys: readonly Key[], now: number, options: RemoveOptions = {}): Promise<Key[]> {
    return this.write(
      (changes) => {
        if (options.ifVersion !== undefined) {
          // Checked before anything is deleted, inside the transaction: nothing is removed on a mismatch.
          const row = this.readRow(keys[0]);
          const live = row && toRecord(row);
          const version = live && isLive(live, now) ? live.version : 0;
          if (version !== options.ifVersion) throw versionMismatch(options.ifVersion, version);
        }
        const removed: Key[] = [];
        for (const key of keys) {
          const row = this.readRow(key);
          if (!row) continue;
          const item = toRecord(row);
          this.deleteRow(key);
          const expired = !isLive(item, now);
          changes.push({ name: "deleted", item, expired });
          if (!expired) removed.push(item.key);
        }
        return removed;
      },
      options,
      REMOVED_KEYS,
    );
  }

  async clear(now: number, options: WriteOptions = {}): Promise<number> {
    return this.write((changes) => {
      const rows = this.statement(`SELECT ${ITEM_COLUMNS} FROM items ORDER BY ns, part`).all() as Row[];
      this.statement("DELETE FROM items").run();
      let live = 0;
      for (const row of rows) {
        const item = toRecord(row);
        const expired = !isLive(item, now);
        if (!expired) live++;
        changes.push({ name: "deleted", item, expired });
      }
      return live;
    }, options);
  }

  /** One chunk (purgeExpiredChunk); none once the store is closed, which ends a sweep under way. */
  async purgeExpired(now: number): Promise<number> {
    return this.isOpen ? this.purgeExpiredChunk(now) : 0;
  }

  /** After each sweep: changes past their retention and idempotency records past their window go. */
  pruneRetained(now: number): void {
    if (!this.isOpen) return;
    this.pruneChanges(now - this.options.changeRetentionMs);
    this.pruneIdempotency(now - this.idempotencyWindowMs);
  }

  /**
   * All or nothing, also across a crash: the plans are applied chunk by
   * chunk to a staging table (with the change log they would write) in a
   * TEMP table of this connection, yielding to the event loop between chunks,
   * so reads and writes go on against the old content meanwhile. The swap is
   * one transaction of set-based SQL, no JavaScript per row: the `deleted`
   * events of what is there at that moment (racing writes included), then
   * the staged items and their events. A failure or a cancelled call before
   * the swap drops the staging tables; a crash takes them with it, since TEMP
   * tables live and die with the connection. Either way the environment
   * shows its old content.
   */
  async replaceAll(chunks: AsyncIterable<readonly SetPlan[]>, now: number, options: BulkOptions = {}): Promise<number> {
    const staging = `bulk_${++this.bulkRuns}`;
    this.db.exec(
      `CREATE TEMP TABLE ${staging} AS SELECT ${ITEM_COLUMNS}, seg FROM main.items WHERE 0;` +
        `CREATE UNIQUE INDEX temp.${staging}_key ON ${staging} (ns, part);` +
        `CREATE TEMP TABLE ${staging}_changes (seq INTEGER PRIMARY KEY, body TEXT NOT NULL, key TEXT NOT NULL);`,
    );
    try {
      let written = 0;
      for await (const plans of chunks) {
        options.signal?.throwIfAborted();
        this.db.transaction(() => {
          const changes: Change[] = [];
          for (const plan of plans) this.applyPlan(plan, now, changes, `temp.${staging}`);
          if (options.events === false) return;
          const append = this.statement(`INSERT INTO temp.${staging}_changes (body, key) VALUES (@body, @key)`);
          for (const change of changes) append.run({ body: encodeChangeBody(change), key: change.item.key.full });
        })();
        written += plans.length;
        // Between chunks the event loop runs: health and other calls answer, timers fire.
        await new Promise((resolve) => setImmediate(resolve));
      }
      options.signal?.throwIfAborted();
      const time = Date.now();
      const swap = this.db.transaction(() => {
        if (options.events !== false) {
          this.statement(
            `INSERT INTO changes (time, body, key) SELECT @time, ${DELETED_EVENT_SQL}, ${fullKeySql("ns", "part")} FROM items ORDER BY ns, part`,
          ).run({ time, now });
        }
        this.statement("DELETE FROM items").run();
        if (options.events === false) this.historyStartsAt(time + 1);
        this.statement(`INSERT INTO items (${ITEM_COLUMNS}, seg) SELECT ${ITEM_COLUMNS}, seg FROM temp.${staging}`).run();
        this.statement(`INSERT INTO changes (time, body, key) SELECT @time, body, key FROM temp.${staging}_changes ORDER BY seq`).run({ time });
      });
      swap.immediate();
      this.commits.emit("commit");
      return written;
    } finally {
      if (this.db.open) this.db.exec(`DROP TABLE IF EXISTS temp.${staging}; DROP TABLE IF EXISTS temp.${staging}_changes;`);
      // Statements of the dropped tables would fail if run again; their names are never reused.
      for (const sql of [...this.statements.keys()]) if (sql.includes(staging)) this.statements.delete(sql);
    }
  }

  /**
   * Reads the change log after a position, for change feeds (EV7: commit
   * order): up to `limit` changes and CHANGE_READ_BYTES of their text (at
   * least one), measured before any is decoded.
   */
  readChanges(afterSequence: number, limit: number): (ChangeRow & { readonly bytes: number })[] {
    const rows: { seq: number; time: number; body: string; bytes: number }[] = [];
    let bytes = 0;
    const read = this.statement("SELECT seq, time, body, octet_length(body) AS bytes FROM changes WHERE seq > @after ORDER BY seq LIMIT @limit");
    for (const row of read.iterate({ after: afterSequence, limit }) as IterableIterator<(typeof rows)[number]>) {
      if (rows.length > 0 && bytes + row.bytes > CHANGE_READ_BYTES) break;
      bytes += row.bytes;
      rows.push(row);
    }
    return rows.map((row) => ({ ...decodeChange(row), bytes: row.bytes }));
  }

  /** The sequence of the newest change ever written (0 when none). */
  headSequence(): number {
    const row = this.statement("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").get() as { seq: number } | undefined;
    return row?.seq ?? 0;
  }

  /**
   * The change log's extent, for metrics. Sequences have no gaps (a rolled
   * back write rolls its sequence back too, and pruning removes a prefix),
   * so the count is arithmetic, not a scan of the log.
   */
  changeLogFigures(): NonNullable<EnvironmentFigures["changeLog"]> {
    const headSequence = this.headSequence();
    const oldest = this.statement("SELECT seq, time FROM changes ORDER BY seq LIMIT 1").get() as { seq: number; time: number } | undefined;
    if (!oldest) return { events: 0, headSequence };
    // The slowest named subscription's first unacknowledged change (an index lookup on each table).
    const slowest = this.statement("SELECT time FROM changes WHERE seq > (SELECT min(seq) FROM subscriptions) ORDER BY seq LIMIT 1").get() as
      { time: number } | undefined;
    return {
      events: headSequence - oldest.seq + 1,
      headSequence,
      oldest: { sequence: oldest.seq, time: oldest.time },
      unacknowledgedSince: slowest?.time,
    };
  }

  /** Changes up to this sequence have been pruned: a reader behind it has a gap. */
  prunedThrough(): number {
    // Every Watch stream asks on every commit; only this store prunes, so the answer is kept.
    if (this.pruned === undefined) {
      const row = this.statement("SELECT value FROM meta WHERE name = 'pruned_through'").get() as { value: number } | undefined;
      this.pruned = row?.value ?? 0;
    }
    return this.pruned;
  }

  /** Drops changes older than the retention period (the change log is not a history). */
  pruneChanges(before: number): number {
    const prune = this.db.transaction(() => {
      const last = this.statement("SELECT max(seq) AS seq FROM changes WHERE time < @before").get({ before }) as {
        seq: number | null;
      };
      if (last.seq === null) return 0;
      const { changes } = this.statement("DELETE FROM changes WHERE seq <= @seq").run({ seq: last.seq });
      this.statement("INSERT OR REPLACE INTO meta (name, value) VALUES ('pruned_through', @seq)").run({ seq: last.seq });
      this.historyStartsAt(before);
      return changes;
    });
    const pruned = prune.immediate();
    this.pruned = undefined;
    return pruned;
  }

  /**
   * History and asOf reads are answered only from this instant on
   * (historyHorizon): changes before it were pruned, or a write without
   * events (an import or clone that skips them) changed items unrecorded.
   */
  private historyStartsAt(time: number): void {
    this.statement(
      "INSERT OR REPLACE INTO meta (name, value) VALUES ('pruned_before', max(@time, coalesce((SELECT value FROM meta WHERE name = 'pruned_before'), 0)))",
    ).run({ time });
  }

  /**
   * Stores a subscription's position. A new name in an environment that holds
   * MAX_SUBSCRIPTIONS takes the place of the least recently acknowledged one
   * if that one has gone unacknowledged for the change retention (its position
   * is then as good as expired); otherwise it is refused.
   */
  saveSubscription(name: string, sequence: number, now: number): void {
    const save = this.db.transaction(() => {
      const updated = this.statement("UPDATE subscriptions SET seq = @seq, updated = @now WHERE name = @name").run({ name, seq: sequence, now });
      if (updated.changes > 0) return;
      const { n } = this.statement("SELECT count(*) AS n FROM subscriptions").get() as { n: number };
      if (n >= MAX_SUBSCRIPTIONS) {
        const forgotten = this.statement(
          "DELETE FROM subscriptions WHERE name = (SELECT name FROM subscriptions WHERE updated < @before ORDER BY updated LIMIT 1)",
        ).run({ before: now - this.options.changeRetentionMs });
        if (forgotten.changes === 0) throw tooManySubscriptions();
      }
      this.statement("INSERT INTO subscriptions (name, seq, updated) VALUES (@name, @seq, @now)").run({ name, seq: sequence, now });
    });
    save.immediate();
  }

  loadSubscription(name: string): number | undefined {
    const row = this.statement("SELECT seq FROM subscriptions WHERE name = @name").get({ name }) as { seq: number } | undefined;
    return row?.seq;
  }

  /** False once closed: by a drop of the environment, or at shutdown. */
  get isOpen(): boolean {
    return this.db.open;
  }

  async close(): Promise<void> {
    this.db.close();
    // Wakes the change log's reader, which finds the store closed and ends every Watch stream (change-log.ts).
    this.commits.emit("commit");
  }

  /**
   * One chunk of the sweep, in one transaction: the expired rows are chosen
   * by their keys and sizes (their values are never read into JavaScript),
   * and SQLite writes each one's `deleted` event from the stored text
   * (DELETED_EVENT_SQL): a value's decoded form can be twenty times its text.
   */
  private purgeExpiredChunk(now: number): number {
    const select = this.statement(
      "SELECT ns, part, octet_length(value) AS bytes FROM items WHERE expires IS NOT NULL AND expires <= @now ORDER BY expires LIMIT @rows",
    );
    const sweep = this.db.transaction(() => {
      const keys: { ns: string; part: string }[] = [];
      let bytes = 0;
      for (const row of select.iterate({ now, rows: SWEEP_CHUNK_ROWS }) as IterableIterator<{ ns: string; part: string; bytes: number }>) {
        if (keys.length > 0 && bytes + row.bytes > SWEEP_CHUNK_BYTES) break;
        bytes += row.bytes;
        keys.push(row);
      }
      const append = this.statement(
        `INSERT INTO changes (time, body, key) SELECT @time, ${DELETED_EVENT_SQL}, ${fullKeySql("ns", "part")} FROM items WHERE ns = @ns AND part = @part`,
      );
      const time = Date.now();
      for (const key of keys) {
        append.run({ time, now, ns: key.ns, part: key.part });
        this.deleteRow(key);
      }
      return keys.length;
    });
    const deleted = sweep.immediate();
    if (deleted > 0) this.commits.emit("commit");
    return deleted;
  }

  /** Drops idempotency records past the window, a bounded number per sweep. */
  pruneIdempotency(before: number): number {
    return this.statement("DELETE FROM idempotency WHERE key IN (SELECT key FROM idempotency WHERE time <= @before ORDER BY time LIMIT 1000)").run({
      before,
    }).changes;
  }

  private get idempotencyWindowMs(): number {
    return this.options.idempotencyWindowMs ?? DEFAULT_IDEMPOTENCY_WINDOW_MS;
  }

  /**
   * Runs one write transaction and appends its changes to the log before it
   * commits, so a change and its event are durable together or not at all.
   * With an idempotency key, the record of a first attempt within the window
   * answers instead (nothing is written), or the outcome is recorded in the
   * same transaction as the write.
   */
  private write<T>(body: (changes: Change[]) => T, options: WriteOptions = {}, replay?: OutcomeCodec<T>): T {
    const changes: Change[] = [];
    const now = Date.now();
    const idempotency = replay && options.idempotency;
    const run = this.db.transaction(() => {
      if (idempotency) {
        const record = this.statement("SELECT fingerprint, outcome FROM idempotency WHERE key = @key AND time > @since").get({
          key: idempotency.key,
          since: now - this.idempotencyWindowMs,
        }) as { fingerprint: string; outcome: string } | undefined;
        if (record) {
          if (record.fingerprint !== idempotency.fingerprint) throw idempotencyKeyReused();
          return replay.decode(record.outcome);
        }
      }
      const result = body(changes);
      if (options.events === false && changes.length > 0) {
        changes.length = 0;
        this.historyStartsAt(now + 1);
      }
      const append = this.statement("INSERT INTO changes (time, body, key) VALUES (@time, @body, @key)");
      for (const change of changes) append.run({ time: now, body: encodeChangeBody(change), key: change.item.key.full });
      if (idempotency) {
        this.statement("INSERT OR REPLACE INTO idempotency (key, fingerprint, outcome, time) VALUES (@key, @fingerprint, @outcome, @time)").run({
          key: idempotency.key,
          fingerprint: idempotency.fingerprint,
          outcome: replay.encode(result),
          time: now,
        });
      }
      return result;
    });
    const result = run.immediate();
    if (changes.length > 0) this.commits.emit("commit");
    return result;
  }

  private applyPlan(plan: SetPlan, now: number, changes: Change[], table = "items"): SetOutcome {
    const row = this.readRow(plan.key, table);
    let live: ItemRecord | undefined;
    if (row) {
      const stored = toRecord(row);
      if (isLive(stored, now)) {
        live = stored;
      } else {
        // EV6: the expiry of an item not yet purged is emitted before the write that replaces it.
        this.deleteRow(stored.key, table);
        changes.push({ name: "deleted", item: stored, expired: true });
      }
    }
    const outcome = applySet(live, plan, now);
    this.upsertRow(outcome.item, table);
    changes.push(outcome.previous ? { name: "updated", item: outcome.item, previous: outcome.previous } : { name: "created", item: outcome.item });
    if (!isLive(outcome.item, now)) {
      // EV6: a write whose ttl is already past is created, then expires at once.
      this.deleteRow(outcome.item.key, table);
      changes.push({ name: "deleted", item: outcome.item, expired: true });
    }
    return outcome;
  }

  private readRow(key: Key, table = "items"): Row | undefined {
    return this.statement(`SELECT ${ITEM_COLUMNS} FROM ${table} WHERE ns = @ns AND part = @part`).get({
      ns: key.ns,
      part: key.part,
    }) as Row | undefined;
  }

  private deleteRow(key: Pick<Key, "ns" | "part">, table = "items"): void {
    this.statement(`DELETE FROM ${table} WHERE ns = @ns AND part = @part`).run({ ns: key.ns, part: key.part });
  }

  private upsertRow(item: ItemRecord, table = "items"): void {
    const labels = item.labels;
    this.statement(
      `INSERT OR REPLACE INTO ${table} (${ITEM_COLUMNS}, seg) VALUES
       (${ITEM_VALUES})`,
    ).run({
      ns: item.key.ns,
      part: item.key.part,
      value: JSON.stringify(item.value),
      created: item.created,
      modified: item.modified,
      expires: item.expires ?? null,
      ...labelCells(labels),
      version: item.version,
      seg: segmentHash(item.key),
    });
  }

  /** Prepared statements are cached by their SQL: each query shape is compiled once. */
  private statement(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }
}

type ChangeText = { seq: number; time: number; body: string };

/** A History page's `start`: the sequence of the last change a previous page returned. */
function historyPosition(position: string): number {
  const sequence = /^[1-9][0-9]{0,15}$/.test(position) ? Number(position) : NaN;
  if (!Number.isSafeInteger(sequence)) throw invalidArgument("INVALID_OPTION", "'start' must be a previous page's lastKey");
  return sequence;
}
