import type { FeedHealth } from "../feed/feed-health.js";
import type { Logger } from "../log.js";
import { EmbeddedEngine } from "./embedded/embedded-engine.js";
import type { EngineObserver } from "./engine-observer.js";
import type { Engine } from "./engine.js";
import { databaseName } from "./mongodb/database-name.js";

/** What opening an engine reads of the configuration (services/config.ts's Config holds it). */
export interface EngineSettings {
  readonly engine: "embedded" | "mongodb";
  readonly dataDir: string;
  readonly durability: "normal" | "full";
  readonly mongodbUri?: string;
  readonly mongodbDbPrefix: string;
  readonly changeRetentionMs: number;
  readonly idempotencyWindowMs: number;
  readonly sweepIntervalMs: number;
  readonly watchMaxLag: number;
}

/**
 * Refuses, before the engine opens, environment names it could never hold
 * (those the keys file binds keys to): MongoDB refuses long database names,
 * and an environment whose database it refuses would fail every call in it.
 * Throws the DomainError an AdminService request naming one would get.
 */
export function checkEnvironmentNames(config: Pick<EngineSettings, "engine" | "mongodbDbPrefix">, names: readonly string[]): void {
  if (config.engine === "mongodb") for (const name of names) databaseName(config.mongodbDbPrefix, name);
}

/**
 * Opens the engine the configuration names; MongoDB's driver is loaded only
 * when it is used. Its environments' change feeds report failures to `feeds`.
 */
export async function openEngine(config: EngineSettings, log: Logger, observer?: EngineObserver, feeds?: FeedHealth): Promise<Engine> {
  const onFeedHealth = feeds && ((environment: string, failure: string | undefined) => feeds.report(environment, failure));
  if (config.engine === "mongodb") {
    const { openMongoEngine } = await import("./mongodb/mongo-engine.js");
    return openMongoEngine(
      {
        uri: config.mongodbUri!,
        dbPrefix: config.mongodbDbPrefix,
        changeRetentionMs: config.changeRetentionMs,
        sweepIntervalMs: config.sweepIntervalMs,
        observer,
        idempotencyWindowMs: config.idempotencyWindowMs,
        watchMaxLag: config.watchMaxLag,
        onFeedHealth,
      },
      log,
    );
  }
  return new EmbeddedEngine({
    dataDir: config.dataDir,
    durability: config.durability,
    sweepIntervalMs: config.sweepIntervalMs,
    changeRetentionMs: config.changeRetentionMs,
    observer,
    idempotencyWindowMs: config.idempotencyWindowMs,
    watchMaxLag: config.watchMaxLag,
    onFeedHealth,
  });
}
