/**
 * The one error type of the domain. Each carries a gRPC code name and a stable
 * reason from the spec's error table (§14); the handler edge maps it to a
 * ConnectError with a google.rpc.ErrorInfo detail, once.
 */
export type ErrorCodeName =
  | "INVALID_ARGUMENT"
  | "ALREADY_EXISTS"
  | "NOT_FOUND"
  | "FAILED_PRECONDITION"
  | "RESOURCE_EXHAUSTED"
  | "OUT_OF_RANGE"
  | "PERMISSION_DENIED"
  | "UNAVAILABLE";

export type Reason =
  | "INVALID_KEY"
  | "INVALID_EXPRESSION"
  | "INVALID_LABEL"
  | "INVALID_OPTION"
  | "INVALID_VALUE"
  | "INVALID_FILTER"
  | "BATCH_SIZE"
  | "PIPELINE_ANSWER_FULL"
  | "ITEM_TOO_LARGE"
  | "ITEM_EXISTS"
  | "ITEM_NOT_FOUND"
  | "CREATED_MISMATCH"
  | "VERSION_MISMATCH"
  | "IDEMPOTENCY_KEY_REUSED"
  | "NOT_A_SIMPLE_VALUE"
  | "NOT_A_NUMBER"
  | "NUMBER_OVERFLOW"
  | "TOKEN_EXPIRED"
  | "TOO_MANY_SUBSCRIPTIONS"
  | "HISTORY_EXPIRED"
  | "SUBSCRIBER_TOO_SLOW"
  | "STORE_UNAVAILABLE"
  | "API_KEY_MISSING"
  | "API_KEY_UNKNOWN"
  | "ROLE_NOT_ALLOWED"
  | "ENVIRONMENT_NOT_ALLOWED"
  | "ENVIRONMENT_NOT_FOUND"
  | "ENVIRONMENT_EXISTS"
  | "INVALID_ENVIRONMENT_NAME"
  | "ENVIRONMENT_NAME_TOO_LONG"
  | "TOO_MANY_CALLS"
  | "TOO_MANY_CALLS_ON_CONNECTION"
  | "TOO_MANY_STREAMS"
  | "TOO_MANY_PUBLIC_STREAMS"
  | "TOO_MANY_PUBLIC_STREAMS_ON_CONNECTION"
  // Requests that are not a call: answered before any handler, in the caller's protocol.
  | "API_KEY_MALFORMED"
  | "INVALID_REQUEST"
  | "UNKNOWN_METHOD"
  | "HTTP_METHOD_NOT_ALLOWED"
  | "UNSUPPORTED_CONTENT_TYPE"
  | "HTTP2_REQUIRED"
  | "HOST_NOT_ALLOWED";

export class DomainError extends Error {
  constructor(
    readonly code: ErrorCodeName,
    readonly reason: Reason,
    message: string,
  ) {
    super(message);
    this.name = "DomainError";
  }
}

export function invalidArgument(reason: Reason, message: string): DomainError {
  return new DomainError("INVALID_ARGUMENT", reason, message);
}

export function failedPrecondition(reason: Reason, message: string): DomainError {
  return new DomainError("FAILED_PRECONDITION", reason, message);
}

/** How much of a caller's text a message repeats. */
export const QUOTED_CHARACTERS = 64;

/**
 * At most a short prefix of caller input, for messages: an error message
 * travels in a gRPC trailer, and one that quoted a megabyte of input would
 * break the HTTP/2 frame (the caller would see INTERNAL instead of its error).
 * Cut between code points, never inside a surrogate pair.
 */
export function quote(text: string): string {
  const characters = Array.from(text.slice(0, QUOTED_CHARACTERS * 2));
  return characters.length > QUOTED_CHARACTERS || text.length > QUOTED_CHARACTERS * 2 ? `${characters.slice(0, QUOTED_CHARACTERS).join("")}…` : text;
}
