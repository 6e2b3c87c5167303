import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { DomainError, type ErrorCodeName, type Reason } from "../core/errors.js";

/** The domain of every google.rpc.ErrorInfo Larder sends (§14). */
export const ERROR_DOMAIN = "larder.dev";

const CODES: Record<ErrorCodeName, Code> = {
  INVALID_ARGUMENT: Code.InvalidArgument,
  ALREADY_EXISTS: Code.AlreadyExists,
  NOT_FOUND: Code.NotFound,
  FAILED_PRECONDITION: Code.FailedPrecondition,
  RESOURCE_EXHAUSTED: Code.ResourceExhausted,
  OUT_OF_RANGE: Code.OutOfRange,
  PERMISSION_DENIED: Code.PermissionDenied,
  UNAVAILABLE: Code.Unavailable,
};

/**
 * Maps any failure to the one error type of the wire, once, at the edge:
 * domain errors keep their code, message and reason (as google.rpc.ErrorInfo);
 * anything unexpected becomes INTERNAL without leaking internals.
 */
export function toConnectError(error: unknown): ConnectError {
  if (error instanceof ConnectError) return error;
  if (error instanceof DomainError) return withReason(error.message, CODES[error.code], error.reason);
  const name = (error as { name?: unknown })?.name;
  if (name === "TimeoutError") return new ConnectError("The deadline passed before the call finished", Code.DeadlineExceeded);
  if (name === "AbortError") return new ConnectError("The call was cancelled", Code.Canceled);
  return new ConnectError("Internal error", Code.Internal, undefined, undefined, error);
}

export function withReason(message: string, code: Code, reason: Reason): ConnectError {
  return new ConnectError(message, code, undefined, [{ desc: ErrorInfoSchema, value: { reason, domain: ERROR_DOMAIN } }]);
}

/** Runs a unary handler body so that whatever it throws leaves as a ConnectError. */
export async function guarded<T>(body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (error) {
    throw toConnectError(error);
  }
}
