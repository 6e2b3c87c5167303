import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";

/** The gRPC status code names (as gRPC spells them, e.g. `CANCELLED` with two Ls). */
export type ErrorCodeName =
  | "CANCELLED"
  | "UNKNOWN"
  | "INVALID_ARGUMENT"
  | "DEADLINE_EXCEEDED"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "PERMISSION_DENIED"
  | "RESOURCE_EXHAUSTED"
  | "FAILED_PRECONDITION"
  | "ABORTED"
  | "OUT_OF_RANGE"
  | "UNIMPLEMENTED"
  | "INTERNAL"
  | "UNAVAILABLE"
  | "DATA_LOSS"
  | "UNAUTHENTICATED";

const CODE_NAMES: Record<Code, ErrorCodeName> = {
  [Code.Canceled]: "CANCELLED",
  [Code.Unknown]: "UNKNOWN",
  [Code.InvalidArgument]: "INVALID_ARGUMENT",
  [Code.DeadlineExceeded]: "DEADLINE_EXCEEDED",
  [Code.NotFound]: "NOT_FOUND",
  [Code.AlreadyExists]: "ALREADY_EXISTS",
  [Code.PermissionDenied]: "PERMISSION_DENIED",
  [Code.ResourceExhausted]: "RESOURCE_EXHAUSTED",
  [Code.FailedPrecondition]: "FAILED_PRECONDITION",
  [Code.Aborted]: "ABORTED",
  [Code.OutOfRange]: "OUT_OF_RANGE",
  [Code.Unimplemented]: "UNIMPLEMENTED",
  [Code.Internal]: "INTERNAL",
  [Code.Unavailable]: "UNAVAILABLE",
  [Code.DataLoss]: "DATA_LOSS",
  [Code.Unauthenticated]: "UNAUTHENTICATED",
};

/**
 * The one error type the client throws (§14). `message` is the service's own text
 * (the published @ampt/data client's text where it has one, e.g. "Item already
 * exists"), so code written against @ampt/data that inspects messages keeps working;
 * `code` and `reason` let new code decide by property instead of by text.
 */
export class LarderError extends Error {
  override readonly name = "LarderError";

  constructor(
    /** The gRPC status code name, e.g. `INVALID_ARGUMENT`. */
    readonly code: ErrorCodeName,
    message: string,
    /** The stable reason from google.rpc.ErrorInfo, e.g. `INVALID_KEY`; absent when the service sent none. */
    readonly reason?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The gRPC name of a Connect code (`Code.InvalidArgument` is `INVALID_ARGUMENT`). */
export function codeName(code: Code): ErrorCodeName {
  return CODE_NAMES[code] ?? "UNKNOWN";
}

/**
 * Converts whatever a call threw into a LarderError, once, at the edge of the client.
 * Connect prefixes its message with the code ("[invalid_argument] Invalid key");
 * users of @ampt/data compare the bare text, so the raw message is kept.
 */
export function toLarderError(error: unknown): unknown {
  if (error instanceof LarderError) return error;
  if (!(error instanceof ConnectError)) return error;
  const reason = error.findDetails(ErrorInfoSchema)[0]?.reason || undefined;
  return new LarderError(codeName(error.code), error.rawMessage, reason, { cause: error });
}

/** A request the client refuses before sending it (the same code and reason the service would use). */
export function invalidArgument(reason: string, message: string): LarderError {
  return new LarderError("INVALID_ARGUMENT", message, reason);
}
