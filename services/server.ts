import { readFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import type tls from "node:tls";
import net from "node:net";
import { setMaxListeners } from "node:events";
import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { loopbackUncompressed } from "./compression.js";
import { file_google_rpc_error_details } from "../gen/google/rpc/error_details_pb.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { ServerReflection } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionAlpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { AdminService } from "../gen/larder/admin/v1/admin_pb.js";
import { DataService } from "../gen/larder/data/v1/data_pb.js";
import type { StoredKey } from "./access/api-keys.js";
import { authInterceptor } from "./access/auth-interceptor.js";
import { LOCAL_PRINCIPAL, principalKey } from "./access/principal.js";
import { registerAdminService } from "./admin-service.js";
import { isConsolePath, serveConsole } from "./console-route.js";
import type { Config } from "./config.js";
import { registerDataService } from "./data-service.js";
import { HealthStatus } from "./health.js";
import { admissionGate, overloadGuard } from "./overload.js";
import type { Logger } from "./log.js";
import { corsHandler } from "./cors.js";
import { loopbackHostsOnly } from "./loopback-host.js";
import { eventStreamRoutes } from "./event-stream.js";
import { protocolOf, serveMetrics, type LarderMetrics } from "./metrics.js";
import { protocolChecks, withRequestReasons } from "./protocol-answers.js";
import { registerReflection } from "./reflection.js";
import { REQUEST_ID_HEADER, withRequestIds } from "./request-id.js";
import type { Engine } from "./stores/engine.js";
import { timedEngine } from "./stores/timed-store.js";

/** What every HTTP/2 connection starts with (RFC 9113 §3.4); HTTP/1.1 never does. */
const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const FIRST_BYTE_TIMEOUT_MS = 10_000;
/** After the first bytes: until the client's HTTP/2 SETTINGS, or its first complete HTTP/1.1 request head. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

/** The longest delay a Node timer keeps (2^31-1 ms). */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface LarderServer {
  /**
   * Starts listening; resolves with the bound address (the real port when 0
   * was asked), and the metrics port's when there are metrics.
   */
  listen(): Promise<{ host: string; port: number; metrics?: { host: string; port: number } }>;
  /**
   * Graceful stop: report NOT_SERVING, stop accepting, end Watch streams, let
   * unary calls finish within the grace period, then close connections and
   * the engine.
   */
  close(): Promise<void>;
}

export interface ServerOptions {
  readonly config: Config;
  readonly engine: Engine;
  readonly log: Logger;
  /** undefined: no keys configured (loopback only, environment `default`). */
  readonly keys?: readonly StoredKey[];
  /** Extra interceptors, outermost first (overload limits). */
  readonly interceptors?: readonly Interceptor[];
  /** Metrics to keep and serve on config.metricsPort; undefined: none, at no cost. */
  readonly metrics?: LarderMetrics;
}

export function createLarderServer({ config, engine: openedEngine, log, keys, interceptors = [], metrics }: ServerOptions): LarderServer {
  // Handlers reach the stores through the timing wrapper; closing goes to the engine itself.
  const engine = metrics ? timedEngine(openedEngine, (operation, seconds) => metrics.storeOperation(operation, seconds)) : openedEngine;
  const shutdown = new AbortController();
  // Every open Watch and health stream listens for shutdown: thousands of listeners are expected.
  setMaxListeners(0, shutdown.signal);
  const served = [DataService, AdminService, Health];
  // Health answers for every service a client can reach, reflection included.
  const health = new HealthStatus(new Set([...served, ServerReflection, ServerReflectionAlpha].map((service) => service.typeName)));
  const requests = new ActiveRequests();
  /** Callable without a key (by default): their streams have their own small bounds (admissionGate). */
  const publicSurfaces = [Health, ServerReflection, ServerReflectionAlpha];

  const routeIndex = new Map<string, UniversalHandler>();
  const routes = (router: ConnectRouter) => {
    registerDataService(router, {
      engine,
      shutdownSignal: shutdown.signal,
      log,
      watchObserver: metrics && ((environment) => metrics.watchOpened(environment)),
    });
    registerAdminService(router, { engine });
    health.register(router, shutdown.signal);
    // google.rpc.ErrorInfo travels in error details; tools decode it by asking reflection for its type.
    registerReflection(router, served, [file_google_rpc_error_details]);
    router.handlers.forEach((route, index) => {
      router.handlers[index] = withRequestReasons(route);
      routeIndex.set(route.requestPath, router.handlers[index]);
    });
  };
  const connectHandler = connectNodeAdapter({
    routes,
    readMaxBytes: config.maxMessageBytes,
    writeMaxBytes: config.maxMessageBytes,
    // A misspelt field (`"exist": false` for `"exists"`) would otherwise be dropped and the call run
    // without it: refused as INVALID_ARGUMENT naming the field, before the handler, so nothing is written.
    jsonOptions: { ignoreUnknownFields: false },
    compressMinBytes: config.compressMinBytes,
    // Connect times a deadline with one setTimeout, which Node fires at once past 2^31-1 ms (24.8
    // days): a longer deadline would cut the call straight away, so it is refused as INVALID_ARGUMENT.
    maxTimeoutMs: MAX_TIMER_MS,
    interceptors: [
      ...(metrics ? [metrics.callInterceptor()] : []),
      callLog(log, keys !== undefined, shutdown.signal),
      health.storeInterceptor(),
      overloadGuard({
        maxUnary: config.maxInFlight,
        maxStreams: config.maxStreams,
        exempt: new Set(publicSurfaces.map((service) => service.typeName)),
        onRefused: metrics && ((reason) => metrics.refusedStream(reason)),
      }),
      ...interceptors,
      authInterceptor({ keys, publicServices: new Set(config.publicServices) }),
    ],
  });
  // Unary calls are admitted per HTTP request, before their bodies are buffered (see admissionGate).
  const gated = admissionGate(connectHandler, {
    maxInFlight: config.maxInFlight,
    maxPerConnection: config.maxInFlightPerConnection,
    bodyMs: config.bodyTimeoutMs,
    services: [...served, ServerReflection, ServerReflectionAlpha],
    exempt: new Set([Health.typeName]),
    publicStreams: { services: publicSurfaces, max: config.maxPublicStreams, maxPerConnection: config.maxPublicStreamsPerConnection },
    onRefused:
      metrics &&
      (({ reason, method, request }) => metrics.refusedCall(reason, method, protocolOf(request.headers["content-type"]))),
  });
  const answered = config.compressLoopback ? gated : loopbackUncompressed(gated);
  // A wrong path, HTTP method or content type is answered in the caller's protocol, saying what to send.
  const checked = protocolChecks(answered, routeIndex);
  // Server-sent events for curl and EventSource: a Watch call through its own handler, written as SSE.
  const eventRoutes = eventStreamRoutes({ watch: routeIndex.get(`/${DataService.typeName}/Watch`)!, keys });
  // The console's static files are not calls: they skip the call admission, not the shutdown tracking.
  const routed: Handler = (request, response) => {
    if (eventRoutes(request, response)) return;
    if (!isConsolePath(request.url)) return checked(request, response);
    serveConsole(request, response).catch((error: unknown) => {
      log.error({ err: error }, "console file could not be served");
      if (!response.headersSent) (response as http.ServerResponse).writeHead(500).end();
      else response.destroy();
    });
  };
  metrics?.sample({ callsInFlight: () => gated.load().inFlight, figures: openedEngine.figures?.bind(openedEngine) });
  // Outermost: every answer carries its request id, refusals and shutdown's 503 included.
  const cors = corsHandler(routed, config.corsOrigins);
  const handler = withRequestIds(requests.track(keys ? cors : loopbackHostsOnly(cors), shutdown.signal));
  const metricsServer = metrics && serveMetrics(metrics, log);

  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.Http2Session>();
  const trackSession = (session: http2.Http2Session) => {
    sessions.add(session);
    // A client that opens a session but never sends its SETTINGS holds a socket and nghttp2 state for nothing.
    const stalled = setTimeout(() => session.destroy(), HANDSHAKE_TIMEOUT_MS);
    const settled = () => clearTimeout(stalled);
    session.once("remoteSettings", settled);
    session.once("close", () => {
      settled();
      sessions.delete(session);
    });
  };
  // h2c and HTTP/1.1 share the port: each connection goes where its first bytes say it belongs.
  let listener: net.Server;
  // Node enforces headersTimeout only on http.Servers that listen themselves: neither HTTP/1.1 path here is one.
  const heads = new HeadDeadlines();
  if (config.tlsCert && config.tlsKey) {
    const secure = http2.createSecureServer(
      { ...http2Options(config), cert: readFileSync(config.tlsCert), key: readFileSync(config.tlsKey), allowHTTP1: true },
      handler,
    );
    secure.on("session", trackSession);
    // HTTPS/1.1 (ALPN http/1.1, or none) gets the same head deadlines as the plain port.
    secure.on("secureConnection", (socket: tls.TLSSocket) => {
      if (socket.alpnProtocol !== "h2") heads.connected(socket);
    });
    secure.on("request", (request: http.IncomingMessage | http2.Http2ServerRequest, response: http.ServerResponse | http2.Http2ServerResponse) => {
      if (request.httpVersionMajor === 1) heads.arrived(request as http.IncomingMessage, response as http.ServerResponse);
    });
    listener = secure;
  } else {
    const h2 = http2.createServer(http2Options(config), handler);
    h2.on("session", trackSession);
    const h1 = http.createServer({ keepAliveTimeout: 60_000 }, handler);
    h1.on("request", (request: http.IncomingMessage, response: http.ServerResponse) => heads.arrived(request, response));
    listener = net.createServer((socket) => {
      // A connection that never says which protocol it speaks holds a socket for nothing.
      socket.setTimeout(FIRST_BYTE_TIMEOUT_MS, () => socket.destroy());
      socket.once("data", (first: Buffer) => {
        socket.setTimeout(0);
        socket.pause();
        const compared = Math.min(first.length, HTTP2_PREFACE.length);
        if (first.subarray(0, compared).equals(HTTP2_PREFACE.subarray(0, compared))) {
          // http2 reads what is buffered on the socket when its session starts.
          socket.unshift(first);
          h2.emit("connection", socket);
        } else {
          heads.connected(socket);
          // The HTTP/1 parser takes bytes from 'data' events, so the first chunk is replayed as one.
          h1.emit("connection", socket);
          socket.emit("data", first);
          socket.resume();
        }
      });
    });
  }
  listener.on("connection", (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    // A socket that errors (a client resetting mid-request) must not take the process down.
    socket.on("error", (error) => log.debug({ err: error }, "connection error"));
  });

  return {
    async listen() {
      // Metrics first: an operator sees the server come up in them, and a port clash stops the start.
      const metricsAddress =
        metricsServer && config.metricsPort !== undefined
          ? await listenOn(metricsServer, config.metricsPort, config.metricsHost).catch((error: NodeJS.ErrnoException) => {
              throw new Error(
                error.code === "EADDRINUSE"
                  ? `${config.metricsHost}:${config.metricsPort} is already in use; choose another LARDER_METRICS_PORT (0: any free port)`
                  : `the metrics port could not open (LARDER_METRICS_HOST, LARDER_METRICS_PORT): ${error.message}`,
              );
            })
          : undefined;
      const port = await listenOn(listener, config.port, config.host).catch((error: unknown) => {
        metricsServer?.close();
        throw error;
      });
      health.setServing(true);
      return { host: config.host, port, ...(metricsAddress ? { metrics: { host: config.metricsHost, port: metricsAddress } } : {}) };
    },
    async close() {
      health.setServing(false);
      const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
      // GOAWAY first: clients stop starting calls here, and each session closes once its streams are done.
      const sessionsClosed = [...sessions].map((session) => new Promise<void>((resolve) => session.close(resolve)));
      shutdown.abort();
      const deadline = Date.now() + config.shutdownGraceMs;
      // Counted per HTTP request, not per handler call: a request whose body is still arriving, or
      // whose answer is still being written, is in flight too (HTTP/1.1 has no GOAWAY to wait on).
      await requests.drained(config.shutdownGraceMs);
      await Promise.race([Promise.all(sessionsClosed), delay(Math.max(0, deadline - Date.now()))]);
      for (const socket of sockets) socket.destroy();
      await closed;
      await openedEngine.close();
      if (metricsServer) {
        const metricsClosed = new Promise<void>((resolve) => metricsServer.close(() => resolve()));
        metricsServer.closeAllConnections();
        await metricsClosed;
      }
    },
  };
}

function listenOn(server: net.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

/**
 * Every HTTP/1.1 request head on a connection, not only the first, must
 * arrive within HANDSHAKE_TIMEOUT_MS of its first byte: otherwise a client
 * that is answered once and then trickles its next head a byte at a time
 * holds the connection for ever. (Request bodies have their own timeout,
 * LARDER_BODY_TIMEOUT_MS, in admissionGate.)
 */
class HeadDeadlines {
  private readonly timers = new WeakMap<net.Socket, NodeJS.Timeout>();
  /** Requests whose head has arrived, per connection: a head timer starts only while none is newer than the answer just sent. */
  private readonly heads = new WeakMap<net.Socket, number>();

  /** A new connection: its first head is timed from its first byte (now); its close clears what is pending. */
  connected(socket: net.Socket): void {
    socket.once("close", () => this.settle(socket));
    this.started(socket);
  }

  /** A whole head has arrived; the next one is timed from its first byte, once this answer is written. */
  arrived(request: http.IncomingMessage, response: http.ServerResponse): void {
    const socket = request.socket;
    this.settle(socket);
    const seen = (this.heads.get(socket) ?? 0) + 1;
    this.heads.set(socket, seen);
    response.once("finish", () => {
      if (socket.destroyed) return;
      // The parser reads the same chunk first: when it already made a request of it, that request's
      // head has arrived and nothing is to be timed (timing it anyway would cut a busy keep-alive
      // connection HANDSHAKE_TIMEOUT_MS later).
      socket.once("data", () => {
        if (this.heads.get(socket) === seen && !socket.destroyed) this.started(socket);
      });
    });
  }

  private started(socket: net.Socket): void {
    this.settle(socket);
    this.timers.set(
      socket,
      setTimeout(() => socket.destroy(), HANDSHAKE_TIMEOUT_MS),
    );
  }

  private settle(socket: net.Socket): void {
    clearTimeout(this.timers.get(socket));
    this.timers.delete(socket);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/**
 * nghttp2 refuses streams (ENHANCE_YOUR_CALM) once a session buffers more
 * than maxSessionMemory (10 MB by default): allow a few maximal messages in
 * flight so that an oversize message gets our RESOURCE_EXHAUSTED instead.
 * Node lets a connection open streams without limit (2^32-1): each costs
 * memory before any handler sees it, so the connection's client is told its
 * bound in SETTINGS, and nghttp2 refuses streams past it (REFUSED_STREAM).
 */
function http2Options(config: Config): http2.ServerOptions {
  return {
    maxSessionMemory: Math.ceil(config.maxMessageBytes / (1024 * 1024)) * 4 + 16,
    settings: { maxConcurrentStreams: config.http2MaxConcurrentStreams },
  };
}

type Handler = (request: http.IncomingMessage | http2.Http2ServerRequest, response: http.ServerResponse | http2.Http2ServerResponse) => void;

/**
 * Counts HTTP requests from their headers until their response is closed, so
 * shutdown can wait for them (bounded by the grace period). Once shutdown has
 * begun, a new HTTP/1.1 request is refused with 503 and `Connection: close`:
 * the HTTP/1.1 counterpart of HTTP/2's GOAWAY, which every Connect and
 * gRPC-Web client reads as UNAVAILABLE (safe to retry elsewhere).
 */
class ActiveRequests {
  private count = 0;
  private idle?: () => void;

  track(handler: Handler, shutdownSignal: AbortSignal): Handler {
    return (request, response) => {
      const http1 = request.httpVersionMajor === 1;
      if (http1 && shutdownSignal.aborted) {
        const body = JSON.stringify({ code: "unavailable", message: "The server is shutting down; retry" });
        (response as http.ServerResponse)
          .writeHead(503, { "content-type": "application/json", connection: "close", "content-length": Buffer.byteLength(body) })
          .end(body);
        return;
      }
      this.count++;
      // An HTTP/1.1 answer finished during shutdown closes its connection instead of keeping it alive.
      const onShutdown = () => closeAfterResponse(response as http.ServerResponse);
      if (http1) {
        shutdownSignal.addEventListener("abort", onShutdown, { once: true });
        drainIfAnsweredEarly(request as http.IncomingMessage, response as http.ServerResponse);
      }
      response.once("close", () => {
        shutdownSignal.removeEventListener("abort", onShutdown);
        this.done();
      });
      handler(request, response);
    };
  }

  private done(): void {
    this.count--;
    if (this.count === 0) this.idle?.();
  }

  async drained(graceMs: number): Promise<void> {
    if (this.count === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, graceMs);
      this.idle = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

/**
 * An HTTP/1.1 answer given before its request body has all arrived (a body
 * past LARDER_MAX_MESSAGE_BYTES, refused as soon as its length says so; a
 * stream refused before its message is read) must still reach the client.
 * Closing the socket while the body arrives makes the kernel reset the
 * connection, and a reset can discard the answer before the client reads
 * it (an empty reply, or EPIPE on the client's next write). So the rest of
 * the body is read and dropped as it arrives, never kept, and the
 * connection carries on once it has ended; a body past MAX_DRAINED_BYTES or
 * slower than DRAIN_MS is cut (the answer first, then the socket). The
 * handler may also stop reading part-way: the body's iterator then leaves
 * the request alone instead of destroying it, and with it the socket.
 */
function drainIfAnsweredEarly(request: http.IncomingMessage, response: http.ServerResponse): void {
  request[Symbol.asyncIterator] = () => request.iterator({ destroyOnReturn: false });
  const writeHead = response.writeHead;
  response.writeHead = function (this: http.ServerResponse, ...args: Parameters<typeof writeHead>) {
    if (!request.complete && !request.destroyed) drain(request, this);
    return writeHead.apply(this, args);
  } as typeof writeHead;
}

/** The rest of a body answered early is read and dropped up to this size and this long; past either the connection is cut. */
const MAX_DRAINED_BYTES = 64 * 1024 * 1024;
const DRAIN_MS = 10_000;

function drain(request: http.IncomingMessage, response: http.ServerResponse): void {
  let drained = 0;
  const cut = () => {
    clearTimeout(slow);
    request.off("data", count);
    // The answer first: a socket destroyed with it still queued would lose it.
    if (response.writableFinished) request.socket.destroy();
    else response.once("finish", () => request.socket.destroy());
  };
  const count = (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > MAX_DRAINED_BYTES) cut();
  };
  const slow = setTimeout(cut, DRAIN_MS);
  request.once("end", () => clearTimeout(slow));
  request.once("close", () => clearTimeout(slow));
  request.on("error", () => undefined);
  request.on("data", count);
  request.resume();
}

function closeAfterResponse(response: http.ServerResponse): void {
  if (!response.headersSent) response.setHeader("connection", "close");
  else response.once("finish", () => response.socket?.end());
}

/** One log line per call: method, status, duration, environment and the key's id; never a key or a payload. */
function callLog(log: Logger, keysConfigured: boolean, shutdownSignal: AbortSignal): Interceptor {
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
const PEER_GONE = new Set(["ERR_STREAM_PREMATURE_CLOSE", "ECONNRESET", "ERR_STREAM_DESTROYED", "ERR_HTTP2_INVALID_STREAM", "ERR_HTTP2_STREAM_ERROR", "EPIPE"]);

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
