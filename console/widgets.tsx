import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { isJsonObject, type JsonValue } from "../core/json.js";
import { countdown } from "./model.js";

/**
 * Small shared pieces. Every piece of user data is a text child, which preact
 * writes as a text node: nothing a key, value or label holds is ever markup.
 */

export function ErrorBox({ error }: { readonly error?: string }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      {error}
    </p>
  );
}

export function Loading({ what }: { readonly what: string }) {
  return (
    <p class="loading" role="status" aria-live="polite">
      Loading {what}…
    </p>
  );
}

/** One timer for every countdown on the page. */
const tickers = new Set<(now: number) => void>();
let tickerTimer: ReturnType<typeof setInterval> | undefined;

export function useNow(): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    tickers.add(setNow);
    tickerTimer ??= setInterval(() => {
      const now = Date.now();
      for (const tick of tickers) tick(now);
    }, 1000);
    return () => {
      tickers.delete(setNow);
      if (tickers.size === 0 && tickerTimer !== undefined) {
        clearInterval(tickerTimer);
        tickerTimer = undefined;
      }
    };
  }, []);
  return now;
}

export function Countdown({ ttl }: { readonly ttl?: Date }) {
  if (!ttl) return <span class="muted">never</span>;
  return <CountdownTo ttl={ttl} />;
}

function CountdownTo({ ttl }: { readonly ttl: Date }) {
  const now = useNow();
  return (
    <time dateTime={ttl.toISOString()} title={ttl.toISOString()}>
      {countdown(ttl, now)}
    </time>
  );
}

/** A UTC date; `compact` drops the milliseconds (lists), the title keeps them. */
export function When({ date, compact = false }: { readonly date?: Date; readonly compact?: boolean }) {
  if (!date) return <span class="muted">—</span>;
  const iso = date.toISOString();
  return (
    <time dateTime={iso} title={iso}>
      {compact ? iso.slice(0, 19).replace("T", " ") : iso.replace("T", " ").replace("Z", " UTC")}
    </time>
  );
}

/**
 * A modal dialog (the native <dialog>: focus is trapped, Escape cancels).
 * `confirmText`: when given, the confirm button stays disabled until this
 * exact text is typed (dropping an environment).
 */
export function ConfirmDialog(props: {
  readonly title: string;
  readonly children: ComponentChildren;
  readonly confirmLabel: string;
  readonly confirmText?: string;
  readonly danger?: boolean;
  readonly onConfirm: () => void;
  readonly onCancel: () => void;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [typed, setTyped] = useState("");
  useEffect(() => {
    const element = dialog.current;
    if (element && !element.open) element.showModal();
    return () => element?.close();
  }, []);
  const ready = props.confirmText === undefined || typed === props.confirmText;
  return (
    <dialog
      ref={dialog}
      aria-labelledby="dialog-title"
      onCancel={(event) => {
        event.preventDefault();
        props.onCancel();
      }}
    >
      <form
        method="dialog"
        onSubmit={(event) => {
          event.preventDefault();
          if (ready) props.onConfirm();
        }}
      >
        <h2 id="dialog-title">{props.title}</h2>
        {props.children}
        {props.confirmText !== undefined && (
          <label>
            Type <strong>{props.confirmText}</strong> to confirm
            <input value={typed} onInput={(event) => setTyped(event.currentTarget.value)} autoComplete="off" spellcheck={false} />
          </label>
        )}
        <div class="actions">
          <button type="button" onClick={props.onCancel}>
            Cancel
          </button>
          <button type="submit" class={props.danger ? "danger" : "primary"} disabled={!ready} autoFocus={props.confirmText === undefined}>
            {props.confirmLabel}
          </button>
        </div>
      </form>
    </dialog>
  );
}

const CHILDREN_SHOWN = 100;
const TEXT_SHOWN = 2000;

/** A JSON value as a tree of native <details>: keyboard operable, collapsed past the second level, long lists shown in steps. */
export function JsonTree({ value, name, depth = 0 }: { readonly value: JsonValue; readonly name?: string; readonly depth?: number }) {
  const label = name === undefined ? null : <span class="json-key">{JSON.stringify(name)}: </span>;
  if (Array.isArray(value) || isJsonObject(value)) {
    const entries: [string | undefined, JsonValue][] = Array.isArray(value)
      ? value.map((each, index) => [String(index), each])
      : Object.keys(value).map((key) => [key, value[key]]);
    const [open, brackets] = Array.isArray(value) ? [`[ ${value.length} items ]`, "array"] : [`{ ${entries.length} attributes }`, "object"];
    if (entries.length === 0) {
      return (
        <div class="json-leaf">
          {label}
          <span class="json-punct">{Array.isArray(value) ? "[]" : "{}"}</span>
        </div>
      );
    }
    return (
      <details class={`json-${brackets}`} open={depth < 2}>
        <summary>
          {label}
          <span class="json-punct">{open}</span>
        </summary>
        <JsonEntries entries={entries} array={Array.isArray(value)} depth={depth} />
      </details>
    );
  }
  return (
    <div class="json-leaf">
      {label}
      <JsonScalar value={value} />
    </div>
  );
}

function JsonEntries({
  entries,
  array,
  depth,
}: {
  readonly entries: [string | undefined, JsonValue][];
  readonly array: boolean;
  readonly depth: number;
}) {
  const [shown, setShown] = useState(CHILDREN_SHOWN);
  return (
    <div class="json-children">
      {entries.slice(0, shown).map(([key, child]) => (
        <JsonTree key={key} value={child} name={array ? undefined : key} depth={depth + 1} />
      ))}
      {entries.length > shown && (
        <button type="button" class="link" onClick={() => setShown(shown + CHILDREN_SHOWN)}>
          Show {Math.min(CHILDREN_SHOWN, entries.length - shown)} more of {entries.length - shown}
        </button>
      )}
    </div>
  );
}

function JsonScalar({ value }: { readonly value: null | boolean | number | string }) {
  const [whole, setWhole] = useState(false);
  if (typeof value !== "string") return <span class={`json-${value === null ? "null" : typeof value}`}>{String(value)}</span>;
  const text = JSON.stringify(value);
  if (whole || text.length <= TEXT_SHOWN) return <span class="json-string">{text}</span>;
  return (
    <span class="json-string">
      {text.slice(0, TEXT_SHOWN)}…{" "}
      <button type="button" class="link" onClick={() => setWhole(true)}>
        show all {text.length} characters
      </button>
    </span>
  );
}
