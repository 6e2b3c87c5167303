import type { Client } from "@connectrpc/connect";
import type { DataService, Item } from "../gen/larder/data/v1/data_pb.js";
import { itemValue, keyText, shapeItem, toMetaItem, wellFormed } from "./convert.js";
import { invalidArgument } from "./errors.js";
import { optionsOf, versionOf } from "./options.js";
import type { Send } from "./pipeline.js";
import type { Idempotently } from "./retries.js";
import { batchItem, readSeedFile, seedItems, setRequest } from "./write-requests.js";

/** The writes of `data`; each but seed is sent with an idempotency key, and again while it fails UNAVAILABLE. */
export interface Writes {
  set(keys: unknown, value: unknown, rawOptions: unknown): Promise<unknown>;
  add(key: string, attribute: unknown, value: unknown, rawOptions: unknown): Promise<unknown>;
  remove(keys: unknown, rawOptions: unknown): Promise<boolean>;
  seed(items: unknown, rawOptions: unknown): Promise<{ items: number }>;
}

export interface WritesContext {
  readonly client: Client<typeof DataService>;
  readonly send: Send;
  readonly idempotently: Idempotently;
  /** The client's `removeNulls` setting now: a write's own option overrides it. */
  readonly removeNulls: () => boolean;
  /** Reads a seed file (Node only): see DataOptions.readFile. */
  readonly readFile?: (path: string) => Promise<string>;
}

export function writes({ client, send, idempotently, removeNulls, readFile }: WritesContext): Writes {
  async function set(keys: unknown, value: unknown, rawOptions: unknown): Promise<unknown> {
    if (Array.isArray(keys)) {
      const options = optionsOf(value);
      let chars = 0;
      const items = keys.map((item, index) => {
        const written = batchItem(item, index);
        chars += written.chars;
        return written.request;
      });
      const request = {
        items,
        overwrite: typeof options.overwrite === "boolean" ? options.overwrite : undefined,
        removeNulls: typeof options.removeNulls === "boolean" ? options.removeNulls : removeNulls(),
      };
      const response = await idempotently(options.idempotencyKey, (idempotencyKey) => send("batchSet", { ...request, idempotencyKey }, chars));
      return { items: response.items.map((item) => shapeItem(item, options.meta === true)) };
    }
    const options = optionsOf(rawOptions);
    const { request, chars } = setRequest(keys, value, options, removeNulls());
    const response = await idempotently(options.idempotencyKey, (idempotencyKey) => send("set", { ...request, idempotencyKey }, chars));
    const item = response.item as Item;
    return options.meta === true ? toMetaItem(item) : itemValue(item);
  }

  async function add(key: string, attribute: unknown, value: unknown, rawOptions: unknown): Promise<unknown> {
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
  }

  async function remove(keys: unknown, rawOptions: unknown): Promise<boolean> {
    const options = optionsOf(rawOptions);
    const request = {
      keys: (Array.isArray(keys) ? keys : [keys]).map(keyText),
      ifVersion: options.ifVersion === undefined ? undefined : versionOf(options.ifVersion),
    };
    await idempotently(options.idempotencyKey, (idempotencyKey) => send("remove", { ...request, idempotencyKey }));
    return true;
  }

  async function seed(items: unknown, rawOptions: unknown): Promise<{ items: number }> {
    // SE2: `true` here means `{ overwrite: true }`.
    const options = rawOptions === true ? { overwrite: true } : optionsOf(rawOptions);
    const list = typeof items === "string" ? await readSeedFile(items, readFile) : items;
    if (!Array.isArray(list)) throw invalidArgument("INVALID_VALUE", "seed takes an array of items or the path of a JSON file holding one");
    const response = await client.seed({ items: seedItems(list), overwrite: options.overwrite === true });
    return { items: Number(response.items) };
  }

  return { set, add, remove, seed };
}
