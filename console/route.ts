/**
 * The console's view lives in the URL's hash, so a link to what is on the
 * screen can be shared (`#/query?expression=users:*`, `#/item/users:jane`,
 * `#/events?filter=created:users:*`). The hash never holds the API key.
 */

export interface QueryRoute {
  readonly view: "query";
  /** Empty: scan the whole environment (simple keys too). */
  readonly expression: string;
  /** Empty for a key query, else `label1`..`label5`. */
  readonly label: string;
  readonly limit: number;
  readonly reverse: boolean;
  /** Continue after this position (a previous page's lastKey). */
  readonly start: string;
}

export type Route =
  | QueryRoute
  | { readonly view: "item"; readonly key: string }
  | { readonly view: "new"; readonly key: string }
  | { readonly view: "events"; readonly filters: readonly string[] }
  | { readonly view: "environments" };

export const DEFAULT_LIMIT = 100;

export function queryRoute(fields: Partial<Omit<QueryRoute, "view">> = {}): QueryRoute {
  return { view: "query", expression: "", label: "", limit: DEFAULT_LIMIT, reverse: false, start: "", ...fields };
}

/** Reads a hash such as `#/query?expression=users:*&limit=50`; anything unknown is the first query page. */
export function parseRoute(hash: string): Route {
  const text = hash.replace(/^#/, "");
  const question = text.indexOf("?");
  const path = question === -1 ? text : text.slice(0, question);
  const params = parseParams(question === -1 ? "" : text.slice(question + 1));
  const one = (name: string) => params.find(([key]) => key === name)?.[1] ?? "";
  if (path.startsWith("/item/")) return { view: "item", key: decode(path.slice("/item/".length)) };
  if (path === "/new") return { view: "new", key: one("key") };
  if (path === "/events")
    return {
      view: "events",
      filters: params
        .filter(([key]) => key === "filter")
        .map(([, value]) => value)
        .filter((f) => f !== ""),
    };
  if (path === "/environments") return { view: "environments" };
  const limit = Number(one("limit"));
  return queryRoute({
    expression: one("expression"),
    label: one("label"),
    limit: Number.isInteger(limit) && limit >= 1 && limit <= 1000 ? limit : DEFAULT_LIMIT,
    reverse: one("reverse") === "true",
    start: one("start"),
  });
}

/** Shows `route`: the hash changes, and the app renders what it names. */
export function navigate(route: Route): void {
  location.hash = formatRoute(route);
}

export function formatRoute(route: Route): string {
  switch (route.view) {
    case "item":
      return `#/item/${encode(route.key)}`;
    case "new":
      return route.key === "" ? "#/new" : `#/new?key=${encode(route.key)}`;
    case "events":
      return `#/events${query(route.filters.map((filter) => ["filter", filter]))}`;
    case "environments":
      return "#/environments";
    case "query":
      return `#/query${query([
        ["expression", route.expression],
        ["label", route.label],
        ["limit", route.limit === DEFAULT_LIMIT ? "" : String(route.limit)],
        ["reverse", route.reverse ? "true" : ""],
        ["start", route.start],
      ])}`;
  }
}

function query(pairs: readonly (readonly [string, string])[]): string {
  const kept = pairs.filter(([, value]) => value !== "");
  return kept.length === 0 ? "" : `?${kept.map(([key, value]) => `${key}=${encode(value)}`).join("&")}`;
}

/** Percent-encoding that leaves `:` readable, as keys and filters are full of them. */
function encode(text: string): string {
  return encodeURIComponent(text).replace(/%3A/gi, ":");
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** Unlike URLSearchParams, `+` stays a plus: keys may hold one. */
function parseParams(text: string): [string, string][] {
  if (text === "") return [];
  return text.split("&").map((pair) => {
    const equals = pair.indexOf("=");
    return equals === -1 ? [decode(pair), ""] : [decode(pair.slice(0, equals)), decode(pair.slice(equals + 1))];
  });
}
