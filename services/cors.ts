import type http from "node:http";
import { cors as connectCors } from "@connectrpc/connect";
import type { NodeHandler } from "./http/node-handler.js";

/*
 * What gRPC-Web and Connect clients in a browser send and must read: Connect's
 * own lists (`cors` of @connectrpc/connect), plus Larder's: `authorization` for
 * the API key, `last-event-id` for an EventSource resuming /events,
 * `x-request-id`, and `retry-after` on refusals.
 */
const ALLOWED_METHODS = connectCors.allowedMethods;
const ALLOWED_HEADERS = [...connectCors.allowedHeaders, "authorization", "last-event-id", "x-request-id"];
const EXPOSED_HEADERS = [...connectCors.exposedHeaders, "retry-after", "x-request-id"];
/** How long a browser may keep a preflight's answer (Chromium caps it at 2 hours). */
const PREFLIGHT_MAX_AGE_S = 7200;

/**
 * Cross-origin calls from the pages of LARDER_CORS_ORIGINS (exact origins;
 * none by default): a preflight from such a page is answered here, and every
 * answer to it carries the headers that let the browser hand it to the page.
 * Other origins get no CORS headers, so the browser keeps the answer from
 * them; their preflight gets 403 with a body that names the setting.
 */
export function corsHandler(handler: NodeHandler, origins: readonly string[]): NodeHandler {
  const allowed = new Set(origins);
  return (request, response) => {
    const origin = request.headers.origin;
    const preflight = request.method === "OPTIONS" && request.headers["access-control-request-method"] !== undefined;
    if (typeof origin !== "string" || !allowed.has(origin)) {
      if (preflight) {
        const body = JSON.stringify({
          code: "permission_denied",
          message: "This origin may not call Larder from a browser: add it to LARDER_CORS_ORIGINS",
        });
        (response as http.ServerResponse)
          .writeHead(403, { "content-type": "application/json", "content-length": Buffer.byteLength(body), vary: "origin" })
          .end(body);
        return;
      }
      handler(request, response);
      return;
    }
    response.setHeader("access-control-allow-origin", origin);
    response.setHeader("vary", "origin");
    if (preflight) {
      (response as http.ServerResponse)
        .writeHead(204, {
          "access-control-allow-methods": ALLOWED_METHODS.join(", "),
          "access-control-allow-headers": ALLOWED_HEADERS.join(", "),
          "access-control-max-age": String(PREFLIGHT_MAX_AGE_S),
        })
        .end();
      return;
    }
    response.setHeader("access-control-expose-headers", EXPOSED_HEADERS.join(", "));
    handler(request, response);
  };
}
