import { readdirSync, rmSync, statSync } from "node:fs";
import type { EngineFigures, EngineObserver } from "../engine-observer.js";
import { PendingDrops, type Engine } from "../engine.js";
import { Sweeper } from "../sweeper.js";
import { environmentFiles, EmbeddedStore, FILE_SUFFIX, type EmbeddedStoreOptions } from "./embedded-store.js";
import { fromSqliteError, withSqliteErrorsMapped } from "./errors.js";
import { privateDirectory } from "./private-files.js";

export interface EmbeddedEngineOptions extends Omit<EmbeddedStoreOptions, "environment"> {
  /** How often expired items are deleted in the background (T7: within a minute). */
  readonly sweepIntervalMs: number;
  /** Told what the sweeper deleted (metrics). */
  readonly observer?: Pick<EngineObserver, "swept">;
}

/**
 * Environments of the embedded engine: one SQLite file each in the data
 * directory. The stores it hands out fail with DomainErrors for storage
 * faults (errors.ts), never with SQLite's own errors.
 */
export class EmbeddedEngine implements Engine {
  private readonly stores = new Map<string, EmbeddedStore>();
  private readonly drops = new PendingDrops();
  private readonly sweeper: Sweeper<EmbeddedStore>;

  constructor(private readonly options: EmbeddedEngineOptions) {
    privateDirectory(options.dataDir);
    // Each environment's file is this process's alone: no claim to make before sweeping it.
    this.sweeper = new Sweeper<EmbeddedStore>(
      {
        openEnvironments: () => this.stores.entries(),
        sweepTime: async () => Date.now(),
        afterSweep: (_, store) => store.pruneRetained(Date.now()),
      },
      { intervalMs: options.sweepIntervalMs, observer: options.observer },
    );
  }

  describe(): string {
    return `embedded, data ${this.options.dataDir}`;
  }

  async environment(name: string): Promise<EmbeddedStore> {
    await this.drops.settled(name);
    let store = this.stores.get(name);
    if (!store) {
      const { dataDir, durability, changeRetentionMs, idempotencyWindowMs, watchMaxLag, onFeedHealth } = this.options;
      try {
        store = withSqliteErrorsMapped(
          new EmbeddedStore({ dataDir, durability, changeRetentionMs, idempotencyWindowMs, watchMaxLag, onFeedHealth, environment: name }),
        );
      } catch (error) {
        throw fromSqliteError(error);
      }
      this.stores.set(name, store);
    }
    return store;
  }

  async list(): Promise<string[]> {
    const names = new Set(this.stores.keys());
    for (const file of readdirSync(this.options.dataDir)) {
      if (file.endsWith(FILE_SUFFIX)) names.add(file.slice(0, -FILE_SUFFIX.length));
    }
    return [...names].sort();
  }

  async drop(name: string): Promise<void> {
    await this.drops.run(name, async () => {
      const store = this.stores.get(name);
      this.stores.delete(name);
      await store?.close();
      const files = environmentFiles(this.options.dataDir, name);
      for (const file of [files.database, files.wal, files.sharedMemory]) rmSync(file, { force: true });
    });
  }

  async figures(): Promise<EngineFigures> {
    const environments = [...this.stores].map(([environment, store]) => {
      const files = environmentFiles(this.options.dataDir, environment);
      return {
        environment,
        changeLog: store.isOpen ? store.changeLogFigures() : undefined,
        files: { databaseBytes: sizeOf(files.database), walBytes: sizeOf(files.wal) },
      };
    });
    return { environments };
  }

  async close(): Promise<void> {
    await this.sweeper.stop();
    const stores = [...this.stores.values()];
    this.stores.clear();
    await Promise.all(stores.map((store) => store.close()));
  }
}

/** 0 for a file that is not there (a WAL between checkpoints, a database being dropped). */
function sizeOf(path: string): number {
  return statSync(path, { throwIfNoEntry: false })?.size ?? 0;
}
