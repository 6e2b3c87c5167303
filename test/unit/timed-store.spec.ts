import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { parseKey } from "../../core/keys.js";
import { EmbeddedEngine } from "../../services/stores/embedded/embedded-engine.js";
import { EmbeddedStore } from "../../services/stores/embedded/embedded-store.js";
import { timedEngine, TIMED_OPERATIONS, type TimedOperation } from "../../services/stores/timed-store.js";

describe("store timing at the port", () => {
  let dataDir: string;
  let engine: EmbeddedEngine;
  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), "larder-timed-"));
    engine = new EmbeddedEngine({ dataDir, durability: "normal", sweepIntervalMs: 60_000, changeRetentionMs: 60_000 });
  });
  afterEach(async () => {
    await engine.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("times each operation, failures included, and passes everything else through untouched", async () => {
    const timed: [TimedOperation, number][] = [];
    const wrapped = timedEngine(engine, (operation, seconds) => timed.push([operation, seconds]));
    const store = await wrapped.environment("default");
    expect(await wrapped.environment("default"), "one wrapper per store: callers cache by it").to.equal(store);
    expect(store).to.be.instanceOf(EmbeddedStore);
    expect(store.feed).to.equal((await engine.environment("default")).feed);
    expect(store.describe()).to.equal(engine.describe());

    const key = parseKey("t:1");
    expect(await store.get(key, Date.now())).to.equal(undefined);
    expect(await store.count({}, Date.now())).to.equal(0);
    const failing = await store.getMany(null as never, Date.now()).catch((error: unknown) => error);
    expect(failing).to.be.instanceOf(TypeError);
    expect(timed.map(([operation]) => operation)).to.deep.equal(["get", "count", "getMany"]);
    for (const [, seconds] of timed) expect(seconds).to.be.within(0, 60);
    expect(await wrapped.list()).to.deep.equal(["default"]);
  });

  it("names only operations of the store port", () => {
    for (const operation of TIMED_OPERATIONS) expect(EmbeddedStore.prototype).to.have.property(operation).that.is.a("function");
  });
});
