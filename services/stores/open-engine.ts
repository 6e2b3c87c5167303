import type { Config } from "../config.js";
import type { Logger } from "../log.js";
import { EmbeddedEngine } from "./embedded/embedded-engine.js";
import type { EngineObserver } from "./engine-observer.js";
import type { Engine } from "./engine.js";

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
