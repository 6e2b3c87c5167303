import { toBinary, toJson, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs, ValueSchema, type Timestamp, type Value } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { Logger } from "pino";
import {
  DataService,
  type AddRequest,
  type AddResponseSchema,
  type BatchGetRequest,
  type BatchGetResponseSchema,
  type BatchSetItem,
  type BatchSetRequest,
  type BatchSetResponseSchema,
  type CountRequest,
  type CountResponseSchema,
  type GetRequest,
  type GetResponseSchema,
  type HistoryRequest,
  type HistoryResponseSchema,
  type ItemSchema,
  type LabelUpdate,
  type Operation,
  type OperationResultSchema,
  type QueryRequest,
  type QueryResponseSchema,
  type RemoveRequest,
  type RemoveResponseSchema,
  type ScanRequest,
  type ScanResponseSchema,
  type SetRequest,
  type SetResponseSchema,
  type Ttl,
} from "../gen/larder/data/v1/data_pb.js";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { DataOperations, type Clock } from "./data-operations.js";
import { invalidArgument } from "../core/errors.js";
import type { JsonValue } from "../core/json.js";
import { labelsOf } from "../core/item.js";
import type { LabelInput, SetInput } from "../core/set-plan.js";
import type { TtlInput } from "../core/ttl.js";
import { guarded, toConnectError } from "./errors.js";
import { checkPipelineSize, MAX_PIPELINE_ANSWER_BYTES, pipelineAnswerFull } from "../core/limits.js";
import { DATA_SERVICE, roleAllows } from "./access/roles.js";
import { roleRefusal } from "./access/auth-interceptor.js";
import type { Engine } from "./stores/engine.js";
import type { ReadOptions, Store } from "./stores/store.js";
import { principalKey } from "./access/principal.js";
import { dataEnvironment } from "./access/tenancy.js";
import { watchChanges, type WatchObserver } from "./feed/watch.js";
import { timestampToMs, toItem, type ValueForm } from "./item-message.js";

export interface DataServiceDeps {
  /** Every call runs in its caller's environment (from the API key), never in one the request names. */
  readonly engine: Engine;
  readonly shutdownSignal: AbortSignal;
  readonly log: Logger;
  readonly clock?: Clock;
  /** An observer for each Watch stream, by the caller's environment (metrics). */
  readonly watchObserver?: (environment: string) => WatchObserver;
}

/**
 * The DataService handlers: protobuf in, domain operations, protobuf out.
 * Every failure leaves here as a ConnectError, mapped once by toConnectError.
 */
export function registerDataService(router: ConnectRouter, deps: DataServiceDeps): void {
  router.service(DataService, createDataService(deps));
}

export function createDataService(deps: DataServiceDeps): ServiceImpl<typeof DataService> {
  const operationsByStore = new WeakMap<Store, DataOperations>();
  async function environmentOf(context: HandlerContext): Promise<Store> {
    return deps.engine.environment(dataEnvironment(context.values.get(principalKey)));
  }
  async function operationsOf(context: HandlerContext): Promise<DataOperations> {
    const store = await environmentOf(context);
    let operations = operationsByStore.get(store);
    if (!operations) {
      operations = new DataOperations(store, deps.clock);
      operationsByStore.set(store, operations);
    }
    return operations;
  }
  const calls = {
    async get(request: GetRequest, context: HandlerContext, form: ValueForm): Promise<Init<typeof GetResponseSchema>> {
      const asOf = request.asOf && asOfMs(request.asOf);
      const item = await (await operationsOf(context)).get(request.key, readsOf(context), asOf);
      return { item: item && toItem(item, form) };
    },
    async history(request: HistoryRequest, context: HandlerContext): Promise<Init<typeof HistoryResponseSchema>> {
      const page = await (await operationsOf(context)).history(request, readsOf(context));
      return {
        entries: page.entries.map((entry) => ({
          name: entry.name,
          expired: entry.expired,
          time: timestampFromMs(entry.time),
          item: toItem(entry.item, "value"),
        })),
        lastKey: page.lastKey,
      };
    },
    async batchGet(request: BatchGetRequest, context: HandlerContext, form: ValueForm): Promise<Init<typeof BatchGetResponseSchema>> {
      const items = await (await operationsOf(context)).batchGet(request.keys, readsOf(context));
      return { items: items.map((item) => toItem(item, form)) };
    },
    async query(request: QueryRequest, context: HandlerContext, form: ValueForm): Promise<Init<typeof QueryResponseSchema>> {
      const page = await (await operationsOf(context)).query(request, readsOf(context));
      return { items: page.items.map((item) => toItem(item, form)), lastKey: page.lastKey };
    },
    async count(request: CountRequest, context: HandlerContext): Promise<Init<typeof CountResponseSchema>> {
      const count = await (await operationsOf(context)).count(request, readsOf(context));
      return { count: BigInt(count) };
    },
    async set(request: SetRequest, context: HandlerContext, form: ValueForm): Promise<Init<typeof SetResponseSchema>> {
      const item = await (await operationsOf(context)).set(toSetInput(request), request.idempotencyKey);
      return { item: toItem(item, form) };
    },
    async batchSet(request: BatchSetRequest, context: HandlerContext, form: ValueForm): Promise<Init<typeof BatchSetResponseSchema>> {
      const operations = await operationsOf(context);
      const items = await operations.batchSet(
        request.items.map((item) => toBatchInput(item, request.removeNulls)),
        {
          overwrite: request.overwrite,
          removeNulls: request.removeNulls ?? true,
        },
        request.idempotencyKey,
      );
      return { items: items.map((item) => toItem(item, form)) };
    },
    async add(request: AddRequest, context: HandlerContext, form: ValueForm): Promise<Init<typeof AddResponseSchema>> {
      const item = await (
        await operationsOf(context)
      ).add(
        {
          key: request.key,
          attribute: request.attribute,
          amount: request.amount,
          overwrite: request.overwrite,
          ifVersion: versionOf(request.ifVersion),
        },
        request.idempotencyKey,
      );
      return { item: toItem(item, form) };
    },
    async remove(request: RemoveRequest, context: HandlerContext): Promise<Init<typeof RemoveResponseSchema>> {
      const removed = await (await operationsOf(context)).remove(request.keys, { ifVersion: versionOf(request.ifVersion) }, request.idempotencyKey);
      return { removedKeys: removed.map((key) => key.full) };
    },
    async scan(request: ScanRequest, context: HandlerContext, form: ValueForm): Promise<Init<typeof ScanResponseSchema>> {
      const page = await (await operationsOf(context)).scan(request, readsOf(context));
      return {
        items: page.items.map((item) => toItem(item, form)),
        lastKey: page.lastKey,
        count: page.count === undefined ? undefined : BigInt(page.count),
      };
    },
  };

  /** One operation of a Pipeline, answered as its own call would have been: its result or its status. */
  async function runOperation(operation: Operation, context: HandlerContext, form: ValueForm): Promise<Init<typeof OperationResultSchema>> {
    try {
      const kind = operation.kind;
      if (kind.case === undefined) throw invalidArgument("INVALID_OPTION", "Each operation of a pipeline must name its call");
      // A deadline that passed or a caller that left: the rest is answered as those calls would be, unstarted.
      context.signal.throwIfAborted();
      const principal = context.values.get(principalKey);
      const method = PIPELINED_METHODS[kind.case];
      if (!roleAllows(principal.role, DATA_SERVICE, method)) throw roleRefusal(principal, DATA_SERVICE, method);
      switch (kind.case) {
        case "get":
          return { kind: { case: kind.case, value: await calls.get(kind.value, context, form) } };
        case "batchGet":
          return { kind: { case: kind.case, value: await calls.batchGet(kind.value, context, form) } };
        case "query":
          return { kind: { case: kind.case, value: await calls.query(kind.value, context, form) } };
        case "set":
          return { kind: { case: kind.case, value: await calls.set(kind.value, context, form) } };
        case "batchSet":
          return { kind: { case: kind.case, value: await calls.batchSet(kind.value, context, form) } };
        case "add":
          return { kind: { case: kind.case, value: await calls.add(kind.value, context, form) } };
        case "remove":
          return { kind: { case: kind.case, value: await calls.remove(kind.value, context) } };
        case "scan":
          return { kind: { case: kind.case, value: await calls.scan(kind.value, context, form) } };
        case "count":
          return { kind: { case: kind.case, value: await calls.count(kind.value, context) } };
      }
    } catch (error) {
      return errorResult(error);
    }
  }

  return {
    get: (request, context) => guarded(() => calls.get(request, context, "value")),
    batchGet: (request, context) => guarded(() => calls.batchGet(request, context, "value")),
    query: (request, context) => guarded(() => calls.query(request, context, "value")),
    count: (request, context) => guarded(() => calls.count(request, context)),
    history: (request, context) => guarded(() => calls.history(request, context)),
    set: (request, context) => guarded(() => calls.set(request, context, "value")),
    batchSet: (request, context) => guarded(() => calls.batchSet(request, context, "value")),
    add: (request, context) => guarded(() => calls.add(request, context, "value")),
    remove: (request, context) => guarded(() => calls.remove(request, context)),
    scan: (request, context) => guarded(() => calls.scan(request, context, "value")),
    async pipeline(request, context) {
      return guarded(async () => {
        checkPipelineSize(request.operations.length);
        const form: ValueForm = request.jsonValues ? "json" : "value";
        const results: Init<typeof OperationResultSchema>[] = [];
        // The answer is bounded as a whole: once it holds MAX_PIPELINE_ANSWER_BYTES, the rest is not run (in
        // order, so nothing runs after an operation that did not), and a read that would pass it is dropped
        // unanswered (it changed nothing). The first operation is always answered, as its own call would be.
        let answered = 0;
        let full = false;
        let ranSince = performance.now();
        // One after the other, in request order: each sees the writes of those before it.
        for (const operation of request.operations) {
          if (full) {
            results.push(errorResult(pipelineAnswerFull()));
            continue;
          }
          // The embedded engine answers synchronously: without a turn of the event loop now and then, 100 slow
          // operations (counts of a large namespace) would hold every other caller, and the call's own deadline
          // timer, until the last one, where 100 calls of their own would have taken turns.
          if (performance.now() - ranSince > PIPELINE_TURN_MS) {
            await new Promise((resolve) => setImmediate(resolve));
            ranSince = performance.now();
          }
          const result = await runOperation(operation, context, form);
          const bytes = answerBytes(result);
          if (answered > 0 && answered + bytes > MAX_PIPELINE_ANSWER_BYTES && isRead(operation)) {
            full = true;
            results.push(errorResult(pipelineAnswerFull()));
            continue;
          }
          answered += bytes;
          full = answered >= MAX_PIPELINE_ANSWER_BYTES;
          results.push(result);
        }
        return { results };
      });
    },
    async seed(request, context) {
      return guarded(async () => {
        const operations = await operationsOf(context);
        const written = await operations.seed(
          request.items.map((item) => toBatchInput(item, undefined)),
          request.overwrite,
          context.signal,
        );
        return { items: BigInt(written) };
      });
    },
    async *watch(request, context) {
      const store = await guarded(() => environmentOf(context));
      const observer = deps.watchObserver?.(dataEnvironment(context.values.get(principalKey)));
      yield* watchChanges(store.feed, request, context.signal, deps.shutdownSignal, observer, {
        values: request.jsonValues ? "json" : "value",
        // gRPC, gRPC-Web and Connect streams say +json in their content type when they are JSON.
        binary: !(context.requestHeader.get("content-type") ?? "").includes("json"),
      });
    },
    async ack(request, context) {
      return guarded(async () => {
        await (await environmentOf(context)).feed.acknowledge(request.subscription, request.resumeToken);
        return {};
      });
    },
    async namespaces(request, context) {
      return guarded(async () => (await operationsOf(context)).namespaces(request, readsOf(context)));
    },
    async ping() {
      return {};
    },
  };
}

type Init<Schema extends DescMessage> = MessageInitShape<Schema>;

/** The RPC each pipelined operation stands for: its role check is that RPC's. */
const PIPELINED_METHODS: Record<NonNullable<Operation["kind"]["case"]>, string> = {
  get: "Get",
  batchGet: "BatchGet",
  query: "Query",
  set: "Set",
  batchSet: "BatchSet",
  add: "Add",
  remove: "Remove",
  scan: "Scan",
  count: "Count",
};

/** How long a Pipeline runs operations before it lets other callers' work in (a turn of the event loop). */
const PIPELINE_TURN_MS = 5;

/** An operation's status as its result: what its own call would have ended with. */
function errorResult(error: unknown): Init<typeof OperationResultSchema> {
  const status = toConnectError(error);
  const errorInfo = status.findDetails(ErrorInfoSchema)[0];
  return { kind: { case: "error", value: { code: status.code, message: status.rawMessage, errorInfo } } };
}

const READ_OPERATIONS: ReadonlySet<Operation["kind"]["case"]> = new Set(["get", "batchGet", "query", "scan", "count"]);

function isRead(operation: Operation): boolean {
  return READ_OPERATIONS.has(operation.kind.case);
}

/** The bytes of items an operation's answer carries: keys and values, as JSON text or as the Values built for them. */
function answerBytes(result: Init<typeof OperationResultSchema>): number {
  const answer = result.kind?.value as { item?: Init<typeof ItemSchema>; items?: Init<typeof ItemSchema>[] } | undefined;
  if (answer === undefined || result.kind?.case === "error") return 0;
  const items = answer.items ?? (answer.item ? [answer.item] : []);
  let bytes = 0;
  for (const item of items) {
    bytes += Buffer.byteLength(item.key ?? "");
    if (typeof item.valueJson === "string") bytes += Buffer.byteLength(item.valueJson);
    else if (item.value) bytes += toBinary(ValueSchema, item.value as Value).length;
  }
  return bytes;
}

/** V1: a google.protobuf.Value can carry what JSON cannot (NaN, ±Infinity, no kind at all): refused as a bad value. */
function jsonOf(value: Value | undefined): JsonValue | undefined {
  if (value === undefined) return undefined;
  try {
    return toJson(ValueSchema, value) as JsonValue;
  } catch {
    throw invalidArgument("INVALID_VALUE", "Values must be JSON: NaN, Infinity and a Value with no kind cannot be stored");
  }
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
    labels: labelsOf(request).map(toLabelInput),
    created: request.created,
    removeNulls: request.removeNulls ?? true,
    ifVersion: versionOf(request.ifVersion),
  };
}

/** A uint64 version as a number: versions never pass 2^53 (one write a nanosecond would take 104 days). */
function versionOf(ifVersion: bigint | undefined): number | undefined {
  if (ifVersion === undefined) return undefined;
  if (ifVersion > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw invalidArgument("INVALID_OPTION", "'ifVersion' is larger than any version an item can have");
  }
  return Number(ifVersion);
}

function toBatchInput(item: BatchSetItem, removeNulls: boolean | undefined): SetInput {
  return {
    key: item.key,
    value: jsonOf(item.value),
    unsetAttributes: item.unsetAttributes,
    overwrite: true,
    ttl: toTtlInput(item.ttl),
    defaultValue: jsonOf(item.defaultValue),
    labels: labelsOf(item).map((label) => (label === undefined ? undefined : { set: label })),
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
      return { at: timestampToMs(ttl.kind.value) };
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

/** A Timestamp the wire allows but that names no instant (nanos out of range) is refused, not wrapped. */
function asOfMs(timestamp: Timestamp): number {
  if (timestamp.nanos < 0 || timestamp.nanos > 999_999_999) {
    throw invalidArgument("INVALID_OPTION", "'asOf' must be a valid Timestamp (nanos from 0 to 999999999)");
  }
  return timestampToMs(timestamp);
}

/** Reads stop at the call's deadline: a database can drop work nobody waits for. */
function readsOf(context: HandlerContext): ReadOptions {
  return { timeoutMs: context.timeoutMs() };
}
