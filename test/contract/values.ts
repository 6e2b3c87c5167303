import { fromJson, toJson } from "@bufbuild/protobuf";
import { ValueSchema, type Value } from "@bufbuild/protobuf/wkt";

/** A JSON value as google.protobuf.Value, for requests. */
export function json(value: unknown): Value {
  return fromJson(ValueSchema, value as never);
}

/** A google.protobuf.Value from a response, as JSON. */
export function plain(value: Value | undefined): unknown {
  return value === undefined ? undefined : toJson(ValueSchema, value);
}
