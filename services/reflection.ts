import { clone, fromBinary, toBinary, type DescFile, type DescMessage, type DescService, type MessageInitShape } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, SourceCodeInfoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter, type ServiceImpl } from "@connectrpc/connect";
import { ServerReflection, type ServerReflectionRequest, type ServerReflectionResponseSchema } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionAlpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { sourceInfo } from "../gen/source_info.js";
import { quote } from "../core/errors.js";

type Response = MessageInitShape<typeof ServerReflectionResponseSchema>;

/**
 * gRPC server reflection, v1 and the v1alpha that older grpcurl and many
 * tools still ask for, answered from the same descriptors the server is
 * built from: `grpcurl -plaintext HOST:PORT list` and `describe` work with
 * no .proto files at hand.
 */
export function registerReflection(router: ConnectRouter, services: readonly DescService[], extraFiles: readonly DescFile[] = []): void {
  const all = [...services, ServerReflection, ServerReflectionAlpha];
  const answer = reflectionAnswers(all, extraFiles);
  const impl: ServiceImpl<typeof ServerReflection> = {
    async *serverReflectionInfo(requests) {
      for await (const request of requests) yield answer(request);
    },
  };
  router.service(ServerReflection, impl);
  // v1alpha has the same messages under another package: the same answers fit, field for field.
  router.service(ServerReflectionAlpha, impl as unknown as ServiceImpl<typeof ServerReflectionAlpha>);
}

/** The pure part: a request in, its answer out. */
export function reflectionAnswers(
  services: readonly DescService[],
  extraFiles: readonly DescFile[] = [],
): (request: ServerReflectionRequest) => Response {
  const files = withDependencies([...services.map((service) => service.file), ...extraFiles]);
  const symbols = symbolTable(files);
  const byName = new Map(files.map((file) => [file.proto.name, file]));
  const serviceNames = services.map((service) => service.typeName).sort();
  // Encoded once: each file as served, with its comments put back (protoc-gen-es embeds descriptors without them).
  const encoded = new Map(files.map((file) => [file.proto.name, toBinary(FileDescriptorProtoSchema, withComments(file))]));

  function fileContaining(symbol: string): DescFile | undefined {
    // A method, `pkg.Service.Method`, lives in its service's file.
    return symbols.get(symbol) ?? symbols.get(`method:${symbol}`);
  }

  return (request) => {
    const base = { validHost: request.host, originalRequest: request };
    const notFound = (message: string): Response => ({
      ...base,
      messageResponse: { case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage: message } },
    });
    const filesResponse = (file: DescFile): Response => ({
      ...base,
      messageResponse: {
        case: "fileDescriptorResponse",
        value: {
          // The file asked for comes first: clients (grpcurl among them) read it as the answer.
          fileDescriptorProto: withDependencies([file])
            .reverse()
            .map((each) => encoded.get(each.proto.name) ?? toBinary(FileDescriptorProtoSchema, withComments(each))),
        },
      },
    });
    const { messageRequest } = request;
    switch (messageRequest.case) {
      case "listServices":
        return {
          ...base,
          messageResponse: { case: "listServicesResponse", value: { service: serviceNames.map((name) => ({ name })) } },
        };
      case "fileByFilename": {
        const file = byName.get(messageRequest.value);
        return file ? filesResponse(file) : notFound(`File not found: ${quote(messageRequest.value)}`);
      }
      case "fileContainingSymbol": {
        const file = fileContaining(messageRequest.value);
        return file ? filesResponse(file) : notFound(`Symbol not found: ${quote(messageRequest.value)}`);
      }
      case "allExtensionNumbersOfType":
        // Larder's API declares no extensions.
        return symbols.has(messageRequest.value)
          ? {
              ...base,
              messageResponse: {
                case: "allExtensionNumbersResponse",
                value: { baseTypeName: messageRequest.value, extensionNumber: [] },
              },
            }
          : notFound(`Type not found: ${quote(messageRequest.value)}`);
      case "fileContainingExtension":
        return notFound("Larder's API declares no extensions");
      default:
        return {
          ...base,
          messageResponse: {
            case: "errorResponse",
            value: { errorCode: Code.InvalidArgument, errorMessage: "Empty reflection request" },
          },
        };
    }
  };
}

/**
 * The file's descriptor with its .proto comments (gen/source_info.ts), so
 * `grpcurl describe` shows the API's documentation. Locations are paths into
 * the descriptor, which protoc-gen-es embeds element for element.
 */
function withComments(file: DescFile): DescFile["proto"] {
  const info = sourceInfo[file.proto.name];
  if (!info) return file.proto;
  const proto = clone(FileDescriptorProtoSchema, file.proto);
  proto.sourceCodeInfo = fromBinary(SourceCodeInfoSchema, Buffer.from(info, "base64"));
  return proto;
}

/** The files and every file they import, transitively (well-known types included), dependencies first. */
function withDependencies(files: readonly DescFile[]): DescFile[] {
  const seen = new Map<string, DescFile>();
  const visit = (file: DescFile): void => {
    if (seen.has(file.proto.name)) return;
    for (const dependency of file.dependencies) visit(dependency);
    seen.set(file.proto.name, file);
  };
  files.forEach(visit);
  return [...seen.values()];
}

/** Every fully-qualified name a client may ask about, with the file that declares it. */
function symbolTable(files: readonly DescFile[]): Map<string, DescFile> {
  const table = new Map<string, DescFile>();
  const addMessage = (message: DescMessage): void => {
    table.set(message.typeName, message.file);
    for (const nested of message.nestedMessages) addMessage(nested);
    for (const nested of message.nestedEnums) table.set(nested.typeName, nested.file);
    for (const extension of message.nestedExtensions) table.set(extension.typeName, extension.file);
  };
  for (const file of files) {
    file.messages.forEach(addMessage);
    for (const each of file.enums) table.set(each.typeName, file);
    for (const each of file.extensions) table.set(each.typeName, file);
    for (const service of file.services) {
      table.set(service.typeName, file);
      for (const method of service.methods) table.set(`method:${service.typeName}.${method.name}`, file);
    }
  }
  return table;
}
