import type { ConnectionPoolObserver } from "../engine-observer.js";

/** The driver's reasons for a failed check-out (CMAP spec); anything newer is counted as `other`, so the label stays bounded. */
const CHECK_OUT_FAILURES = new Set(["timeout", "poolClosed", "connectionError"]);

/** What observeConnectionPool needs of a MongoClient: its events. */
export interface PoolEventSource {
  on(event: string, listener: (event: { reason?: unknown; durationMS?: unknown }) => void): unknown;
}

/**
 * Follows the driver's connection pool through its CMAP events, which every
 * MongoClient emits for every server it pools connections to. The driver
 * gives check-out durations itself (durationMS, driver 6.9+); an older one
 * reads as 0.
 */
export function observeConnectionPool(client: PoolEventSource, pool: ConnectionPoolObserver): void {
  const seconds = (event: { durationMS?: unknown }) => (typeof event.durationMS === "number" ? event.durationMS / 1000 : 0);
  client.on("connectionCreated", () => pool.created());
  client.on("connectionClosed", () => pool.closed());
  client.on("connectionCheckOutStarted", () => pool.checkOutStarted());
  client.on("connectionCheckedOut", (event) => pool.checkedOut(seconds(event)));
  client.on("connectionCheckOutFailed", (event) => {
    const reason = String(event.reason);
    pool.checkOutFailed(CHECK_OUT_FAILURES.has(reason) ? reason : "other", seconds(event));
  });
  client.on("connectionCheckedIn", () => pool.checkedIn());
  client.on("connectionPoolCleared", () => pool.cleared());
}
