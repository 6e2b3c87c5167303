import type { EngineFigures } from "./engine-observer.js";
import type { Store } from "./store.js";

/**
 * An engine holds every environment, each its own database (an SQLite file,
 * a MongoDB database): items, labels, events and subscriptions never cross
 * environments because they never share a database.
 */
export interface Engine {
  /** For the startup line: the engine and where its data lives. */
  describe(): string;
  /** The store of an environment, created on first use. */
  environment(name: string): Promise<Store>;
  /** The names of every environment that exists, sorted. */
  list(): Promise<string[]>;
  /** Deletes an environment and everything in it. */
  drop(name: string): Promise<void>;
  close(): Promise<void>;
  /** For metrics: figures of the environments open now (reading them opens none) and of the engine. */
  figures?(): Promise<EngineFigures>;
}

/**
 * Drops under way, by environment name. A drop first closes the store, which
 * ends its Watch streams with UNAVAILABLE so clients resume at once; a call
 * that arrives before the old database is gone waits here, so it opens the
 * new database after the drop instead of one the drop then deletes.
 */
export class PendingDrops {
  private readonly pending = new Map<string, Promise<void>>();

  /** Resolves once no drop of `name` is under way (at once, without a tick, when none is). */
  settled(name: string): Promise<void> | undefined {
    return this.pending.get(name)?.catch(() => undefined);
  }

  async run(name: string, drop: () => Promise<void>): Promise<void> {
    const running = (this.settled(name) ?? Promise.resolve()).then(drop);
    this.pending.set(name, running);
    try {
      await running;
    } finally {
      if (this.pending.get(name) === running) this.pending.delete(name);
    }
  }
}
