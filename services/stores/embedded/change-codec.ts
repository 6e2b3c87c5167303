import type { Change, ChangeName } from "../../../core/item.js";
import { itemFromJson, itemToJson, type ItemJson } from "../../../core/item-json.js";

export interface ChangeRow extends Change {
  readonly sequence: number;
  readonly time: number;
}

export function decodeChange(row: { seq: number; time: number; body: string }): ChangeRow {
  const body = JSON.parse(row.body) as { name: ChangeName; item: ItemJson; previous?: ItemJson; expired: boolean };
  return {
    sequence: row.seq,
    time: row.time,
    name: body.name,
    item: itemFromJson(body.item),
    ...(body.previous ? { previous: itemFromJson(body.previous) } : {}),
    expired: body.expired,
  };
}

export function encodeChangeBody(change: Change): string {
  return JSON.stringify({
    name: change.name,
    item: itemToJson(change.item),
    previous: change.previous && itemToJson(change.previous),
    expired: change.expired ?? false,
  });
}
