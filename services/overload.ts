import http2 from "node:http2";
import type { DescService } from "@bufbuild/protobuf";
import { Code, type ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Reason } from "../core/errors.js";
import { withReason } from "./errors.js";
import { writeError } from "./protocol-answers.js";
import type { NodeHandler, NodeRequest, NodeResponse } from "./http/node-handler.js";

export interface OverloadLimits {
  /** Unary calls served at once; past it a call fails fast instead of queueing. */
  readonly maxUnary: number;
  /** Open streams (Watch) at once. */
  readonly maxStreams: number;
  /**
   * Services not counted here: health, so checks answer through a flood, and
   * reflection; their streams have their own bounds (AdmissionLimits.publicStreams),
   * so they never take LARDER_MAX_STREAMS from keyed callers.
   */
  readonly exempt: ReadonlySet<string>;
  /** Told of each refusal (metrics). */
  readonly onRefused?: (reason: "in_flight" | "streams") => void;
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
      limits.onRefused?.(isStream ? "streams" : "in_flight");
      throw overloaded(
        `The server is at its limit of ${isStream ? limits.maxStreams : limits.maxUnary} ${isStream ? "open streams" : "calls in flight"}; retry with exponential backoff`,
        isStream ? "TOO_MANY_STREAMS" : "TOO_MANY_CALLS",
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

export interface AdmissionLimits {
  /** Unary requests in progress at once, over all connections (LARDER_MAX_IN_FLIGHT). */
  readonly maxInFlight: number;
  /** Unary requests in progress at once on one connection (LARDER_MAX_IN_FLIGHT_PER_CONNECTION). */
  readonly maxPerConnection: number;
  /** The services served: their streaming methods are left to `overloadGuard`'s stream bound. */
  readonly services: readonly DescService[];
  /** Services whose unary calls are never refused or counted (health), by type name. */
  readonly exempt: ReadonlySet<string>;
  /**
   * Streams of the services callable without a key (health Watch, reflection), counted
   * here on their own, overall and per connection: a flood of them costs one cheap
   * refusal each, and never a slot of LARDER_MAX_STREAMS.
   */
  readonly publicStreams: {
    readonly services: readonly DescService[];
    /** LARDER_MAX_PUBLIC_STREAMS */
    readonly max: number;
    /** LARDER_MAX_PUBLIC_STREAMS_PER_CONNECTION */
    readonly maxPerConnection: number;
  };
  /** How long a refused request's body may take to arrive before its stream or socket is closed (default 10 s). */
  readonly discardMs?: number;
  /**
   * How long an admitted request's body may take to arrive (LARDER_BODY_TIMEOUT_MS). Past it the
   * stream (HTTP/2) or socket (HTTP/1.1) is closed and the slot freed: a client that trickles a
   * body, or stops half-way, would otherwise hold a slot for as long as its connection lives.
   */
  readonly bodyMs: number;
  /** Told of each refusal, with the method refused when it is one of `services` (metrics). */
  readonly onRefused?: (refusal: AdmissionRefusal) => void;
}

export interface AdmissionRefusal {
  /** `in_flight`: the server's bound; `connection_in_flight`: the connection's. */
  readonly reason: "in_flight" | "connection_in_flight";
  readonly method?: { readonly service: string; readonly method: string };
  readonly request: NodeRequest;
}

export interface AdmissionGate extends NodeHandler {
  /** Requests being served, public streams open, requests refused so far, and the bytes of refused bodies read and dropped. */
  readonly load: () => { readonly inFlight: number; readonly publicStreams: number; readonly refused: number; readonly discardedBytes: number };
}

/**
 * Bounds unary requests per HTTP request, from the moment their headers
 * arrive until their response is closed: a request whose body is still
 * arriving, or whose answer is still being written, holds its slot, so the
 * bound covers the memory of buffered bodies too (the interceptor alone only
 * sees the handler, which the embedded engine finishes without yielding).
 *
 * Past a bound the request never reaches the handler: its body is read and
 * dropped as it arrives (never buffered) and it is answered, as soon as the
 * body ends, with RESOURCE_EXHAUSTED in its own protocol (gRPC trailers-only,
 * gRPC-Web headers, Connect HTTP 429 with Retry-After) and advice to retry
 * with backoff. One connection cannot take the whole budget: each has its
 * own, smaller bound.
 */
export function admissionGate(handler: NodeHandler, limits: AdmissionLimits): AdmissionGate {
  const streaming = new Set<string>();
  const unary = new Map<string, { service: string; method: string }>();
  /** Client and bidi streams: their bodies last as long as the call, so no body timeout applies. */
  const uploading = new Set<string>();
  for (const service of limits.services) {
    for (const method of service.methods) {
      const path = `/${service.typeName}/${method.name}`;
      if (method.methodKind !== "unary") streaming.add(path);
      else unary.set(path, { service: service.typeName, method: method.name });
      if (method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming") uploading.add(path);
    }
  }
  const publicPaths = new Set<string>();
  for (const service of limits.publicStreams.services) {
    for (const method of service.methods) if (method.methodKind !== "unary") publicPaths.add(`/${service.typeName}/${method.name}`);
  }
  const exemptPrefixes = [...limits.exempt].map((typeName) => `/${typeName}/`);
  const perConnection = new WeakMap<object, number>();
  const publicPerConnection = new WeakMap<object, number>();
  let inFlight = 0;
  let publicStreams = 0;
  let refused = 0;
  let discardedBytes = 0;
  const dropped = (bytes: number) => (discardedBytes += bytes);
  const timeBody = (request: NodeRequest, response: NodeResponse, path: string) => {
    // Connect GET calls carry their message in the URL; their (empty) body is never read, so no 'end' comes.
    if (uploading.has(path) || !hasBody(request)) return;
    const late = setTimeout(() => cut(request), limits.bodyMs);
    request.once("end", () => clearTimeout(late));
    response.once("close", () => clearTimeout(late));
  };

  const admitPublicStream = (request: NodeRequest, response: NodeResponse, path: string) => {
    const connection = connectionOf(request);
    const onConnection = publicPerConnection.get(connection) ?? 0;
    const { max, maxPerConnection } = limits.publicStreams;
    if (publicStreams >= max || onConnection >= maxPerConnection) {
      refused++;
      const error =
        publicStreams >= max
          ? overloaded(
              `The server is at its limit of ${max} open health and reflection streams; retry with exponential backoff`,
              "TOO_MANY_PUBLIC_STREAMS",
            )
          : overloaded(
              `This connection is at its limit of ${maxPerConnection} open health and reflection streams; close one, or retry with exponential backoff`,
              "TOO_MANY_PUBLIC_STREAMS_ON_CONNECTION",
            );
      // A bidi stream's body may never end (reflection): its refusal cannot wait for it.
      refuse(request, response, error, limits.discardMs ?? MAX_DISCARD_MS, dropped, uploading.has(path));
      return;
    }
    publicStreams++;
    publicPerConnection.set(connection, onConnection + 1);
    response.once("close", () => {
      publicStreams--;
      const left = (publicPerConnection.get(connection) ?? 1) - 1;
      if (left > 0) publicPerConnection.set(connection, left);
      else publicPerConnection.delete(connection);
    });
    timeBody(request, response, path);
    handler(request, response);
  };

  const gate: NodeHandler = (request, response) => {
    const path = (request.url ?? "").split("?")[0];
    if (publicPaths.has(path)) {
      admitPublicStream(request, response, path);
      return;
    }
    if (streaming.has(path) || exemptPrefixes.some((prefix) => path.startsWith(prefix))) {
      // Not counted here (keyed streams: overloadGuard; health checks answer through floods), but timed like any request.
      timeBody(request, response, path);
      handler(request, response);
      return;
    }
    const connection = connectionOf(request);
    const onConnection = perConnection.get(connection) ?? 0;
    if (inFlight >= limits.maxInFlight || onConnection >= limits.maxPerConnection) {
      refused++;
      const overall = inFlight >= limits.maxInFlight;
      limits.onRefused?.({ reason: overall ? "in_flight" : "connection_in_flight", method: unary.get(path), request });
      const error = overall
        ? overloaded(`The server is at its limit of ${limits.maxInFlight} calls in flight; retry with exponential backoff`, "TOO_MANY_CALLS")
        : overloaded(
            `This connection is at its limit of ${limits.maxPerConnection} calls in flight; retry with exponential backoff or spread calls over more connections`,
            "TOO_MANY_CALLS_ON_CONNECTION",
          );
      refuse(request, response, error, limits.discardMs ?? MAX_DISCARD_MS, dropped);
      return;
    }
    inFlight++;
    perConnection.set(connection, onConnection + 1);
    timeBody(request, response, path);
    response.once("close", () => {
      inFlight--;
      const left = (perConnection.get(connection) ?? 1) - 1;
      if (left > 0) perConnection.set(connection, left);
      else perConnection.delete(connection);
    });
    handler(request, response);
  };
  return Object.assign(gate, { load: () => ({ inFlight, publicStreams, refused, discardedBytes }) });
}

/** The HTTP/2 session a request came on, or its HTTP/1.1 socket. */
function connectionOf(request: NodeRequest): object {
  return "stream" in request && request.stream ? (request.stream.session ?? request.socket) : request.socket;
}

/** A refused request's body is read and dropped up to this size and this long; past either the stream or socket is closed. */
const MAX_DISCARDED_BYTES = 64 * 1024 * 1024;
const MAX_DISCARD_MS = 10_000;

/**
 * RESOURCE_EXHAUSTED in the request's own protocol. The body is read and
 * dropped chunk by chunk (never kept) and the answer sent once it has ended:
 * an answer sent while the client is still uploading leaves some clients
 * (connect-node) with a stream they never finish, which nghttp2 ends up
 * treating as a flood (ENHANCE_YOUR_CALM) and fails the whole connection.
 */
function refuse(
  request: NodeRequest,
  response: NodeResponse,
  error: ConnectError,
  discardMs: number,
  dropped: (bytes: number) => void,
  answerFirst = false,
): void {
  if (answerFirst) answer(request, response, error);
  let discarded = 0;
  // A body that trickles in forever would hold its stream (or socket) for nothing.
  const slow = setTimeout(() => cut(request), discardMs);
  response.once("close", () => clearTimeout(slow));
  request.once("close", () => clearTimeout(slow));
  request.on("error", () => undefined);
  request.on("data", (chunk: Buffer) => {
    discarded += chunk.length;
    dropped(chunk.length);
    if (discarded > MAX_DISCARDED_BYTES) cut(request);
  });
  request.once("end", () => {
    clearTimeout(slow);
    if (!answerFirst) answer(request, response, error);
  });
}

function hasBody(request: NodeRequest): boolean {
  if (request.method === "GET" || request.method === "HEAD") return false;
  return !("stream" in request && request.stream?.endAfterHeaders);
}

/** Ends a request whose body will not be read: HTTP/2 resets its stream (the session serves on); HTTP/1.1 has only the socket to close. */
function cut(request: NodeRequest): void {
  if ("stream" in request && request.stream) request.stream.close(http2.constants.NGHTTP2_CANCEL);
  else request.socket.destroy();
}

function overloaded(message: string, reason: Reason): ConnectError {
  return withReason(message, Code.ResourceExhausted, reason);
}

/** RESOURCE_EXHAUSTED in the request's protocol, with advice on when to come back. */
function answer(request: NodeRequest, response: NodeResponse, error: ConnectError): void {
  writeError(request, response, error, undefined, { "retry-after": "1" });
}
