import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { WatchResponseSchema, type WatchRequest } from "../../gen/larder/data/v1/data_pb.js";
import { anyFilterMatches, parseEventFilter } from "../domain/filters.js";
import { toItem } from "../item-message.js";
import { toConnectError } from "../errors.js";
import type { ChangeFeed, FeedEvent } from "./change-feed.js";

export type { ChangeFeed } from "./change-feed.js";

type WatchMessage = MessageInitShape<typeof WatchResponseSchema>;

/** What a Watch stream tells its observer (metrics). */
export interface WatchObserver {
  /** An event is being written on the stream; `commitTime` is its change's (epoch ms). */
  delivered(commitTime: number): void;
  /** The stream ended, with the error that ended it if any; later calls are ignored. */
  ended(error?: unknown): void;
}

/** Engines hand every subscriber the same event object, so it is converted to the wire form once. */
const converted = new WeakMap<FeedEvent, WatchMessage>();

function eventMessage(event: FeedEvent): WatchMessage {
  let message = converted.get(event);
  if (!message) {
    // A message, not an init shape: Connect would otherwise create one per subscriber.
    message = create(WatchResponseSchema, {
      kind: {
        case: "event",
        value: {
          id: event.id,
          name: event.name,
          item: toItem(event.item),
          previous: event.previous && toItem(event.previous),
          time: timestampFromMs(event.time),
          resumeToken: event.token,
          expired: event.expired ?? false,
        },
      },
    });
    converted.set(event, message);
  }
  return message;
}

/**
 * One Watch stream: the `started` message with the position it starts after,
 * then every matching change in commit order. Non-matching changes are read
 * and passed over, so each event's token resumes exactly after it. The stream
 * ends when the caller goes away or the server shuts down, and with
 * UNAVAILABLE when the environment's database closes under it (a drop).
 */
export async function* watchChanges(
  feed: ChangeFeed,
  request: WatchRequest,
  callSignal: AbortSignal,
  shutdownSignal: AbortSignal,
  observer?: WatchObserver,
): AsyncGenerator<MessageInitShape<typeof WatchResponseSchema>> {
  try {
    yield* watchUntilEnded(feed, request, callSignal, shutdownSignal, observer);
  } finally {
    // Only the first report counts: a failure has reported itself, with its domain error, already.
    observer?.ended();
  }
}

async function* watchUntilEnded(
  feed: ChangeFeed,
  request: WatchRequest,
  callSignal: AbortSignal,
  shutdownSignal: AbortSignal,
  observer: WatchObserver | undefined,
): AsyncGenerator<MessageInitShape<typeof WatchResponseSchema>> {
  const signal = AbortSignal.any([callSignal, shutdownSignal]);
  let start: string;
  try {
    const filters = (request.filters.length === 0 ? ["*"] : request.filters).map(parseEventFilter);
    const acknowledged = request.subscription ? await feed.acknowledged(request.subscription) : undefined;
    start = request.resumeToken || acknowledged || (await feed.head());
    const changes = feed.follow(start, signal);
    if (request.subscription && acknowledged === undefined) {
      // A new subscription's position is where it began (once follow has accepted it), until its
      // first Ack: otherwise a consumer that stops before acknowledging would leave its next one
      // starting at the head, past events nobody handled (at-least-once).
      await feed.acknowledge(request.subscription, start);
    }
    yield { kind: { case: "started", value: { resumeToken: start } } };
    for await (const event of changes) {
      if (!anyFilterMatches(filters, event.name, event.item.key)) continue;
      // The next step is Connect writing the message on the stream: this is the event's delivery.
      observer?.delivered(event.time);
      yield eventMessage(event);
    }
  } catch (error) {
    if (signal.aborted) {
      // Ended by the caller or a shutdown: no failure to report.
    } else {
      // The domain's error, before it becomes a ConnectError: its reason (SUBSCRIBER_TOO_SLOW) is what is counted.
      observer?.ended(error);
      throw toConnectError(error);
    }
  }
  // The caller leaving or a shutdown ends the stream cleanly; a deadline is the caller's error to see.
  const reason: unknown = callSignal.reason;
  if (reason instanceof ConnectError && reason.code === Code.DeadlineExceeded) throw reason;
}
