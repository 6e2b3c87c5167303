import { invalidArgument, quote } from "./errors.js";
import type { ChangeName } from "./item.js";
import type { Key } from "./keys.js";

/** One parsed event specifier (EV1-EV3). */
export interface EventFilter {
  readonly names: ReadonlySet<ChangeName>;
  /** Absent: every key. One pattern: simple keys only. Two: namespaced keys only. */
  readonly namespace?: Pattern;
  readonly keyPart?: Pattern;
  readonly simpleOnly: boolean;
}

type Pattern = { readonly text: string; readonly prefix: boolean };

const ALL: ReadonlySet<ChangeName> = new Set(["created", "updated", "deleted"]);

/** EV2: `name`, `name:F1` or `name:F1:F2`; colons after the second belong to F2. Not trimmed (EV10). */
export function parseEventFilter(specifier: string): EventFilter {
  const first = specifier.indexOf(":");
  const name = first === -1 ? specifier : specifier.slice(0, first);
  let names: ReadonlySet<ChangeName>;
  if (name === "*") names = ALL;
  else if (ALL.has(name as ChangeName)) names = new Set([name as ChangeName]);
  else throw invalidArgument("INVALID_FILTER", `Invalid event name: ${quote(name)}`);
  if (first === -1) return { names, simpleOnly: false };
  const rest = specifier.slice(first + 1);
  const second = rest.indexOf(":");
  if (second === -1) return { names, namespace: pattern(rest), simpleOnly: true };
  return { names, namespace: pattern(rest.slice(0, second)), keyPart: pattern(rest.slice(second + 1)), simpleOnly: false };
}

function pattern(text: string): Pattern {
  return text.endsWith("*") ? { text: text.slice(0, -1), prefix: true } : { text, prefix: false };
}

/** EV2: exact, or a prefix when it ends with `*`; `*` alone matches anything non-empty. */
function matches(pattern: Pattern, text: string): boolean {
  if (!pattern.prefix) return text === pattern.text;
  return text.length > 0 && text.startsWith(pattern.text);
}

/** EV3: a simple key matches F1 alone; a namespaced key needs both F1 and F2. */
export function filterMatches(filter: EventFilter, name: ChangeName, key: Key): boolean {
  if (!filter.names.has(name)) return false;
  if (!filter.namespace) return true;
  const simple = key.part === "";
  if (filter.simpleOnly) return simple && matches(filter.namespace, key.ns);
  return !simple && matches(filter.namespace, key.ns) && matches(filter.keyPart!, key.part);
}

export function anyFilterMatches(filters: readonly EventFilter[], name: ChangeName, key: Key): boolean {
  return filters.some((filter) => filterMatches(filter, name, key));
}
