/**
 * Consecutive runs of `entries`, each of at most `limit.items` entries (when
 * given) whose sizes add up to at most `limit.bytes`, and each at least one
 * entry (one larger than `bytes` makes a run of its own): how bulk writes
 * and exports keep a transaction or a message bounded however large the
 * items are.
 */
export function* sizedRuns<T>(
  entries: Iterable<T>,
  sizeOf: (entry: T) => number,
  limit: { readonly items?: number; readonly bytes: number },
): Generator<T[]> {
  let run: T[] = [];
  let bytes = 0;
  for (const entry of entries) {
    const size = sizeOf(entry);
    if (run.length > 0 && (run.length >= (limit.items ?? Infinity) || bytes + size > limit.bytes)) {
      yield run;
      run = [];
      bytes = 0;
    }
    run.push(entry);
    bytes += size;
  }
  if (run.length > 0) yield run;
}
