import { fromJson, toJson, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs, ValueSchema } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { AdminService, type ExportedItem, type ExportedItemSchema } from "../gen/larder/admin/v1/admin_pb.js";
import { isEnvironmentName, type Principal } from "./access/api-keys.js";
import { principalKey } from "./access/principal.js";
import { checkManages, mayManage } from "./access/tenancy.js";
import { DomainError, invalidArgument } from "../core/errors.js";
import { MAX_PAGE_BYTES } from "../core/limits.js";
import { labelsOf, namedLabels, type ItemRecord } from "../core/item.js";
import type { JsonValue } from "../core/json.js";
import { sizedRuns } from "../core/runs.js";
import { itemSize } from "../core/values.js";
import { bulkChunks } from "../core/bulk-chunks.js";
import { planSeed, type SetInput } from "../core/set-plan.js";
import { asyncChunks } from "./data-operations.js";
import { guarded, toConnectError } from "./errors.js";
import type { Engine } from "./stores/engine.js";
import type { Key } from "../core/keys.js";
import type { BulkOptions, Store } from "./stores/store.js";
import { timestampToMs } from "./item-message.js";

/** Exports stream in chunks of this many items; imports write in chunks of this many. */
const CHUNK = 500;
/**
 * An export message holds at most this much item JSON (V8's measure), so 500
 * items of up to 400 KB each never exceed LARDER_MAX_MESSAGE_BYTES (at least
 * 11 MiB), whatever protobuf adds to the JSON size.
 */
const EXPORT_MESSAGE_BYTES = 4 * 1024 * 1024;

export interface AdminServiceDeps {
  readonly engine: Engine;
  readonly clock?: () => number;
}

export function registerAdminService(router: ConnectRouter, deps: AdminServiceDeps): void {
  router.service(AdminService, createAdminService(deps));
}

/**
 * Environments as a whole: list, create, drop, and moving data in the shape
 * of Ampt's data.json. Every environment a request names is checked against
 * the caller's key first (a key bound to one environment acts only there),
 * before its name is even validated, so a refusal says nothing about other
 * environments.
 */
export function createAdminService({ engine, clock = Date.now }: AdminServiceDeps): ServiceImpl<typeof AdminService> {
  async function describe(name: string) {
    const store = await engine.environment(name);
    return { name, items: BigInt(await store.count({}, clock())) };
  }

  /** The environment a request names, once the caller may act on it and its name is well formed. */
  function named(context: HandlerContext, name: string): string {
    checkManages(callerOf(context), name);
    checkName(name);
    return name;
  }

  async function existing(name: string): Promise<Store> {
    if (!(await engine.list()).includes(name)) {
      throw new DomainError("NOT_FOUND", "ENVIRONMENT_NOT_FOUND", `There is no environment named '${name}'`);
    }
    return engine.environment(name);
  }

  /**
   * Items in the shape of data.json, each an overwrite (validated first,
   * SE3). With `overwrite` the environment is replaced all or nothing
   * (Store.replaceAll); without, they commit together in one transaction:
   * a request is bounded by LARDER_MAX_MESSAGE_BYTES, so that transaction is too.
   */
  async function importInto(store: Store, items: readonly SetInput[], overwrite: boolean, options: BulkOptions) {
    const now = clock();
    const plans = planSeed(items, now);
    if (overwrite) return store.replaceAll(asyncChunks(bulkChunks(plans)), now, options);
    await store.setMany(plans, now, options);
    return plans.length;
  }

  return {
    async listEnvironments(_request, context) {
      return guarded(async () => {
        const caller = callerOf(context);
        const visible = (await engine.list()).filter((name) => mayManage(caller, name));
        return { environments: await Promise.all(visible.map(describe)) };
      });
    },
    async createEnvironment(request, context) {
      return guarded(async () => {
        const name = named(context, request.name);
        if ((await engine.list()).includes(name)) {
          throw new DomainError("ALREADY_EXISTS", "ENVIRONMENT_EXISTS", `The environment '${name}' already exists`);
        }
        return { environment: await describe(name) };
      });
    },
    async dropEnvironment(request, context) {
      return guarded(async () => {
        const name = named(context, request.name);
        await existing(name);
        await engine.drop(name);
        return {};
      });
    },
    async *exportEnvironment(request, context) {
      try {
        const store = await existing(named(context, request.name));
        for await (const chunk of readAll(store, clock)) {
          for (const message of sizedRuns(chunk, (item) => itemSize(item.key, item.value, item.labels), { bytes: EXPORT_MESSAGE_BYTES }))
            yield { items: message.map(toExported) };
        }
      } catch (error) {
        throw toConnectError(error);
      }
    },
    async importEnvironment(request, context) {
      return guarded(async () => {
        const store = await engine.environment(named(context, request.name));
        const written = await importInto(store, request.items.map(fromExported), request.overwrite, {
          events: !request.skipEvents,
          signal: context.signal,
        });
        return { items: BigInt(written) };
      });
    },
    async cloneEnvironment(request, context) {
      return guarded(async () => {
        const sourceName = named(context, request.source);
        const targetName = named(context, request.target);
        const source = await existing(sourceName);
        if (targetName === sourceName) {
          throw invalidArgument("INVALID_OPTION", "An environment cannot be cloned into itself");
        }
        const target = await engine.environment(targetName);
        // The source is read chunk by chunk as the target stages it: never all of it in memory.
        const now = clock();
        const plans = async function* () {
          for await (const chunk of readAll(source, clock)) yield* bulkChunks(planSeed(chunk.map(toSetInput), now));
        };
        const copied = await target.replaceAll(plans(), now, { events: !request.skipEvents, signal: context.signal });
        return { items: BigInt(copied) };
      });
    },
  };
}

function callerOf(context: HandlerContext): Principal {
  return context.values.get(principalKey);
}

function checkName(name: string): void {
  if (!isEnvironmentName(name)) {
    throw invalidArgument(
      "INVALID_ENVIRONMENT_NAME",
      "Environment names are 1 to 64 characters of a-z, 0-9, '-' and '_', starting with a letter or digit",
    );
  }
}

/** Every live item, in scan order, in chunks. */
async function* readAll(store: Store, clock: () => number): AsyncGenerator<ItemRecord[]> {
  let after: Key | undefined;
  for (;;) {
    // Bounded by bytes as a page is (P7): 500 items of 400 KB would be 200 MB of JSON, and far more decoded.
    const { items, more } = await store.scan({ limit: CHUNK, maxBytes: MAX_PAGE_BYTES, after }, clock());
    if (items.length > 0) yield items;
    if (!more) return;
    after = items[items.length - 1].key;
  }
}

function toExported(item: ItemRecord): MessageInitShape<typeof ExportedItemSchema> {
  return {
    key: item.key.full,
    value: fromJson(ValueSchema, item.value),
    ttl: item.expires === undefined ? undefined : timestampFromMs(item.expires),
    ...namedLabels(item.labels, (label) => label?.full),
  };
}

function fromExported(item: ExportedItem): SetInput {
  return {
    key: item.key,
    value: item.value === undefined ? undefined : (toJson(ValueSchema, item.value) as JsonValue),
    unsetAttributes: [],
    overwrite: true,
    ttl: item.ttl && { at: timestampToMs(item.ttl) },
    labels: labelsOf(item).map((label) => (label === undefined ? undefined : { set: label })),
    removeNulls: false,
  };
}

function toSetInput(item: ItemRecord): SetInput {
  return {
    key: item.key.full,
    value: item.value,
    unsetAttributes: [],
    overwrite: true,
    ttl: item.expires === undefined ? undefined : { at: item.expires },
    labels: item.labels.map((label) => label && { set: label.full }),
    removeNulls: false,
  };
}
