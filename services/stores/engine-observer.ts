/**
 * What engines report as they work, for metrics. Engines call it; they never
 * know about Prometheus. Every environment name given here is the engine's
 * own (the metrics decide which ones may become label values).
 */
export interface EngineObserver {
  /** The background sweep deleted this many expired items (each with its `deleted` event). */
  swept(environment: string, items: number): void;
  /** MongoDB: a change reached the feed's consumer this long after MongoDB committed it (its wallTime). */
  changeStreamLag(environment: string, seconds: number): void;
  /** MongoDB: the driver's connection pool events (CMAP), summed over the deployment's servers. */
  readonly connectionPool: ConnectionPoolObserver;
}

export interface ConnectionPoolObserver {
  created(): void;
  closed(): void;
  /** A call began waiting for a connection. */
  checkOutStarted(): void;
  /** It got one after waiting `seconds`. */
  checkedOut(seconds: number): void;
  /** It got none: `reason` is the driver's (timeout, poolClosed, connectionError). */
  checkOutFailed(reason: string, seconds: number): void;
  checkedIn(): void;
  /** The pool was cleared (a server went unhealthy): its connections are dropped. */
  cleared(): void;
}

/** Figures an engine reads when metrics are scraped. */
export interface EngineFigures {
  /** The environments open at that moment. */
  readonly environments: readonly EnvironmentFigures[];
  /**
   * MongoDB: the oplog's first and last entries (epoch ms), the bound on how
   * far back any change stream can resume; undefined when the user may not
   * read it (it needs clusterMonitor, or read on local.oplog.rs).
   */
  readonly oplog?: { readonly first: number; readonly last: number };
}

export interface EnvironmentFigures {
  readonly environment: string;
  /** The change log as subscribers can resume from it (the embedded engine's `changes` table). */
  readonly changeLog?: {
    /** Changes retained. */
    readonly events: number;
    /** The position of the newest change ever written (0: none yet). */
    readonly headSequence: number;
    /** The oldest change still retained, if any. */
    readonly oldest?: { readonly sequence: number; readonly time: number };
    /**
     * The commit time (epoch ms) of the oldest change a named subscription
     * has not acknowledged; undefined when every one is caught up (or there
     * are none). Once it is older than the retention, that subscription's
     * position is pruned away and it must start again.
     */
    readonly unacknowledgedSince?: number;
  };
  /** Embedded engine: the SQLite database file and its write-ahead log, in bytes. */
  readonly files?: { readonly databaseBytes: number; readonly walBytes: number };
  /** MongoDB: changes held in memory for subscribers (the bound on how far one may fall behind). */
  readonly feedRing?: { readonly events: number; readonly capacity: number };
}
