import type { Client } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { DataService, Item } from "../gen/larder/data/v1/data_pb.js";
import { toMetaItem } from "./convert.js";
import type { WatchSource } from "./events.js";

/** The Watch call as the event dispatcher reads it: the stream's start, then each event in the client's shapes. */
export function watchSource(client: Client<typeof DataService>): WatchSource {
  return async function* (request, signal) {
    for await (const message of client.watch({ ...request, jsonValues: true }, { signal })) {
      if (message.kind.case === "started") {
        yield { started: message.kind.value.resumeToken };
      } else if (message.kind.case === "event") {
        const event = message.kind.value;
        const item = event.item as Item;
        yield {
          event: {
            key: item.key,
            event: {
              name: event.name as "created" | "updated" | "deleted",
              item: toMetaItem(item),
              ...(event.previous ? { previous: toMetaItem(event.previous) } : {}),
              id: event.id,
              time: event.time ? timestampDate(event.time) : new Date(),
              resumeToken: event.resumeToken,
              expired: event.expired,
            },
          },
        };
      }
    }
  };
}
