import type http from "node:http";
import type net from "node:net";
import { setMaxListeners } from "node:events";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
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
import { registerAdminService } from "./admin-service.js";
import { callLog } from "./call-log.js";
import { isConsolePath, serveConsole } from "./console-route.js";
import type { Config } from "./config.js";
import { registerDataService } from "./data-service.js";
import { HealthStatus } from "./health.js";
import { createListener } from "./http/listener.js";
import type { NodeHandler } from "./http/node-handler.js";
import { ActiveRequests, closeGracefully } from "./http/shutdown.js";
import type { FeedHealth } from "./feed/feed-health.js";
import { admissionGate, overloadGuard } from "./overload.js";
import type { Logger } from "./log.js";
import { corsHandler } from "./cors.js";
import { loopbackHostsOnly } from "./loopback-host.js";
import { eventStreamRoutes } from "./event-stream.js";
import { protocolOf, serveMetrics, type LarderMetrics } from "./metrics.js";
import { protocolChecks, withRequestReasons } from "./protocol-answers.js";
import { registerReflection } from "./reflection.js";
import { withRequestIds } from "./request-id.js";
import type { Engine } from "./stores/engine.js";
import { timedEngine } from "./stores/timed-store.js";

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
  /** The engine's change feeds' failures (openEngine reports them): health is NOT_SERVING while one fails. */
  readonly feedHealth?: FeedHealth;
}

export function createLarderServer({ config, engine: openedEngine, log, keys, interceptors = [], metrics, feedHealth }: ServerOptions): LarderServer {
  // Handlers reach the stores through the timing wrapper; closing goes to the engine itself.
  const engine = metrics ? timedEngine(openedEngine, (operation, seconds) => metrics.storeOperation(operation, seconds)) : openedEngine;
  const shutdown = new AbortController();
  // Every open Watch and health stream listens for shutdown: thousands of listeners are expected.
  setMaxListeners(0, shutdown.signal);
  const served = [DataService, AdminService, Health];
  // Health answers for every service a client can reach, reflection included.
  const health = new HealthStatus(new Set([...served, ServerReflection, ServerReflectionAlpha].map((service) => service.typeName)), feedHealth);
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
    onRefused: metrics && (({ reason, method, request }) => metrics.refusedCall(reason, method, protocolOf(request.headers["content-type"]))),
  });
  const answered = config.compressLoopback ? gated : loopbackUncompressed(gated);
  // A wrong path, HTTP method or content type is answered in the caller's protocol, saying what to send.
  const checked = protocolChecks(answered, routeIndex);
  // Server-sent events for curl and EventSource: a Watch call through its own handler, written as SSE.
  const eventRoutes = eventStreamRoutes({ watch: routeIndex.get(`/${DataService.typeName}/Watch`)!, keys });
  // The console's static files are not calls: they skip the call admission, not the shutdown tracking.
  const routed: NodeHandler = (request, response) => {
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

  const listener = createListener(config, handler, log);

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
      const port = await listenOn(listener.server, config.port, config.host).catch((error: unknown) => {
        metricsServer?.close();
        throw error;
      });
      health.setServing(true);
      return { host: config.host, port, ...(metricsAddress ? { metrics: { host: config.metricsHost, port: metricsAddress } } : {}) };
    },
    async close() {
      health.setServing(false);
      await closeGracefully(listener, requests, shutdown, config.shutdownGraceMs);
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
