import type http from "node:http";
import { drainIfAnsweredEarly } from "./early-answers.js";
import type { Listener } from "./listener.js";
import type { NodeHandler } from "./node-handler.js";

/**
 * Counts HTTP requests from their headers until their response is closed, so
 * shutdown can wait for them (bounded by the grace period). Once shutdown has
 * begun, a new HTTP/1.1 request is refused with 503 and `Connection: close`:
 * the HTTP/1.1 counterpart of HTTP/2's GOAWAY, which every Connect and
 * gRPC-Web client reads as UNAVAILABLE (safe to retry elsewhere).
 */
export class ActiveRequests {
  private count = 0;
  private idle?: () => void;

  track(handler: NodeHandler, shutdownSignal: AbortSignal): NodeHandler {
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

function closeAfterResponse(response: http.ServerResponse): void {
  if (!response.headersSent) response.setHeader("connection", "close");
  else response.once("finish", () => response.socket?.end());
}

/**
 * Stops `listener` gracefully: GOAWAY first (clients stop starting calls, and
 * each session closes once its streams are done), then `shutdown` aborts
 * (Watch streams end), requests in flight get until `graceMs`, and whatever
 * connection is still open is cut.
 */
export async function closeGracefully(listener: Listener, requests: ActiveRequests, shutdown: AbortController, graceMs: number): Promise<void> {
  const closed = new Promise<void>((resolve) => listener.server.close(() => resolve()));
  const sessionsClosed = [...listener.sessions].map((session) => new Promise<void>((resolve) => session.close(resolve)));
  shutdown.abort();
  const deadline = Date.now() + graceMs;
  // Counted per HTTP request, not per handler call: a request whose body is still arriving, or
  // whose answer is still being written, is in flight too (HTTP/1.1 has no GOAWAY to wait on).
  await requests.drained(graceMs);
  await Promise.race([Promise.all(sessionsClosed), delay(Math.max(0, deadline - Date.now()))]);
  for (const socket of listener.sockets) socket.destroy();
  await closed;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
