import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { DataService } from "../gen/larder/data/v1/data_pb.js";
import { keyText } from "./convert.js";
import { callOrder } from "./call-order.js";
import { EventDispatcher, type EventHandler, type EventOptions } from "./events.js";
import { invalidArgument, LarderError } from "./errors.js";
import { optionsOf } from "./options.js";
import { pipelined, unpipelined, type Send } from "./pipeline.js";
import { reads } from "./reads.js";
import { idempotentWrites, type RetryOptions } from "./retries.js";
import type { Data } from "./types.js";
import { watchSource } from "./watch-source.js";
import { writes } from "./writes.js";

export type { RetryOptions } from "./retries.js";

/** What an overloaded method of `Data` resolves to: each overload in types.ts names its own result, so the one implementation cannot. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type OverloadResult = any;

export interface DataOptions {
  /** A ready transport (gRPC, gRPC-Web or Connect; Node or browser), with bearerAuth(apiKey) among its interceptors if keys are in use. */
  readonly transport: Transport;
  /** Tuning of `on()`: retry period, backoff, a durable subscription name. */
  readonly events?: EventOptions;
  /**
   * Reads a seed file for `seed(path)` (SE1). Injected by the Node entry so that
   * this module imports nothing of Node's and bundles for browsers, where a path
   * means nothing and seed takes only an array.
   */
  readonly readFile?: (path: string) => Promise<string>;
  /**
   * true (default): calls made in the same tick travel together in one Pipeline
   * RPC, values as JSON text. false: one RPC per call, for a service without Pipeline.
   */
  readonly pipeline?: boolean;
  /** Retries of writes that failed UNAVAILABLE, made safe by idempotency keys. */
  readonly retries?: RetryOptions;
}

/** The `data` object with close(), which the published client does not need (it has no connection). */
export type LarderData = Data & {
  /** Resolves once `on()` handlers are connected: changes committed from then on reach them. */
  ready(): Promise<void>;
  /** Ends the event stream and lets the process exit. */
  close(): Promise<void>;
};

/** Sends `authorization: Bearer <key>` on every call, Watch included (issue 7). */
export function bearerAuth(apiKey: string): Interceptor {
  return (next) => (request) => {
    request.header.set("authorization", `Bearer ${apiKey}`);
    return next(request);
  };
}

/**
 * Builds a drop-in for @ampt/data's `data` over any Connect transport. Every
 * method keeps @ampt/data's arguments, return shapes and error messages;
 * errors are LarderError with the gRPC code and the service's reason.
 */
export function createDataWith({ transport, events, readFile, pipeline = true, retries = {} }: DataOptions): LarderData {
  const client: Client<typeof DataService> = createClient(DataService, transport);
  const send: Send = pipeline ? pipelined(client) : unpipelined(client);
  let removeNulls = true;
  let dispatcher: EventDispatcher | undefined;
  const { call, write } = callOrder(() => dispatcher);
  const read = reads(client, send, call);
  const written = writes({ client, send, idempotently: idempotentWrites(retries), removeNulls: () => removeNulls, readFile });

  const data = {
    get removeNulls(): boolean {
      return removeNulls;
    },
    set removeNulls(value: boolean) {
      if (typeof value !== "boolean") throw new LarderError("INVALID_ARGUMENT", "removeNulls must be a boolean value", "INVALID_OPTION");
      removeNulls = value;
    },

    get(keys: unknown, rawOptions?: unknown): Promise<OverloadResult> {
      return call(() => read.get(keys, optionsOf(rawOptions)));
    },

    getByLabel(label: unknown, keys: unknown, rawOptions?: unknown): Promise<OverloadResult> {
      return call(async () => {
        const options = optionsOf(rawOptions);
        if (Array.isArray(keys)) {
          throw invalidArgument("INVALID_OPTION", "Invalid options for batch get request: label");
        }
        return data.get(keys, { ...options, label: String(label) });
      });
    },

    set(keys: unknown, value?: unknown, rawOptions?: unknown): Promise<OverloadResult> {
      return write(() => written.set(keys, value, rawOptions));
    },

    count(first: unknown, second?: unknown): Promise<number> {
      return call(() => read.count(first, second));
    },

    history(key: unknown, rawOptions?: unknown): Promise<OverloadResult> {
      return call(() => read.history(keyText(key), optionsOf(rawOptions)));
    },

    add(key: string, attribute: unknown, value?: unknown, rawOptions?: unknown): Promise<OverloadResult> {
      return write(() => written.add(key, attribute, value, rawOptions));
    },

    remove(keys: unknown, rawOptions?: unknown): Promise<boolean> {
      return write(() => written.remove(keys, rawOptions));
    },

    scan(rawOptions?: unknown): Promise<OverloadResult> {
      return call(async () => read.scan(optionsOf(rawOptions)));
    },

    seed(items: unknown, rawOptions?: unknown): Promise<{ items: number }> {
      return write(() => written.seed(items, rawOptions));
    },

    on(names: string | string[], ...rest: unknown[]): void {
      // on(names, handler) or on(names, { timeout }, handler) (EV10).
      const [first, second] = rest;
      const handler = typeof first === "function" ? first : second;
      const timeout = typeof first === "object" && first !== null ? (first as { timeout?: unknown }).timeout : undefined;
      // Checked now: a bad handler or timeout found only when an event arrives would be retried for a day (EV9).
      if (typeof handler !== "function") throw invalidArgument("INVALID_OPTION", "An event handler must be a function");
      if (timeout !== undefined && (typeof timeout !== "number" || !(timeout > 0))) {
        throw invalidArgument("INVALID_OPTION", "'timeout' must be a positive number of milliseconds");
      }
      dispatcher ??= new EventDispatcher(watchSource(client), {
        ...events,
        acknowledge: (subscription, resumeToken) => client.ack({ subscription, resumeToken }).then(() => undefined),
      });
      dispatcher.on(names, handler as EventHandler, timeout);
    },

    /** Resolves once `on()` handlers are connected: changes committed from now on reach them. */
    async ready(): Promise<void> {
      await dispatcher?.ready();
    },

    async close(): Promise<void> {
      await dispatcher?.close();
      dispatcher = undefined;
    },
  };
  return data as unknown as LarderData;
}
