import { fromJson, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs, ValueSchema, type Timestamp } from "@bufbuild/protobuf/wkt";
import { ItemSchema } from "../gen/larder/data/v1/data_pb.js";
import { namedLabels, type ItemRecord } from "../core/item.js";

/**
 * A Timestamp as epoch milliseconds, truncated the way an ISO date's fraction
 * is (T2), so the same instant given as `at` or as `date` is the same expiry
 * (protobuf-es's timestampMs rounds, and would move 23:59:59.9995 into the next second).
 */
export function timestampToMs(timestamp: Timestamp): number {
  return Number(timestamp.seconds) * 1000 + Math.floor(timestamp.nanos / 1_000_000);
}

/** How values travel: as google.protobuf.Value (readable JSON for every caller), or as JSON text when the caller asks. */
export type ValueForm = "value" | "json";

/**
 * An item record as the wire carries it (M4: times as google.protobuf.Timestamp).
 * As JSON text the value is the text the store holds when it has it: no parse
 * and no Value tree on either side.
 */
export function toItem(item: ItemRecord, form: ValueForm = "value"): MessageInitShape<typeof ItemSchema> {
  return {
    key: item.key.full,
    ...(form === "json" ? { valueJson: item.valueText ?? JSON.stringify(item.value) } : { value: fromJson(ValueSchema, item.value) }),
    created: timestampFromMs(item.created),
    modified: timestampFromMs(item.modified),
    ttl: item.expires === undefined ? undefined : timestampFromMs(item.expires),
    ...namedLabels(item.labels, (label) => label?.full),
    version: BigInt(item.version),
  };
}
