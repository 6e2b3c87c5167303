import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { LOCAL_PRINCIPAL, principalKey } from "./access/principal.js";
import type { Logger } from "./log.js";
import { REQUEST_ID_HEADER } from "./request-id.js";

/** One log line per call: method, status, duration, environment and the key's id; never a key or a payload. */
export function callLog(log: Logger, keysConfigured: boolean, shutdownSignal: AbortSignal): Interceptor {
  return (next) => async (request) => {
    const started = performance.now();
    const fields = () => {
      const principal = request.contextValues.get(principalKey);
      // With keys, the local principal means "no key accepted" (refused, or a public service): no environment to name.
      const anonymous = keysConfigured && principal === LOCAL_PRINCIPAL;
      return {
        method: `${request.service.typeName}/${request.method.name}`,
        requestId: request.header.get(REQUEST_ID_HEADER),
        ...(anonymous ? {} : { environment: principal.environment, key: principal.keyId }),
        ms: Math.round((performance.now() - started) * 100) / 100,
      };
    };
    const failed = (error: unknown) => {
      if (clientWentAway(request.signal, shutdownSignal, error)) {
        log.debug({ ...fields(), code: "Canceled", message: "the client went away" }, "call");
        return;
      }
      const failure = ConnectError.from(error);
      const entry = { ...fields(), code: Code[failure.code] };
      if (failure.code === Code.Internal || failure.code === Code.Unknown) {
        log.error({ ...entry, err: failure.cause ?? failure }, "call failed");
      } else {
        log.debug({ ...entry, message: failure.rawMessage }, "call");
      }
    };
    let response;
    try {
      response = await next(request);
    } catch (error) {
      failed(error);
      throw error;
    }
    if (!response.stream) {
      log.debug({ ...fields(), code: "ok" }, "call");
      return response;
    }
    // A stream's line is written when it ends, so its duration is the stream's and a failure mid-stream is seen.
    return {
      ...response,
      message: loggedStream(
        response.message,
        // A stream whose client left ends quietly (the handler stops on the abort), but was not served to its end.
        (code) => log.debug({ ...fields(), code: code === "ok" && clientWentAway(request.signal, shutdownSignal) ? "Canceled" : code }, "call"),
        failed,
      ),
    };
  };
}

/** Node's words for a peer that closed or reset its stream or connection while a call was in progress. */
const PEER_GONE = new Set([
  "ERR_STREAM_PREMATURE_CLOSE",
  "ECONNRESET",
  "ERR_STREAM_DESTROYED",
  "ERR_HTTP2_INVALID_STREAM",
  "ERR_HTTP2_STREAM_ERROR",
  "EPIPE",
]);

/**
 * The client stopped (grpcurl interrupted, a tab closed, a cancelled call): a
 * normal event, not a server error. The call's signal is aborted with no
 * reason of the server's own (a deadline passing or a shutdown give one), or
 * the failure is Node's word for a peer that went away.
 */
function clientWentAway(signal: AbortSignal, shutdownSignal: AbortSignal, error?: unknown): boolean {
  for (let cause = error, depth = 0; cause instanceof Error && depth < 8; cause = cause.cause, depth++) {
    if (PEER_GONE.has(String((cause as { code?: unknown }).code))) return true;
  }
  if (!signal.aborted || shutdownSignal.aborted) return false;
  const reason: unknown = signal.reason;
  if (reason instanceof ConnectError) return reason.code === Code.Canceled || reason.code === Code.Aborted;
  return !(reason instanceof Error) || reason.name === "AbortError";
}

async function* loggedStream<T>(
  messages: AsyncIterable<T>,
  ended: (code: "ok" | "Canceled") => void,
  failed: (error: unknown) => void,
): AsyncIterable<T> {
  let settled = false;
  try {
    yield* messages;
    settled = true;
    ended("ok");
  } catch (error) {
    settled = true;
    failed(error);
    throw error;
  } finally {
    // Neither ended nor failed: the stream was abandoned (the client went away while a message was in flight).
    if (!settled) ended("Canceled");
  }
}
