import { loadKeysFile, type StoredKey } from "./access/api-keys.js";
import { ConfigError, helpText, isLoopback, loadConfig, type Config } from "./config.js";
import { createLogger } from "./log.js";
import { createLarderServer } from "./server.js";
import { openEngine } from "./stores/open-engine.js";

/** Exit code for a configuration the server refuses to start with. */
const EXIT_CONFIG = 2;

async function main(): Promise<void> {
  if (process.argv.includes("--help") || process.argv.includes("-h")) {
    console.log(helpText());
    return;
  }
  let config: Config;
  let keys: StoredKey[] | undefined;
  try {
    config = loadConfig();
    keys = config.keysFile ? loadKeysFile(config.keysFile) : undefined;
    if (!keys && !isLoopback(config.host)) {
      throw new ConfigError(
        `Refusing to listen on ${config.host} without API keys: anyone who can reach it could read and write ` +
          "every item. Set LARDER_KEYS_FILE (see README, 'API keys'), or listen on 127.0.0.1.",
      );
    }
  } catch (error) {
    console.error(`larder: ${(error as Error).message}`);
    process.exitCode = EXIT_CONFIG;
    return;
  }

  const log = createLogger(config.logLevel);
  const engine = await openEngine(config, log);
  const server = createLarderServer({ config, engine, log, keys });
  // Signals are handled before the port opens: whoever sees the listening line may stop the server.
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, graceMs: config.shutdownGraceMs }, "shutting down");
    server.close().then(
      () => {
        log.info("stopped");
        process.exit(0);
      },
      (error: unknown) => {
        log.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  const { host, port } = await server.listen();
  const scheme = config.tlsCert ? "https" : "http";
  const where = config.engine === "embedded" ? `data ${config.dataDir}` : `database prefix ${config.mongodbDbPrefix}`;
  log.info({ host, port, engine: config.engine, keys: keys ? keys.length : "none" }, "listening");
  console.log(`larder listening on ${scheme}://${host}:${port} (engine ${config.engine}, ${where})`);
}

main().catch((error: unknown) => {
  console.error(`larder: could not start: ${(error as Error).message ?? error}`);
  process.exit(1);
});
