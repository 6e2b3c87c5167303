import {
  MongoError,
  MongoNetworkError,
  MongoNotConnectedError,
  MongoServerError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
  MongoWriteConcernError,
} from "mongodb";
import { DomainError } from "../../../core/errors.js";

/** MongoDB's duplicate key error: an insert or upsert found the unique (ns, part) key taken. */
export const DUPLICATE_KEY = 11000;

/** Server codes that mean "no primary to talk to right now" (elections, step-downs, shutdowns). */
const NO_PRIMARY = new Set([
  91, // ShutdownInProgress
  189, // PrimarySteppedDown
  10107, // NotWritablePrimary
  11600, // InterruptedAtShutdown
  11602, // InterruptedDueToReplStateChange
  13435, // NotPrimaryNoSecondaryOk
  13436, // NotPrimaryOrSecondary
]);
/** Server codes for a network failure between servers (a mongos and its shards), or a read concern not yet available. */
const UNREACHABLE = new Set([
  6, // HostUnreachable
  7, // HostNotFound
  89, // NetworkTimeout
  134, // ReadConcernMajorityNotAvailableYet
  9001, // SocketException
]);
/** Reads carry the call's deadline as maxTimeMS (readTimeLimit): running out of it is the deadline passing. */
const MAX_TIME_EXPIRED = 50;
/** The server ran out of time for its own reasons (a lock or ticket it waited for). */
const EXCEEDED_TIME_LIMIT = 262;
const WRITE_CONFLICT = 112;
/** A command the user has no right to run: MongoDB's Unauthorized, or Atlas's AtlasError (8000). */
export function isUnauthorized(error: unknown): boolean {
  const { code, codeName } = error as { code?: number; codeName?: string };
  return code === 13 || code === 8000 || codeName === "Unauthorized";
}

/**
 * A transaction that outgrew the storage engine's cache, or MongoDB's
 * transaction lifetime (transactionLifetimeLimitSeconds, 60 s by default).
 * Bulk writes commit in bounded chunks so neither should happen; if one does,
 * it is a clear status, never INTERNAL. By name: the numbers are not stable
 * across versions, the names are.
 */
const TRANSACTION_TOO_LARGE = "TransactionTooLargeForCache";
const TRANSACTION_TOO_LONG = "TransactionExceededLifetimeLimitSeconds";

export function isDuplicateKey(error: unknown): boolean {
  return error instanceof MongoServerError && error.code === DUPLICATE_KEY;
}

function unavailable(message: string): DomainError {
  return new DomainError("UNAVAILABLE", "STORE_UNAVAILABLE", message);
}

/**
 * Driver failures the caller can act on get UNAVAILABLE (STORE_UNAVAILABLE,
 * which also turns health NOT_SERVING until the next answered call) with a
 * message that says whether retrying is safe; anything else is left for the
 * edge to report as INTERNAL. The driver has already retried reads and
 * writes once on transient errors (retryReads, retryWrites) and transactions
 * for up to two minutes (withTransaction), so what arrives here persisted.
 */
export function fromMongoError(error: unknown): unknown {
  if (error instanceof DomainError) return error;
  if (error instanceof MongoWriteConcernError) {
    // The primary applied the write but could not confirm replication in time: it may survive or not.
    return unavailable("MongoDB did not confirm the write on enough replicas in time; it may or may not have been applied; read before retrying");
  }
  if (error instanceof MongoError && error.hasErrorLabel("UnknownTransactionCommitResult")) {
    // Whatever the cause (a timeout, a lost primary), the commit may have happened.
    return unavailable("MongoDB could not confirm that the batch committed; it may or may not have been applied; read before retrying");
  }
  if (error instanceof MongoServerSelectionError || error instanceof MongoNotConnectedError) {
    return unavailable("MongoDB is not reachable (no suitable server was found in time); retry with backoff");
  }
  if (error instanceof MongoTopologyClosedError) return unavailable("The connection to MongoDB is closed; retry");
  if (error instanceof MongoNetworkError) {
    return unavailable("The connection to MongoDB failed during the call; retry with backoff");
  }
  if (error instanceof MongoServerError) {
    if (error.codeName === TRANSACTION_TOO_LARGE) {
      return new DomainError(
        "RESOURCE_EXHAUSTED",
        "STORE_UNAVAILABLE",
        "The write is too large for one MongoDB transaction (its cache); nothing was written: write fewer or smaller items at once",
      );
    }
    if (error.codeName === TRANSACTION_TOO_LONG) {
      return unavailable("The write took longer than MongoDB's transaction lifetime; nothing was written: retry, or write fewer items at once");
    }
    if (NO_PRIMARY.has(error.code as number)) return unavailable("MongoDB has no primary right now (an election is under way); retry");
    if (error.code === MAX_TIME_EXPIRED) return new DOMException("The deadline passed before MongoDB finished the read", "TimeoutError");
    if (error.code === EXCEEDED_TIME_LIMIT) return unavailable("MongoDB did not answer in time; retry");
    if (error.code === WRITE_CONFLICT) return unavailable("A concurrent write to the same item conflicted; retry");
    if (UNREACHABLE.has(error.code as number)) return unavailable("MongoDB could not reach the servers holding the data; retry with backoff");
  }
  if (error instanceof MongoError) {
    if (error.hasErrorLabel("TransientTransactionError") || error.hasErrorLabel("RetryableWriteError")) {
      return unavailable("MongoDB reported a transient error; retry");
    }
  }
  return error;
}
