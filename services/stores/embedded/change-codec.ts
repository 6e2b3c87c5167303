import type { Change, ChangeName } from "../../../core/item.js";
import { itemFromJson, type ItemJson } from "../../../core/item-json.js";

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
