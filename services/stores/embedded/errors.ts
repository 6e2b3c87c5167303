import Database from "better-sqlite3";
import { DomainError, type ErrorCodeName } from "../../../core/errors.js";

/**
 * SQLite result codes that say the disk, not the request, is the problem.
 * Extended codes (SQLITE_IOERR_WRITE) are found by their primary code.
 */
const STORAGE_FAULTS: Record<string, [ErrorCodeName, string]> = {
  SQLITE_FULL: ["RESOURCE_EXHAUSTED", "The data directory is full"],
  SQLITE_READONLY: ["UNAVAILABLE", "The data directory is read-only"],
  SQLITE_IOERR: ["UNAVAILABLE", "The data store could not be read or written"],
  SQLITE_BUSY: ["UNAVAILABLE", "The data store is busy; retry"],
  SQLITE_CANTOPEN: ["UNAVAILABLE", "The data store could not be opened"],
};

/**
 * A storage fault becomes STORE_UNAVAILABLE (which also turns health
 * NOT_SERVING until the next answered call), as MongoDB's driver failures do
 * in ../mongodb/errors.ts; SQLite's own words stay as the cause, for logs.
 * Anything else is left for the edge to report as INTERNAL.
 */
export function fromSqliteError(error: unknown): unknown {
  if (!(error instanceof Database.SqliteError)) return error;
  const fault = STORAGE_FAULTS[error.code] ?? STORAGE_FAULTS[error.code.replace(/_[A-Z]+$/, "")];
  if (!fault) return error;
  return Object.assign(new DomainError(fault[0], "STORE_UNAVAILABLE", fault[1]), { cause: error });
}

/**
 * An object whose methods reach SQLite (the store, its change log): whatever
 * they throw, reject or end with passes fromSqliteError, so callers see the
 * same kinds of errors from both engines. A proxy, not a method-by-method
 * guard: a method added later is covered without being named. The feed hub
 * is not wrapped: its only I/O is its change log's, which is, so events on
 * their way to every subscriber pass through no extra layer.
 */
export function withSqliteErrorsMapped<T extends object>(target: T): T {
  const wrappers = new WeakMap<object, unknown>();
  return new Proxy(target, {
    get(object, property) {
      const member = Reflect.get(object, property, object) as unknown;
      if (typeof member !== "function") return member;
      let wrapper = wrappers.get(member);
      if (!wrapper) {
        wrapper = (...args: unknown[]) => {
          let result: unknown;
          try {
            result = (member as (...args: unknown[]) => unknown).apply(object, args);
          } catch (error) {
            throw fromSqliteError(error);
          }
          if (result instanceof Promise) return result.catch((error: unknown) => Promise.reject(fromSqliteError(error)));
          if (isAsyncIterable(result)) return mappedIterable(result);
          return result;
        };
        wrappers.set(member, wrapper);
      }
      return wrapper;
    },
  });
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === "object" && value !== null && Symbol.asyncIterator in value;
}

async function* mappedIterable<T>(source: AsyncIterable<T>): AsyncIterable<T> {
  try {
    yield* source;
  } catch (error) {
    throw fromSqliteError(error);
  }
}
