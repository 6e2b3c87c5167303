import { sizedRuns } from "./runs.js";
import { requestSize, type SetPlan } from "./set-plan.js";

/** The most a bulk write (seed, import, clone) stages or commits at once: items, and their bytes (V8's measure). */
export const BULK_CHUNK = { items: 100, bytes: 4 * 1024 * 1024 } as const;

/**
 * Consecutive runs of plans of at most BULK_CHUNK items and bytes, each run
 * at least one plan: a chunk is what one transaction of a bulk write holds,
 * so its size (and a MongoDB transaction's) stays bounded however large the
 * items are.
 */
export function bulkChunks(plans: Iterable<SetPlan>): Generator<SetPlan[]> {
  return sizedRuns(plans, (plan) => requestSize(plan.key, plan.value, plan.labels), BULK_CHUNK);
}
