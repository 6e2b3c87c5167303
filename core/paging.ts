import { MAX_PAGE_BYTES } from "./limits.js";

/**
 * P2 and P7 as a running total, applied by the store as it reads rows in
 * order, before it decodes any: a row is measured (the bytes of its value's
 * JSON, as stored) and joins the page only if the page has room for it by
 * count and by bytes. The first row always joins (P7: never an empty page).
 * A row that does not join begins the next page, so the page has a lastKey
 * (P6): memory per read is the page plus one row, whatever the items hold.
 */
export class PageBudget {
  private count = 0;
  private bytes = 0;

  constructor(
    readonly limit: number,
    readonly maxBytes: number = MAX_PAGE_BYTES,
  ) {}

  admits(valueBytes: number): boolean {
    if (this.count === this.limit) return false;
    if (this.count > 0 && this.bytes + valueBytes > this.maxBytes) return false;
    this.count++;
    this.bytes += valueBytes;
    return true;
  }
}
