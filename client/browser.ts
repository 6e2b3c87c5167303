import type { Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { bearerAuth, createDataWith, type LarderData, type RetryOptions } from "./data.js";
import type { EventOptions } from "./events.js";

export { bearerAuth, createDataWith, type LarderData, type RetryOptions } from "./data.js";
export { LarderError, type ErrorCodeName } from "./errors.js";
export type * from "./types.js";

export interface BrowserTransportOptions {
  readonly url: string;
  readonly apiKey?: string;
  /** `grpc-web` (default) or `connect`, both over fetch; or any Transport. */
  readonly transport?: "grpc-web" | "connect" | Transport;
}

export interface CreateBrowserDataOptions extends BrowserTransportOptions {
  readonly events?: EventOptions;
  /** Retries of writes that failed UNAVAILABLE, with idempotency keys (default: 3 attempts). */
  readonly retries?: RetryOptions;
  /** true (default): the calls of one tick travel in one Pipeline RPC; false: one RPC per call. */
  readonly pipeline?: boolean;
}

/**
 * The fetch-based transport with the API key on every call: for the generated
 * clients (DataService, AdminService) next to the `data` object.
 */
export function createBrowserTransport({ url, apiKey, transport = "grpc-web" }: BrowserTransportOptions): Transport {
  const interceptors: Interceptor[] = apiKey ? [bearerAuth(apiKey)] : [];
  if (transport === "grpc-web") return createGrpcWebTransport({ baseUrl: url, interceptors });
  if (transport === "connect") return createConnectTransport({ baseUrl: url, interceptors });
  return transport;
}

/** The drop-in `data` for browsers: fetch-based gRPC-Web or Connect, no Node modules. */
export function createData({ events, retries, pipeline, ...transport }: CreateBrowserDataOptions): LarderData {
  return createDataWith({ transport: createBrowserTransport(transport), events, retries, pipeline });
}
