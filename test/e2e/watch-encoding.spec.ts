import { create, fromBinary, toBinary, toJson } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { expect } from "chai";
import { DataService, WatchRequestSchema, WatchResponseSchema, type WatchResponse } from "../../gen/larder/data/v1/data_pb.js";
import { parseKey } from "../../core/keys.js";
import { NO_LABELS } from "../../core/item.js";
import type { ChangeFeed, FeedEvent } from "../../services/feed/change-feed.js";
import { watchChanges, type WatchEncoding } from "../../services/feed/watch.js";
import { useServer } from "../support/server.js";

/** A feed that hands every follower the same event objects, as the engines do. */
function feedOf(events: FeedEvent[]): ChangeFeed {
  return {
    head: async () => "t0",
    async *follow() {
      yield* events;
    },
    acknowledge: async () => undefined,
    acknowledged: async () => undefined,
  };
}

const event: FeedEvent = {
  id: "e1",
  token: "t1",
  time: Date.UTC(2026, 0, 2),
  name: "created",
  item: { key: parseKey("users:jane"), value: { name: "Jane", n: [1, 2] }, created: 1, modified: 2, labels: NO_LABELS, version: 1 },
};

async function messagesOf(encoding: WatchEncoding | undefined): Promise<WatchResponse[]> {
  const messages: WatchResponse[] = [];
  const never = new AbortController().signal;
  for await (const message of watchChanges(feedOf([event]), create(WatchRequestSchema), never, never, undefined, encoding)) {
    messages.push(message as WatchResponse);
  }
  return messages;
}

describe("Watch: an event is encoded once for every stream (issue 15)", () => {
  it("binary streams share one message whose event is bytes already; they decode to the event itself", async () => {
    const [first, second] = await Promise.all([messagesOf({ values: "value", binary: true }), messagesOf({ values: "value", binary: true })]);
    expect(first[1], "the same message object for every stream").to.equal(second[1]);
    expect(first[1].$unknown?.map((field) => field.no)).to.deep.equal([2]);
    const readable = (await messagesOf(undefined))[1];
    const decoded = fromBinary(WatchResponseSchema, toBinary(WatchResponseSchema, first[1]));
    expect(toJson(WatchResponseSchema, decoded)).to.deep.equal(toJson(WatchResponseSchema, readable));
    expect((toJson(WatchResponseSchema, readable) as { event: object }).event).to.include({ id: "e1", name: "created", resumeToken: "t1" });
  });

  it("a JSON stream gets the message itself (raw bytes cannot travel as JSON); JSON-text values carry value_json", async () => {
    const readable = (await messagesOf({ values: "value", binary: false }))[1];
    expect(readable.$unknown).to.equal(undefined);
    expect(readable.kind.case).to.equal("event");
    const json = (await messagesOf({ values: "json", binary: true }))[1];
    const decoded = fromBinary(WatchResponseSchema, toBinary(WatchResponseSchema, json));
    if (decoded.kind.case !== "event") throw new Error("not an event");
    expect(decoded.kind.value.item?.valueJson).to.equal('{"name":"Jane","n":[1,2]}');
    expect(decoded.kind.value.item?.value).to.equal(undefined);
  });
});

describe("Watch over the wire: binary, JSON and JSON-text-value streams see the same event", () => {
  const running = useServer();

  it("gRPC, Connect JSON and gRPC with json_values", async () => {
    const grpc = createClient(DataService, createGrpcTransport({ baseUrl: running.url }));
    const json = createClient(DataService, createConnectTransport({ baseUrl: running.url, httpVersion: "1.1", useBinaryFormat: false }));
    const abort = new AbortController();
    const firstEvent = async (stream: AsyncIterable<WatchResponse>, started: () => void) => {
      for await (const message of stream) {
        if (message.kind.case === "started") started();
        if (message.kind.case === "event") return message;
      }
      throw new Error("the stream ended without an event");
    };
    let open = 0;
    let allOpen: () => void = () => undefined;
    const opened = new Promise<void>((resolve) => (allOpen = resolve));
    const started = () => ++open === 3 && allOpen();
    const streams = [
      firstEvent(grpc.watch({ filters: ["created:enc:*"] }, { signal: abort.signal }), started),
      firstEvent(json.watch({ filters: ["created:enc:*"] }, { signal: abort.signal }), started),
      firstEvent(grpc.watch({ filters: ["created:enc:*"], jsonValues: true }, { signal: abort.signal }), started),
    ];
    await opened;
    await grpc.set({ key: "enc:a", value: fromJson(ValueSchema, { deep: { list: [1, "x", null] } }) });
    const [binary, readable, text] = await Promise.all(streams);
    abort.abort();
    expect(toJson(WatchResponseSchema, binary)).to.deep.equal(toJson(WatchResponseSchema, readable));
    if (text.kind.case !== "event" || binary.kind.case !== "event") throw new Error("not events");
    expect(JSON.parse(text.kind.value.item!.valueJson)).to.deep.equal({ deep: { list: [1, "x", null] } });
    expect(text.kind.value.id).to.equal(binary.kind.value.id);
  });
});
