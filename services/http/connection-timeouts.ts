import type http from "node:http";
import type http2 from "node:http2";
import type net from "node:net";

/** How long a new plain-port connection may stay silent before saying which protocol it speaks. */
export const FIRST_BYTE_TIMEOUT_MS = 10_000;
/** After the first bytes: until the client's HTTP/2 SETTINGS, or its first complete HTTP/1.1 request head. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

/** A client that opens a session but never sends its SETTINGS holds a socket and nghttp2 state for nothing. */
export function settingsDeadline(session: http2.Http2Session): void {
  const stalled = setTimeout(() => session.destroy(), HANDSHAKE_TIMEOUT_MS);
  const settled = () => clearTimeout(stalled);
  session.once("remoteSettings", settled);
  session.once("close", settled);
}

/**
 * Every HTTP/1.1 request head on a connection, not only the first, must
 * arrive within HANDSHAKE_TIMEOUT_MS of its first byte: otherwise a client
 * that is answered once and then trickles its next head a byte at a time
 * holds the connection for ever. (Request bodies have their own timeout,
 * LARDER_BODY_TIMEOUT_MS, in admissionGate.) Node enforces headersTimeout
 * only on http.Servers that listen themselves, and no HTTP/1.1 path here is one.
 */
export class HeadDeadlines {
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
