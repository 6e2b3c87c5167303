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
}
