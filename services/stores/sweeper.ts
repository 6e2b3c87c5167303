import type { EngineObserver } from "./engine-observer.js";
import type { Store } from "./store.js";

/** What an engine gives its sweeper: its open environments, its clock and, where several instances share them, a claim. */
export interface SweepSource<S extends Store = Store> {
  /** The environments open now, each with its store (or its opening): a sweep opens none. */
  openEnvironments(): Iterable<readonly [string, S | Promise<S>]>;
  /** The instant up to which a sweep deletes, read once per sweep. */
  sweepTime(): Promise<number>;
  /**
   * Whether this instance sweeps the environment now. Asked before every
   * chunk, so the holder of a claim keeps it as it goes and one that lost it
   * stops. Unset: always (the environment is this process's alone).
   */
  claim?(environment: string): Promise<boolean>;
  /** After a sweep of the environment: the engine's own upkeep (pruning its change log). */
  afterSweep?(environment: string, store: S): void | Promise<void>;
}

export interface SweeperOptions {
  /** How often a sweep starts; 0 or unset: never (sweep() still sweeps once). */
  readonly intervalMs?: number;
  /** Told what each sweep deleted, environment by environment (metrics). */
  readonly observer?: Pick<EngineObserver, "swept">;
  /** A sweep that failed: reads hide expired items regardless (T7), and the next sweep retries. */
  readonly failed?: (error: unknown) => void;
}

/**
 * Deletes expired items in the background, each with its `deleted` event
 * (T7, EV6), the same way on every engine: environment after environment,
 * one bounded chunk at a time (Store.purgeExpired), yielding to the event
 * loop between chunks, so a backlog of any size drains while health and
 * calls keep answering.
 */
export class Sweeper<S extends Store = Store> {
  private readonly timer?: NodeJS.Timeout;
  /** A sweep under way: chunks yield, so the next tick may come before one ends. */
  private running?: Promise<void>;
  private stopped = false;

  constructor(
    private readonly source: SweepSource<S>,
    private readonly options: SweeperOptions = {},
  ) {
    if (options.intervalMs) {
      this.timer = setInterval(() => void this.sweep(), options.intervalMs);
      this.timer.unref();
    }
  }

  /** One sweep of every open environment, or the one under way. */
  sweep(): Promise<void> {
    this.running ??= this.sweepAll().finally(() => (this.running = undefined));
    return this.running;
  }

  /** No sweep starts after this; the one under way ends after its current chunk. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  private async sweepAll(): Promise<void> {
    try {
      const now = await this.source.sweepTime();
      for (const [environment, opening] of [...this.source.openEnvironments()]) {
        if (this.stopped) return;
        try {
          const store = await opening;
          const swept = await this.sweepEnvironment(environment, store, now);
          if (swept === undefined) continue;
          // Deleted first, reported after: inside `observer?.swept(…)` the sweep would not run without an observer.
          this.options.observer?.swept(environment, swept);
          await this.source.afterSweep?.(environment, store);
        } catch (error) {
          this.options.failed?.(error);
        }
      }
    } catch (error) {
      this.options.failed?.(error);
    }
  }

  /** How many items it deleted; undefined when another instance holds the environment's claim. */
  private async sweepEnvironment(environment: string, store: S, now: number): Promise<number | undefined> {
    let deleted = 0;
    for (let chunks = 0; !this.stopped; chunks++) {
      if (this.source.claim && !(await this.source.claim(environment))) return chunks === 0 ? undefined : deleted;
      const chunk = await store.purgeExpired(now);
      deleted += chunk;
      if (chunk === 0) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
    return deleted;
  }
}
