import type http from "node:http";
import type http2 from "node:http2";
import net from "node:net";
import { FIRST_BYTE_TIMEOUT_MS, type HeadDeadlines } from "./connection-timeouts.js";

/** What every HTTP/2 connection starts with (RFC 9113 §3.4); HTTP/1.1 never does. */
const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** h2c and HTTP/1.1 share the plain port: each connection goes where its first bytes say it belongs. */
export function sniffingServer(h1: http.Server, h2: http2.Http2Server, heads: HeadDeadlines): net.Server {
  return net.createServer((socket) => {
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
