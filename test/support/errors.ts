import { ConnectError } from "@connectrpc/connect";
import { fromBinary } from "@bufbuild/protobuf";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";

/** The error a call was refused with; a call that succeeds fails the test. */
export async function failureOf(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("the call should have been refused");
}

/** The ErrorInfo reason of a refusal (the first detail), if it carries one. */
export const reasonOf = (failure: ConnectError): string | undefined => failure.findDetails(ErrorInfoSchema)[0]?.reason;

/** A Connect error as its JSON body spells it: details are base64 (padding may be left off). */
export interface ConnectErrorBody {
  code: string;
  message: string;
  details?: { type: string; value: string }[];
}

/** The ErrorInfo reason in a Connect JSON error body (a string or parsed), if it carries one. */
export function reasonOfBody(body: string | ConnectErrorBody): string | undefined {
  const parsed: ConnectErrorBody = typeof body === "string" ? (JSON.parse(body) as ConnectErrorBody) : body;
  const detail = parsed.details?.find((each) => each.type === "google.rpc.ErrorInfo");
  if (!detail) return undefined;
  const padded = detail.value + "=".repeat((4 - (detail.value.length % 4)) % 4);
  return fromBinary(ErrorInfoSchema, Buffer.from(padded, "base64")).reason;
}
