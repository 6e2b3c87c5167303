import type { JsonValue } from "./json.js";
import type { Key } from "./keys.js";

/** The label slots of an item (L1), by number, in slot order: slot 0 is label1. */
export const LABEL_NUMBERS = [1, 2, 3, 4, 5] as const;

/** A label slot, 1 to 5. */
export type LabelNumber = (typeof LABEL_NUMBERS)[number];

/** A label's name in the API, the client and the console: `label1`..`label5`. */
export type LabelName = `label${LabelNumber}`;

export function labelName(label: LabelNumber): LabelName {
  return `label${label}`;
}

/** The label names in slot order. */
export const LABEL_NAMES: readonly LabelName[] = LABEL_NUMBERS.map(labelName);

type EachOf<Tuple extends readonly unknown[], T> = { readonly [Slot in keyof Tuple]: T };

/** One T per label slot, in slot order. */
export type PerLabel<T> = EachOf<typeof LABEL_NUMBERS, T>;

/** The label slots of an item; index 0 is label1. */
export type LabelSlots = PerLabel<Key | undefined>;

/** One value per label slot, made from the slot's number. */
export function perLabel<T>(make: (label: LabelNumber, slot: number) => T): PerLabel<T> {
  return LABEL_NUMBERS.map((label, slot) => make(label, slot)) as unknown as PerLabel<T>;
}

/** A message's (or an object's) `label1`..`label5` fields, in slot order. */
export function labelsOf<T>(message: { readonly [Name in LabelName]?: T }): PerLabel<T | undefined> {
  return perLabel((label) => message[labelName(label)]);
}

/** `label1`..`label5` fields (as protobuf messages name them), each made from its slot's entry of `slots`. */
export function namedLabels<T, F>(slots: readonly T[], field: (entry: T) => F): { [Name in LabelName]: F } {
  // A literal, not a loop over LABEL_NAMES: every item on the wire goes through here, and V8 builds
  // this shape in one step (a loop of keyed stores cost ~0.4 µs an item: 10% of a key query of 100).
  // The return type still derives from LabelNumber: a sixth slot would not compile until added here.
  return { label1: field(slots[0]), label2: field(slots[1]), label3: field(slots[2]), label4: field(slots[3]), label5: field(slots[4]) };
}

/** A position in a label index: the label value, then the item key as tie-breaker (L5). */
export interface LabelPosition {
  readonly label: Key;
  readonly item: Key;
}
export const NO_LABELS: LabelSlots = perLabel(() => undefined);

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
