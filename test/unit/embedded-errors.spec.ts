import Database from "better-sqlite3";
import { expect } from "chai";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DomainError } from "../../core/errors.js";
import { planSet } from "../../core/set-plan.js";
import { EmbeddedEngine } from "../../services/stores/embedded/embedded-engine.js";
import { fromSqliteError, withSqliteErrorsMapped } from "../../services/stores/embedded/errors.js";
import { setInput } from "../support/set-input.js";

const sqlite = (code: string) => new Database.SqliteError(`${code}: simulated`, code);
const kindOf = (error: unknown) =>
  error instanceof DomainError ? [error.code, error.reason, error.message] : [(error as Error).name, (error as Error).message];

/** Storage faults are mapped inside the embedded engine, as MongoDB's are inside its own: the edge sees DomainErrors. */
describe("embedded engine: SQLite's storage faults become DomainErrors inside the engine", () => {
  it("maps each storage fault, extended codes by their primary one, and keeps SQLite's error as the cause", () => {
    const cases: [string, string[]][] = [
      ["SQLITE_FULL", ["RESOURCE_EXHAUSTED", "STORE_UNAVAILABLE", "The data directory is full"]],
      ["SQLITE_READONLY", ["UNAVAILABLE", "STORE_UNAVAILABLE", "The data directory is read-only"]],
      ["SQLITE_READONLY_DBMOVED", ["UNAVAILABLE", "STORE_UNAVAILABLE", "The data directory is read-only"]],
      ["SQLITE_IOERR", ["UNAVAILABLE", "STORE_UNAVAILABLE", "The data store could not be read or written"]],
      ["SQLITE_IOERR_WRITE", ["UNAVAILABLE", "STORE_UNAVAILABLE", "The data store could not be read or written"]],
      ["SQLITE_BUSY", ["UNAVAILABLE", "STORE_UNAVAILABLE", "The data store is busy; retry"]],
      ["SQLITE_CANTOPEN", ["UNAVAILABLE", "STORE_UNAVAILABLE", "The data store could not be opened"]],
    ];
    for (const [code, expected] of cases) {
      const original = sqlite(code);
      const mapped = fromSqliteError(original);
      expect(kindOf(mapped), code).to.deep.equal(expected);
      expect((mapped as Error).cause).to.equal(original);
    }
  });

  it("leaves everything else as it is: other SQLite codes, other errors, DomainErrors (the edge makes them INTERNAL or keeps them)", () => {
    for (const error of [
      sqlite("SQLITE_CONSTRAINT_UNIQUE"),
      sqlite("SQLITE_ERROR"),
      new Error("bug"),
      new DomainError("NOT_FOUND", "ITEM_NOT_FOUND", "gone"),
    ]) {
      expect(fromSqliteError(error)).to.equal(error);
    }
    // A code that only looks like SQLite's, from something else, is not SQLite's fault.
    const lookalike = Object.assign(new Error("no"), { code: "SQLITE_FULL" });
    expect(fromSqliteError(lookalike)).to.equal(lookalike);
  });

  it("the mapped store and change log: sync throws, rejections and streams all come out mapped; values pass through unchanged", async () => {
    let failWith: string | undefined;
    const fail = () => {
      if (failWith) throw sqlite(failWith);
    };
    const target = {
      isOpen: true,
      count(): number {
        fail();
        return 7;
      },
      async get(): Promise<string> {
        fail();
        return "value";
      },
      async head(): Promise<string> {
        fail();
        return "token";
      },
      async *follow(): AsyncIterable<number> {
        yield 1;
        fail();
        yield 2;
      },
    };
    const store = withSqliteErrorsMapped(target);
    expect([store.isOpen, store.count(), await store.get(), await store.head()]).to.deep.equal([true, 7, "value", "token"]);
    const followed: number[] = [];
    for await (const event of store.follow()) followed.push(event);
    expect(followed).to.deep.equal([1, 2]);
    expect(store.get).to.equal(store.get, "one wrapper per method");

    failWith = "SQLITE_FULL";
    const full = ["RESOURCE_EXHAUSTED", "STORE_UNAVAILABLE", "The data directory is full"];
    expect(kindOf(catchSync(() => store.count()))).to.deep.equal(full);
    expect(kindOf(await store.get().catch((error: unknown) => error))).to.deep.equal(full);
    expect(kindOf(await store.head().catch((error: unknown) => error))).to.deep.equal(full);
    const seen: number[] = [];
    const failure = await (async () => {
      for await (const event of store.follow()) seen.push(event);
    })().catch((error: unknown) => error);
    expect([seen, kindOf(failure)]).to.deep.equal([[1], full]);
  });

  describe("through the engine, with SQLite failing inside a write transaction", () => {
    let dataDir: string;
    let engine: EmbeddedEngine;
    const transaction = Database.prototype.transaction;
    afterEach(async () => {
      Database.prototype.transaction = transaction;
      await engine.close();
      rmSync(dataDir, { recursive: true, force: true });
    });

    it("a write fails with the DomainError, not SQLite's error, and the next one succeeds", async () => {
      dataDir = mkdtempSync(join(tmpdir(), "larder-sqlite-errors-"));
      engine = new EmbeddedEngine({ dataDir, durability: "normal", sweepIntervalMs: 3_600_000, changeRetentionMs: 60_000 });
      const store = await engine.environment("default");
      let failing = true;
      Database.prototype.transaction = function (this: Database.Database, body: (...args: never[]) => unknown) {
        return transaction.call(this, (...args: never[]) => {
          if (failing) throw sqlite("SQLITE_IOERR_WRITE");
          return body(...args);
        });
      } as typeof transaction;
      const plan = planSet(setInput("k", "v"), Date.now());
      const failure = await store.set(plan, Date.now()).catch((error: unknown) => error);
      expect(kindOf(failure)).to.deep.equal(["UNAVAILABLE", "STORE_UNAVAILABLE", "The data store could not be read or written"]);
      failing = false;
      expect((await store.set(plan, Date.now())).item.key.full).to.equal("k");
    });
  });
});

function catchSync(body: () => unknown): unknown {
  try {
    body();
  } catch (error) {
    return error;
  }
  return undefined;
}
