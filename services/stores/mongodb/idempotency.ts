import type { Document } from "mongodb";
import type { IdempotentWrite } from "../store.js";

/**
 * Idempotency records on MongoDB: one document per key in the environment's
 * `idempotency` collection, written in the transaction of the write it
 * records (mongo-store.ts), so the record exists exactly when the write
 * committed. Two first attempts racing with one key both write the record
 * document: MongoDB aborts one with a write conflict, and its retry of the
 * transaction finds the other's record and replays it.
 */
export interface IdempotencyDocument {
  readonly _id: string;
  /** The request's fingerprint. */
  readonly f: string;
  /** The outcome as JSON text (replay.ts). */
  readonly o: string;
  /** When the write committed (about: the transaction's clock). */
  readonly at: Date;
  /** When the TTL index may delete the record: `at` plus the window at the time of writing. */
  readonly expireAt: Date;
}

export const IDEMPOTENCY_TTL_INDEX = { key: { expireAt: 1 }, name: "expire_ttl", expireAfterSeconds: 0 } as const;

/**
 * The record that still answers a retry at `now`: the TTL monitor deletes
 * expired records only about once a minute, so the window is checked here too.
 */
export function replayableFilter(key: string, now: number, windowMs: number): Document {
  return { _id: key, at: { $gt: new Date(now - windowMs) } };
}

export function idempotencyRecord(write: IdempotentWrite, outcome: string, now: number, windowMs: number): IdempotencyDocument {
  return { _id: write.key, f: write.fingerprint, o: outcome, at: new Date(now), expireAt: new Date(now + windowMs) };
}
