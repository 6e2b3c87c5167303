import type http from "node:http";

/** The rest of a body answered early is read and dropped up to this size and this long; past either the connection is cut. */
const MAX_DRAINED_BYTES = 64 * 1024 * 1024;
const DRAIN_MS = 10_000;

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
export function drainIfAnsweredEarly(request: http.IncomingMessage, response: http.ServerResponse): void {
  request[Symbol.asyncIterator] = () => request.iterator({ destroyOnReturn: false });
  const writeHead = response.writeHead;
  response.writeHead = function (this: http.ServerResponse, ...args: Parameters<typeof writeHead>) {
    if (!request.complete && !request.destroyed) drain(request, this);
    return writeHead.apply(this, args);
  } as typeof writeHead;
}

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
