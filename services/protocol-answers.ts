import type http from "node:http";
import type http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { createAsyncIterable, type UniversalHandler, type UniversalServerRequest } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, errorFromJsonBytes, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { quote, type Reason } from "../core/errors.js";
import { withReason } from "./errors.js";
import type { NodeHandler, NodeRequest, NodeResponse } from "./http/node-handler.js";

export type Protocol = "grpc" | "grpc-web" | "connect";

/** The protocol a request's content type names; anything else (curl, a browser, nothing) is answered as Connect, in JSON. */
export function protocolOf(request: NodeRequest): Protocol {
  const contentType = String(request.headers["content-type"] ?? "").toLowerCase();
  if (contentType.startsWith("application/grpc-web")) return "grpc-web";
  if (contentType.startsWith("application/grpc")) return "grpc";
  return "connect";
}

/** A refusal that says what to do, with its ErrorInfo reason. */
export function refusal(message: string, code: Code, reason: Reason): ConnectError {
  return withReason(message, code, reason);
}

/** Bodies of refused requests are read and dropped up to this size and this long, then the answer goes anyway. */
const DISCARD_BYTES = 1024 * 1024;
const DISCARD_MS = 2_000;

/**
 * Answers a request that never reaches a handler with an error in the
 * caller's own protocol: gRPC trailers-only, gRPC-Web status in the headers,
 * Connect (and anything else) a JSON error body with `httpStatus`. The body
 * is read and dropped first (bounded): an answer sent while a client is still
 * uploading leaves some clients with a stream they never finish.
 */
export function answerError(request: NodeRequest, response: NodeResponse, error: ConnectError, httpStatus = codeToHttpStatus(error.code)): void {
  let answered = false;
  const answer = () => {
    if (answered) return;
    answered = true;
    clearTimeout(timer);
    writeError(request, response, error, httpStatus);
  };
  const timer = setTimeout(answer, DISCARD_MS);
  let discarded = 0;
  request.on("error", () => undefined);
  request.on("data", (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > DISCARD_BYTES) answer();
  });
  request.once("end", answer);
  request.once("close", () => clearTimeout(timer));
  if (request.complete || request.readableEnded) answer();
}

/**
 * The error itself, in the request's protocol, encoded by the Connect
 * library's own functions (ErrorInfo included), as a handler's error would
 * be; `extra` headers go with it (Retry-After for an overload refusal).
 */
export function writeError(
  request: NodeRequest,
  response: NodeResponse,
  error: ConnectError,
  httpStatus = codeToHttpStatus(error.code),
  extra: Record<string, string> = {},
): void {
  if (response.headersSent || response.writableEnded || response.destroyed) return;
  const protocol = protocolOf(request);
  if (protocol === "connect") {
    const body = Buffer.from(errorToJsonBytes(error, {}));
    (response as http.ServerResponse)
      .writeHead(httpStatus, { ...extra, "content-type": "application/json", "content-length": body.length })
      .end(body);
    return;
  }
  const status = new Headers();
  setTrailerStatus(status, error);
  const headers: Record<string, string> = {
    ...extra,
    "content-type": protocol === "grpc-web" ? "application/grpc-web+proto" : "application/grpc+proto",
  };
  status.forEach((value, key) => (headers[key] = value));
  if (protocol === "grpc" && "stream" in request && request.stream) {
    // Trailers-only: one HEADERS frame that ends the stream, where gRPC clients look for the status.
    // Written on the stream itself, so the headers already set on the response (x-request-id, CORS) are added here.
    const early = (response as http2.Http2ServerResponse).getHeaders();
    if (!request.stream.destroyed) request.stream.respond({ ...early, ":status": 200, ...headers }, { endStream: true });
    return;
  }
  // gRPC-Web (and gRPC over HTTP/1.1, which no gRPC client sends): the status in the headers.
  (response as http.ServerResponse).writeHead(200, headers).end();
}

/**
 * Requests the Connect library would answer with a bare HTTP status and an
 * empty body (404 for a wrong path, 405 for a wrong HTTP method, 415 for a
 * missing or unknown content type, 505 for a bidi call over HTTP/1.1) get an
 * error in their protocol that says what to send instead. Everything else
 * goes to `handler`.
 */
export function protocolChecks(handler: NodeHandler, routes: ReadonlyMap<string, UniversalHandler>): NodeHandler {
  const services = [...new Set([...routes.values()].map((route) => route.service.typeName))].sort();
  return (request, response) => {
    const path = (request.url ?? "").split("?")[0];
    const route = routes.get(path);
    if (!route) {
      answerError(request, response, unknownPath(path, routes, services), 404);
      return;
    }
    const { method, service } = route;
    const name = `${service.typeName}/${method.name}`;
    const httpMethod = request.method ?? "";
    if (!route.allowedMethods.includes(httpMethod)) {
      const gets = route.allowedMethods.includes("GET") ? " (or GET with ?encoding=json&message=<JSON>, Connect only)" : "";
      const error = refusal(`${name} is called with POST${gets}, not ${quote(httpMethod)}`, Code.Unimplemented, "HTTP_METHOD_NOT_ALLOWED");
      answerError(request, response, error, 405);
      return;
    }
    if (method.methodKind === "bidi_streaming" && request.httpVersionMajor === 1) {
      const error = refusal(`${name} streams both ways and needs HTTP/2 (gRPC, or Connect over h2)`, Code.Unimplemented, "HTTP2_REQUIRED");
      answerError(request, response, error, 505);
      return;
    }
    if (httpMethod === "GET") {
      const encoding = new URL(request.url ?? "/", "http://localhost").searchParams.get("encoding");
      if (encoding !== "json" && encoding !== "proto") {
        const error = refusal(
          `A Connect GET names its encoding: ${path}?encoding=json&message=<URL-encoded JSON request>`,
          Code.InvalidArgument,
          "UNSUPPORTED_CONTENT_TYPE",
        );
        answerError(request, response, error, 415);
        return;
      }
    } else {
      const contentType = String(request.headers["content-type"] ?? "");
      if (!route.supportedContentType(contentType)) {
        const given = contentType === "" ? "No content type" : `The content type '${quote(contentType)}' is not one ${name} takes`;
        const connectTypes =
          method.methodKind === "unary"
            ? "'application/json' (Connect JSON, as curl sends) or 'application/proto'"
            : "'application/connect+json' or 'application/connect+proto'";
        // Watch is what curl users reach for: its plain-HTTP form is /events.
        const events =
          method.methodKind === "server_streaming" && method.name === "Watch"
            ? "; to follow events with curl or EventSource: GET /events?filter=…"
            : "";
        const error = refusal(
          `${given}: send content-type ${connectTypes}, 'application/grpc' (gRPC) or 'application/grpc-web' (gRPC-Web)${events}`,
          Code.InvalidArgument,
          "UNSUPPORTED_CONTENT_TYPE",
        );
        answerError(request, response, error, 415);
        return;
      }
    }
    handler(request, response);
  };
}

function unknownPath(path: string, routes: ReadonlyMap<string, UniversalHandler>, services: readonly string[]): ConnectError {
  const [, serviceName = ""] = /^\/([^/]+)\//.exec(path) ?? [];
  const methods = [...routes.values()].filter((route) => route.service.typeName === serviceName).map((route) => route.method.name);
  const message =
    methods.length > 0
      ? `${serviceName} has no method '${quote(path.slice(serviceName.length + 2))}'; its methods: ${methods.join(", ")}`
      : `No service at '${quote(path)}'. Calls are POST /<service>/<method>, e.g. /larder.data.v1.DataService/Get; services: ${services.join(", ")}`;
  return refusal(message, Code.Unimplemented, "UNKNOWN_METHOD");
}

/**
 * A Connect JSON request the library cannot read as the method's input (an
 * unknown field, a wrong type) is refused by the library before any of
 * Larder's code runs, with its own message and no reason. For unary calls
 * (what curl and hand-written clients send) the answer gets the ErrorInfo
 * reason INVALID_REQUEST, and an unknown field's message names the fields
 * there are, so a typo is easy to see.
 */
export function withRequestReasons(route: UniversalHandler): UniversalHandler {
  if (route.method.methodKind !== "unary") return route;
  const fields = route.method.input.fields.map((field) => field.jsonName).join(", ");
  const wrapped = async (request: UniversalServerRequest) => {
    const response = await route(request);
    const header = response.header;
    if (response.status !== 400 || !response.body || !header?.get("content-type")?.startsWith("application/json") || header.has("content-encoding")) {
      return response;
    }
    const chunks: Uint8Array[] = [];
    for await (const chunk of response.body) chunks.push(chunk);
    const bytes = Buffer.concat(chunks);
    const error = (() => {
      try {
        return errorFromJsonBytes(bytes, undefined, new ConnectError("", Code.Unknown));
      } catch {
        return undefined;
      }
    })();
    if (!error || error.code !== Code.InvalidArgument || error.details.length > 0 || !error.rawMessage.startsWith("cannot decode ")) {
      return { ...response, body: createAsyncIterable([bytes]) };
    }
    const unknown = /^cannot decode message (\S+) from JSON: key "(.*)" is unknown$/s.exec(error.rawMessage);
    const message = unknown ? `Unknown field "${quote(unknown[2])}" in ${unknown[1]}; its fields: ${fields}` : error.rawMessage;
    const body = errorToJsonBytes(refusal(message, Code.InvalidArgument, "INVALID_REQUEST"), {});
    header.set("content-length", String(body.byteLength));
    return { ...response, body: createAsyncIterable([body]) };
  };
  return Object.assign(wrapped, route);
}
