import type { JsonValue } from "./json.js";
import type { Key } from "./keys.js";

/** The five label slots of an item (L1); index 0 is label1. */
export type LabelSlots = readonly [Key | undefined, Key | undefined, Key | undefined, Key | undefined, Key | undefined];

export const LABEL_COUNT = 5;

/** A label slot, 1 to 5. */
export type LabelNumber = 1 | 2 | 3 | 4 | 5;

/** A position in a label index: the label value, then the item key as tie-breaker (L5). */
export interface LabelPosition {
  readonly label: Key;
  readonly item: Key;
}
export const NO_LABELS: LabelSlots = [undefined, undefined, undefined, undefined, undefined];

/** One stored item with its metadata (M1-M4). Times are epoch milliseconds (M3). */
export interface ItemRecord {
  readonly key: Key;
  readonly value: JsonValue;
  /**
   * The value as the JSON text the store holds (JSON.stringify of `value`),
   * when it has it: passed through to callers that take JSON text unparsed.
   */
  readonly valueText?: string;
  readonly created: number;
  readonly modified: number;
  readonly expires?: number;
  readonly labels: LabelSlots;
  /** 1 at creation, one more with each write; items stored before versions existed count as 1. */
  readonly version: number;
}

/** T6: an item is expired from the instant its expiry time is reached. */
export function isLive(item: ItemRecord, now: number): boolean {
  return item.expires === undefined || item.expires > now;
}

export type ChangeName = "created" | "updated" | "deleted";

/** What a write did to one item: the input of the change log (EV4, EV5). */
export interface Change {
  readonly name: ChangeName;
  readonly item: ItemRecord;
  readonly previous?: ItemRecord;
  /** A `deleted` caused by expiry (EV6). */
  readonly expired?: boolean;
}
