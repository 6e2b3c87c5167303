import { readFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import type tls from "node:tls";
import type net from "node:net";
import type { Config } from "../config.js";
import type { Logger } from "../log.js";
import { HeadDeadlines, settingsDeadline } from "./connection-timeouts.js";
import type { NodeHandler, NodeRequest, NodeResponse } from "./node-handler.js";
import { sniffingServer } from "./sniff.js";

/** The server's one port, and what is open on it (shutdown closes both). */
export interface Listener {
  readonly server: net.Server;
  readonly sockets: ReadonlySet<net.Socket>;
  readonly sessions: ReadonlySet<http2.Http2Session>;
}

/** One port for every protocol: TLS with ALPN (h2, http/1.1) when a certificate is configured, else h2c and HTTP/1.1 sniffed. */
export function createListener(config: Config, handler: NodeHandler, log: Logger): Listener {
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.Http2Session>();
  const trackSession = (session: http2.Http2Session) => {
    sessions.add(session);
    settingsDeadline(session);
    session.once("close", () => sessions.delete(session));
  };
  let server: net.Server;
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
    secure.on("request", (request: NodeRequest, response: NodeResponse) => {
      if (request.httpVersionMajor === 1) heads.arrived(request as http.IncomingMessage, response as http.ServerResponse);
    });
    server = secure;
  } else {
    const h2 = http2.createServer(http2Options(config), handler);
    h2.on("session", trackSession);
    const h1 = http.createServer({ keepAliveTimeout: 60_000 }, handler);
    h1.on("request", (request: http.IncomingMessage, response: http.ServerResponse) => heads.arrived(request, response));
    server = sniffingServer(h1, h2, heads);
  }
  server.on("connection", (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    // A socket that errors (a client resetting mid-request) must not take the process down.
    socket.on("error", (error) => log.debug({ err: error }, "connection error"));
  });
  return { server, sockets, sessions };
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
