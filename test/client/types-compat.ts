/**
 * Type compatibility with the published client: this file only has to
 * type-check (`npm run lint` and CI run `tsc --noEmit` over test/). If our
 * `data` stopped being assignable to @ampt/data's `Data`, users could not port
 * by changing one import, and this assignment would fail to compile.
 */
import type { Data as AmptData } from "@ampt/data";
import { createData, type LarderData } from "../../client/index.js";
import { createData as createBrowserData } from "../../client/browser.js";

export const nodeData: AmptData = createData({ url: "http://127.0.0.1:4150" });
export const browserData: AmptData = createBrowserData({ url: "http://127.0.0.1:4150" });

// The other direction is not required, but our extras must not hide anything of theirs.
export function asAmpt(data: LarderData): AmptData {
  return data;
}

// A typical @ampt/data program, unchanged but for where `data` comes from.
export async function ported(data: AmptData): Promise<void> {
  await data.set("users:jane@doe.com", { name: "Jane" }, { label1: "team:a", ttl: 3600 });
  const user = await data.get<{ name: string }>("users:jane@doe.com");
  const page = await data.get<{ name: string }>("users:*", { limit: 10, reverse: true });
  const labelled = await data.getByLabel("label1", "team:*", true);
  await data.add("counters:visits", 1);
  await data.remove(["users:jane@doe.com"]);
  data.on(["created:users:*", "deleted"], async ({ name, item }) => void [name, item]);
  void [user?.name, page.items, labelled.items];
}

// Larder's history additions type-check on our `data` and keep the published types' shapes.
export async function history(data: LarderData): Promise<void> {
  const page = await data.history<{ name: string }>("users:jane@doe.com", { limit: 10 });
  const older = page.next ? await page.next() : await data.history<{ name: string }>("users:jane@doe.com", { start: page.lastKey });
  const then = await data.get<{ name: string }>("users:jane@doe.com", { asOf: page.entries[0].time });
  const thenMeta = await data.get<{ name: string }>("users:jane@doe.com", { asOf: new Date(), meta: true });
  void [page.entries[0].name, page.entries[0].item.value.name, page.entries[0].item.version, older.entries, then?.name, thenMeta?.version];
}
