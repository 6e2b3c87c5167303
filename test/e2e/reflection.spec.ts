import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { ServerReflection } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionAlpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { useServer } from "../support/server.js";

/** Server reflection through a real gRPC client, both versions (grpcurl's own run is in grpcurl.spec.ts). */
describe("e2e: gRPC server reflection v1 and v1alpha", () => {
  const running = useServer();

  for (const [version, service] of [
    ["v1", ServerReflection],
    ["v1alpha", ServerReflectionAlpha],
  ] as const) {
    describe(version, () => {
      async function ask(requests: object[]) {
        const client = createClient(service as typeof ServerReflection, createGrpcTransport({ baseUrl: running.url }));
        const answers = [];
        async function* send() {
          for (const request of requests) yield request;
        }
        for await (const answer of client.serverReflectionInfo(send() as never)) answers.push(answer);
        return answers;
      }

      it("list_services names every service", async () => {
        const [answer] = await ask([{ messageRequest: { case: "listServices", value: "" } }]);
        expect(answer.messageResponse.case).to.equal("listServicesResponse");
        const names = (answer.messageResponse.value as { service: { name: string }[] }).service.map((s) => s.name);
        expect(names).to.include.members([
          "larder.data.v1.DataService",
          "larder.admin.v1.AdminService",
          "grpc.health.v1.Health",
          `grpc.reflection.${version}.ServerReflection`,
        ]);
      });

      it("file_containing_symbol answers the file first, then its dependencies (well-known types)", async () => {
        const answers = await ask([
          { messageRequest: { case: "fileContainingSymbol", value: "larder.data.v1.DataService" } },
          { messageRequest: { case: "fileContainingSymbol", value: "larder.data.v1.DataService.Get" } },
          { messageRequest: { case: "fileContainingSymbol", value: "larder.data.v1.Item" } },
          { messageRequest: { case: "fileByFilename", value: "google/protobuf/struct.proto" } },
          { messageRequest: { case: "fileContainingSymbol", value: "no.such.Symbol" } },
        ]);
        for (const answer of answers.slice(0, 3)) {
          expect(answer.messageResponse.case).to.equal("fileDescriptorResponse");
          const files = (answer.messageResponse.value as { fileDescriptorProto: Uint8Array[] }).fileDescriptorProto.map((bytes) =>
            fromBinary(FileDescriptorProtoSchema, bytes),
          );
          expect(files[0].name).to.equal("larder/data/v1/data.proto");
          expect(files[0].service.map((s) => s.name)).to.deep.equal(["DataService"]);
          expect(files.map((file) => file.name)).to.include.members(["google/protobuf/struct.proto", "google/protobuf/timestamp.proto"]);
        }
        const struct = answers[3].messageResponse.value as { fileDescriptorProto: Uint8Array[] };
        expect(fromBinary(FileDescriptorProtoSchema, struct.fileDescriptorProto[0]).name).to.equal("google/protobuf/struct.proto");
        expect(answers[4].messageResponse.case).to.equal("errorResponse");
        expect((answers[4].messageResponse.value as { errorCode: number }).errorCode).to.equal(5);
      });

      it("descriptors carry the .proto comments (source_code_info), so tools show the API's documentation", async () => {
        const [answer] = await ask([{ messageRequest: { case: "fileContainingSymbol", value: "larder.data.v1.DataService" } }]);
        const [file] = (answer.messageResponse.value as { fileDescriptorProto: Uint8Array[] }).fileDescriptorProto.map((bytes) =>
          fromBinary(FileDescriptorProtoSchema, bytes),
        );
        const serviceIndex = file.service.findIndex((service) => service.name === "DataService");
        // Path 6 = FileDescriptorProto.service; [6, i] is the service, where its leading comment lives.
        const location = file.sourceCodeInfo?.location.find((each) => each.path.join(",") === `6,${serviceIndex}`);
        expect(location?.leadingComments).to.contain("DataService reads and writes the items of one environment");
        const queryIndex = file.messageType.findIndex((message) => message.name === "QueryRequest");
        const limitIndex = file.messageType[queryIndex].field.findIndex((field) => field.name === "limit");
        const limit = file.sourceCodeInfo?.location.find((each) => each.path.join(",") === `4,${queryIndex},2,${limitIndex}`);
        expect(limit?.leadingComments).to.contain("Page size");
      });
    });
  }
});
