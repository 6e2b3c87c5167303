import { toJson } from "@bufbuild/protobuf";
import { timestampDate, ValueSchema, type Timestamp, type Value } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import type { Logger } from "pino";
import {
  DataService,
  type BatchSetItem,
  type LabelUpdate,
  type SetRequest,
  type Ttl,
} from "../gen/larder/data/v1/data_pb.js";
import { DataOperations, type Clock } from "./data-operations.js";
import type { JsonValue } from "./domain/json.js";
import type { LabelInput, SetInput, TtlInput } from "./domain/set-plan.js";
import { guarded, toConnectError } from "./errors.js";
import type { Store } from "./stores/store.js";
import { watchChanges } from "./feed/watch.js";
import { toItem } from "./item-message.js";

export interface DataServiceDeps {
  readonly store: Store;
  readonly shutdownSignal: AbortSignal;
  readonly log: Logger;
  readonly clock?: Clock;
}

/**
 * The DataService handlers: protobuf in, domain operations, protobuf out.
 * Every failure leaves here as a ConnectError, mapped once by toConnectError.
 */
export function registerDataService(router: ConnectRouter, deps: DataServiceDeps): void {
  router.service(DataService, createDataService(deps));
}

export function createDataService(deps: DataServiceDeps): ServiceImpl<typeof DataService> {
  const operations = new DataOperations(deps.store, deps.clock);
  return {
    async get(request) {
      return guarded(async () => {
        const item = await operations.get(request.key);
        return { item: item && toItem(item) };
      });
    },
    async batchGet(request) {
      return guarded(async () => ({ items: (await operations.batchGet(request.keys)).map(toItem) }));
    },
    async query(request) {
      return guarded(async () => {
        const page = await operations.query(request);
        return { items: page.items.map(toItem), lastKey: page.lastKey };
      });
    },
    async set(request) {
      return guarded(async () => ({ item: toItem(await operations.set(toSetInput(request))) }));
    },
    async batchSet(request) {
      return guarded(async () => {
        const items = await operations.batchSet(request.items.map((item) => toBatchInput(item, request.removeNulls)), {
          overwrite: request.overwrite,
          removeNulls: request.removeNulls ?? true,
        });
        return { items: items.map(toItem) };
      });
    },
    async add(request) {
      return guarded(async () => ({
        item: toItem(
          await operations.add({
            key: request.key,
            attribute: request.attribute,
            amount: request.amount,
            overwrite: request.overwrite,
          }),
        ),
      }));
    },
    async remove(request) {
      return guarded(async () => ({ removedKeys: (await operations.remove(request.keys)).map((key) => key.full) }));
    },
    async scan(request) {
      return guarded(async () => {
        const page = await operations.scan(request);
        return {
          items: page.items.map(toItem),
          lastKey: page.lastKey,
          count: page.count === undefined ? undefined : BigInt(page.count),
        };
      });
    },
    async seed(request) {
      return guarded(async () => {
        const written = await operations.seed(
          request.items.map((item) => toBatchInput(item, undefined)),
          request.overwrite,
        );
        return { items: BigInt(written) };
      });
    },
    async *watch(request, context) {
      yield* watchChanges(deps.store.feed, request, context.signal, deps.shutdownSignal);
    },
    async ack(request) {
      return guarded(async () => {
        await deps.store.feed.acknowledge(request.subscription, request.resumeToken);
        return {};
      });
    },
    async ping() {
      return {};
    },
  };
}

function jsonOf(value: Value | undefined): JsonValue | undefined {
  return value === undefined ? undefined : (toJson(ValueSchema, value) as JsonValue);
}

function toSetInput(request: SetRequest): SetInput {
  return {
    key: request.key,
    value: jsonOf(request.value),
    unsetAttributes: request.unsetAttributes,
    overwrite: request.overwrite,
    ttl: toTtlInput(request.ttl),
    exists: request.exists,
    defaultValue: jsonOf(request.defaultValue),
    labels: [request.label1, request.label2, request.label3, request.label4, request.label5].map(toLabelInput),
    created: request.created,
    removeNulls: request.removeNulls ?? true,
  };
}

function toBatchInput(item: BatchSetItem, removeNulls: boolean | undefined): SetInput {
  return {
    key: item.key,
    value: jsonOf(item.value),
    unsetAttributes: item.unsetAttributes,
    overwrite: true,
    ttl: toTtlInput(item.ttl),
    defaultValue: jsonOf(item.defaultValue),
    labels: [item.label1, item.label2, item.label3, item.label4, item.label5].map((label) =>
      label === undefined ? undefined : { set: label },
    ),
    removeNulls: removeNulls ?? true,
  };
}

function toTtlInput(ttl: Ttl | undefined): TtlInput | undefined {
  switch (ttl?.kind.case) {
    case "seconds":
      return { seconds: ttl.kind.value };
    case "date":
      return { date: ttl.kind.value };
    case "at":
      return { at: timestampMs(ttl.kind.value) };
    case "remove":
      return ttl.kind.value ? { remove: true } : undefined;
    default:
      return undefined;
  }
}

function toLabelInput(update: LabelUpdate | undefined): LabelInput | undefined {
  switch (update?.action.case) {
    case "set":
      return { set: update.action.value };
    case "setIfAbsent":
      return { setIfAbsent: update.action.value };
    case "remove":
      return update.action.value ? { remove: true } : undefined;
    default:
      return undefined;
  }
}

function timestampMs(timestamp: Timestamp): number {
  return timestampDate(timestamp).getTime();
}
