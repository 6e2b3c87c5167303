import { isIPv4 } from "node:net";
import { Code } from "@connectrpc/connect";
import { quote } from "../core/errors.js";
import { answerError, refusal } from "./protocol-answers.js";
import type { NodeHandler } from "./http/node-handler.js";

/**
 * Without a keys file every caller has every right, which is safe only
 * because the port listens on loopback. A web page from anywhere can still
 * reach a loopback port by DNS rebinding (its own name re-pointed at
 * 127.0.0.1), and its requests then carry that name as Host. So, without
 * keys, only requests addressed to a loopback name reach the service; with
 * keys the key decides and any Host is served.
 */
export function loopbackHostsOnly(handler: NodeHandler): NodeHandler {
  return (request, response) => {
    const authority = request.headers[":authority"] ?? request.headers.host;
    // A client that names no host (HTTP/1.0) is no browser: browsers always send one.
    if (typeof authority !== "string" || isLoopbackName(hostOf(authority))) {
      handler(request, response);
      return;
    }
    answerError(
      request,
      response,
      refusal(
        `Without LARDER_KEYS_FILE Larder answers only requests addressed to a loopback host (localhost, 127.0.0.1, [::1]), not "${quote(authority)}": call it by one of those, or configure API keys`,
        Code.PermissionDenied,
        "HOST_NOT_ALLOWED",
      ),
    );
  };
}

/** The host of an authority (`host`, `host:port`, `[v6]:port`), lower-cased, without a trailing dot. */
export function hostOf(authority: string): string {
  const trimmed = authority.trim().toLowerCase();
  const close = trimmed.indexOf("]");
  const host = trimmed.startsWith("[") ? trimmed.slice(1, close < 0 ? undefined : close) : trimmed.replace(/:\d*$/, "");
  return host.endsWith(".") ? host.slice(0, -1) : host;
}

/** localhost and its subdomains (RFC 6761: always loopback), 127.0.0.0/8, ::1. */
export function isLoopbackName(host: string): boolean {
  if (host === "localhost" || host.endsWith(".localhost")) return true;
  if (isIPv4(host)) return host.startsWith("127.");
  return host === "::1" || host === "0:0:0:0:0:0:0:1";
}
