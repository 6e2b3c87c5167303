import { timestampDate } from "@bufbuild/protobuf/wkt";
import { useEffect, useRef, useState } from "preact/hooks";
import type { ChangeEvent } from "../gen/larder/data/v1/data_pb.js";
import { describeError, diffItems, fromItem, type Change, type ConsoleItem } from "./model.js";
import { formatRoute, navigate } from "./route.js";
import type { Session } from "./session.js";
import { ErrorBox, JsonTree } from "./widgets.js";

/** The newest events kept on screen; older ones scroll away. */
const KEPT_EVENTS = 500;

interface TailEvent {
  readonly id: string;
  readonly name: string;
  readonly expired: boolean;
  readonly time?: Date;
  readonly item?: ConsoleItem;
  readonly previous?: ConsoleItem;
}

function toTailEvent(event: ChangeEvent): TailEvent {
  return {
    id: event.id,
    name: event.name,
    expired: event.expired,
    time: event.time && timestampDate(event.time),
    item: event.item && fromItem(event.item),
    previous: event.previous && fromItem(event.previous),
  };
}

type Status = "connecting" | "live" | "paused" | "failed";

/**
 * A live tail of change events. Pausing closes the stream and keeps the last
 * resume token; resuming opens it again from there, so the events committed
 * while paused arrive then, none lost and none repeated.
 */
export function Watch({ filters, session }: { readonly filters: readonly string[]; readonly session: Session }) {
  const [events, setEvents] = useState<TailEvent[]>([]);
  const [status, setStatus] = useState<Status>("connecting");
  const [error, setError] = useState<string>();
  const [paused, setPaused] = useState(false);
  const [attempt, setAttempt] = useState(0);
  const token = useRef("");

  useEffect(() => {
    if (paused) {
      setStatus("paused");
      return;
    }
    const abort = new AbortController();
    setStatus("connecting");
    setError(undefined);
    (async () => {
      try {
        for await (const message of session.data.watch({ filters: [...filters], resumeToken: token.current }, { signal: abort.signal })) {
          if (message.kind.case === "started") {
            if (token.current === "") token.current = message.kind.value.resumeToken;
            setStatus("live");
          } else if (message.kind.case === "event") {
            const event = message.kind.value;
            token.current = event.resumeToken;
            setEvents((shown) => [toTailEvent(event), ...shown].slice(0, KEPT_EVENTS));
          }
        }
        if (!abort.signal.aborted) setStatus("failed");
      } catch (failure) {
        if (abort.signal.aborted) return;
        setStatus("failed");
        setError(describeError(failure));
      }
    })();
    return () => abort.abort();
  }, [session, filters, paused, attempt]);

  return (
    <section class="watch" aria-labelledby="watch-title">
      <h1 id="watch-title">Watch</h1>
      <FilterForm filters={filters} />
      <div class="toolbar">
        <span class={`status status-${status}`} role="status" aria-live="polite">
          {status === "live" ? "Live" : status === "paused" ? "Paused" : status === "connecting" ? "Connecting…" : "Stopped"}
        </span>
        <button type="button" onClick={() => setPaused(!paused)} aria-pressed={paused}>
          {paused ? "Resume" : "Pause"}
        </button>
        {status === "failed" && (
          <button type="button" onClick={() => setAttempt(attempt + 1)}>
            Reconnect
          </button>
        )}
        <button type="button" onClick={() => setEvents([])}>
          Clear
        </button>
        <span class="muted">{events.length} events</span>
      </div>
      <ErrorBox error={error} />
      <ol class="events" aria-label="Events, newest first">
        {events.map((event) => (
          <EventRow key={event.id} event={event} />
        ))}
      </ol>
    </section>
  );
}

function FilterForm({ filters }: { readonly filters: readonly string[] }) {
  const [text, setText] = useState(filters.join(" "));
  return (
    <form
      class="query"
      onSubmit={(event) => {
        event.preventDefault();
        navigate({ view: "events", filters: text.split(/\s+/).filter((filter) => filter !== "") });
      }}
    >
      <label class="grow">
        Filters (separated by spaces; empty: every event)
        <input
          name="filter"
          value={text}
          onInput={(event) => setText(event.currentTarget.value)}
          placeholder="created:users:*  updated  deleted:orders:*"
          spellcheck={false}
          autoComplete="off"
        />
      </label>
      <button type="submit" class="primary">
        Watch
      </button>
    </form>
  );
}

function EventRow({ event }: { readonly event: TailEvent }) {
  const changes = event.name === "updated" && event.previous && event.item ? diffItems(event.previous, event.item) : undefined;
  return (
    <li class={`event event-${event.name}`}>
      <details>
        <summary>
          <span class="event-name">{event.name}</span>
          {event.expired && <span class="muted"> (expired)</span>} <span class="item-key">{event.item?.key}</span>{" "}
          <time class="muted" dateTime={event.time?.toISOString()}>
            {event.time?.toISOString()}
          </time>
        </summary>
        {event.item && (
          <p>
            <a href={formatRoute({ view: "item", key: event.item.key })}>Open the item</a>
          </p>
        )}
        {changes && <ChangeTable changes={changes} />}
        {event.item && (
          <div class="json">
            <JsonTree value={event.item.value} />
          </div>
        )}
      </details>
    </li>
  );
}

function ChangeTable({ changes }: { readonly changes: readonly Change[] }) {
  if (changes.length === 0) return <p class="muted">No change but the modification time.</p>;
  return (
    <table class="changes">
      <caption>Changed since the previous version</caption>
      <thead>
        <tr>
          <th scope="col">Attribute</th>
          <th scope="col">Change</th>
          <th scope="col">Before</th>
          <th scope="col">After</th>
        </tr>
      </thead>
      <tbody>
        {changes.map((change, index) => (
          <tr key={index} class={`change-${change.kind}`}>
            <td>{change.attribute ?? "(value)"}</td>
            <td>{change.kind}</td>
            <td>
              <code>{change.before === undefined ? "" : JSON.stringify(change.before)}</code>
            </td>
            <td>
              <code>{change.after === undefined ? "" : JSON.stringify(change.after)}</code>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
