import type { JsonObject, JsonValue } from "./json.js";
import type { Key } from "./keys.js";
import type { ItemRecord } from "./item.js";

/**
 * Set planning: a SetInput (what a caller asked, already decoded from the
 * wire) is validated once into a SetPlan, a pure description of the write
 * that every engine executes atomically: the embedded engine by applySet
 * inside a transaction, the MongoDB engine as one update pipeline.
 */

/** How a caller gave the ttl (T1-T4), before it is resolved against now. */
export type TtlInput =
  | { readonly seconds: number }
  | { readonly date: string }
  | { readonly at: number }
  | { readonly remove: true };

/** How a caller changes one label (L2), before the label value is validated. */
export type LabelInput =
  | { readonly set: string }
  | { readonly setIfAbsent: string }
  | { readonly remove: true };

export interface SetInput {
  readonly key: string;
  /** undefined: the caller gave no value (V7, D3). */
  readonly value: JsonValue | undefined;
  /** Root attributes given as `undefined` (V6). */
  readonly unsetAttributes: readonly string[];
  readonly overwrite: boolean;
  readonly ttl?: TtlInput;
  readonly exists?: boolean;
  readonly defaultValue?: JsonValue;
  /** One slot per label; undefined leaves that label as it is. */
  readonly labels: readonly (LabelInput | undefined)[];
  readonly created?: number;
  readonly removeNulls: boolean;
}

export type TtlChange =
  | { readonly op: "keep" }
  | { readonly op: "set"; readonly expires: number }
  | { readonly op: "remove" };

export type LabelChange =
  | { readonly op: "keep" }
  | { readonly op: "set"; readonly label: Key }
  | { readonly op: "setIfAbsent"; readonly label: Key }
  | { readonly op: "remove" };

/** What the write does to the value, decided before the stored item is known. */
export type ValuePlan =
  /** overwrite (M2, A5, D3): the value as written, whatever was stored. */
  | { readonly kind: "replace"; readonly value: JsonValue }
  /** A single value without overwrite (V3); onto an object it is V5's error. */
  | { readonly kind: "single"; readonly value: JsonValue }
  /** A whole-value `{ $add: n }` (A1, AD1): onto a number adds, onto nothing is n, onto an object V5, else A4. */
  | { readonly kind: "addToValue"; readonly amount: number }
  /** D3: a single-value default with no value: written only where there is no live item. */
  | { readonly kind: "singleDefault"; readonly value: JsonValue }
  /**
   * An object merged at the root (V4, V6, A1, D2, D5). Onto a single value or
   * nothing it starts from {}.
   */
  | {
      readonly kind: "merge";
      /** Root attributes written as given. */
      readonly set: JsonObject;
      /** Root attributes incremented (a missing one counts as 0; a non-number is A4). */
      readonly add: Readonly<Record<string, number>>;
      /** Root attributes removed (null with removeNulls, or undefined). */
      readonly unset: readonly string[];
      /** Root attributes written only where the stored object lacks them (D2). */
      readonly fill: JsonObject;
    };

/** C2: seconds match the stored created truncated to the second; milliseconds match exactly. */
export type CreatedCheck = { readonly unit: "seconds" | "millis"; readonly value: number };

export interface SetPlan {
  readonly key: Key;
  readonly overwrite: boolean;
  readonly value: ValuePlan;
  readonly ttl: TtlChange;
  readonly labels: readonly [LabelChange, LabelChange, LabelChange, LabelChange, LabelChange];
  readonly exists?: boolean;
  readonly created?: CreatedCheck;
}

/** The outcome of applying a plan to the live item (or none). */
export interface SetOutcome {
  readonly item: ItemRecord;
  /** The live item before the write, if any: `updated` vs `created` (EV5). */
  readonly previous?: ItemRecord;
}
