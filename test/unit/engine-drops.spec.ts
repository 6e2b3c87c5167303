import { expect } from "chai";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DomainError } from "../../core/errors.js";
import { parseKey } from "../../core/keys.js";
import { planSet } from "../../core/set-plan.js";
import { PendingDrops } from "../../services/stores/engine.js";
import { EmbeddedEngine } from "../../services/stores/embedded/embedded-engine.js";
import { EmbeddedStore } from "../../services/stores/embedded/embedded-store.js";
import { setInput } from "../support/set-input.js";
import { sleep } from "../support/async.js";

/**
 * A drop ends its Watch streams first (UNAVAILABLE, so clients resume at
 * once); whatever arrives before the old database is gone must open the new
 * one after the drop, never one the drop then deletes.
 */
describe("dropping an environment while it is in use", () => {
  it("PendingDrops: a use during a drop waits for it; drops of one name run one after the other; none pending costs no tick", async () => {
    const drops = new PendingDrops();
    expect(drops.settled("prod")).to.equal(undefined);
    const order: string[] = [];
    let finish!: () => void;
    const first = drops.run("prod", () => new Promise<void>((resolve) => (finish = () => (order.push("first dropped"), resolve()))));
    const second = drops.run("prod", async () => void order.push("second dropped"));
    const use = drops.settled("prod")!.then(() => order.push("used"));
    await sleep(10);
    expect(order).to.deep.equal([]);
    finish();
    await Promise.all([first, second, use]);
    expect(order).to.deep.equal(["first dropped", "second dropped", "used"]);
    expect(drops.settled("prod")).to.equal(undefined);
  });

  it("a failed drop does not block the environment's next use", async () => {
    const drops = new PendingDrops();
    await drops.run("prod", async () => Promise.reject(new Error("disk gone"))).catch(() => undefined);
    expect(drops.settled("prod")).to.equal(undefined);
  });

  it("embedded: a write that arrives during the drop lands in the new database, which the drop does not delete", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "larder-drops-"));
    const engine = new EmbeddedEngine({ dataDir, durability: "normal", sweepIntervalMs: 60_000, changeRetentionMs: 60_000 });
    try {
      const old = await engine.environment("prod");
      await old.set(planSet(setInput("k:old", 1), Date.now()), Date.now());
      const dropping = engine.drop("prod");
      const writing = engine.environment("prod").then((store) => store.set(planSet(setInput("k:new", 2), Date.now()), Date.now()));
      await Promise.all([dropping, writing]);
      expect(existsSync(join(dataDir, "prod.sqlite")), "the new database's file").to.equal(true);
      const store = await engine.environment("prod");
      expect(store).to.not.equal(old);
      expect((await store.get(parseKey("k:new"), Date.now()))?.value).to.equal(2);
      expect(await store.get(parseKey("k:old"), Date.now())).to.equal(undefined);
    } finally {
      await engine.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe("embedded resume tokens name their database", () => {
  const options = (dataDir: string) => ({
    dataDir,
    environment: "prod",
    durability: "normal" as const,
    sweepIntervalMs: 60_000,
    changeRetentionMs: 60_000,
  });
  const refusal = (follow: () => unknown) => {
    try {
      follow();
    } catch (error) {
      return error as DomainError;
    }
    throw new Error("the token was accepted");
  };

  it("2.<incarnation>.<sequence>; another database's token, or a 1.<sequence> one where none was issued, is TOKEN_EXPIRED", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "larder-tokens-"));
    const store = new EmbeddedStore(options(dataDir));
    const other = new EmbeddedStore({ ...options(dataDir), environment: "stage" });
    try {
      await store.set(planSet(setInput("k:a", 1), Date.now()), Date.now());
      const head = await store.feed.head();
      expect(head).to.equal(`2.${store.incarnation}.1`);
      expect(other.incarnation).to.not.equal(store.incarnation);
      const error = refusal(() => other.feed.follow(head, new AbortController().signal));
      expect([error.code, error.reason]).to.deep.equal(["OUT_OF_RANGE", "TOKEN_EXPIRED"]);
      expect(() => store.feed.follow(head, new AbortController().signal)).not.to.throw();
    } finally {
      await store.close();
      await other.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("a database keeps its incarnation when reopened; `1.<sequence>` tokens (unreleased 0.1.0) are malformed", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "larder-tokens-"));
    let store = new EmbeddedStore(options(dataDir));
    await store.set(planSet(setInput("k:a", 1), Date.now()), Date.now());
    const incarnation = store.incarnation;
    await store.close();
    store = new EmbeddedStore(options(dataDir));
    try {
      expect(store.incarnation).to.equal(incarnation);
      expect(() => store.feed.follow(`2.${incarnation}.1`, new AbortController().signal)).not.to.throw();
      for (const token of ["1.0", "1.1"]) {
        const error = refusal(() => store.feed.follow(token, new AbortController().signal));
        expect([error.code, error.reason], token).to.deep.equal(["INVALID_ARGUMENT", "INVALID_OPTION"]);
      }
    } finally {
      await store.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
