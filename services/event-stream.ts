import { randomBytes } from "node:crypto";
import type http from "node:http";
import { Code, ConnectError } from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { codeToString, errorFromJson } from "@connectrpc/connect/protocol-connect";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { authenticate, type StoredKey } from "./access/api-keys.js";
import { bearerKey } from "./access/auth-interceptor.js";
import { DATA_SERVICE, roleAllows } from "./access/roles.js";
import { withReason } from "./errors.js";
import { answerError } from "./protocol-answers.js";
import type { NodeRequest, NodeResponse } from "./http/node-handler.js";

export const EVENTS_PATH = "/events";
export const TICKET_PATH = "/events/ticket";

/** A ticket stands for a key this long, once. */
const TICKET_MS = 60_000;
/** Tickets outstanding at once; past it the oldest are forgotten (each is cheap, but not free). */
const MAX_TICKETS = 10_000;
/** A comment line this often keeps proxies from closing a quiet stream. */
const KEEPALIVE_MS = 15_000;
/** Filters a URL may carry; the Watch handler applies its own bounds on top. */
const MAX_FILTERS = 100;

export interface EventStreamOptions {
  /** The Watch method's own handler: every SSE stream is a Watch call, with its interceptors (keys, roles, limits, the call log). */
  readonly watch: UniversalHandler;
  /** undefined: no keys configured (every caller is local). */
  readonly keys?: readonly StoredKey[];
}

/**
 * Change events over plain HTTP, as server-sent events, for `curl -N` and a
 * browser's EventSource: `GET /events?filter=created:users:*` is a Watch
 * call (the same filters, resume tokens, keys, roles and stream limits, since
 * it runs through the Watch handler) whose messages are written as SSE:
 *
 *   event: started / id: <token> / data: {"resumeToken": …}
 *   id: <token> / data: {"id", "name", "item", "previous"?, "time", "resumeToken", "expired"?}
 *   event: error / data: {"code", "message", "reason"?}   (then the stream ends)
 *
 * Each event's `id` is its resume token, so an EventSource that reconnects
 * resumes right after the last event it saw (`Last-Event-ID`). A refusal
 * before the stream starts (no key, a role without Watch, a bad filter, an
 * expired token) is an HTTP error status with a Connect JSON error body,
 * which EventSource does not retry.
 *
 * The key: `authorization: Bearer <key>` (curl). An EventSource cannot set
 * headers, and a key in a URL ends up in proxy and browser logs, so a page
 * first trades its key for a ticket (`POST /events/ticket` with the header),
 * good for one stream within 60 s, and opens `/events?ticket=…`.
 */
export function eventStreamRoutes({ watch, keys }: EventStreamOptions) {
  const tickets = new Map<string, { authorization: string; expires: number }>();

  function issueTicket(request: NodeRequest, response: NodeResponse): void {
    if (request.method !== "POST") {
      answerError(
        request,
        response,
        withReason(`${TICKET_PATH} is called with POST and 'authorization: Bearer <key>'`, Code.Unimplemented, "HTTP_METHOD_NOT_ALLOWED"),
        405,
      );
      return;
    }
    const authorization = String(request.headers.authorization ?? "");
    if (keys !== undefined) {
      const presented = bearerKey(authorization);
      const principal = presented === undefined ? undefined : authenticate(keys, presented);
      if (!principal) {
        answerError(
          request,
          response,
          withReason(
            "A ticket needs a valid key: send 'authorization: Bearer <key>'",
            Code.Unauthenticated,
            presented === undefined ? "API_KEY_MISSING" : "API_KEY_UNKNOWN",
          ),
          401,
        );
        return;
      }
      if (!roleAllows(principal.role, DATA_SERVICE, "Watch")) {
        answerError(
          request,
          response,
          withReason(
            `The API key '${principal.keyId}' has the role '${principal.role}', which may not watch events`,
            Code.PermissionDenied,
            "ROLE_NOT_ALLOWED",
          ),
          403,
        );
        return;
      }
    }
    const now = Date.now();
    for (const [ticket, entry] of tickets) {
      if (entry.expires > now && tickets.size < MAX_TICKETS) break;
      tickets.delete(ticket);
    }
    const ticket = randomBytes(24).toString("base64url");
    tickets.set(ticket, { authorization, expires: now + TICKET_MS });
    const body = JSON.stringify({ ticket, expiresInSeconds: TICKET_MS / 1000 });
    request.resume();
    (response as http.ServerResponse)
      .writeHead(200, { "content-type": "application/json", "cache-control": "no-store", "content-length": Buffer.byteLength(body) })
      .end(body);
  }

  async function stream(request: NodeRequest, response: NodeResponse): Promise<void> {
    if (request.method !== "GET") {
      answerError(
        request,
        response,
        withReason(`${EVENTS_PATH} is called with GET (curl -N, or a browser's EventSource)`, Code.Unimplemented, "HTTP_METHOD_NOT_ALLOWED"),
        405,
      );
      return;
    }
    const url = new URL(request.url ?? "/", "http://localhost");
    const filters = url.searchParams.getAll("filter");
    if (filters.length > MAX_FILTERS) {
      answerError(request, response, withReason(`At most ${MAX_FILTERS} filters`, Code.InvalidArgument, "INVALID_FILTER"));
      return;
    }
    let authorization = typeof request.headers.authorization === "string" ? request.headers.authorization : undefined;
    const ticket = url.searchParams.get("ticket");
    if (ticket !== null) {
      const entry = tickets.get(ticket);
      tickets.delete(ticket);
      if (!entry || entry.expires < Date.now()) {
        answerError(
          request,
          response,
          withReason(`The ticket is unknown, used or expired: get a new one with POST ${TICKET_PATH}`, Code.Unauthenticated, "API_KEY_UNKNOWN"),
          401,
        );
        return;
      }
      authorization = entry.authorization;
    }
    const resumeToken = url.searchParams.get("token") ?? header(request, "last-event-id") ?? "";
    const watchRequest = JSON.stringify({ filters, resumeToken });

    const abort = new AbortController();
    response.once("close", () => abort.abort());
    const headers = new Headers({ "content-type": "application/connect+json" });
    if (authorization) headers.set("authorization", authorization);
    const answer = await watch({
      httpVersion: `${request.httpVersionMajor}.${request.httpVersionMinor}`,
      url: `http://localhost/${DATA_SERVICE}/Watch`,
      method: "POST",
      header: headers,
      body: oneMessage(envelope(0, Buffer.from(watchRequest))),
      signal: abort.signal,
    });
    if (answer.status !== 200 || !answer.body) {
      answerError(request, response, new ConnectError(`The event stream could not be opened (HTTP ${answer.status})`, Code.Internal), 500);
      return;
    }
    const out = response as http.ServerResponse;
    /** Waits while the client is slower than the events: the Watch then sees the same backpressure as a gRPC stream. */
    const send = async (text: string) => {
      if (!out.write(text) && !abort.signal.aborted) {
        await new Promise<void>((resolve) => {
          const done = () => {
            out.off("drain", done);
            abort.signal.removeEventListener("abort", done);
            resolve();
          };
          out.once("drain", done);
          abort.signal.addEventListener("abort", done, { once: true });
        });
      }
    };
    let started = false;
    let keepalive: ReturnType<typeof setInterval> | undefined;
    try {
      for await (const { flags, data } of envelopes(answer.body)) {
        const json = JSON.parse(Buffer.from(data).toString("utf8")) as Record<string, unknown>;
        if (flags & END_STREAM) {
          const error =
            json.error === undefined ? undefined : errorFromJson(json.error as never, undefined, new ConnectError("stream failed", Code.Unknown));
          if (!error) break;
          if (!started) {
            // Before the stream starts: an HTTP error, which EventSource takes as final (no retry loop on a refusal).
            answerError(request, response, error);
            return;
          }
          const reason = error.findDetails(ErrorInfoSchema)[0]?.reason;
          await send(
            `event: error\ndata: ${JSON.stringify({ code: codeToString(error.code), message: error.rawMessage, ...(reason ? { reason } : {}) })}\n\n`,
          );
          break;
        }
        if (json.started) {
          const token = String((json.started as { resumeToken?: string }).resumeToken ?? "");
          started = true;
          out.writeHead(200, {
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-store",
            // Proxies that buffer (nginx) would hold events back.
            "x-accel-buffering": "no",
          });
          await send(`event: started\nid: ${token}\ndata: ${JSON.stringify({ resumeToken: token })}\n\n`);
          keepalive = setInterval(() => out.write(": keepalive\n\n"), KEEPALIVE_MS);
          keepalive.unref();
        } else if (json.event) {
          const event = json.event as { resumeToken?: string };
          await send(`id: ${event.resumeToken ?? ""}\ndata: ${JSON.stringify(event)}\n\n`);
        }
      }
    } catch (error) {
      if (!started && !abort.signal.aborted) {
        answerError(request, response, ConnectError.from(error, Code.Internal));
        return;
      }
    } finally {
      clearInterval(keepalive);
      abort.abort();
    }
    if (!response.writableEnded) response.end();
  }

  /** Handles the request if it is one of the event routes; false otherwise. */
  return function route(request: NodeRequest, response: NodeResponse): boolean {
    const path = (request.url ?? "").split("?")[0];
    if (path === TICKET_PATH) {
      issueTicket(request, response);
      return true;
    }
    if (path === EVENTS_PATH) {
      stream(request, response).catch(() => {
        if (!response.headersSent) response.statusCode = 500;
        response.end();
      });
      return true;
    }
    return false;
  };
}

function header(request: NodeRequest, name: string): string | undefined {
  const value = request.headers[name];
  return typeof value === "string" && value !== "" ? value : undefined;
}

const END_STREAM = 0b10;

function envelope(flags: number, data: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(5 + data.length);
  bytes[0] = flags;
  new DataView(bytes.buffer).setUint32(1, data.length);
  bytes.set(data, 5);
  return bytes;
}

async function* oneMessage(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

/** Connect's streaming envelopes (a flags byte, a 4-byte length, the message), whatever the chunking. */
async function* envelopes(body: AsyncIterable<Uint8Array>): AsyncIterable<{ flags: number; data: Uint8Array }> {
  let buffered = new Uint8Array(0);
  for await (const chunk of body) {
    const joined = new Uint8Array(buffered.length + chunk.length);
    joined.set(buffered);
    joined.set(chunk, buffered.length);
    buffered = joined;
    while (buffered.length >= 5) {
      const length = new DataView(buffered.buffer, buffered.byteOffset).getUint32(1);
      if (buffered.length < 5 + length) break;
      yield { flags: buffered[0], data: buffered.subarray(5, 5 + length) };
      buffered = buffered.subarray(5 + length);
    }
  }
}
