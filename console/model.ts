import { create, fromJson, toJson, type JsonValue as ProtoJson } from "@bufbuild/protobuf";
import { timestampDate, ValueSchema } from "@bufbuild/protobuf/wkt";
import { toLarderError, LarderError } from "../client/errors.js";
import type { Item, LabelUpdate, SetRequest, Ttl } from "../gen/larder/data/v1/data_pb.js";
import { SetRequestSchema } from "../gen/larder/data/v1/data_pb.js";
import { DomainError } from "../core/errors.js";
import { LABEL_NAMES, labelsOf, namedLabels } from "../core/item.js";
import { isJsonObject, type JsonValue } from "../core/json.js";
import { planSet, type LabelInput, type SetInput } from "../core/set-plan.js";
import type { TtlInput } from "../core/ttl.js";

/** An item as the console shows it. */
export interface ConsoleItem {
  readonly key: string;
  readonly value: JsonValue;
  readonly created?: Date;
  readonly modified?: Date;
  readonly ttl?: Date;
  /** 1 when created, one more with each write. */
  readonly version: number;
  /** label1..label5; undefined where unset. */
  readonly labels: readonly (string | undefined)[];
}

export function fromItem(item: Item): ConsoleItem {
  return {
    key: item.key,
    value: item.value === undefined ? null : (toJson(ValueSchema, item.value) as JsonValue),
    created: item.created && timestampDate(item.created),
    modified: item.modified && timestampDate(item.modified),
    ttl: item.ttl && timestampDate(item.ttl),
    version: Number(item.version),
    labels: labelsOf(item),
  };
}

/** What the editor holds: text as typed. */
export interface ItemDraft {
  readonly key: string;
  readonly valueText: string;
  /** Five label texts; empty means no label. */
  readonly labels: readonly string[];
  /** Empty: never expires; digits: seconds (from now, or an epoch second, T1); else an ISO 8601 date (T2). */
  readonly ttl: string;
}

export interface DraftCheck {
  readonly input?: SetInput;
  readonly error?: string;
}

/**
 * Validates a draft exactly as the service would (the same pure planSet the
 * server runs), so most mistakes show before anything is sent. `existing`:
 * the item being edited; the edit replaces it (M2) with the labels and ttl
 * of the draft, keeps its `created` through the integrity check (C1), and
 * only over the version that was edited (ifVersion): a write made by someone
 * else meanwhile is refused (VERSION_MISMATCH), never silently overwritten.
 */
export function checkDraft(draft: ItemDraft, existing: ConsoleItem | undefined, now = Date.now()): DraftCheck {
  let value: JsonValue;
  try {
    value = JSON.parse(draft.valueText) as JsonValue;
  } catch (error) {
    return { error: `The value is not JSON: ${(error as Error).message}` };
  }
  const input: SetInput = {
    key: draft.key,
    value,
    unsetAttributes: [],
    overwrite: existing !== undefined,
    exists: existing === undefined ? false : undefined,
    ttl: ttlInput(draft.ttl, existing !== undefined),
    labels: draft.labels.map((label): LabelInput | undefined => (label.trim() === "" ? (existing ? { remove: true } : undefined) : { set: label })),
    created: existing?.created?.getTime(),
    ifVersion: existing?.version,
    removeNulls: true,
  };
  try {
    planSet(input, now);
  } catch (error) {
    if (error instanceof DomainError) return { input, error: error.message };
    throw error;
  }
  return { input };
}

function ttlInput(text: string, editing: boolean): TtlInput | undefined {
  const trimmed = text.trim();
  if (trimmed === "") return editing ? { remove: true } : undefined;
  if (/^-?\d+(\.\d+)?$/.test(trimmed)) return { seconds: Number(trimmed) };
  return { date: trimmed };
}

/** The Set request of a checked draft. */
export function toSetRequest(input: SetInput): SetRequest {
  return create(SetRequestSchema, {
    key: input.key,
    value: input.value === undefined ? undefined : fromJson(ValueSchema, input.value as ProtoJson),
    overwrite: input.overwrite,
    exists: input.exists,
    created: input.created,
    ifVersion: input.ifVersion === undefined ? undefined : BigInt(input.ifVersion),
    removeNulls: input.removeNulls,
    ttl: input.ttl && toTtl(input.ttl),
    ...namedLabels(input.labels, toLabelUpdate),
  });
}

function toTtl(ttl: TtlInput): Ttl {
  if ("seconds" in ttl) return { $typeName: "larder.data.v1.Ttl", kind: { case: "seconds", value: ttl.seconds } };
  if ("date" in ttl) return { $typeName: "larder.data.v1.Ttl", kind: { case: "date", value: ttl.date } };
  if ("remove" in ttl) return { $typeName: "larder.data.v1.Ttl", kind: { case: "remove", value: true } };
  return { $typeName: "larder.data.v1.Ttl", kind: { case: undefined } };
}

function toLabelUpdate(label: LabelInput | undefined): LabelUpdate | undefined {
  if (label === undefined) return undefined;
  if ("set" in label) return { $typeName: "larder.data.v1.LabelUpdate", action: { case: "set", value: label.set } };
  if ("remove" in label) return { $typeName: "larder.data.v1.LabelUpdate", action: { case: "remove", value: true } };
  return { $typeName: "larder.data.v1.LabelUpdate", action: { case: "setIfAbsent", value: label.setIfAbsent } };
}

export function draftOf(item: ConsoleItem | undefined, key = ""): ItemDraft {
  return {
    key: item?.key ?? key,
    valueText: item ? JSON.stringify(item.value, null, 2) : "{\n  \n}",
    labels: LABEL_NAMES.map((_, index) => item?.labels[index] ?? ""),
    ttl: item?.ttl ? item.ttl.toISOString() : "",
  };
}

/** One line for any failure: the service's own message, its code and reason. */
export function describeError(error: unknown): string {
  const converted = toLarderError(error);
  if (converted instanceof LarderError) return `${converted.message} (${converted.code}${converted.reason ? `, ${converted.reason}` : ""})`;
  if (converted instanceof DomainError) return `${converted.message} (${converted.code}, ${converted.reason})`;
  return converted instanceof Error ? converted.message : String(converted);
}

export function errorCode(error: unknown): string | undefined {
  const converted = toLarderError(error);
  return converted instanceof LarderError ? converted.code : undefined;
}

/** A short, single-line preview of a value for lists. */
export function preview(value: JsonValue, max = 160): string {
  const text = JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** How long until `when`, as `2d 3h`, `4m 05s`, or `expired`. */
export function countdown(when: Date, now: number): string {
  let seconds = Math.floor((when.getTime() - now) / 1000);
  if (seconds <= 0) return "expired";
  const days = Math.floor(seconds / 86_400);
  seconds -= days * 86_400;
  const hours = Math.floor(seconds / 3600);
  seconds -= hours * 3600;
  const minutes = Math.floor(seconds / 60);
  seconds -= minutes * 60;
  if (days > 0) return `${days}d ${hours}h`;
  if (hours > 0) return `${hours}h ${String(minutes).padStart(2, "0")}m`;
  if (minutes > 0) return `${minutes}m ${String(seconds).padStart(2, "0")}s`;
  return `${seconds}s`;
}

export interface Change {
  /** The root attribute, or undefined when the whole value changed (a single value, V3). */
  readonly attribute?: string;
  readonly kind: "added" | "removed" | "changed";
  readonly before?: JsonValue;
  readonly after?: JsonValue;
}

/**
 * What an update changed (EV4): root attributes of objects, one by one (a
 * nested object counts as one attribute, as V4 merges it); anything else as
 * a whole. Labels and ttl are compared too, as pseudo-attributes.
 */
export function diffItems(previous: ConsoleItem, item: ConsoleItem): Change[] {
  const changes: Change[] = [];
  const { value: before } = previous;
  const { value: after } = item;
  if (isJsonObject(before) && isJsonObject(after)) {
    for (const attribute of Object.keys(before)) {
      if (!Object.hasOwn(after, attribute)) changes.push({ attribute, kind: "removed", before: before[attribute] });
      else if (!sameJson(before[attribute], after[attribute]))
        changes.push({ attribute, kind: "changed", before: before[attribute], after: after[attribute] });
    }
    for (const attribute of Object.keys(after)) {
      if (!Object.hasOwn(before, attribute)) changes.push({ attribute, kind: "added", after: after[attribute] });
    }
  } else if (!sameJson(before, after)) {
    changes.push({ kind: "changed", before, after });
  }
  LABEL_NAMES.forEach((name, index) => {
    const was = previous.labels[index];
    const is = item.labels[index];
    if (was === is) return;
    changes.push({ attribute: `(${name})`, kind: was === undefined ? "added" : is === undefined ? "removed" : "changed", before: was, after: is });
  });
  const wasTtl = previous.ttl?.toISOString();
  const isTtl = item.ttl?.toISOString();
  if (wasTtl !== isTtl)
    changes.push({
      attribute: "(ttl)",
      kind: wasTtl === undefined ? "added" : isTtl === undefined ? "removed" : "changed",
      before: wasTtl,
      after: isTtl,
    });
  return changes;
}

/** Deep equality of JSON values; attribute order does not count. */
export function sameJson(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((each, index) => sameJson(each, b[index]));
  }
  if (isJsonObject(a) && isJsonObject(b)) {
    const names = Object.keys(a);
    return names.length === Object.keys(b).length && names.every((name) => Object.hasOwn(b, name) && sameJson(a[name], b[name]));
  }
  return false;
}
