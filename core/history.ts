import { DomainError, invalidArgument } from "./errors.js";
import { isLive, type ChangeName, type ItemRecord } from "./item.js";

/** One retained change of a key: what History answers, newest first. */
export interface HistoryEntry {
  /** Where the entry lies in its store's log: a page continues before it. */
  readonly position: string;
  readonly name: ChangeName;
  readonly expired: boolean;
  /** Commit time, epoch ms. */
  readonly time: number;
  /** The item the change left; for a deletion, the item deleted. */
  readonly item: ItemRecord;
  /** For an update, the item before it. */
  readonly previous?: ItemRecord;
}

/**
 * A key's changes around an instant, which is all the change log must hold
 * to know the key's state then: the last change at or before it, else the
 * first after it, else the item stored now (nothing changed it since).
 */
export interface ChangesAround {
  readonly atOrBefore?: Pick<HistoryEntry, "name" | "item">;
  readonly after?: Pick<HistoryEntry, "name" | "item" | "previous">;
  /** The stored row, live or not (an expired item the sweeper has not reached yet). */
  readonly stored?: ItemRecord;
}

/**
 * The item as it was at `at`, or undefined when there was none: a change
 * after the instant tells what it replaced (nothing for a creation, the
 * previous item for an update, the deleted item for a deletion). Whatever
 * was there must also have been live then: an item whose expiry passed
 * before the instant had expired even if its `deleted` came later (T7).
 */
export function stateAt(changes: ChangesAround, at: number): ItemRecord | undefined {
  let state: ItemRecord | undefined;
  if (changes.atOrBefore) {
    state = changes.atOrBefore.name === "deleted" ? undefined : changes.atOrBefore.item;
  } else if (changes.after) {
    const { name, item, previous } = changes.after;
    state = name === "created" ? undefined : name === "updated" ? previous : item;
  } else {
    state = changes.stored;
  }
  return state && isLive(state, at) ? state : undefined;
}

/**
 * An `asOf` instant a store can answer: not in the future (not known yet),
 * and not before `horizon`, the oldest instant whose changes the log still
 * holds; anything older would be a guess.
 */
export function checkAsOf(at: number, now: number, horizon: number): void {
  if (!Number.isFinite(at)) throw invalidArgument("INVALID_OPTION", "'asOf' must be a valid instant");
  if (at > now) throw invalidArgument("INVALID_OPTION", "'asOf' is in the future: only past states can be read");
  if (at < horizon) {
    throw new DomainError(
      "OUT_OF_RANGE",
      "HISTORY_EXPIRED",
      `'asOf' is older than the retained change history, which starts at ${new Date(horizon).toISOString()}`,
    );
  }
}
