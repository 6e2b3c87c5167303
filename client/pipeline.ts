import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import type { DataService, OperationError, OperationResult, OperationSchema } from "../gen/larder/data/v1/data_pb.js";
import { codeName, LarderError } from "./errors.js";

/** The calls a Pipeline carries, by their name in `Operation.kind`. */
export type OperationName = NonNullable<OperationResult["kind"]["case"]> extends infer N ? Exclude<N, "error"> : never;
type OperationInit = NonNullable<MessageInitShape<typeof OperationSchema>["kind"]>;
export type RequestOf<N extends OperationName> = Extract<OperationInit, { case: N }>["value"];
export type ResponseOf<N extends OperationName> = Extract<OperationResult["kind"], { case: N }>["value"];

/**
 * Sends one call and answers it as its RPC would: what the client's methods use,
 * pipelined or not. `valueChars`: the size of a write's values as JSON text.
 */
export type Send = <N extends OperationName>(name: N, request: RequestOf<N>, valueChars?: number) => Promise<ResponseOf<N>>;

/** The service's bound (MAX_PIPELINE_OPERATIONS): a fuller tick travels in several calls. */
export const MAX_OPERATIONS = 100;

/**
 * What one Pipeline call may carry in values, counted as JSON text. Far below
 * the service's message limit (16 MiB by default) even as protobuf, which can
 * spend 11 bytes on a number JSON writes in 2; a larger write travels alone.
 */
export const MAX_PIPELINE_VALUE_CHARS = 1 << 20;

/** The reason of operations a Pipeline left unrun because its answer was full (the first is always run). */
const ANSWER_FULL = "PIPELINE_ANSWER_FULL";

export interface PipelineOptions {
  /** Values as JSON text (default) or as google.protobuf.Value. */
  readonly jsonValues?: boolean;
  /** What a failed operation rejects with; default a LarderError with the code, message and reason of its status. */
  readonly failure?: (error: OperationError) => unknown;
}

function operationFailure(error: OperationError): LarderError {
  return new LarderError(codeName(error.code), error.message, error.errorInfo?.reason || undefined);
}

interface Pending {
  readonly operation: OperationInit;
  readonly size: number;
  readonly resolve: (response: never) => void;
  readonly reject: (error: unknown) => void;
}

/** The next macrotask: after every microtask, so all calls of this tick (and of the promise chains it resolves) are in. */
const nextTurn: (run: () => void) => void =
  typeof setImmediate === "function"
    ? (run) => void setImmediate(run)
    : (run) => {
        // Browsers: a message is a macrotask without setTimeout's minimum delay.
        const channel = new MessageChannel();
        channel.port1.onmessage = () => {
          channel.port1.close();
          run();
        };
        channel.port2.postMessage(undefined);
      };

/**
 * Automatic pipelining: the calls an application makes in the same tick travel
 * together in one Pipeline RPC and come back as independent results. The
 * service applies them in the order they were made, each as a call of its own
 * (same result, same error, same events), so a caller cannot tell the
 * difference except by speed. A lone call leaves on the next turn of the event
 * loop, which costs it microseconds; values come back as JSON text
 * (`json_values`), parsed once here instead of built and walked as
 * google.protobuf.Value on both sides.
 */
export function pipelined(client: Client<typeof DataService>, options: PipelineOptions = {}): Send {
  const jsonValues = options.jsonValues ?? true;
  const failure = options.failure ?? operationFailure;
  let pending: Pending[] = [];
  let pendingSize = 0;
  let scheduled = false;

  const flush = () => {
    scheduled = false;
    const batch = pending;
    pending = [];
    pendingSize = 0;
    if (batch.length > 0) void dispatch(batch);
  };

  async function dispatch(batch: Pending[]): Promise<void> {
    let results: OperationResult[];
    try {
      ({ results } = await client.pipeline({ operations: batch.map((entry) => ({ kind: entry.operation })), jsonValues }));
    } catch (error) {
      // The call as a whole failed (no connection, refused key, overload): so would each call alone.
      for (const entry of batch) entry.reject(error);
      return;
    }
    // The service answers at most so many bytes of items per call, and leaves the rest unrun, in order: sent again.
    const unrun = results.findIndex((result) => result.kind.case === "error" && result.kind.value.errorInfo?.reason === ANSWER_FULL);
    if (unrun > 0) void dispatch(batch.slice(unrun));
    batch.slice(0, unrun > 0 ? unrun : batch.length).forEach((entry, index) => {
      const result = results[index]?.kind;
      if (result === undefined || result.case === undefined) {
        entry.reject(new LarderError("INTERNAL", "The service sent no result for this operation"));
      } else if (result.case === "error") {
        entry.reject(failure(result.value));
      } else {
        entry.resolve(result.value as never);
      }
    });
  }

  return <N extends OperationName>(name: N, request: RequestOf<N>, size = 0) =>
    new Promise<ResponseOf<N>>((resolve, reject) => {
      if (pending.length >= MAX_OPERATIONS || (pending.length > 0 && pendingSize + size > MAX_PIPELINE_VALUE_CHARS)) flush();
      pending.push({ operation: { case: name, value: request } as OperationInit, size, resolve, reject });
      pendingSize += size;
      if (!scheduled) {
        scheduled = true;
        nextTurn(flush);
      }
    });
}

/** Without pipelining: each call is its own RPC, with values as google.protobuf.Value (for services before Pipeline). */
export function unpipelined(client: Client<typeof DataService>): Send {
  return <N extends OperationName>(name: N, request: RequestOf<N>) =>
    (client[name] as unknown as (request: RequestOf<N>) => Promise<ResponseOf<N>>)(request);
}
