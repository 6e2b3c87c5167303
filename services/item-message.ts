import { fromJson, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs, ValueSchema, type Timestamp } from "@bufbuild/protobuf/wkt";
import { ItemSchema } from "../gen/larder/data/v1/data_pb.js";
import type { ItemRecord } from "./domain/item.js";

/**
 * A Timestamp as epoch milliseconds, truncated the way an ISO date's fraction
 * is (T2), so the same instant given as `at` or as `date` is the same expiry
 * (protobuf-es's timestampMs rounds, and would move 23:59:59.9995 into the next second).
 */
export function timestampToMs(timestamp: Timestamp): number {
  return Number(timestamp.seconds) * 1000 + Math.floor(timestamp.nanos / 1_000_000);
}

/** An item record as the wire carries it (M4: times as google.protobuf.Timestamp). */
export function toItem(item: ItemRecord): MessageInitShape<typeof ItemSchema> {
  return {
    key: item.key.full,
    value: fromJson(ValueSchema, item.value),
    created: timestampFromMs(item.created),
    modified: timestampFromMs(item.modified),
    ttl: item.expires === undefined ? undefined : timestampFromMs(item.expires),
    label1: item.labels[0]?.full,
    label2: item.labels[1]?.full,
    label3: item.labels[2]?.full,
    label4: item.labels[3]?.full,
    label5: item.labels[4]?.full,
    version: BigInt(item.version),
  };
}
