import { EventEmitter } from "node:events";
import type { Logger } from "../log.js";

/**
 * Which environments' change feeds cannot read their log, and why (a
 * FeedHub's source failing for good, or for too long): health reports
 * NOT_SERVING while any does, and the reason is logged when it starts and
 * when it ends. Engines report through their onFeedHealth option.
 */
export class FeedHealth {
  private readonly failing = new Map<string, string>();
  /** Emits "change" when the first feed starts failing or the last one recovers. */
  readonly changes = new EventEmitter();

  constructor(private readonly log: Logger) {
    this.changes.setMaxListeners(0);
  }

  report(environment: string, failure: string | undefined): void {
    const was = this.failure;
    if (failure === undefined) {
      if (!this.failing.delete(environment)) return;
      this.log.info({ environment }, "the change feed reads again");
    } else {
      if (this.failing.get(environment) === failure) return;
      this.failing.set(environment, failure);
      this.log.error({ environment, reason: failure }, `the change feed fails: ${failure}; health reports NOT_SERVING`);
    }
    if ((was === undefined) !== (this.failure === undefined)) this.changes.emit("change");
  }

  /** One failing feed's environment and reason, while any fails. */
  get failure(): string | undefined {
    for (const [environment, failure] of this.failing) return `${environment}: ${failure}`;
    return undefined;
  }
}
