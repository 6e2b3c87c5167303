import { fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { useEffect, useState } from "preact/hooks";
import { ExportedItemSchema, type Environment, type ExportedItem } from "../gen/larder/admin/v1/admin_pb.js";
import { describeError } from "./model.js";
import type { Session } from "./session.js";
import { ConfirmDialog, ErrorBox, Loading } from "./widgets.js";

type Action =
  | { readonly kind: "clone"; readonly source: string }
  | { readonly kind: "drop"; readonly name: string }
  | { readonly kind: "import"; readonly name: string };

/**
 * Environments, for keys that may manage them. What a key may see and do
 * is the service's decision (an admin key bound to an environment manages
 * only that one); the console shows what it is given and every refusal.
 */
export function Environments({ session }: { readonly session: Session }) {
  const [environments, setEnvironments] = useState<Environment[]>();
  const [error, setError] = useState<string>();
  const [notice, setNotice] = useState<string>();
  const [busy, setBusy] = useState(false);
  const [action, setAction] = useState<Action>();
  const [newName, setNewName] = useState("");

  const reload = async () => {
    try {
      setEnvironments((await session.admin.listEnvironments({})).environments);
    } catch (failure) {
      setError(describeError(failure));
    }
  };
  useEffect(() => {
    void reload();
  }, [session]);

  const run = async (what: string, body: () => Promise<string>) => {
    setBusy(true);
    setError(undefined);
    setNotice(undefined);
    let notice: string | undefined;
    try {
      notice = await body();
    } catch (failure) {
      setError(`${what} failed: ${describeError(failure)}`);
    } finally {
      setBusy(false);
      setAction(undefined);
      // The list first, then the notice: whoever reads "Dropped copy." sees a table without it.
      await reload();
      setNotice(notice);
    }
  };

  const exportEnvironment = (name: string) =>
    run(`Exporting ${name}`, async () => {
      const items: JsonValue[] = [];
      for await (const chunk of session.admin.exportEnvironment({ name })) {
        for (const item of chunk.items) items.push(toJson(ExportedItemSchema, item));
      }
      download(`${name}.json`, JSON.stringify(items, null, 2));
      return `Exported ${items.length} items of ${name} to ${name}.json.`;
    });

  return (
    <section class="environments" aria-labelledby="environments-title">
      <h1 id="environments-title">Environments</h1>
      <ErrorBox error={error} />
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      {busy && <Loading what="the result" />}
      {environments === undefined && !error && <Loading what="environments" />}
      {environments && (
        <div class="table-wrap">
          <table class="items">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Items</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {environments.map((environment) => (
                <tr key={environment.name}>
                  <td class="key">{environment.name}</td>
                  <td>{String(environment.items)}</td>
                  <td class="row-actions">
                    <button type="button" disabled={busy} onClick={() => void exportEnvironment(environment.name)}>
                      Export<span class="sr-only"> {environment.name}</span>
                    </button>
                    <button type="button" disabled={busy} onClick={() => setAction({ kind: "import", name: environment.name })}>
                      Import<span class="sr-only"> into {environment.name}</span>
                    </button>
                    <button type="button" disabled={busy} onClick={() => setAction({ kind: "clone", source: environment.name })}>
                      Clone<span class="sr-only"> {environment.name}</span>
                    </button>
                    <button type="button" class="danger" disabled={busy} onClick={() => setAction({ kind: "drop", name: environment.name })}>
                      Drop<span class="sr-only"> {environment.name}</span>
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <form
        class="query"
        onSubmit={(event) => {
          event.preventDefault();
          const name = newName.trim();
          if (name === "") return;
          void run(`Creating ${name}`, async () => {
            await session.admin.createEnvironment({ name });
            setNewName("");
            return `Created ${name}.`;
          });
        }}
      >
        <label class="grow">
          New environment
          <input
            name="environment"
            value={newName}
            onInput={(event) => setNewName(event.currentTarget.value)}
            placeholder="preview"
            pattern="[a-z0-9][a-z0-9_\-]{0,63}"
            spellcheck={false}
            autoComplete="off"
          />
        </label>
        <button type="submit" class="primary" disabled={busy}>
          Create
        </button>
      </form>
      {action?.kind === "drop" && (
        <ConfirmDialog
          title={`Drop ${action.name}?`}
          confirmLabel="Drop"
          confirmText={action.name}
          danger
          onCancel={() => setAction(undefined)}
          onConfirm={() =>
            void run(`Dropping ${action.name}`, async () => {
              await session.admin.dropEnvironment({ name: action.name });
              return `Dropped ${action.name}.`;
            })
          }
        >
          <p>Every item, event and subscription of this environment is deleted. This cannot be undone.</p>
        </ConfirmDialog>
      )}
      {action?.kind === "clone" && (
        <CloneDialog
          source={action.source}
          onCancel={() => setAction(undefined)}
          onClone={(target, skipEvents) =>
            void run(`Cloning ${action.source}`, async () => {
              const { items } = await session.admin.cloneEnvironment({ source: action.source, target, skipEvents });
              return `Cloned ${items} items of ${action.source} into ${target}.`;
            })
          }
        />
      )}
      {action?.kind === "import" && (
        <ImportDialog
          name={action.name}
          onCancel={() => setAction(undefined)}
          onImport={(items, overwrite, skipEvents) =>
            void run(`Importing into ${action.name}`, async () => {
              const written = await session.admin.importEnvironment({ name: action.name, items, overwrite, skipEvents });
              return `Imported ${written.items} items into ${action.name}.`;
            })
          }
        />
      )}
    </section>
  );
}

function CloneDialog({
  source,
  onCancel,
  onClone,
}: {
  readonly source: string;
  readonly onCancel: () => void;
  readonly onClone: (target: string, skipEvents: boolean) => void;
}) {
  const [target, setTarget] = useState("");
  const [skipEvents, setSkipEvents] = useState(false);
  return (
    <ConfirmDialog
      title={`Clone ${source}`}
      confirmLabel="Clone"
      onCancel={onCancel}
      onConfirm={() => target.trim() !== "" && onClone(target.trim(), skipEvents)}
    >
      <label>
        Into environment (created if missing, emptied first)
        <input
          name="target"
          value={target}
          onInput={(event) => setTarget(event.currentTarget.value)}
          required
          spellcheck={false}
          autoComplete="off"
        />
      </label>
      <SkipEventsField checked={skipEvents} onChange={setSkipEvents} />
    </ConfirmDialog>
  );
}

function ImportDialog({
  name,
  onCancel,
  onImport,
}: {
  readonly name: string;
  readonly onCancel: () => void;
  readonly onImport: (items: ExportedItem[], overwrite: boolean, skipEvents: boolean) => void;
}) {
  const [items, setItems] = useState<ExportedItem[]>();
  const [error, setError] = useState<string>();
  const [overwrite, setOverwrite] = useState(false);
  const [skipEvents, setSkipEvents] = useState(false);
  return (
    <ConfirmDialog
      title={`Import into ${name}`}
      confirmLabel={items ? `Import ${items.length} items` : "Import"}
      onCancel={onCancel}
      onConfirm={() => items && onImport(items, overwrite, skipEvents)}
    >
      <label>
        Export file (a JSON array of items: key, value, ttl, label1…label5)
        <input
          name="file"
          type="file"
          accept="application/json,.json"
          onChange={async (event) => {
            setItems(undefined);
            setError(undefined);
            const file = event.currentTarget.files?.[0];
            if (!file) return;
            try {
              setItems(parseExport(await file.text()));
            } catch (failure) {
              setError(failure instanceof Error ? failure.message : String(failure));
            }
          }}
        />
      </label>
      <ErrorBox error={error} />
      {items && <p role="status">{items.length} items read.</p>}
      <label class="check">
        <input type="checkbox" checked={overwrite} onChange={(event) => setOverwrite(event.currentTarget.checked)} />
        Remove every item of {name} first
      </label>
      <SkipEventsField checked={skipEvents} onChange={setSkipEvents} />
    </ConfirmDialog>
  );
}

/** An export file back into items; a bad entry is named by its index. */
export function parseExport(text: string): ExportedItem[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(`The file is not JSON: ${(error as Error).message}`, { cause: error });
  }
  if (!Array.isArray(parsed)) throw new Error("The file must hold a JSON array of items, as Export writes it");
  return parsed.map((entry, index) => {
    try {
      return fromJson(ExportedItemSchema, entry as JsonValue);
    } catch (error) {
      throw new Error(`Item ${index} of the file is not an exported item: ${(error as Error).message}`, { cause: error });
    }
  });
}

function download(name: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: "application/json" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** Clone and import may write without change events (`skip_events`): one control for both. */
function SkipEventsField({ checked, onChange }: { checked: boolean; onChange: (checked: boolean) => void }) {
  return (
    <label class="check">
      <input type="checkbox" checked={checked} onChange={(event) => onChange(event.currentTarget.checked)} />
      Write without change events
    </label>
  );
}
