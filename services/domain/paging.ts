import type { ItemRecord } from "./item.js";
import { MAX_PAGE_BYTES } from "./limits.js";

export interface Page {
  readonly items: ItemRecord[];
  /** The last item of the page when more items follow (P6). */
  readonly continueAfter?: ItemRecord;
}

/**
 * Cuts a page from up to limit + 1 fetched live items. P6: there is more
 * exactly when an item beyond the page was fetched. P7: the page ends early
 * when the next value would take it past 1 MiB of JSON, but always holds
 * at least one item.
 */
export function cutPage(fetched: readonly ItemRecord[], limit: number): Page {
  const items: ItemRecord[] = [];
  let bytes = 0;
  for (const item of fetched) {
    if (items.length === limit) break;
    // The stored JSON text when the store has it: measured without parsing the value back out.
    const size = Buffer.byteLength(item.valueText ?? JSON.stringify(item.value), "utf8");
    if (items.length > 0 && bytes + size > MAX_PAGE_BYTES) break;
    bytes += size;
    items.push(item);
  }
  const more = fetched.length > items.length;
  return { items, continueAfter: more ? items[items.length - 1] : undefined };
}
