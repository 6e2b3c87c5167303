import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Collection, Document } from "mongodb";
import { isDuplicateKey } from "./errors.js";

/**
 * Several Larder instances on one MongoDB each run a sweeper; without a
 * lease each would repeat the same finds and deletes of every environment.
 * The lease is one document in the environment's own database (so dropping
 * the environment drops it too), and every comparison of its expiry is made
 * on MongoDB's clock ($$NOW), never an instance's. It saves work only: two
 * instances sweeping at once (a failover that lost a lease write) delete
 * each item once, since each delete checks the expiry again and a deleted
 * item matches nothing.
 */
export const LEASES_COLLECTION = "leases";
export const SWEEP_LEASE_ID = "expiry-sweep";

export interface LeaseDocument {
  readonly _id: string;
  /** The instance holding it: host, process id and a random part (sweepLeaseHolder). */
  readonly holder: string;
  /** MongoDB's clock: from then on any instance may take it. */
  readonly expiresAt: Date;
}

/** Names an instance in its lease documents: readable in mongosh, and unique per process start. */
export function sweepLeaseHolder(): string {
  return `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
}

/**
 * Takes the lease if it is free, expired or already this holder's, and then
 * holds it until MongoDB's clock passes `leaseMs` from now. One atomic
 * upsert: when another instance holds a live lease the filter matches
 * nothing and the insert collides on `_id` (a duplicate key error: not
 * taken). Two instances taking an expired lease at once are serialized on
 * the document, and the second one's filter no longer matches.
 */
export function claimLease(holder: string, leaseMs: number): { filter: Document; update: Document[]; options: { upsert: true } } {
  return {
    filter: { _id: SWEEP_LEASE_ID, $or: [{ holder }, { $expr: { $lte: ["$expiresAt", "$$NOW"] } }] },
    update: [{ $set: { holder: { $literal: holder }, expiresAt: { $add: ["$$NOW", leaseMs] } } }],
    options: { upsert: true },
  };
}

/** Gives the lease up at once (a stopping instance): expired for everyone, still naming who held it last. */
export function releaseLease(holder: string): { filter: Document; update: Document } {
  return { filter: { _id: SWEEP_LEASE_ID, holder }, update: { $set: { expiresAt: new Date(0) } } };
}

/**
 * Whether a lease taken or renewed at `renewedAt` (this instance's monotonic
 * clock, read before the command was sent) must be renewed at `now`. MongoDB
 * set its expiry after the command arrived, so it holds at least `leaseMs`
 * from `renewedAt`; renewing once a third of it has passed leaves the rest
 * as a margin for a slow chunk or round trip.
 */
export function leaseNeedsRenewal(renewedAt: number | undefined, now: number, leaseMs: number): boolean {
  return renewedAt === undefined || now - renewedAt >= leaseMs / 3;
}

/** The sweep leases of one instance, environment by environment. */
export class SweepLeases {
  /** When (performance.now()) each lease this instance holds was last taken or renewed. */
  private readonly renewed = new Map<string, number>();

  constructor(
    readonly holder: string,
    private readonly leaseMs: number,
  ) {}

  /** Whether this instance holds the environment's lease now: taken, renewed, or still fresh. */
  async claim(environment: string, leases: Collection<LeaseDocument>): Promise<boolean> {
    const sent = performance.now();
    if (!leaseNeedsRenewal(this.renewed.get(environment), sent, this.leaseMs)) return true;
    const { filter, update, options } = claimLease(this.holder, this.leaseMs);
    try {
      await leases.updateOne(filter, update, options);
    } catch (error) {
      this.renewed.delete(environment);
      if (isDuplicateKey(error)) return false;
      throw error;
    }
    this.renewed.set(environment, sent);
    return true;
  }

  /** Forgets the environment's lease (its database is being dropped, and the lease with it). */
  forget(environment: string): void {
    this.renewed.delete(environment);
  }

  /** Gives up every lease held, so another instance sweeps at its next tick rather than after the expiry. */
  async releaseAll(leasesOf: (environment: string) => Collection<LeaseDocument>): Promise<void> {
    const held = [...this.renewed.keys()];
    this.renewed.clear();
    const { filter, update } = releaseLease(this.holder);
    await Promise.all(
      held.map((environment) =>
        leasesOf(environment)
          .updateOne(filter, update)
          .catch(() => undefined),
      ),
    );
  }
}
