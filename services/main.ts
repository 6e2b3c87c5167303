import { isIPv6 } from "node:net";
import { DomainError } from "../core/errors.js";
import { loadKeysFile, type StoredKey } from "./access/api-keys.js";
import { LOCAL_PRINCIPAL } from "./access/principal.js";
import { checkTlsFiles, ConfigError, helpText, isLoopback, loadConfig, type Config } from "./config.js";
import { createLogger } from "./log.js";
import { LarderMetrics } from "./metrics.js";
import { createLarderServer } from "./server.js";
import type { Engine } from "./stores/engine.js";
import { checkEnvironmentNames, openEngine } from "./stores/open-engine.js";
import { FeedHealth } from "./feed/feed-health.js";

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
    checkTlsFiles(config);
    keys = config.keysFile ? loadKeysFile(config.keysFile) : undefined;
    checkEnvironmentNames(config, boundEnvironments(keys ?? []));
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
  const environments = keys ? boundEnvironments(keys) : [LOCAL_PRINCIPAL.environment!];
  const metrics =
    config.metricsPort === undefined
      ? undefined
      : new LarderMetrics({ engine: config.engine, environments, changeRetentionMs: config.changeRetentionMs });
  const feedHealth = new FeedHealth(log);
  const engine = await openEngine(config, log, metrics?.engineObserver, feedHealth);
  await openEnvironments(engine, environments);
  const server = createLarderServer({ config, engine, log, keys, metrics, feedHealth });
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
  if (keys && !config.tlsCert && !isLoopback(config.host)) {
    log.warn(
      { host: config.host },
      "API keys will cross the network in cleartext: set LARDER_TLS_CERT and LARDER_TLS_KEY, or terminate TLS in front of Larder",
    );
  }
  const {
    host,
    port,
    metrics: metricsAddress,
  } = await server.listen().catch((error: NodeJS.ErrnoException) => {
    if (error.code === "EADDRINUSE") {
      throw new Error(`${config.host}:${config.port} is already in use; choose another LARDER_PORT (0: any free port)`);
    }
    if (error.code === "EADDRNOTAVAIL") {
      throw new Error(`${config.host} is not an address of this machine; check LARDER_HOST`);
    }
    throw error;
  });
  const scheme = config.tlsCert ? "https" : "http";
  if (metricsAddress) {
    // Before the listening line: whoever waits for that one finds the metrics port already printed.
    log.info(metricsAddress, "metrics listening");
    console.log(`larder metrics on http://${urlAuthority(metricsAddress.host, metricsAddress.port)}/metrics`);
  }
  log.info({ host, port, engine: config.engine, keys: keys ? keys.length : "none" }, "listening");
  console.log(`larder listening on ${scheme}://${urlAuthority(host, port)} (engine ${engine.describe()})`);
}

/** An IPv6 address takes brackets in a URL (RFC 3986), so a printed URL can be pasted as it is. */
function urlAuthority(host: string, port: number): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The environments keys are bound to; an operator key is bound to none. */
function boundEnvironments(keys: readonly StoredKey[]): string[] {
  return keys.flatMap((key) => (key.environment === undefined ? [] : [key.environment]));
}

/**
 * The environments the keys name (or `default`) open before the port does:
 * their databases, collections and indexes are made now, and one the
 * deployment refuses (rights, a conflicting index, a file that cannot be
 * opened) stops the server with its name and the reason, not its first call.
 * Environments made later through AdminService (create, import, clone) open
 * on first use.
 */
async function openEnvironments(engine: Engine, names: readonly string[]): Promise<void> {
  const unique = [...new Set(names)];
  const opened = await Promise.allSettled(unique.map((name) => engine.environment(name)));
  const failed = opened.findIndex((result) => result.status === "rejected");
  if (failed < 0) return;
  await engine.close().catch(() => undefined);
  const refusal = (opened[failed] as PromiseRejectedResult).reason as Error;
  // What the engine mapped a fault from (SQLite's own words) tells an operator more than a caller's status does.
  const reason = refusal instanceof DomainError && refusal.cause instanceof Error ? refusal.cause : refusal;
  throw new Error(`the environment '${unique[failed]}' could not be opened: ${reason.message ?? reason}`);
}

main().catch((error: unknown) => {
  console.error(`larder: could not start: ${(error as Error).message ?? error}`);
  process.exit(1);
});
