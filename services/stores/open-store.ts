import type { Logger } from "pino";
import type { Config } from "../config.js";
import { EmbeddedStore } from "./embedded/embedded-store.js";
import type { Store } from "./store.js";

const DEFAULT_ENVIRONMENT = "default";

/** Opens the engine the configuration names, for the default environment. */
export async function openStore(config: Config, log: Logger): Promise<Store> {
  if (config.engine === "mongodb") {
    const { openMongoStore } = await import("./mongodb/mongo-store.js");
    return openMongoStore(config, log);
  }
  return new EmbeddedStore({
    dataDir: config.dataDir,
    environment: DEFAULT_ENVIRONMENT,
    durability: "normal",
    sweepIntervalMs: 5_000,
    changeRetentionMs: 24 * 60 * 60 * 1000,
  });
}
