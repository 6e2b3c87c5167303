import type { Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { bearerAuth, createDataWith, type LarderData } from "./data.js";
import type { EventOptions } from "./events.js";

export { bearerAuth, createDataWith, type LarderData } from "./data.js";
export { LarderError, type ErrorCodeName } from "./errors.js";
export type * from "./types.js";

export interface CreateBrowserDataOptions {
  readonly url: string;
  readonly apiKey?: string;
  /** `grpc-web` (default) or `connect`, both over fetch; or any Transport. */
  readonly transport?: "grpc-web" | "connect" | Transport;
  readonly events?: EventOptions;
}

/** The drop-in `data` for browsers: fetch-based gRPC-Web or Connect, no Node modules. */
export function createData({ url, apiKey, transport = "grpc-web", events }: CreateBrowserDataOptions): LarderData {
  const interceptors: Interceptor[] = apiKey ? [bearerAuth(apiKey)] : [];
  let chosen: Transport;
  if (transport === "grpc-web") chosen = createGrpcWebTransport({ baseUrl: url, interceptors });
  else if (transport === "connect") chosen = createConnectTransport({ baseUrl: url, interceptors });
  else chosen = transport;
  return createDataWith({ transport: chosen, events });
}
