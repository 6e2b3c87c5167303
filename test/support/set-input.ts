import type { JsonValue } from "../../core/json.js";
import type { SetInput } from "../../core/set-plan.js";

/** A set call as the handler hands it to the domain: a plain set unless `options` says otherwise. */
export function setInput(key: string, value: JsonValue | undefined, options: Partial<SetInput> = {}): SetInput {
  return { key, value, unsetAttributes: [], overwrite: false, labels: [], removeNulls: true, ...options };
}
