import { readFile } from "node:fs/promises";
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { bearerAuth, createDataWith, type LarderData, type RetryOptions } from "./data.js";
import type { EventOptions } from "./events.js";

export { bearerAuth, createDataWith, type LarderData, type RetryOptions } from "./data.js";
export { LarderError, type ErrorCodeName } from "./errors.js";
export type { DataEvent, EventOptions } from "./events.js";
export type * from "./types.js";

export interface CreateDataOptions {
  /** The server, e.g. http://127.0.0.1:4150. */
  readonly url: string;
  /** An API key; sent as `authorization: Bearer <key>` on every call. */
  readonly apiKey?: string;
  /**
   * `connect` (default): the Connect protocol over HTTP/1.1 (keep-alive), which
   * costs client and server less CPU per call than gRPC over HTTP/2 in Node and
   * passes any proxy. `grpc`: gRPC over HTTP/2. Or any Transport.
   */
  readonly transport?: "grpc" | "connect" | Transport;
  /** Tuning of `on()`: retry period, backoff, a durable subscription name. */
  readonly events?: EventOptions;
  /**
   * true (default): calls made in the same tick travel together in one Pipeline
   * RPC, values as JSON text. false: one RPC per call (a service without Pipeline).
   */
  readonly pipeline?: boolean;
  /** Retries of writes that failed UNAVAILABLE, with idempotency keys (default: 3 attempts). */
  readonly retries?: RetryOptions;
}

/**
 * The drop-in for @ampt/data in Node: `import { data } from "@ampt/data"`
 * becomes `const data = createData({ url })`, and the rest of the code stays.
 */
export function createData({ url, apiKey, transport = "connect", events, pipeline, retries }: CreateDataOptions): LarderData {
  const interceptors: Interceptor[] = apiKey ? [bearerAuth(apiKey)] : [];
  let chosen: Transport;
  if (transport === "grpc") chosen = createGrpcTransport({ baseUrl: url, interceptors });
  else if (transport === "connect") chosen = createConnectTransport({ baseUrl: url, httpVersion: "1.1", interceptors });
  else chosen = transport;
  return createDataWith({ transport: chosen, events, pipeline, retries, readFile: (path) => readFile(path, "utf8") });
}
