import type { MessageInitShape } from "@bufbuild/protobuf";
import { ConnectError, type CallOptions, type Client, type Code, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { pipelined, type OperationName } from "../../client/pipeline.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import type { DataService, OperationResultSchema, PipelineRequest } from "../../gen/larder/data/v1/data_pb.js";

type Unary = (request: unknown, context: HandlerContext) => unknown;

/**
 * A Pipeline handler for an in-process test double of DataService: each
 * operation goes to the double's own handler of that call, in order, and a
 * failure becomes that operation's error, as the service answers. With it a
 * double written per RPC keeps recording what the (pipelining) client sends.
 */
export function pipelineOver(service: Partial<ServiceImpl<typeof DataService>>): ServiceImpl<typeof DataService>["pipeline"] {
  return async (request: PipelineRequest, context: HandlerContext) => {
    const results: MessageInitShape<typeof OperationResultSchema>[] = [];
    for (const operation of request.operations) {
      const { case: name, value } = operation.kind;
      try {
        const handler = name && (service[name] as Unary | undefined);
        if (!handler) throw new ConnectError(`the test double has no ${name}`);
        results.push({ kind: { case: name, value: (await handler(value, context)) as never } });
      } catch (error) {
        const status = ConnectError.from(error);
        const errorInfo = status.findDetails(ErrorInfoSchema)[0];
        results.push({ kind: { case: "error", value: { code: status.code, message: status.rawMessage, errorInfo } } });
      }
    }
    return { results };
  };
}

/**
 * A DataService client whose unary data calls travel as the TypeScript client
 * sends them: the calls of one tick together in Pipeline RPCs (values as
 * google.protobuf.Value, so responses compare equal to direct calls'), each
 * failed operation rejected with the ConnectError its own call would have
 * ended with. Every other method (Seed, Watch, Ack, Ping, Pipeline) is direct.
 */
export function pipelinedClient(client: Client<typeof DataService>): Client<typeof DataService> {
  const send = pipelined(client, {
    jsonValues: false,
    failure: (error) =>
      new ConnectError(error.message, error.code as Code, undefined, error.errorInfo ? [{ desc: ErrorInfoSchema, value: error.errorInfo }] : []),
  });
  return new Proxy(client, {
    get(target, method: string) {
      if (!PIPELINED.has(method)) return target[method as keyof typeof target];
      return (request: never, options?: CallOptions) => {
        // Per-call options (a deadline, headers) belong to a call of its own.
        if (options !== undefined) return (target[method as OperationName] as (request: never, options: CallOptions) => unknown)(request, options);
        return send(method as OperationName, request);
      };
    },
  });
}

const PIPELINED = new Set<string>(["get", "batchGet", "query", "count", "set", "batchSet", "add", "remove", "scan"]);
