import type { Config } from "../config.js";
import type { Logger } from "../log.js";
import { EmbeddedEngine } from "./embedded/embedded-engine.js";
import type { EngineObserver } from "./engine-observer.js";
import type { Engine } from "./engine.js";
import { databaseName } from "./mongodb/database-name.js";

/**
 * Refuses, before the engine opens, environment names it could never hold
 * (those the keys file binds keys to): MongoDB refuses long database names,
 * and an environment whose database it refuses would fail every call in it.
 * Throws the DomainError an AdminService request naming one would get.
 */
export function checkEnvironmentNames(config: Config, names: readonly string[]): void {
  if (config.engine === "mongodb") for (const name of names) databaseName(config.mongodbDbPrefix, name);
}

/** Opens the engine the configuration names; MongoDB's driver is loaded only when it is used. */
export async function openEngine(config: Config, log: Logger, observer?: EngineObserver): Promise<Engine> {
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
  });
}
