import { Fragment } from "preact";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { useEffect, useMemo, useState } from "preact/hooks";
import { LABEL_NAMES } from "../core/item.js";
import { checkDraft, describeError, draftOf, fromItem, toSetRequest, type ConsoleItem, type ItemDraft } from "./model.js";
import { formatRoute, navigate, queryRoute } from "./route.js";
import type { Session } from "./session.js";
import { ConfirmDialog, Countdown, ErrorBox, JsonTree, Loading, When } from "./widgets.js";

type Loaded =
  | { readonly state: "loading" }
  | { readonly state: "missing" }
  | { readonly state: "failed"; readonly error: string }
  | { readonly state: "found"; readonly item: ConsoleItem };

export function ItemPage({ itemKey, session }: { readonly itemKey: string; readonly session: Session }) {
  const [loaded, setLoaded] = useState<Loaded>({ state: "loading" });
  const [mode, setMode] = useState<"view" | "edit">("view");
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState<string>();
  const reload = async () => {
    try {
      const { item } = await session.data.get({ key: itemKey });
      setLoaded(item ? { state: "found", item: fromItem(item) } : { state: "missing" });
    } catch (failure) {
      setLoaded({ state: "failed", error: describeError(failure) });
    }
  };
  useEffect(() => {
    void reload();
  }, [itemKey, session]);

  const back = formatRoute(queryRoute({ expression: itemKey.includes(":") ? `${itemKey.slice(0, itemKey.indexOf(":"))}:*` : "" }));
  const remove = async () => {
    setConfirming(false);
    try {
      await session.data.remove({ keys: [itemKey] });
      location.hash = back;
    } catch (failure) {
      setError(describeError(failure));
    }
  };

  return (
    <section class="item-page" aria-labelledby="item-title">
      <p>
        <a href={back}>← Back to the list</a>
      </p>
      <h1 id="item-title" class="item-key">
        {itemKey}
      </h1>
      {loaded.state === "loading" && <Loading what="the item" />}
      {loaded.state === "failed" && <ErrorBox error={loaded.error} />}
      {loaded.state === "missing" && (
        <p>
          No live item has this key. <a href={formatRoute({ view: "new", key: itemKey })}>Create it</a>
        </p>
      )}
      {loaded.state === "found" && mode === "view" && (
        <>
          <div class="toolbar">
            <button type="button" class="primary" onClick={() => setMode("edit")}>
              Edit
            </button>
            <button type="button" class="danger" onClick={() => setConfirming(true)}>
              Delete
            </button>
            <button type="button" onClick={() => void reload()}>
              Reload
            </button>
          </div>
          <ErrorBox error={error} />
          <ItemDetails item={loaded.item} />
          <CounterForm itemKey={itemKey} session={session} onDone={(item) => setLoaded({ state: "found", item })} />
        </>
      )}
      {loaded.state !== "loading" && mode === "view" && (
        <HistoryPanel itemKey={itemKey} session={session} version={loaded.state === "found" ? loaded.item.version : 0} />
      )}
      {loaded.state === "found" && mode === "edit" && (
        <Editor
          session={session}
          existing={loaded.item}
          onSaved={(item) => {
            setLoaded({ state: "found", item });
            setMode("view");
          }}
          onCancel={() => setMode("view")}
        />
      )}
      {confirming && (
        <ConfirmDialog title="Delete this item?" confirmLabel="Delete" danger onConfirm={() => void remove()} onCancel={() => setConfirming(false)}>
          <p class="item-key">{itemKey}</p>
          <p>This cannot be undone.</p>
        </ConfirmDialog>
      )}
    </section>
  );
}

export function NewItemPage({ initialKey, session }: { readonly initialKey: string; readonly session: Session }) {
  return (
    <section class="item-page" aria-labelledby="new-title">
      <h1 id="new-title">New item</h1>
      <Editor
        session={session}
        initialKey={initialKey}
        onSaved={(item) => navigate({ view: "item", key: item.key })}
        onCancel={() => history.back()}
      />
    </section>
  );
}

function ItemDetails({ item }: { readonly item: ConsoleItem }) {
  return (
    <>
      <dl class="meta">
        <dt>Created</dt>
        <dd>
          <When date={item.created} />
        </dd>
        <dt>Modified</dt>
        <dd>
          <When date={item.modified} />
        </dd>
        <dt>Version</dt>
        <dd>{item.version}</dd>
        <dt>Expires in</dt>
        <dd>
          <Countdown ttl={item.ttl} />
          {item.ttl && <span class="muted"> ({item.ttl.toISOString()})</span>}
        </dd>
        {LABEL_NAMES.map((name, index) => {
          const label = item.labels[index];
          if (label === undefined) return null;
          return (
            <Fragment key={name}>
              <dt>{name}</dt>
              <dd>
                <a href={formatRoute(queryRoute({ expression: label, label: name }))}>{label}</a>
              </dd>
            </Fragment>
          );
        })}
      </dl>
      <h2>Value</h2>
      <div class="json" role="tree" aria-label="Value">
        <JsonTree value={item.value} />
      </div>
    </>
  );
}

/** The editor for a new item (existing undefined) or an edit that replaces the item (M2). */
function Editor(props: {
  readonly session: Session;
  readonly existing?: ConsoleItem;
  readonly initialKey?: string;
  readonly onSaved: (item: ConsoleItem) => void;
  readonly onCancel: () => void;
}) {
  const [draft, setDraft] = useState<ItemDraft>(() => draftOf(props.existing, props.initialKey));
  const [serverError, setServerError] = useState<string>();
  const [saving, setSaving] = useState(false);
  const check = useMemo(() => checkDraft(draft, props.existing), [draft, props.existing]);
  const update = (change: Partial<ItemDraft>) => {
    setDraft({ ...draft, ...change });
    setServerError(undefined);
  };
  const save = async () => {
    // What the console cannot know (an item created meanwhile, the key's role...), the service says.
    if (!check.input || check.error) return;
    setSaving(true);
    try {
      const { item } = await props.session.data.set(toSetRequest(check.input));
      props.onSaved(fromItem(item!));
    } catch (failure) {
      setServerError(`The service refused: ${describeError(failure)}`);
    } finally {
      setSaving(false);
    }
  };
  return (
    <form
      class="editor"
      onSubmit={(event) => {
        event.preventDefault();
        void save();
      }}
    >
      <label>
        Key
        <input
          name="key"
          value={draft.key}
          readOnly={props.existing !== undefined}
          onInput={(event) => update({ key: event.currentTarget.value })}
          required
          spellcheck={false}
          autoComplete="off"
          placeholder="users:jane"
        />
      </label>
      <label>
        Value (JSON)
        <textarea
          name="value"
          value={draft.valueText}
          onInput={(event) => update({ valueText: event.currentTarget.value })}
          rows={Math.min(30, Math.max(6, draft.valueText.split("\n").length + 1))}
          spellcheck={false}
          aria-invalid={check.error !== undefined}
          aria-describedby="editor-check"
        />
      </label>
      <fieldset class="labels">
        <legend>Labels</legend>
        {LABEL_NAMES.map((name, index) => (
          <label key={name}>
            {name}
            <input
              name={name}
              value={draft.labels[index]}
              onInput={(event) => update({ labels: draft.labels.map((label, at) => (at === index ? event.currentTarget.value : label)) })}
              spellcheck={false}
              autoComplete="off"
            />
          </label>
        ))}
      </fieldset>
      <label>
        Expires (seconds from now, or an ISO 8601 date; empty: never)
        <input
          name="ttl"
          value={draft.ttl}
          onInput={(event) => update({ ttl: event.currentTarget.value })}
          spellcheck={false}
          autoComplete="off"
          placeholder="3600  or  2030-01-01T00:00:00Z"
        />
      </label>
      <p id="editor-check" class={check.error ? "error" : "ok"} role="status" aria-live="polite">
        {check.error ?? "Valid."}
      </p>
      <ErrorBox error={serverError} />
      <div class="actions">
        <button type="button" onClick={props.onCancel}>
          Cancel
        </button>
        <button type="submit" class="primary" disabled={saving || check.error !== undefined}>
          {saving ? "Saving…" : props.existing ? "Save" : "Create"}
        </button>
      </div>
    </form>
  );
}

function CounterForm({
  itemKey,
  session,
  onDone,
}: {
  readonly itemKey: string;
  readonly session: Session;
  readonly onDone: (item: ConsoleItem) => void;
}) {
  const [attribute, setAttribute] = useState("");
  const [amount, setAmount] = useState("1");
  const [error, setError] = useState<string>();
  return (
    <form
      class="counter"
      aria-labelledby="counter-title"
      onSubmit={async (event) => {
        event.preventDefault();
        setError(undefined);
        const number = Number(amount);
        if (amount.trim() === "" || !Number.isFinite(number)) {
          setError("Values must be numeric");
          return;
        }
        try {
          const { item } = await session.data.add({ key: itemKey, attribute: attribute === "" ? undefined : attribute, amount: number });
          onDone(fromItem(item!));
        } catch (failure) {
          setError(`The service refused: ${describeError(failure)}`);
        }
      }}
    >
      <h2 id="counter-title">Add to a counter</h2>
      <label>
        Attribute (empty: the value itself)
        <input
          name="attribute"
          value={attribute}
          onInput={(event) => setAttribute(event.currentTarget.value)}
          spellcheck={false}
          autoComplete="off"
        />
      </label>
      <label>
        Amount
        <input name="amount" value={amount} inputMode="decimal" onInput={(event) => setAmount(event.currentTarget.value)} />
      </label>
      <button type="submit">Add</button>
      <ErrorBox error={error} />
    </form>
  );
}

interface HistoryRow {
  readonly name: string;
  readonly expired: boolean;
  readonly time?: Date;
  readonly item?: ConsoleItem;
}

/**
 * The key's past values, newest first, a page at a time. Shown for a missing
 * item too: a deleted key's history is where its last value is. `version`
 * reloads the first page whenever the item changes (an edit, a counter).
 */
function HistoryPanel({ itemKey, session, version }: { readonly itemKey: string; readonly session: Session; readonly version: number }) {
  const [rows, setRows] = useState<HistoryRow[]>([]);
  const [more, setMore] = useState<string>();
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string>();
  const load = async (start: string, isCurrent: () => boolean = () => true) => {
    setLoading(true);
    setError(undefined);
    try {
      const page = await session.data.history({ key: itemKey, start, limit: 20 });
      if (!isCurrent()) return;
      const loadedRows = page.entries.map((entry) => ({
        name: entry.name,
        expired: entry.expired,
        time: entry.time && timestampDate(entry.time),
        item: entry.item && fromItem(entry.item),
      }));
      setRows((known) => (start === "" ? loadedRows : [...known, ...loadedRows]));
      setMore(page.lastKey);
    } catch (failure) {
      if (!isCurrent()) return;
      if (start === "") setRows([]);
      setMore(undefined);
      setError(describeError(failure));
    } finally {
      if (isCurrent()) setLoading(false);
    }
  };
  useEffect(() => {
    let current = true;
    void load("", () => current);
    return () => {
      current = false;
    };
  }, [itemKey, session, version]);
  return (
    <section class="history" aria-labelledby="history-title">
      <h2 id="history-title">History</h2>
      <ErrorBox error={error} />
      {rows.length > 0 && (
        <ol class="history-entries">
          {rows.map((row, index) => (
            <li key={index}>
              <p class="history-meta">
                <span class="history-name">{row.expired ? `${row.name} (expired)` : row.name}</span> <When date={row.time} />{" "}
                <span class="history-version">version {row.item?.version ?? "—"}</span>
              </p>
              {row.item && (
                <div class="json" role="tree" aria-label={`Value at version ${row.item.version}`}>
                  <JsonTree value={row.item.value} />
                </div>
              )}
            </li>
          ))}
        </ol>
      )}
      {loading && <Loading what="the history" />}
      {!loading && rows.length === 0 && !error && <p class="muted">No recorded changes.</p>}
      {more !== undefined && !loading && (
        <button type="button" onClick={() => void load(more)}>
          More
        </button>
      )}
    </section>
  );
}
