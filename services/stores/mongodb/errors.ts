import { MongoError, MongoNetworkError, MongoServerError, MongoServerSelectionError, MongoWriteConcernError } from "mongodb";
import { DomainError } from "../../domain/errors.js";

/** MongoDB's duplicate key error: an insert or upsert found the unique (ns, part) key taken. */
export const DUPLICATE_KEY = 11000;
/** A resume token older than the oplog (ChangeStreamHistoryLost). */
export const HISTORY_LOST = 286;

export function isDuplicateKey(error: unknown): boolean {
  return error instanceof MongoServerError && error.code === DUPLICATE_KEY;
}

/**
 * Driver failures the caller can act on get a status that says so; anything
 * else is left for the edge to report as INTERNAL. The driver already
 * retries reads and writes once on transient network errors (retryReads,
 * retryWrites); what still fails here is worth telling the caller to retry.
 */
export function fromMongoError(error: unknown): unknown {
  if (error instanceof DomainError) return error;
  if (error instanceof MongoServerSelectionError || error instanceof MongoNetworkError) {
    return new DomainError("UNAVAILABLE", "STORE_UNAVAILABLE", "MongoDB is not reachable; retry with backoff");
  }
  if (error instanceof MongoWriteConcernError) {
    // The primary applied the write but could not confirm replication in time: it may survive or not.
    return new DomainError(
      "UNAVAILABLE",
      "STORE_UNAVAILABLE",
      "MongoDB did not confirm the write on enough replicas in time; it may or may not have been applied; read before retrying",
    );
  }
  if (error instanceof MongoError) {
    if (error.hasErrorLabel("TransientTransactionError") || error.hasErrorLabel("RetryableWriteError")) {
      return new DomainError("UNAVAILABLE", "STORE_UNAVAILABLE", "MongoDB reported a transient error; retry");
    }
    if (error instanceof MongoServerError && error.code === 50 /* MaxTimeMSExpired */) {
      return new DomainError("UNAVAILABLE", "STORE_UNAVAILABLE", "MongoDB did not answer in time; retry");
    }
  }
  return error;
}
