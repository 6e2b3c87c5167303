import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

export interface OverloadLimits {
  /** Unary calls served at once; past it a call fails fast instead of queueing. */
  readonly maxUnary: number;
  /** Open streams (Watch, health Watch, reflection) at once. */
  readonly maxStreams: number;
  /** Services never refused, so health checks answer through a flood. */
  readonly exempt: ReadonlySet<string>;
}

/**
 * Bounds the work in progress. Past a bound a call gets RESOURCE_EXHAUSTED
 * at once, with advice to retry with backoff, so a flood costs the server
 * one cheap refusal per excess call instead of an unbounded queue (and the
 * memory and latency that come with it).
 */
export function overloadGuard(limits: OverloadLimits): Interceptor & { readonly load: () => { unary: number; streams: number } } {
  let unary = 0;
  let streams = 0;
  const interceptor: Interceptor = (next) => async (request) => {
    if (limits.exempt.has(request.service.typeName)) return next(request);
    const isStream = request.method.methodKind !== "unary";
    if (isStream ? streams >= limits.maxStreams : unary >= limits.maxUnary) {
      throw new ConnectError(
        `The server is at its limit of ${isStream ? limits.maxStreams : limits.maxUnary} ${isStream ? "open streams" : "calls in flight"}; retry with exponential backoff`,
        Code.ResourceExhausted,
      );
    }
    if (!isStream) {
      unary++;
      try {
        return await next(request);
      } finally {
        unary--;
      }
    }
    streams++;
    let response;
    try {
      response = await next(request);
    } catch (error) {
      streams--;
      throw error;
    }
    if (!response.stream) {
      streams--;
      return response;
    }
    return { ...response, message: releasing(response.message, () => streams--) };
  };
  return Object.assign(interceptor, { load: () => ({ unary, streams }) });
}

async function* releasing<T>(messages: AsyncIterable<T>, release: () => void): AsyncIterable<T> {
  try {
    yield* messages;
  } finally {
    release();
  }
}
