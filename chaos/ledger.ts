/**
 * The chaos harness's record of what was asked and what was acknowledged in
 * one round, and the checks that compare it with what the restarted server
 * holds. Pure: no I/O, so every rule here is plain to read.
 *
 * Each writer owns its keys (its plain keys, its counter and its 25 batch
 * keys) and sends one request at a time, so per key the order of writes is
 * known exactly and at most one write (the writer's last) is unresolved when
 * the server dies.
 */

export const BATCH_SIZE = 25;

export type Outcome = "acked" | "inflight";

export interface Write {
  readonly kind: "set" | "remove";
  /** The value a set writes (unique in the whole run). */
  readonly value?: string;
  outcome: Outcome;
}

export interface BatchWrite {
  readonly id: string;
  outcome: Outcome;
}

/** One event as the restarted server's change log shows it. */
export interface LogEvent {
  readonly seq: number;
  readonly token: string;
  readonly name: string;
  readonly key: string;
  readonly value: unknown;
}

/** What the server held when a round began (the previous round's verified state). */
export interface Baseline {
  readonly values: Map<string, string>;
  readonly counters: Map<string, number>;
  /** writer → the batch id its 25 batch keys hold. */
  readonly batches: Map<number, string>;
}

export function emptyBaseline(): Baseline {
  return { values: new Map(), counters: new Map(), batches: new Map() };
}

export const plainKey = (writer: number, slot: number) => `s:${writer}:${slot}`;
export const counterKey = (writer: number) => `c:${writer}`;
export const batchKey = (writer: number, index: number) => `b:${writer}:${String(index).padStart(2, "0")}`;

export class RoundLedger {
  readonly writes = new Map<string, Write[]>();
  readonly counters = new Map<string, { acked: number; attempted: number }>();
  readonly batches = new Map<number, BatchWrite[]>();
  /** Requests that failed while the server was up: never expected. */
  readonly unexpected: string[] = [];

  begin(key: string, write: Omit<Write, "outcome">): Write {
    const entry: Write = { ...write, outcome: "inflight" };
    const list = this.writes.get(key) ?? [];
    list.push(entry);
    this.writes.set(key, list);
    return entry;
  }

  beginAdd(key: string): () => void {
    const entry = this.counters.get(key) ?? { acked: 0, attempted: 0 };
    entry.attempted++;
    this.counters.set(key, entry);
    return () => entry.acked++;
  }

  beginBatch(writer: number, id: string): BatchWrite {
    const entry: BatchWrite = { id, outcome: "inflight" };
    const list = this.batches.get(writer) ?? [];
    list.push(entry);
    this.batches.set(writer, list);
    return entry;
  }

  acknowledged(): number {
    let count = 0;
    for (const list of this.writes.values()) count += list.filter((write) => write.outcome === "acked").length;
    for (const entry of this.counters.values()) count += entry.acked;
    for (const list of this.batches.values()) count += list.filter((batch) => batch.outcome === "acked").length;
    return count;
  }

  inFlight(): number {
    let count = 0;
    for (const list of this.writes.values()) count += list.filter((write) => write.outcome === "inflight").length;
    for (const entry of this.counters.values()) count += entry.attempted - entry.acked;
    for (const list of this.batches.values()) count += list.filter((batch) => batch.outcome === "inflight").length;
    return count;
  }
}

/** What the restarted server holds for the keys of this round. */
export interface Found {
  readonly values: Map<string, string | undefined>;
  readonly counters: Map<string, number | undefined>;
  /** writer → the 25 batch items' ids, in key order (undefined: item absent). */
  readonly batches: Map<number, (string | undefined)[]>;
}

interface Expected {
  readonly name: string;
  readonly value?: string;
}

/**
 * Compares the restarted server with the ledger. Returns the violations (empty
 * when all is well) and the baseline for the next round.
 */
export function check(
  baseline: Baseline,
  ledger: RoundLedger,
  found: Found,
  log: readonly LogEvent[],
): { violations: string[]; next: Baseline; eventsChecked: number } {
  const violations = [...ledger.unexpected];
  const next: Baseline = { values: new Map(baseline.values), counters: new Map(baseline.counters), batches: new Map(baseline.batches) };
  const byKey = new Map<string, LogEvent[]>();
  for (const event of log) {
    const list = byKey.get(event.key) ?? [];
    list.push(event);
    byKey.set(event.key, list);
  }
  const explained = new Set<string>();

  // Plain keys: the value is the acknowledged one or the unresolved last write's; the log holds
  // exactly the acknowledged changes, in order, plus the unresolved one if and only if it was applied.
  for (const [key, writes] of ledger.writes) {
    explained.add(key);
    let present = baseline.values.get(key);
    const expected: Expected[] = [];
    let pending: { event?: Expected; result: string | undefined } | undefined;
    for (const write of writes) {
      const event: Expected | undefined =
        write.kind === "set"
          ? { name: present === undefined ? "created" : "updated", value: write.value }
          : present === undefined
            ? undefined
            : { name: "deleted" };
      const result = write.kind === "set" ? write.value : undefined;
      if (write.outcome === "acked") {
        if (pending) violations.push(`${key}: a write was acknowledged after an unresolved one (the harness's own bookkeeping is wrong)`);
        if (event) expected.push(event);
        present = result;
      } else {
        pending = { event, result };
      }
    }
    const value = found.values.get(key);
    const applied = pending !== undefined && value === pending.result && value !== present;
    if (value !== present && !(pending && value === pending.result)) {
      violations.push(
        `${key}: holds ${show(value)} but the last acknowledged write left ${show(present)}` +
          (pending ? ` (and the unresolved one would leave ${show(pending.result)})` : ""),
      );
    }
    const events = (byKey.get(key) ?? []).map(({ name, value: eventValue }) => ({ name, value: name === "deleted" ? undefined : eventValue }));
    const withPending = pending?.event ? [...expected, pending.event] : expected;
    const matches = (list: Expected[]) =>
      events.length === list.length && events.every((event, i) => event.name === list[i].name && event.value === list[i].value);
    // The unresolved write's event is there exactly when its change is (the log and the data agree).
    const options = applied && pending?.event ? [withPending] : [expected];
    if (!options.some(matches)) {
      violations.push(`${key}: change log has ${describeEvents(events)}, expected ${options.map(describeEvents).join(" or ")}`);
    }
    if (value === undefined) next.values.delete(key);
    else next.values.set(key, value);
  }

  // Counters: at least the acknowledged adds, at most the attempted ones, and one event per applied add.
  for (const [key, entry] of ledger.counters) {
    explained.add(key);
    const start = baseline.counters.get(key) ?? 0;
    const value = found.counters.get(key) ?? 0;
    if (value < start + entry.acked || value > start + entry.attempted) {
      violations.push(`${key}: counter is ${value}, outside [${start + entry.acked} acknowledged, ${start + entry.attempted} attempted]`);
    }
    const seen = (byKey.get(key) ?? []).map((event) => (event.value as { n?: unknown } | null)?.n);
    const applied = Math.min(Math.max(0, value - start), entry.attempted);
    const want = Array.from({ length: applied }, (_, i) => start + i + 1);
    if (seen.length !== want.length || seen.some((n, i) => n !== want[i])) {
      violations.push(`${key}: change log counts ${JSON.stringify(seen)}, expected ${JSON.stringify(want)} (one event per applied add)`);
    }
    next.counters.set(key, value);
  }

  // Batches: all 25 items carry one batch id (the last acknowledged, or the unresolved one), and
  // every applied batch is 25 consecutive entries of the change log.
  for (const [writer, batches] of ledger.batches) {
    const ids = found.batches.get(writer) ?? [];
    const keys = Array.from({ length: BATCH_SIZE }, (_, i) => batchKey(writer, i));
    keys.forEach((key) => explained.add(key));
    const distinct = new Set(ids);
    if (distinct.size !== 1) {
      violations.push(`batch keys of writer ${writer}: half written, ids ${JSON.stringify([...distinct])} across the 25 items`);
      continue;
    }
    const [id] = distinct;
    const acked = batches.filter((batch) => batch.outcome === "acked");
    const last = acked.length > 0 ? acked[acked.length - 1].id : baseline.batches.get(writer);
    const pending = batches.find((batch) => batch.outcome === "inflight");
    if (id !== last && !(pending && id === pending.id)) {
      violations.push(`batch keys of writer ${writer}: hold batch ${show(id)}, the last acknowledged batch is ${show(last)}`);
    }
    const applied = [...acked.map((batch) => batch.id), ...(pending && id === pending.id ? [pending.id] : [])];
    const events = keys.flatMap((key) => byKey.get(key) ?? []).sort((a, b) => a.seq - b.seq);
    const groups = new Map<string, LogEvent[]>();
    for (const event of events) {
      const batch = String((event.value as { batch?: unknown } | null)?.batch);
      groups.set(batch, [...(groups.get(batch) ?? []), event]);
    }
    if (JSON.stringify([...groups.keys()]) !== JSON.stringify(applied)) {
      violations.push(
        `batch keys of writer ${writer}: change log has batches ${JSON.stringify([...groups.keys()])}, expected ${JSON.stringify(applied)}`,
      );
    }
    for (const [batch, group] of groups) {
      const consecutive = group.length === BATCH_SIZE && group[BATCH_SIZE - 1].seq - group[0].seq === BATCH_SIZE - 1;
      if (!consecutive) violations.push(`batch ${batch}: its ${group.length} events are not 25 consecutive log entries`);
    }
    if (id === undefined) next.batches.delete(writer);
    else next.batches.set(writer, id);
  }

  for (const [key, events] of byKey) {
    if (!explained.has(key)) violations.push(`${key}: ${events.length} event(s) in the change log for a key no one wrote this round`);
  }
  for (let i = 1; i < log.length; i++) {
    if (log[i].seq <= log[i - 1].seq) violations.push(`change log out of order at ${log[i].token}`);
  }
  return { violations, next, eventsChecked: log.length };
}

/** Events a subscriber received before the kill must be exactly the start of the log after it. */
export function checkDelivered(name: string, delivered: readonly LogEvent[], log: readonly LogEvent[]): string[] {
  for (let i = 0; i < delivered.length; i++) {
    const seen = delivered[i];
    const logged = log[i];
    if (
      !logged ||
      logged.token !== seen.token ||
      logged.key !== seen.key ||
      logged.name !== seen.name ||
      JSON.stringify(logged.value) !== JSON.stringify(seen.value)
    ) {
      return [
        `${name}: event ${i + 1} delivered before the kill (${seen.token} ${seen.name} ${seen.key}) is ` +
          (logged ? `${logged.token} ${logged.name} ${logged.key} in the log after the restart` : "missing from the log after the restart"),
      ];
    }
  }
  return [];
}

function show(value: string | undefined): string {
  return value === undefined ? "nothing" : JSON.stringify(value);
}

function describeEvents(events: readonly Expected[]): string {
  return `[${events.map((event) => (event.value === undefined ? event.name : `${event.name} ${JSON.stringify(event.value)}`)).join(", ")}]`;
}
