import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { DataService, type BatchSetItemSchema, type Item, type SetRequestSchema } from "../gen/larder/data/v1/data_pb.js";
import { EventDispatcher, type EventHandler, type EventOptions, type WatchSource } from "./events.js";
import {
  isPlainObjectValue,
  itemValue,
  keyText,
  labelNames,
  shapeItem,
  toLabelUpdate,
  toMetaItem,
  toTtl,
  toValue,
  toWriteValue,
  wellFormed,
} from "./convert.js";
import { invalidArgument, LarderError, toLarderError } from "./errors.js";
import type { Data, HistoryResponse } from "./types.js";
import { badSeedMessage } from "../core/limits.js";
import { pipelined, unpipelined, type Send } from "./pipeline.js";

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

/**
 * Every write (set, batch set, add, remove) carries an idempotency key, its
 * own `idempotencyKey` option or a random one, and is sent again with the
 * same key when it fails UNAVAILABLE: the server applies it at most once and
 * answers a retry of an applied write with its first outcome, so an `add`
 * retried after a dropped connection counts once.
 */
export interface RetryOptions {
  /** Attempts in all, the first included (default 3; 1: no retries, and no key unless the call gives one). */
  readonly attempts?: number;
  /** Wait before the first retry, doubling after each (default 100 ms). */
  readonly initialBackoffMs?: number;
}

/** The `data` object with close(), which the published client does not need (it has no connection). */
export type LarderData = Data & {
  /** Resolves once `on()` handlers are connected: changes committed from then on reach them. */
  ready(): Promise<void>;
  /** Ends the event stream and lets the process exit. */
  close(): Promise<void>;
};

type Options = Record<string, unknown>;
type Page = { items: unknown[]; lastKey?: string; next?: () => Promise<Page> };
type HistoryPage = HistoryResponse<unknown>;

/** P1, S1: `true` is `{ meta: true }`, `false` or nothing is `{}`, anything else but an object is refused. */
function optionsOf(options: unknown): Options {
  if (options === undefined || options === null || options === false) return {};
  if (options === true) return { meta: true };
  if (typeof options === "object" && !Array.isArray(options)) return options as Options;
  throw invalidArgument("INVALID_OPTION", "'options' must be a boolean or object");
}

/** P2: checked here too, since a negative or fractional limit cannot travel as the API's uint32. */
function limitOf(options: Options): number {
  const limit = options.limit;
  if (limit === undefined || limit === null || limit === 0) return 0;
  if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1 || limit > 1000) {
    throw invalidArgument("INVALID_OPTION", "'limit' must be between 1 and 1000");
  }
  return limit;
}

/** SC5: segment numbers must fit the API's uint32; the service checks the rest. */
function segmentOf(value: unknown, name: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw invalidArgument("INVALID_OPTION", `'${name}' must be a whole number`);
  }
  return value;
}

/** A version travels as uint64: checked here, since protobuf would throw a plain Error on a negative or fractional one. */
function versionOf(version: unknown): bigint {
  if (typeof version !== "number" || !Number.isSafeInteger(version) || version < 0) {
    throw invalidArgument("INVALID_OPTION", "'ifVersion' must be a whole number from 0 (a version an item can have)");
  }
  return BigInt(version);
}

/** `asOf` must be a valid Date: anything else would travel as some other instant, or none. */
function asOfOf(asOf: unknown): Date | undefined {
  if (asOf === undefined || asOf === null) return undefined;
  if (!(asOf instanceof Date) || Number.isNaN(asOf.getTime())) throw invalidArgument("INVALID_OPTION", "'asOf' must be a valid Date");
  return asOf;
}

/** The caller's own idempotency key: the server checks its length, but a non-string cannot travel. */
function idempotencyKeyOf(key: unknown): string {
  if (typeof key !== "string" || key === "") throw invalidArgument("INVALID_OPTION", "'idempotencyKey' must be a non-empty string");
  return wellFormed(key);
}

/** A failed write worth sending again: the whole call failed UNAVAILABLE, or its operation in a pipeline did. */
function isUnavailable(error: unknown): boolean {
  if (error instanceof LarderError) return error.code === "UNAVAILABLE";
  return error instanceof ConnectError && error.code === Code.Unavailable;
}

/** Q1: only the key part of a namespaced key can be an expression. */
function isExpression(key: string): boolean {
  const colon = key.indexOf(":");
  if (colon < 0) return false;
  const part = key.slice(colon + 1).trim();
  return part.includes("*") || part.includes("|") || part.startsWith("<") || part.startsWith(">");
}

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

  const run = async <T>(body: () => Promise<T>): Promise<T> => {
    try {
      return await body();
    } catch (error) {
      throw toLarderError(error);
    }
  };
  const after = <T>(gate: Promise<unknown>, body: () => Promise<T>): Promise<T> => gate.then(() => run(body));
  /**
   * While writes wait for the event stream's start, every later call waits
   * behind them: calls leave, and pipelines apply them, in the order they were made.
   */
  let waiting: Promise<unknown> | undefined;
  const call = <T>(body: () => Promise<T>): Promise<T> => (waiting ? after(waiting, body) : run(body));
  /** A write made after `on()` returns must reach its handlers: it is sent once the stream has its start (see started()). */
  const write = <T>(body: () => Promise<T>): Promise<T> => {
    if (!dispatcher || dispatcher.hasStarted) return call(body);
    const gate = Promise.all([waiting, dispatcher.started()]);
    waiting = gate;
    void gate.then(() => {
      if (waiting === gate) waiting = undefined;
    });
    return after(gate, body);
  };

  const attempts = retries.attempts ?? 3;
  const initialBackoffMs = retries.initialBackoffMs ?? 100;
  /** Sends a write with one idempotency key, again while it fails UNAVAILABLE (RetryOptions). */
  async function idempotently<T>(given: unknown, send: (idempotencyKey: string) => Promise<T>): Promise<T> {
    // Without retries a key of our own would buy nothing and cost the server a record.
    const idempotencyKey = given !== undefined ? idempotencyKeyOf(given) : attempts > 1 ? globalThis.crypto.randomUUID() : "";
    for (let attempt = 1; ; attempt++) {
      try {
        return await send(idempotencyKey);
      } catch (error) {
        if (attempt >= attempts || !isUnavailable(error)) throw error;
        await new Promise((resolve) => setTimeout(resolve, initialBackoffMs * 2 ** (attempt - 1)));
      }
    }
  }

  /** History is no Pipeline operation: it travels as a call of its own. */
  async function historyPage(key: string, options: Options): Promise<HistoryPage> {
    if (options.start !== undefined && typeof options.start !== "string") throw invalidArgument("INVALID_OPTION", "'start' must be a previous page's lastKey");
    const response = await client.history({ key, limit: limitOf(options), start: (options.start as string | undefined) ?? "" });
    const page: HistoryPage = {
      entries: response.entries.map((entry) => ({
        name: entry.name as "created" | "updated" | "deleted",
        expired: entry.expired,
        time: entry.time ? timestampDate(entry.time) : new Date(Number.NaN),
        item: toMetaItem(entry.item!),
      })),
    };
    if (response.lastKey !== undefined) {
      page.lastKey = response.lastKey;
      page.next = () => call(() => historyPage(key, { ...options, start: response.lastKey }));
    }
    return page;
  }

  async function query(expression: string, options: Options): Promise<Page> {
    const meta = options.meta === true;
    const label = options.label === undefined ? "" : String(options.label);
    const response = await send("query", {
      expression,
      label,
      limit: limitOf(options),
      reverse: options.reverse === true,
      start: (options.start as string | undefined) ?? "",
    });
    const page: Page = { items: response.items.map((item) => shapeItem(item, meta)) };
    if (response.lastKey !== undefined) {
      page.lastKey = response.lastKey;
      page.next = () => call(() => query(expression, { ...options, start: response.lastKey }));
    }
    return page;
  }

  function setRequest(key: unknown, value: unknown, options: Options): { request: MessageInitShape<typeof SetRequestSchema>; chars: number } {
    if (options.created !== undefined && typeof options.created !== "number") {
      throw invalidArgument("INVALID_OPTION", "'created' value must be a number");
    }
    const written = toWriteValue(value);
    const request: MessageInitShape<typeof SetRequestSchema> = {
      key: keyText(key),
      value: written.value,
      unsetAttributes: written.unsetAttributes,
      overwrite: options.overwrite === true,
      removeNulls: typeof options.removeNulls === "boolean" ? options.removeNulls : removeNulls,
    };
    if ("ttl" in options) {
      const ttl = toTtl(options.ttl);
      if (ttl) request.ttl = { kind: ttl };
    }
    if (typeof options.exists === "boolean") request.exists = options.exists;
    if (options.default !== undefined) request.defaultValue = toValue(options.default);
    if (options.created !== undefined) request.created = options.created as number;
    if (options.ifVersion !== undefined) request.ifVersion = versionOf(options.ifVersion);
    for (const name of labelNames(options)) request[name] = { action: toLabelUpdate(name, options[name]) };
    return { request, chars: written.chars };
  }

  /** SE3: every bad item is named by its index, as the service does, not only the first. */
  function seedItems(list: readonly unknown[]): MessageInitShape<typeof BatchSetItemSchema>[] {
    const problems: { index: number; message: string }[] = [];
    let reason: string | undefined;
    const items = list.flatMap((item, index) => {
      try {
        return [batchItem(item, index).item];
      } catch (error) {
        if (!(error instanceof LarderError)) throw error;
        reason ??= error.reason;
        problems.push({ index, message: error.message });
        return [];
      }
    });
    if (problems.length > 0) throw invalidArgument(reason ?? "INVALID_VALUE", badSeedMessage(problems));
    return items;
  }

  function batchItem(item: unknown, index: number): { item: MessageInitShape<typeof BatchSetItemSchema>; chars: number } {
    if (!isPlainObjectValue(item) || typeof item.key !== "string" || item.key.trim() === "") {
      throw invalidArgument("INVALID_KEY", "A string value of 'key' must be provided in each item");
    }
    if (!("value" in item)) throw invalidArgument("INVALID_VALUE", "A 'value' must be provided in each item");
    const written = toWriteValue(item.value);
    const result: MessageInitShape<typeof BatchSetItemSchema> = {
      key: keyText(item.key),
      value: written.value,
      unsetAttributes: written.unsetAttributes,
    };
    if (item.ttl !== undefined) {
      const ttl = toTtl(item.ttl);
      if (ttl) result.ttl = { kind: ttl };
    }
    if (item.default !== undefined) result.defaultValue = toValue(item.default);
    for (const name of labelNames(item)) {
      const label = item[name];
      if (label === undefined || label === null) continue;
      if (typeof label !== "string") {
        throw invalidArgument("INVALID_LABEL", `Invalid '${name}' value in item ${index}: batch items take a string label`);
      }
      result[name] = keyText(label);
    }
    return { item: result, chars: written.chars };
  }

  async function scanPage(options: Options): Promise<Page & { count?: number }> {
    const meta = options.meta === true;
    const response = await send("scan", {
      limit: limitOf(options),
      start: (options.start as string | undefined) ?? "",
      label: options.label === undefined ? "" : String(options.label),
      attributes: (options.attributes as string[] | undefined) ?? [],
      segment: segmentOf(options.segment, "segment"),
      totalSegments: segmentOf(options.totalSegments, "totalSegments"),
      count: options.count === true,
    });
    if (options.count === true) return { items: [], count: Number(response.count ?? 0n) };
    const page: Page = { items: response.items.map((item) => shapeItem(item, meta)) };
    if (response.lastKey !== undefined) {
      page.lastKey = response.lastKey;
      page.next = () => call(() => scanPage({ ...options, start: response.lastKey }));
    }
    return page;
  }

  function watchSource(): WatchSource {
    return async function* (request, signal) {
      for await (const message of client.watch({ ...request, jsonValues: true }, { signal })) {
        if (message.kind.case === "started") {
          yield { started: message.kind.value.resumeToken };
        } else if (message.kind.case === "event") {
          const event = message.kind.value;
          const item = event.item as Item;
          yield {
            event: {
              key: item.key,
              event: {
                name: event.name as "created" | "updated" | "deleted",
                item: toMetaItem(item),
                ...(event.previous ? { previous: toMetaItem(event.previous) } : {}),
                id: event.id,
                time: event.time ? timestampDate(event.time) : new Date(),
                resumeToken: event.resumeToken,
                expired: event.expired,
              },
            },
          };
        }
      }
    };
  }

  const data = {
    get removeNulls(): boolean {
      return removeNulls;
    },
    set removeNulls(value: boolean) {
      if (typeof value !== "boolean") throw new LarderError("INVALID_ARGUMENT", "removeNulls must be a boolean value", "INVALID_OPTION");
      removeNulls = value;
    },

    get(keys: unknown, rawOptions?: unknown): Promise<any> {
      return call(async () => {
        const options = optionsOf(rawOptions);
        if (Array.isArray(keys)) {
          // B2, L6: a batch get takes only `meta`.
          const extra = Object.keys(options).filter((name) => name !== "meta" && options[name] !== undefined);
          // Includes asOf: a batch get reads now.
          if (extra.length > 0) {
            throw invalidArgument("INVALID_OPTION", `Invalid options for batch get request: ${extra.join(", ")}`);
          }
          const response = await send("batchGet", { keys: keys.map(keyText) });
          return { items: response.items.map((item) => shapeItem(item, options.meta === true)) };
        }
        const key = keyText(keys);
        const asOf = asOfOf(options.asOf);
        if (asOf !== undefined && (options.label !== undefined || isExpression(key))) {
          throw invalidArgument("INVALID_OPTION", "'asOf' reads one exact key: it cannot be used with a query or a label");
        }
        if (options.label !== undefined || isExpression(key)) return query(key, options);
        const response = await send("get", asOf === undefined ? { key } : { key, asOf: timestampFromDate(asOf) });
        if (!response.item) return undefined;
        return options.meta === true ? toMetaItem(response.item) : itemValue(response.item);
      });
    },

    getByLabel(label: unknown, keys: unknown, rawOptions?: unknown): Promise<any> {
      return call(async () => {
        const options = optionsOf(rawOptions);
        if (Array.isArray(keys)) {
          throw invalidArgument("INVALID_OPTION", "Invalid options for batch get request: label");
        }
        return data.get(keys, { ...options, label: String(label) });
      });
    },

    set(keys: unknown, value?: unknown, rawOptions?: unknown): Promise<any> {
      return write(async () => {
        if (Array.isArray(keys)) {
          const options = optionsOf(value);
          let chars = 0;
          const items = keys.map((item, index) => {
            const written = batchItem(item, index);
            chars += written.chars;
            return written.item;
          });
          const request = {
            items,
            overwrite: typeof options.overwrite === "boolean" ? options.overwrite : undefined,
            removeNulls: typeof options.removeNulls === "boolean" ? options.removeNulls : removeNulls,
          };
          const response = await idempotently(options.idempotencyKey, (idempotencyKey) =>
            send("batchSet", { ...request, idempotencyKey }, chars),
          );
          return { items: response.items.map((item) => shapeItem(item, options.meta === true)) };
        }
        const options = optionsOf(rawOptions);
        const { request, chars } = setRequest(keys, value, options);
        const response = await idempotently(options.idempotencyKey, (idempotencyKey) => send("set", { ...request, idempotencyKey }, chars));
        const item = response.item as Item;
        return options.meta === true ? toMetaItem(item) : itemValue(item);
      });
    },

    count(first: unknown, second?: unknown): Promise<number> {
      return call(async () => {
        // count(expression) or count(label, expression), like getByLabel's order.
        const byLabel = second !== undefined;
        if (byLabel && typeof first !== "string") throw invalidArgument("INVALID_LABEL", "The label to count by must be a string such as 'label1'");
        const response = await send("count", {
          expression: keyText(byLabel ? second : first),
          label: byLabel ? (first as string) : "",
        });
        return Number(response.count);
      });
    },

    history(key: unknown, rawOptions?: unknown): Promise<any> {
      return call(() => historyPage(keyText(key), optionsOf(rawOptions)));
    },

    add(key: string, attribute: unknown, value?: unknown, rawOptions?: unknown): Promise<any> {
      return write(async () => {
        // add(key, n, opts) or add(key, attribute, n, opts) (AD1).
        const counterForm = typeof attribute === "number";
        const amount = counterForm ? attribute : value;
        const options = optionsOf(counterForm ? value : rawOptions);
        if (typeof amount !== "number" || !Number.isFinite(amount)) {
          throw invalidArgument("INVALID_VALUE", "Values must be numeric");
        }
        const request = {
          key: keyText(key),
          attribute: counterForm ? undefined : wellFormed(String(attribute)),
          amount,
          overwrite: options.overwrite === true,
          ifVersion: options.ifVersion === undefined ? undefined : versionOf(options.ifVersion),
        };
        const response = await idempotently(options.idempotencyKey, (idempotencyKey) => send("add", { ...request, idempotencyKey }));
        const item = response.item as Item;
        return options.meta === true ? toMetaItem(item) : itemValue(item);
      });
    },

    remove(keys: unknown, rawOptions?: unknown): Promise<boolean> {
      return write(async () => {
        const options = optionsOf(rawOptions);
        const request = {
          keys: (Array.isArray(keys) ? keys : [keys]).map(keyText),
          ifVersion: options.ifVersion === undefined ? undefined : versionOf(options.ifVersion),
        };
        await idempotently(options.idempotencyKey, (idempotencyKey) => send("remove", { ...request, idempotencyKey }));
        return true;
      });
    },

    scan(rawOptions?: unknown): Promise<any> {
      return call(async () => scanPage(optionsOf(rawOptions)));
    },

    seed(items: unknown, rawOptions?: unknown): Promise<{ items: number }> {
      return write(async () => {
        // SE2: `true` here means `{ overwrite: true }`.
        const options = rawOptions === true ? { overwrite: true } : optionsOf(rawOptions);
        const list = typeof items === "string" ? await readSeedFile(items, readFile) : items;
        if (!Array.isArray(list)) throw invalidArgument("INVALID_VALUE", "seed takes an array of items or the path of a JSON file holding one");
        const response = await client.seed({ items: seedItems(list), overwrite: options.overwrite === true });
        return { items: Number(response.items) };
      });
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
      dispatcher ??= new EventDispatcher(watchSource(), {
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

async function readSeedFile(path: string, readFile: DataOptions["readFile"]): Promise<unknown> {
  if (!readFile) {
    throw invalidArgument("INVALID_VALUE", "seed can read a JSON file only in Node; pass the array of items instead");
  }
  let text: string;
  try {
    text = await readFile(path);
  } catch (error) {
    throw invalidArgument("INVALID_VALUE", `Cannot read the seed file ${path}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw invalidArgument("INVALID_VALUE", `The seed file ${path} is not JSON: ${(error as Error).message}`);
  }
}
