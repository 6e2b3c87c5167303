import { Code } from "@connectrpc/connect";
import { expect } from "chai";
import {
  MongoNetworkError,
  MongoNotConnectedError,
  MongoServerError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
  MongoWriteConcernError,
} from "mongodb";
import { DomainError } from "../../core/errors.js";
import { toConnectError } from "../../services/errors.js";
import { fromMongoError, isDuplicateKey } from "../../services/stores/mongodb/errors.js";

/**
 * Faults injected at the driver boundary: the driver's own error classes, as
 * a stepped-down primary, a dropped connection or a slow server produce them.
 * The real thing runs in `npm run test:mongo`.
 */
describe("MongoDB engine: driver faults become clear statuses", () => {
  it("a dropped connection or no reachable primary → UNAVAILABLE STORE_UNAVAILABLE with retry advice", () => {
    for (const error of [
      new MongoNetworkError("connection reset"),
      new MongoServerSelectionError("no primary", { type: "ReplicaSetNoPrimary" } as never),
      new MongoNotConnectedError("not connected"),
      new MongoTopologyClosedError(),
    ]) {
      const mapped = fromMongoError(error) as DomainError;
      expect(mapped).to.be.instanceOf(DomainError);
      expect([mapped.code, mapped.reason]).to.deep.equal(["UNAVAILABLE", "STORE_UNAVAILABLE"]);
      expect(mapped.message).to.match(/retry/);
    }
  });

  it("a primary stepping down (a retryable write error) → UNAVAILABLE, so clients retry", () => {
    const steppedDown = new MongoServerError({ message: "not primary", code: 10107, errorLabels: ["RetryableWriteError"] });
    expect((fromMongoError(steppedDown) as DomainError).code).to.equal("UNAVAILABLE");
    const conflict = new MongoServerError({ message: "write conflict", code: 112, errorLabels: ["TransientTransactionError"] });
    expect((fromMongoError(conflict) as DomainError).code).to.equal("UNAVAILABLE");
    for (const code of [91, 189, 11600, 11602, 13435, 13436]) {
      const mapped = fromMongoError(new MongoServerError({ message: "election", code })) as DomainError;
      expect([mapped.code, mapped.message], `code ${code}`).to.deep.equal([
        "UNAVAILABLE",
        "MongoDB has no primary right now (an election is under way); retry",
      ]);
    }
  });

  it("a transaction too large for the cache, or past its lifetime, is a clear status, never INTERNAL (issue 16)", () => {
    const tooLarge = new MongoServerError({
      message: "transaction too large",
      code: 10334,
      codeName: "TransactionTooLargeForCache",
      errorLabels: ["TransientTransactionError"],
    });
    const large = toConnectError(fromMongoError(tooLarge));
    expect([large.code, large.rawMessage]).to.deep.equal([
      Code.ResourceExhausted,
      "The write is too large for one MongoDB transaction (its cache); nothing was written: write fewer or smaller items at once",
    ]);
    const tooLong = new MongoServerError({ message: "lifetime", code: 290, codeName: "TransactionExceededLifetimeLimitSeconds" });
    const long = toConnectError(fromMongoError(tooLong));
    expect(long.code).to.equal(Code.Unavailable);
    expect(long.rawMessage).to.contain("transaction lifetime");
  });

  it("a write concern timeout → UNAVAILABLE saying the write may or may not have been applied", () => {
    const timeout = new MongoWriteConcernError({ writeConcernError: { code: 64, errmsg: "waiting for replication timed out" } } as never);
    const mapped = fromMongoError(timeout) as DomainError;
    expect([mapped.code, mapped.reason]).to.deep.equal(["UNAVAILABLE", "STORE_UNAVAILABLE"]);
    expect(mapped.message).to.contain("may or may not have been applied");
  });

  it("a read past its maxTimeMS (the call's deadline) → DEADLINE_EXCEEDED; the server's own time limit → UNAVAILABLE", () => {
    const pastDeadline = fromMongoError(new MongoServerError({ message: "operation exceeded time limit", code: 50 }));
    expect(toConnectError(pastDeadline).code).to.equal(Code.DeadlineExceeded);
    expect(toConnectError(pastDeadline).rawMessage).to.equal("The deadline passed before the call finished");
    const slow = fromMongoError(new MongoServerError({ message: "Exceeded time limit", code: 262 })) as DomainError;
    expect([slow.code, slow.message]).to.deep.equal(["UNAVAILABLE", "MongoDB did not answer in time; retry"]);
  });

  it("a shard or host out of reach behind mongos, or majority reads not available yet → UNAVAILABLE with retry advice", () => {
    for (const code of [6, 7, 89, 134, 9001]) {
      const mapped = fromMongoError(new MongoServerError({ message: "unreachable", code })) as DomainError;
      expect([mapped.code, mapped.reason, mapped.message], String(code)).to.deep.equal([
        "UNAVAILABLE",
        "STORE_UNAVAILABLE",
        "MongoDB could not reach the servers holding the data; retry with backoff",
      ]);
    }
  });

  it("a commit whose outcome is unknown → UNAVAILABLE saying it may or may not have been applied", () => {
    const unknown = new MongoServerError({ message: "commit timed out", code: 50, errorLabels: ["UnknownTransactionCommitResult"] });
    const mapped = fromMongoError(unknown) as DomainError;
    expect(mapped.code).to.equal("UNAVAILABLE");
    expect(mapped.message).to.contain("may or may not have been applied");
  });

  it("domain errors pass through unchanged; anything unknown is left for the edge to report as INTERNAL", () => {
    const domain = new DomainError("NOT_FOUND", "ITEM_NOT_FOUND", "Item does not exist");
    expect(fromMongoError(domain)).to.equal(domain);
    const unknown = new MongoServerError({ message: "something else", code: 2 });
    expect(fromMongoError(unknown)).to.equal(unknown);
    const plain = new Error("bug");
    expect(fromMongoError(plain)).to.equal(plain);
  });

  it("E11000 is recognised as the duplicate key error (exists:false, upsert races)", () => {
    expect(isDuplicateKey(new MongoServerError({ message: "E11000 duplicate key", code: 11000 }))).to.equal(true);
    expect(isDuplicateKey(new MongoServerError({ message: "other", code: 2 }))).to.equal(false);
  });
});
