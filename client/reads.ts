import type { Client } from "@connectrpc/connect";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { DataService } from "../gen/larder/data/v1/data_pb.js";
import { textLooksLikeExpression } from "../core/keys.js";
import { itemValue, keyText, shapeItem, toMetaItem } from "./convert.js";
import { invalidArgument } from "./errors.js";
import { asOfOf, limitOf, segmentOf, type Options } from "./options.js";
import type { Send } from "./pipeline.js";
import type { HistoryResponse } from "./types.js";

type Page = { items: unknown[]; lastKey?: string; next?: () => Promise<Page> };
type HistoryPage = HistoryResponse<unknown>;

/** The reads of `data`, each page's `next()` run through `call` (so it keeps its place behind waiting writes). */
export interface Reads {
  get(keys: unknown, options: Options): Promise<unknown>;
  count(first: unknown, second?: unknown): Promise<number>;
  history(key: string, options: Options): Promise<HistoryPage>;
  scan(options: Options): Promise<Page & { count?: number }>;
}

export function reads(client: Client<typeof DataService>, send: Send, call: <T>(body: () => Promise<T>) => Promise<T>): Reads {
  async function get(keys: unknown, options: Options): Promise<unknown> {
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
    if (asOf !== undefined && (options.label !== undefined || textLooksLikeExpression(key))) {
      throw invalidArgument("INVALID_OPTION", "'asOf' reads one exact key: it cannot be used with a query or a label");
    }
    if (options.label !== undefined || textLooksLikeExpression(key)) return query(key, options);
    const response = await send("get", asOf === undefined ? { key } : { key, asOf: timestampFromDate(asOf) });
    if (!response.item) return undefined;
    return options.meta === true ? toMetaItem(response.item) : itemValue(response.item);
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

  /** count(expression) or count(label, expression), like getByLabel's order. */
  async function count(first: unknown, second?: unknown): Promise<number> {
    const byLabel = second !== undefined;
    if (byLabel && typeof first !== "string") throw invalidArgument("INVALID_LABEL", "The label to count by must be a string such as 'label1'");
    const response = await send("count", {
      expression: keyText(byLabel ? second : first),
      label: byLabel ? (first as string) : "",
    });
    return Number(response.count);
  }

  /** History is no Pipeline operation: it travels as a call of its own. */
  async function history(key: string, options: Options): Promise<HistoryPage> {
    if (options.start !== undefined && typeof options.start !== "string")
      throw invalidArgument("INVALID_OPTION", "'start' must be a previous page's lastKey");
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
      page.next = () => call(() => history(key, { ...options, start: response.lastKey }));
    }
    return page;
  }

  async function scan(options: Options): Promise<Page & { count?: number }> {
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
      page.next = () => call(() => scan({ ...options, start: response.lastKey }));
    }
    return page;
  }

  return { get, count, history, scan };
}
