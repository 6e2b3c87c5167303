import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { LABEL_NAMES } from "../core/item.js";
import { describeError, fromItem, preview, type ConsoleItem } from "./model.js";
import { formatRoute, navigate, queryRoute, type QueryRoute } from "./route.js";
import type { Session } from "./session.js";
import { ConfirmDialog, Countdown, ErrorBox, Loading, When } from "./widgets.js";

/** Remove takes at most 25 keys a call (R2). */
const REMOVE_BATCH = 25;

export function Explore({ route, session }: { readonly route: QueryRoute; readonly session: Session }) {
  return (
    <div class="explore">
      <Namespaces session={session} current={route.expression} />
      <Results route={route} session={session} />
    </div>
  );
}

function Namespaces({ session, current }: { readonly session: Session; readonly current: string }) {
  const [names, setNames] = useState<string[]>([]);
  const [more, setMore] = useState<string | undefined>();
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string>();
  const load = async (start: string) => {
    setLoading(true);
    setError(undefined);
    try {
      const page = await session.data.namespaces({ start, limit: 100 });
      setNames((known) => (start === "" ? page.namespaces : [...known, ...page.namespaces]));
      setMore(page.lastNamespace);
    } catch (failure) {
      setError(describeError(failure));
    } finally {
      setLoading(false);
    }
  };
  useEffect(() => {
    void load("");
  }, [session]);
  const currentNamespace = current.includes(":") ? current.slice(0, current.indexOf(":")) : undefined;
  return (
    <nav class="namespaces" aria-labelledby="namespaces-title">
      <h2 id="namespaces-title">Namespaces</h2>
      <ul>
        <li>
          <a href={formatRoute(queryRoute())} aria-current={current === "" ? "page" : undefined}>
            All items (scan)
          </a>
        </li>
        {names.map((name) => (
          <li key={name}>
            <a href={formatRoute(queryRoute({ expression: `${name}:*` }))} aria-current={name === currentNamespace ? "page" : undefined}>
              {name}
            </a>
          </li>
        ))}
      </ul>
      {loading && <Loading what="namespaces" />}
      <ErrorBox error={error} />
      {!loading && names.length === 0 && !error && <p class="muted">No namespaces yet.</p>}
      {more !== undefined && !loading && (
        <button type="button" onClick={() => void load(more)}>
          More namespaces
        </button>
      )}
      <button type="button" class="link" onClick={() => void load("")}>
        Refresh
      </button>
    </nav>
  );
}

interface Page {
  readonly items: ConsoleItem[];
  readonly lastKey?: string;
}

function Results({ route, session }: { readonly route: QueryRoute; readonly session: Session }) {
  const [page, setPage] = useState<Page>();
  const [error, setError] = useState<string>();
  const [loading, setLoading] = useState(false);
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  const [confirming, setConfirming] = useState(false);
  const [refreshed, setRefreshed] = useState(0);
  // The starts of the pages before this one, for "Previous" (the hash holds only the current start).
  const earlier = useRef<string[]>([]);
  const identity = `${route.expression}\n${route.label}\n${route.limit}\n${route.reverse}`;
  const lastIdentity = useRef(identity);
  if (lastIdentity.current !== identity) {
    lastIdentity.current = identity;
    earlier.current = [];
  }

  useEffect(() => {
    let current = true;
    setLoading(true);
    setError(undefined);
    setSelected(new Set());
    const request =
      route.expression === ""
        ? session.data.scan({ limit: route.limit, start: route.start, label: route.label })
        : session.data.query({ expression: route.expression, label: route.label, limit: route.limit, reverse: route.reverse, start: route.start });
    request
      .then((response) => {
        if (current) setPage({ items: response.items.map(fromItem), lastKey: response.lastKey });
      })
      .catch((failure: unknown) => {
        if (current) {
          setPage(undefined);
          setError(describeError(failure));
        }
      })
      .finally(() => {
        if (current) setLoading(false);
      });
    return () => {
      current = false;
    };
  }, [session, route.expression, route.label, route.limit, route.reverse, route.start, refreshed]);

  const removeSelected = async () => {
    setConfirming(false);
    const keys = [...selected];
    try {
      for (let i = 0; i < keys.length; i += REMOVE_BATCH) await session.data.remove({ keys: keys.slice(i, i + REMOVE_BATCH) });
    } catch (failure) {
      setError(`Not every selected item was deleted: ${describeError(failure)}`);
    }
    setRefreshed((n) => n + 1);
  };

  const items = page?.items ?? [];
  const allSelected = items.length > 0 && items.every((item) => selected.has(item.key));
  return (
    <section class="results" aria-labelledby="results-title">
      <QueryForm route={route} />
      <div class="toolbar">
        <h2 id="results-title">{route.expression === "" ? "All items" : route.expression}</h2>
        <a class="button" href={formatRoute({ view: "new", key: route.expression.endsWith(":*") ? route.expression.slice(0, -1) : "" })}>
          New item
        </a>
        <button type="button" class="danger" disabled={selected.size === 0} onClick={() => setConfirming(true)}>
          Delete selected ({selected.size})
        </button>
      </div>
      <ErrorBox error={error} />
      {route.expression !== "" && <MatchCount session={session} expression={route.expression} label={route.label} refreshed={refreshed} />}
      {loading && <Loading what="items" />}
      {page && (
        <div class="table-wrap" aria-busy={loading}>
          <table class="items">
            <thead>
              <tr>
                <th scope="col" class="select">
                  <input
                    type="checkbox"
                    aria-label="Select every item on this page"
                    checked={allSelected}
                    onChange={() => setSelected(allSelected ? new Set() : new Set(items.map((item) => item.key)))}
                  />
                </th>
                <th scope="col">Key</th>
                <th scope="col">Value</th>
                <th scope="col" class="wide">
                  Labels
                </th>
                <th scope="col" class="wide">
                  Expires in
                </th>
                <th scope="col" class="wide">
                  Modified (UTC)
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((item) => (
                <Row key={item.key} item={item} selected={selected.has(item.key)} onToggle={(on) => setSelected(toggled(selected, item.key, on))} />
              ))}
            </tbody>
          </table>
          {items.length === 0 && <p class="muted">No items match.</p>}
        </div>
      )}
      <div class="pager">
        <button type="button" disabled={route.start === "" || loading} onClick={() => navigate({ ...route, start: earlier.current.pop() ?? "" })}>
          Previous page
        </button>
        <span class="muted">
          {items.length} item{items.length === 1 ? "" : "s"}
        </span>
        <button
          type="button"
          disabled={page?.lastKey === undefined || loading}
          onClick={() => {
            earlier.current.push(route.start);
            navigate({ ...route, start: page!.lastKey! });
          }}
        >
          Next page
        </button>
      </div>
      {confirming && (
        <ConfirmDialog
          title={`Delete ${selected.size} item${selected.size === 1 ? "" : "s"}?`}
          confirmLabel="Delete"
          danger
          onConfirm={() => void removeSelected()}
          onCancel={() => setConfirming(false)}
        >
          <ul class="key-list">
            {[...selected].slice(0, 20).map((key) => (
              <li key={key}>{key}</li>
            ))}
            {selected.size > 20 && <li>… and {selected.size - 20} more</li>}
          </ul>
          <p>This cannot be undone.</p>
        </ConfirmDialog>
      )}
    </section>
  );
}

/** How many live items the whole expression matches, not only this page: Count reads the index alone (T7). */
function MatchCount(props: { readonly session: Session; readonly expression: string; readonly label: string; readonly refreshed: number }) {
  const [counted, setCounted] = useState<{ readonly count: bigint } | { readonly error: string }>();
  useEffect(() => {
    let current = true;
    setCounted(undefined);
    props.session.data
      .count({ expression: props.expression, label: props.label })
      .then((response) => {
        if (current) setCounted({ count: response.count });
      })
      .catch((failure: unknown) => {
        if (current) setCounted({ error: `Could not count the matching items: ${describeError(failure)}` });
      });
    return () => {
      current = false;
    };
  }, [props.session, props.expression, props.label, props.refreshed]);
  if (counted === undefined) return <Loading what="the count" />;
  if ("error" in counted) return <ErrorBox error={counted.error} />;
  return (
    <p class="match-count" role="status">
      {counted.count === 1n ? "1 item matches" : `${counted.count.toLocaleString("en-US")} items match`}
    </p>
  );
}

function toggled(set: ReadonlySet<string>, key: string, on: boolean): ReadonlySet<string> {
  const next = new Set(set);
  if (on) next.add(key);
  else next.delete(key);
  return next;
}

function Row({ item, selected, onToggle }: { readonly item: ConsoleItem; readonly selected: boolean; readonly onToggle: (on: boolean) => void }) {
  const shortValue = useMemo(() => preview(item.value), [item.value]);
  return (
    <tr>
      <td class="select">
        <input type="checkbox" aria-label={`Select ${item.key}`} checked={selected} onChange={(event) => onToggle(event.currentTarget.checked)} />
      </td>
      <td class="key">
        <a href={formatRoute({ view: "item", key: item.key })}>{item.key}</a>
      </td>
      <td class="value">
        <code>{shortValue}</code>
      </td>
      <td class="wide">
        {item.labels.map((label, index) =>
          label === undefined ? null : (
            <span key={index} class="label-chip" title={LABEL_NAMES[index]}>
              {label}
            </span>
          ),
        )}
      </td>
      <td class="wide">
        <Countdown ttl={item.ttl} />
      </td>
      <td class="wide">
        <When date={item.modified} compact />
      </td>
    </tr>
  );
}

function QueryForm({ route }: { readonly route: QueryRoute }) {
  const [expression, setExpression] = useState(route.expression);
  const [label, setLabel] = useState(route.label);
  const [limit, setLimit] = useState(String(route.limit));
  const [reverse, setReverse] = useState(route.reverse);
  useEffect(() => {
    setExpression(route.expression);
    setLabel(route.label);
    setLimit(String(route.limit));
    setReverse(route.reverse);
  }, [route.expression, route.label, route.limit, route.reverse]);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => {
    // "/" jumps to the query box, as in most consoles.
    const onKey = (event: KeyboardEvent) => {
      const target = event.target as HTMLElement;
      if (event.key === "/" && !["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName)) {
        event.preventDefault();
        input.current?.focus();
      }
    };
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
  }, []);
  return (
    <form
      class="query"
      role="search"
      onSubmit={(event) => {
        event.preventDefault();
        const parsed = Number(limit);
        navigate(
          queryRoute({
            expression: expression.trim(),
            label,
            limit: Number.isInteger(parsed) && parsed >= 1 && parsed <= 1000 ? parsed : 100,
            reverse,
          }),
        );
      }}
    >
      <label class="grow">
        {label === "" ? "Key expression" : "Label expression"}
        <input
          ref={input}
          name="expression"
          value={expression}
          onInput={(event) => setExpression(event.currentTarget.value)}
          placeholder={label === "" ? "users:*  orders:>=2024|2025*  (empty: every item)" : "city:*"}
          spellcheck={false}
          autoComplete="off"
        />
      </label>
      <label>
        Search
        <select name="label" value={label} onChange={(event) => setLabel(event.currentTarget.value)}>
          <option value="">keys</option>
          {LABEL_NAMES.map((name) => (
            <option key={name} value={name}>
              {name}
            </option>
          ))}
        </select>
      </label>
      <label>
        Limit
        <input name="limit" type="number" min={1} max={1000} value={limit} onInput={(event) => setLimit(event.currentTarget.value)} class="narrow" />
      </label>
      <label class="check">
        <input name="reverse" type="checkbox" checked={reverse} onChange={(event) => setReverse(event.currentTarget.checked)} />
        Reverse
      </label>
      <button type="submit" class="primary">
        Run
      </button>
    </form>
  );
}
