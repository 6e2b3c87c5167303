import { create, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { ChangeEventSchema, WatchResponseSchema, type ChangeEvent, type WatchRequest } from "../../gen/larder/data/v1/data_pb.js";
import { anyFilterMatches, parseEventFilter } from "../../core/filters.js";
import { checkSubscriptionName, checkWatchFilters } from "../../core/limits.js";
import { toItem, type ValueForm } from "../item-message.js";
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

/**
 * How a stream's messages travel: `values` as google.protobuf.Value or JSON
 * text (the request's json_values), and whether the stream's codec is binary
 * protobuf (gRPC, gRPC-Web, Connect with +proto) or JSON.
 */
export interface WatchEncoding {
  readonly values: ValueForm;
  readonly binary: boolean;
}

const READABLE: WatchEncoding = { values: "value", binary: false };

/**
 * Engines hand every subscriber the same event object, so each event is
 * converted once per encoding, whatever the number of streams. For binary
 * streams it is also encoded once: the message carries the encoded ChangeEvent
 * as its field 2 (`event`) in raw form, which protobuf-es copies onto each
 * stream as it is, instead of encoding every field of the event per stream.
 * JSON streams cannot take raw bytes, so they get the message itself.
 */
const converted = new WeakMap<FeedEvent, Map<string, WatchMessage>>();

function eventMessage(event: FeedEvent, encoding: WatchEncoding): WatchMessage {
  let forms = converted.get(event);
  if (!forms) {
    forms = new Map();
    converted.set(event, forms);
  }
  const form = `${encoding.values}:${encoding.binary}`;
  let message = forms.get(form);
  if (!message) {
    const change = create(ChangeEventSchema, {
      id: event.id,
      name: event.name,
      item: toItem(event.item, encoding.values),
      previous: event.previous && toItem(event.previous, encoding.values),
      time: timestampFromMs(event.time),
      resumeToken: event.token,
      expired: event.expired ?? false,
    });
    // A message, not an init shape: Connect would otherwise create one per subscriber.
    message = encoding.binary ? preEncoded(change) : create(WatchResponseSchema, { kind: { case: "event", value: change } });
    forms.set(form, message);
  }
  return message;
}

/** WatchResponse{event} whose event is bytes already: an unknown field, written as it is (tag, length, bytes). */
function preEncoded(change: ChangeEvent): WatchMessage {
  const message = create(WatchResponseSchema);
  const data = new BinaryWriter().bytes(toBinary(ChangeEventSchema, change)).finish();
  message.$unknown = [{ no: EVENT_FIELD, wireType: WireType.LengthDelimited, data }];
  return message;
}

const EVENT_FIELD = WatchResponseSchema.fields.find((field) => field.localName === "event")!.number;

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
  encoding: WatchEncoding = READABLE,
): AsyncGenerator<MessageInitShape<typeof WatchResponseSchema>> {
  try {
    yield* watchUntilEnded(feed, request, callSignal, shutdownSignal, observer, encoding);
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
  encoding: WatchEncoding,
): AsyncGenerator<MessageInitShape<typeof WatchResponseSchema>> {
  // Aborted however this stream ends (even before its first read), so the feed stops counting it.
  const ended = new AbortController();
  const signal = AbortSignal.any([callSignal, shutdownSignal, ended.signal]);
  let start: string;
  try {
    checkWatchFilters(request.filters);
    if (request.subscription) checkSubscriptionName(request.subscription);
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
      yield eventMessage(event, encoding);
    }
  } catch (error) {
    if (signal.aborted) {
      // Ended by the caller or a shutdown: no failure to report.
    } else {
      // The domain's error, before it becomes a ConnectError: its reason (SUBSCRIBER_TOO_SLOW) is what is counted.
      observer?.ended(error);
      throw toConnectError(error);
    }
  } finally {
    ended.abort();
  }
  // The caller leaving or a shutdown ends the stream cleanly; a deadline is the caller's error to see.
  const reason: unknown = callSignal.reason;
  if (reason instanceof ConnectError && reason.code === Code.DeadlineExceeded) throw reason;
}
