import { expect } from "chai";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { planSet } from "../../core/set-plan.js";
import { EmbeddedStore } from "../../services/stores/embedded/embedded-store.js";
import { Sweeper, type SweepSource } from "../../services/stores/sweeper.js";
import { setInput } from "../support/set-input.js";

/**
 * One sweeper for both engines (services/stores/sweeper.ts), here over real
 * embedded stores: bounded chunks with the event loop turning between them,
 * one report per environment swept, none for one another instance claims.
 */
describe("the expiry sweeper", function () {
  this.timeout(30_000);
  let dataDir: string;
  const stores: EmbeddedStore[] = [];
  const open = (environment: string) => {
    const store = new EmbeddedStore({ dataDir, environment, durability: "normal", changeRetentionMs: 3_600_000 });
    stores.push(store);
    return store;
  };
  beforeEach(() => (dataDir = mkdtempSync(join(tmpdir(), "larder-sweeper-"))));
  afterEach(async () => {
    for (const store of stores.splice(0)) if (store.isOpen) await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** `count` items that expired a second ago, and one that lives. */
  async function withExpired(store: EmbeddedStore, count: number): Promise<void> {
    const past = Date.now() - 60_000;
    const plans = Array.from({ length: count }, (_, i) => planSet(setInput(`gone:${String(i).padStart(4, "0")}`, i, { ttl: { seconds: 59 } }), past));
    await store.setMany(plans, past);
    await store.set(planSet(setInput("kept", 1), Date.now()), Date.now());
  }

  /** The store's chunks as the sweeper asks for them, and whether the event loop turned before each. */
  function recorded(store: EmbeddedStore, chunks: { deleted: number; loopTurned: boolean }[]): EmbeddedStore {
    let turned = true;
    return new Proxy(store, {
      get(target, property) {
        if (property !== "purgeExpired") return Reflect.get(target, property, target);
        return async (now: number) => {
          const loopTurned = turned;
          turned = false;
          setImmediate(() => (turned = true));
          const deleted = await target.purgeExpired(now);
          chunks.push({ deleted, loopTurned });
          return deleted;
        };
      },
    });
  }

  const source = (
    entries: [string, EmbeddedStore | Promise<EmbeddedStore>][],
    claim?: SweepSource<EmbeddedStore>["claim"],
  ): SweepSource<EmbeddedStore> => ({
    openEnvironments: () => entries,
    sweepTime: async () => Date.now(),
    claim,
    afterSweep: (_, store) => store.pruneRetained(Date.now()),
  });

  it("deletes a backlog in bounded chunks, yielding between them, each item with an expired `deleted` event, and reports it once", async () => {
    const store = open("prod");
    await withExpired(store, 600);
    const head = store.headSequence();
    const chunks: { deleted: number; loopTurned: boolean }[] = [];
    const reports: [string, number][] = [];
    await new Sweeper(source([["prod", recorded(store, chunks)]]), {
      observer: { swept: (environment, items) => reports.push([environment, items]) },
    }).sweep();
    expect(chunks.map((chunk) => chunk.deleted)).to.deep.equal([256, 256, 88, 0]);
    expect(chunks.every((chunk) => chunk.loopTurned)).to.equal(true);
    expect(reports).to.deep.equal([["prod", 600]]);
    const events = store.readChanges(head, 1_000);
    expect(events).to.have.length(600);
    expect(events.every((event) => event.name === "deleted" && event.expired)).to.equal(true);
    expect((await store.scan({ limit: 10, maxBytes: 1 << 20 }, Date.now())).items.map((item) => item.key.full)).to.deep.equal(["kept"]);
  });

  it("sweeps every open environment, one after the other, and reports each (zero included)", async () => {
    const [a, b] = [open("a"), open("b")];
    await withExpired(a, 3);
    const reports: [string, number][] = [];
    await new Sweeper(
      source([
        ["a", a],
        ["b", Promise.resolve(b)],
      ]),
      { observer: { swept: (environment, items) => reports.push([environment, items]) } },
    ).sweep();
    expect(reports).to.deep.equal([
      ["a", 3],
      ["b", 0],
    ]);
  });

  it("an environment claimed elsewhere is skipped and not reported; a claim lost part-way stops after the chunk it covered", async () => {
    const [held, lost] = [open("held"), open("lost")];
    await withExpired(held, 10);
    await withExpired(lost, 600);
    let lostClaims = 0;
    const reports: [string, number][] = [];
    const claim = async (environment: string) => environment === "lost" && lostClaims++ === 0;
    await new Sweeper(
      source(
        [
          ["held", held],
          ["lost", lost],
        ],
        claim,
      ),
      { observer: { swept: (environment, items) => reports.push([environment, items]) } },
    ).sweep();
    expect(reports).to.deep.equal([["lost", 256]]);
    expect(lostClaims).to.equal(2);
    expect(await held.count({}, Date.now() - 30_000)).to.equal(11, "nothing of `held` was deleted");
  });

  it("a failure in one environment is reported and the others are still swept; a sweep asked during one joins it", async () => {
    const good = open("good");
    await withExpired(good, 5);
    const failures: unknown[] = [];
    const reports: [string, number][] = [];
    const sweeper = new Sweeper(
      source([
        ["broken", Promise.reject(new Error("cannot open"))],
        ["good", good],
      ]),
      {
        observer: { swept: (environment, items) => reports.push([environment, items]) },
        failed: (error) => failures.push(error),
      },
    );
    const first = sweeper.sweep();
    expect(sweeper.sweep()).to.equal(first);
    await first;
    expect([failures.map((error) => (error as Error).message), reports]).to.deep.equal([["cannot open"], [["good", 5]]]);
  });

  it("stop(): the sweep under way ends after its current chunk, and no other starts", async () => {
    const store = open("prod");
    await withExpired(store, 600);
    const chunks: { deleted: number; loopTurned: boolean }[] = [];
    let stopping: Promise<void> | undefined;
    const recording = recorded(store, chunks);
    const stoppingAfterOne = new Proxy(recording, {
      get(target, property) {
        if (property !== "purgeExpired") return Reflect.get(target, property, target);
        return async (now: number) => {
          const deleted = await target.purgeExpired(now);
          stopping ??= sweeper.stop();
          return deleted;
        };
      },
    });
    const sweeper = new Sweeper(source([["prod", stoppingAfterOne]]));
    await sweeper.sweep();
    await stopping;
    expect(chunks.map((chunk) => chunk.deleted)).to.deep.equal([256]);
    await sweeper.sweep();
    expect(chunks).to.have.length(1);
  });
});
