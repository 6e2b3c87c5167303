import { randomUUID } from "node:crypto";
import type { NodeHandler } from "./http/node-handler.js";

export const REQUEST_ID_HEADER = "x-request-id";

/**
 * What a caller's id may look like to be kept: UUIDs, hex and base64 ids,
 * trace ids with dots, colons or slashes. Anything longer or stranger (a
 * log-injection attempt, a megabyte of header) is replaced by one of ours.
 */
const ACCEPTED = /^[A-Za-z0-9._:/+=-]{1,128}$/;

/** The caller's id if it is an acceptable one, else a fresh one. */
export function requestIdOf(given: string | string[] | undefined): string {
  return typeof given === "string" && ACCEPTED.test(given) ? given : randomUUID();
}

/**
 * Gives every HTTP request an id before anything answers it: the caller's
 * `x-request-id`, or a new one. The answer carries it in every protocol,
 * refusals written outside the handlers included (they keep headers set
 * here); the request's own header is rewritten to it, so the handler chain
 * (and its log lines) reads the same id.
 */
export function withRequestIds(handler: NodeHandler): NodeHandler {
  return (request, response) => {
    const id = requestIdOf(request.headers[REQUEST_ID_HEADER]);
    request.headers[REQUEST_ID_HEADER] = id;
    response.setHeader(REQUEST_ID_HEADER, id);
    handler(request, response);
  };
}
