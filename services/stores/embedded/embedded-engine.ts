import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { PendingDrops, type Engine } from "../engine.js";
import { EmbeddedStore, type EmbeddedStoreOptions } from "./embedded-store.js";

const FILE_SUFFIX = ".sqlite";

/** Environments of the embedded engine: one SQLite file each in the data directory. */
export class EmbeddedEngine implements Engine {
  private readonly stores = new Map<string, EmbeddedStore>();
  private readonly drops = new PendingDrops();

  constructor(private readonly options: Omit<EmbeddedStoreOptions, "environment">) {
    mkdirSync(options.dataDir, { recursive: true });
  }

  describe(): string {
    return `embedded, data ${this.options.dataDir}`;
  }

  async environment(name: string): Promise<EmbeddedStore> {
    await this.drops.settled(name);
    let store = this.stores.get(name);
    if (!store) {
      store = new EmbeddedStore({ ...this.options, environment: name });
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
      for (const suffix of [FILE_SUFFIX, `${FILE_SUFFIX}-wal`, `${FILE_SUFFIX}-shm`]) {
        rmSync(join(this.options.dataDir, `${name}${suffix}`), { force: true });
      }
    });
  }

  async close(): Promise<void> {
    const stores = [...this.stores.values()];
    this.stores.clear();
    await Promise.all(stores.map((store) => store.close()));
  }
}
