/** What bench/run.ts and its load workers (bench/load.ts) say to each other over IPC. */

export type Protocol = "grpc" | "connect-h1" | "connect-h2";

export const PROTOCOL_NAMES: Record<Protocol, string> = {
  grpc: "gRPC (HTTP/2)",
  "connect-h1": "Connect (HTTP/1.1, keep-alive)",
  "connect-h2": "Connect (HTTP/2)",
};

/**
 * The clients compared side by side: the published `@ampt/data` over dynalite
 * (the peer) and Larder's drop-in client `createData` with each transport
 * (`larder-connect` is the default), all through the same `data` API.
 */
export type ClientName = "peer" | "larder-grpc" | "larder-connect" | "larder-grpc-unpipelined" | "larder-connect-values";

export const DEFAULT_CLIENT: ClientName = "larder-connect";

export const CLIENT_NAMES: Record<ClientName, string> = {
  peer: "@ampt/data 1.0.27 over dynalite",
  "larder-connect": "Larder, default client (Connect, HTTP/1.1)",
  "larder-grpc": 'Larder, `transport: "grpc"` (HTTP/2)',
  "larder-grpc-unpipelined": "Larder, gRPC, `pipeline: false`",
  /** The default client with values as google.protobuf.Value instead of JSON text: what the lean value path saves. */
  "larder-connect-values": "Larder, default client, values as protobuf Value",
};

/** The workloads of the side-by-side table, as calls of the `data` API (`batch get 25` on request: --client-ops). */
export const CLIENT_OPERATIONS = ["get", "set", "key query 100"] as const;
export const MORE_CLIENT_OPERATIONS = ["batch get 25"] as const;

/** The side-by-side table's items: few and small, as in the issue that asked for it. */
export const PEER_ITEMS = 1_000;
export const peerItemKey = (i: number): string => `cmp:k${String(i).padStart(6, "0")}`;

export type Task =
  | { readonly kind: "init"; readonly url: string; readonly worker: number; readonly workers: number; readonly peerEndpoint?: string }
  /** Stores PEER_ITEMS items through this client's seed. */
  | { readonly kind: "client-fill"; readonly client: ClientName }
  /** Calls of one `data` method through one client, `inFlight` at a time, for `ms`. */
  | {
      readonly kind: "client-cell";
      readonly client: ClientName;
      readonly operation: string;
      readonly inFlight: number;
      readonly ms: number;
      readonly record: boolean;
    }
  /** Calls of one operation, `inFlight` at a time, for `ms`. Warm-up calls are made and not recorded. */
  | {
      readonly kind: "cell";
      readonly protocol: Protocol;
      readonly operation: string;
      readonly inFlight: number;
      readonly ms: number;
      readonly record: boolean;
      readonly stored: number;
    }
  /** Stores items `{prefix}{from..to-1}` (with labels) through Seed. */
  | { readonly kind: "fill"; readonly from: number; readonly to: number; readonly prefix: string }
  /** Opens `subscribers` Watch streams, makes `writes` sets, and measures set-start to event arrival. */
  | { readonly kind: "events"; readonly subscribers: number; readonly writes: number; readonly perConnection: number }
  | { readonly kind: "exit" };

export type Reply =
  | { readonly kind: "ready" }
  | {
      readonly kind: "cell";
      readonly samples: Float64Array;
      readonly errors: number;
      readonly firstError?: string;
      readonly misses: number;
      readonly elapsedMs: number;
    }
  | { readonly kind: "fill"; readonly items: number; readonly elapsedMs: number }
  /** The subscribers are open: the runner reads the server's memory now. */
  | { readonly kind: "subscribed"; readonly subscribers: number; readonly openMs: number }
  | {
      readonly kind: "events";
      readonly samples: Float64Array;
      readonly expected: number;
      readonly streamErrors: number;
      readonly firstStreamError?: string;
    }
  | { readonly kind: "error"; readonly message: string };

/** How the stored items are named: shared by the fill and by the operations that read them. */
export const LABELS_PER_ITEM_GROUP = 10;
export const ITEMS = "bench:k";
/** Items that the remove operation removes, one each. */
export const REMOVABLE = "rm:k";
export const itemKey = (i: number, prefix = ITEMS): string => `${prefix}${String(i).padStart(8, "0")}`;
export const labelOf = (i: number): string => `lab:${String(Math.floor(i / LABELS_PER_ITEM_GROUP)).padStart(7, "0")}`;
