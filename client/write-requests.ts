import type { MessageInitShape } from "@bufbuild/protobuf";
import type { BatchSetItemSchema, SetRequestSchema } from "../gen/larder/data/v1/data_pb.js";
import { badSeedMessage } from "../core/limits.js";
import { isPlainObjectValue, keyText, labelNames, toLabelUpdate, toTtl, toValue, toWriteValue } from "./convert.js";
import { invalidArgument, LarderError } from "./errors.js";
import { versionOf, type Options } from "./options.js";

/** A write's request, and the size of its values as JSON text (what a Pipeline counts). */
export interface WriteRequest<T> {
  readonly request: T;
  readonly chars: number;
}

/** `set(key, value, options)` as a SetRequest; `removeNulls` is the client's setting, which the options may override. */
export function setRequest(
  key: unknown,
  value: unknown,
  options: Options,
  removeNulls: boolean,
): WriteRequest<MessageInitShape<typeof SetRequestSchema>> {
  if (options.created !== undefined && typeof options.created !== "number") {
    throw invalidArgument("INVALID_OPTION", "'created' value must be a number");
  }
  const written = toWriteValue(value);
  const request: MessageInitShape<typeof SetRequestSchema> = {
    key: keyText(key),
    value: written.value,
    unsetAttributes: written.unsetAttributes,
    overwrite: options.overwrite === true,
    removeNulls: typeof options.removeNulls === "boolean" ? options.removeNulls : removeNulls,
  };
  if ("ttl" in options) {
    const ttl = toTtl(options.ttl);
    if (ttl) request.ttl = { kind: ttl };
  }
  if (typeof options.exists === "boolean") request.exists = options.exists;
  if (options.default !== undefined) request.defaultValue = toValue(options.default);
  if (options.created !== undefined) request.created = options.created as number;
  if (options.ifVersion !== undefined) request.ifVersion = versionOf(options.ifVersion);
  for (const name of labelNames(options)) request[name] = { action: toLabelUpdate(name, options[name]) };
  return { request, chars: written.chars };
}

/** One item of a batch set or a seed (BS1, SE1): a key, a value, and optionally ttl, default and labels. */
export function batchItem(item: unknown, index: number): WriteRequest<MessageInitShape<typeof BatchSetItemSchema>> {
  if (!isPlainObjectValue(item) || typeof item.key !== "string" || item.key.trim() === "") {
    throw invalidArgument("INVALID_KEY", "A string value of 'key' must be provided in each item");
  }
  if (!("value" in item)) throw invalidArgument("INVALID_VALUE", "A 'value' must be provided in each item");
  const written = toWriteValue(item.value);
  const result: MessageInitShape<typeof BatchSetItemSchema> = {
    key: keyText(item.key),
    value: written.value,
    unsetAttributes: written.unsetAttributes,
  };
  if (item.ttl !== undefined) {
    const ttl = toTtl(item.ttl);
    if (ttl) result.ttl = { kind: ttl };
  }
  if (item.default !== undefined) result.defaultValue = toValue(item.default);
  for (const name of labelNames(item)) {
    const label = item[name];
    if (label === undefined || label === null) continue;
    if (typeof label !== "string") {
      throw invalidArgument("INVALID_LABEL", `Invalid '${name}' value in item ${index}: batch items take a string label`);
    }
    result[name] = keyText(label);
  }
  return { request: result, chars: written.chars };
}

/** SE3: every bad item is named by its index, as the service does, not only the first. */
export function seedItems(list: readonly unknown[]): MessageInitShape<typeof BatchSetItemSchema>[] {
  const problems: { index: number; message: string }[] = [];
  let reason: string | undefined;
  const items = list.flatMap((item, index) => {
    try {
      return [batchItem(item, index).request];
    } catch (error) {
      if (!(error instanceof LarderError)) throw error;
      reason ??= error.reason;
      problems.push({ index, message: error.message });
      return [];
    }
  });
  if (problems.length > 0) throw invalidArgument(reason ?? "INVALID_VALUE", badSeedMessage(problems));
  return items;
}

/** SE1: `seed(path)` reads a JSON file, where the platform can (`readFile`, given by the Node entry). */
export async function readSeedFile(path: string, readFile: ((path: string) => Promise<string>) | undefined): Promise<unknown> {
  if (!readFile) {
    throw invalidArgument("INVALID_VALUE", "seed can read a JSON file only in Node; pass the array of items instead");
  }
  let text: string;
  try {
    text = await readFile(path);
  } catch (error) {
    throw invalidArgument("INVALID_VALUE", `Cannot read the seed file ${path}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw invalidArgument("INVALID_VALUE", `The seed file ${path} is not JSON: ${(error as Error).message}`);
  }
}
