import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { createSecureContext } from "node:tls";

/** Everything the server reads from its environment, validated once at start. */
export interface Config {
  readonly host: string;
  readonly port: number;
  readonly engine: "embedded" | "mongodb";
  readonly dataDir: string;
  readonly mongodbUri?: string;
  readonly mongodbDbPrefix: string;
  readonly logLevel: string;
  readonly maxMessageBytes: number;
  readonly shutdownGraceMs: number;
  readonly keysFile?: string;
  readonly tlsCert?: string;
  readonly tlsKey?: string;
  readonly publicServices: readonly string[];
  readonly changeRetentionMs: number;
  readonly idempotencyWindowMs: number;
  /** Changes a Watch may fall behind before it is ended, resumably (SUBSCRIBER_TOO_SLOW). */
  readonly watchMaxLag: number;
  readonly sweepIntervalMs: number;
  readonly durability: "normal" | "full";
  readonly maxInFlight: number;
  readonly maxInFlightPerConnection: number;
  readonly bodyTimeoutMs: number;
  readonly maxStreams: number;
  /** undefined: no metrics endpoint. */
  readonly metricsPort?: number;
  readonly metricsHost: string;
  readonly compressMinBytes: number;
  readonly compressLoopback: boolean;
  /** Browser origins allowed to call across origins (CORS), exactly as browsers send them. */
  readonly corsOrigins: readonly string[];
  readonly maxPublicStreams: number;
  readonly maxPublicStreamsPerConnection: number;
  readonly http2MaxConcurrentStreams: number;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

const MIB = 1024 * 1024;
/** V8: a batch of 25 items of 400 KB, with room for protobuf framing. */
const MIN_MESSAGE_BYTES = 11 * MIB;
const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

interface Setting {
  readonly name: string;
  readonly fallback: string;
  readonly about: string;
}

/** The documented settings, in the order `--help` and the README show them. */
export const SETTINGS: readonly Setting[] = [
  { name: "LARDER_HOST", fallback: "127.0.0.1", about: "Address to listen on. Non-loopback needs LARDER_KEYS_FILE." },
  { name: "LARDER_PORT", fallback: "4150", about: "TCP port for gRPC, gRPC-Web and Connect (0: any free port)." },
  { name: "LARDER_ENGINE", fallback: "embedded", about: "`embedded` (SQLite files in LARDER_DATA_DIR) or `mongodb`." },
  { name: "LARDER_DATA_DIR", fallback: "./.larder", about: "Where the embedded engine keeps one SQLite file per environment." },
  { name: "MONGODB_URI", fallback: "", about: "MongoDB connection string (replica set, 6.0+) for LARDER_ENGINE=mongodb." },
  { name: "LARDER_MONGODB_DB_PREFIX", fallback: "larder_", about: "Database name prefix: environment `prod` is database `larder_prod`." },
  { name: "LARDER_LOG_LEVEL", fallback: "info", about: "fatal, error, warn, info, debug (one line per call), trace or silent." },
  {
    name: "LARDER_MAX_MESSAGE_BYTES",
    fallback: String(16 * MIB),
    about: "Largest request or response message (at least 11 MiB: 25 items of 400 KB).",
  },
  { name: "LARDER_SHUTDOWN_GRACE_MS", fallback: "10000", about: "How long in-flight calls may finish after SIGTERM/SIGINT." },
  { name: "LARDER_KEYS_FILE", fallback: "", about: "API keys file (JSON, hashed keys). Unset: no keys, loopback only, environment `default`." },
  { name: "LARDER_TLS_CERT", fallback: "", about: "PEM certificate file; with LARDER_TLS_KEY the port speaks TLS (h2 and HTTP/1.1 by ALPN)." },
  { name: "LARDER_TLS_KEY", fallback: "", about: "PEM private key file for LARDER_TLS_CERT." },
  {
    name: "LARDER_PUBLIC_SERVICES",
    fallback: "grpc.reflection.v1.ServerReflection,grpc.reflection.v1alpha.ServerReflection,grpc.health.v1.Health",
    about: "Services callable without an API key (comma-separated; empty: none).",
  },
  {
    name: "LARDER_CHANGE_RETENTION_MS",
    fallback: String(24 * 60 * 60 * 1000),
    about: "How long change events stay resumable (on MongoDB also bounded by the oplog).",
  },
  {
    name: "LARDER_IDEMPOTENCY_WINDOW_MS",
    fallback: String(24 * 60 * 60 * 1000),
    about: "How long a write's idempotency key answers retries with the first outcome.",
  },
  {
    name: "LARDER_WATCH_MAX_LAG",
    fallback: "10000",
    about: "Changes a Watch may fall behind the newest before it is ended with SUBSCRIBER_TOO_SLOW (it resumes with its last token).",
  },
  { name: "LARDER_SWEEP_INTERVAL_MS", fallback: "5000", about: "How often expired items are deleted (each with a `deleted` event)." },
  {
    name: "LARDER_DURABILITY",
    fallback: "normal",
    about: "`normal`: acknowledged writes survive a process crash; `full`: also power loss (slower).",
  },
  { name: "LARDER_MAX_IN_FLIGHT", fallback: "1024", about: "Unary calls served at once; past it calls get RESOURCE_EXHAUSTED." },
  {
    name: "LARDER_MAX_IN_FLIGHT_PER_CONNECTION",
    fallback: "256",
    about: "Unary calls served at once on one connection, so one client cannot take the whole LARDER_MAX_IN_FLIGHT.",
  },
  { name: "LARDER_MAX_STREAMS", fallback: "10000", about: "Open Watch streams at once; past it a Watch gets RESOURCE_EXHAUSTED." },
  {
    name: "LARDER_CORS_ORIGINS",
    fallback: "",
    about: "Web page origins that may call from a browser (comma-separated, exact, e.g. https://app.example.com). Empty: none.",
  },
  {
    name: "LARDER_MAX_PUBLIC_STREAMS",
    fallback: "100",
    about: "Open health Watch and reflection streams at once (they need no key); counted apart from LARDER_MAX_STREAMS.",
  },
  {
    name: "LARDER_MAX_PUBLIC_STREAMS_PER_CONNECTION",
    fallback: "4",
    about: "Open health Watch and reflection streams at once on one connection.",
  },
  {
    name: "LARDER_HTTP2_MAX_CONCURRENT_STREAMS",
    fallback: "1000",
    about: "HTTP/2 streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS); more are refused by HTTP/2 itself.",
  },
  {
    name: "LARDER_BODY_TIMEOUT_MS",
    fallback: "60000",
    about: "How long a call's request body may take to arrive; past it the stream (HTTP/2) or connection (HTTP/1.1) is closed.",
  },
  {
    name: "LARDER_METRICS_PORT",
    fallback: "",
    about: "TCP port for Prometheus metrics at /metrics, apart from the API (0: any free port). Unset: no metrics.",
  },
  { name: "LARDER_METRICS_HOST", fallback: "127.0.0.1", about: "Address the metrics port listens on (an IP address, or 'localhost')." },
  {
    name: "LARDER_COMPRESS_MIN_BYTES",
    fallback: "16384",
    about: "Responses smaller than this are sent uncompressed, whatever the caller accepts (gzip would cost more than it saves).",
  },
  {
    name: "LARDER_COMPRESS_LOOPBACK",
    fallback: "false",
    about: "`true`: compress responses to callers on this machine too (loopback gains nothing from it).",
  },
];

/**
 * A certificate and key that cannot be read, are not PEM or do not match are
 * a bad value like any other (exit 2, naming the variable), not a failure
 * of the server once it starts.
 */
export function checkTlsFiles(config: Pick<Config, "tlsCert" | "tlsKey">): void {
  if (!config.tlsCert || !config.tlsKey) return;
  const read = (variable: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new ConfigError(`${variable}: cannot read ${path}: ${(error as Error).message}`);
    }
  };
  const [cert, key] = [read("LARDER_TLS_CERT", config.tlsCert), read("LARDER_TLS_KEY", config.tlsKey)];
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    throw new ConfigError(`LARDER_TLS_CERT and LARDER_TLS_KEY are not a usable PEM certificate and its key: ${(error as Error).message}`);
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const read = (name: string): string => {
    const setting = SETTINGS.find((each) => each.name === name)!;
    const value = env[name];
    return value === undefined || value.trim() === "" ? setting.fallback : value.trim();
  };
  const optional = (name: string): string | undefined => read(name) || undefined;

  const engine = oneOf(read("LARDER_ENGINE"), ["embedded", "mongodb"] as const, "LARDER_ENGINE");
  const mongodbUri = optional("MONGODB_URI");
  if (engine === "mongodb" && !mongodbUri) {
    throw new ConfigError("LARDER_ENGINE=mongodb needs MONGODB_URI, e.g. mongodb://127.0.0.1:27017/?replicaSet=rs0");
  }
  const tlsCert = optional("LARDER_TLS_CERT");
  const tlsKey = optional("LARDER_TLS_KEY");
  if (Boolean(tlsCert) !== Boolean(tlsKey)) {
    throw new ConfigError("LARDER_TLS_CERT and LARDER_TLS_KEY go together: set both or neither");
  }
  const host = read("LARDER_HOST");
  if (host !== "localhost" && isIP(host) === 0) {
    throw new ConfigError(`LARDER_HOST must be an IP address or 'localhost', not '${host}'`);
  }
  const metricsHost = read("LARDER_METRICS_HOST");
  if (metricsHost !== "localhost" && isIP(metricsHost) === 0) {
    throw new ConfigError(`LARDER_METRICS_HOST must be an IP address or 'localhost', not '${metricsHost}'`);
  }
  const metricsPort = optional("LARDER_METRICS_PORT");
  const maxMessageBytes = integer(read("LARDER_MAX_MESSAGE_BYTES"), "LARDER_MAX_MESSAGE_BYTES", MIN_MESSAGE_BYTES, 1024 * MIB);
  return {
    host,
    port: integer(read("LARDER_PORT"), "LARDER_PORT", 0, 65535),
    engine,
    dataDir: read("LARDER_DATA_DIR"),
    mongodbUri,
    mongodbDbPrefix: read("LARDER_MONGODB_DB_PREFIX"),
    logLevel: oneOf(read("LARDER_LOG_LEVEL"), LOG_LEVELS, "LARDER_LOG_LEVEL"),
    maxMessageBytes,
    shutdownGraceMs: integer(read("LARDER_SHUTDOWN_GRACE_MS"), "LARDER_SHUTDOWN_GRACE_MS", 0, 10 * 60_000),
    keysFile: optional("LARDER_KEYS_FILE"),
    tlsCert,
    tlsKey,
    publicServices: publicServices(env.LARDER_PUBLIC_SERVICES ?? SETTINGS.find((s) => s.name === "LARDER_PUBLIC_SERVICES")!.fallback),
    changeRetentionMs: integer(read("LARDER_CHANGE_RETENTION_MS"), "LARDER_CHANGE_RETENTION_MS", 100, 365 * 24 * 3_600_000),
    idempotencyWindowMs: integer(read("LARDER_IDEMPOTENCY_WINDOW_MS"), "LARDER_IDEMPOTENCY_WINDOW_MS", 1000, 30 * 24 * 3_600_000),
    watchMaxLag: integer(read("LARDER_WATCH_MAX_LAG"), "LARDER_WATCH_MAX_LAG", 16, 10_000_000),
    sweepIntervalMs: integer(read("LARDER_SWEEP_INTERVAL_MS"), "LARDER_SWEEP_INTERVAL_MS", 50, 60 * 60_000),
    durability: oneOf(read("LARDER_DURABILITY"), ["normal", "full"] as const, "LARDER_DURABILITY"),
    maxInFlight: integer(read("LARDER_MAX_IN_FLIGHT"), "LARDER_MAX_IN_FLIGHT", 1, 1_000_000),
    maxInFlightPerConnection: integer(read("LARDER_MAX_IN_FLIGHT_PER_CONNECTION"), "LARDER_MAX_IN_FLIGHT_PER_CONNECTION", 1, 1_000_000),
    bodyTimeoutMs: integer(read("LARDER_BODY_TIMEOUT_MS"), "LARDER_BODY_TIMEOUT_MS", 100, 60 * 60_000),
    maxStreams: integer(read("LARDER_MAX_STREAMS"), "LARDER_MAX_STREAMS", 1, 1_000_000),
    metricsPort: metricsPort === undefined ? undefined : integer(metricsPort, "LARDER_METRICS_PORT", 0, 65535),
    metricsHost,
    compressMinBytes: integer(read("LARDER_COMPRESS_MIN_BYTES"), "LARDER_COMPRESS_MIN_BYTES", 0, 1024 * MIB),
    compressLoopback: oneOf(read("LARDER_COMPRESS_LOOPBACK"), ["true", "false"] as const, "LARDER_COMPRESS_LOOPBACK") === "true",
    corsOrigins: corsOrigins(read("LARDER_CORS_ORIGINS")),
    maxPublicStreams: integer(read("LARDER_MAX_PUBLIC_STREAMS"), "LARDER_MAX_PUBLIC_STREAMS", 1, 1_000_000),
    maxPublicStreamsPerConnection: integer(
      read("LARDER_MAX_PUBLIC_STREAMS_PER_CONNECTION"),
      "LARDER_MAX_PUBLIC_STREAMS_PER_CONNECTION",
      1,
      1_000_000,
    ),
    http2MaxConcurrentStreams: integer(read("LARDER_HTTP2_MAX_CONCURRENT_STREAMS"), "LARDER_HTTP2_MAX_CONCURRENT_STREAMS", 1, 1_000_000),
  };
}

/**
 * Only services that read no data may be opened to callers without a key: a
 * public DataService or AdminService would make every anonymous caller an
 * admin of the `default` environment. A misspelt name fails here rather than
 * leaving health checks locked out in silence.
 */
const MAY_BE_PUBLIC = ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection", "grpc.health.v1.Health"];

function publicServices(text: string): string[] {
  const names = text
    .split(",")
    .map((name) => name.trim())
    .filter(Boolean);
  for (const name of names) {
    if (!MAY_BE_PUBLIC.includes(name)) {
      throw new ConfigError(`LARDER_PUBLIC_SERVICES may list only ${MAY_BE_PUBLIC.join(", ")}, not '${name}'`);
    }
  }
  return names;
}

/**
 * Exact origins, as a browser sends them in `Origin`: scheme, host and port
 * only. A wildcard is refused: any page on the web calling with a user's
 * key is rarely meant, and a list says which pages are.
 */
function corsOrigins(text: string): string[] {
  const origins = text
    .split(",")
    .map((origin) => origin.trim())
    .filter(Boolean);
  for (const origin of origins) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(origin);
    } catch {
      parsed = undefined;
    }
    if (!parsed || !["http:", "https:"].includes(parsed.protocol) || parsed.origin !== origin) {
      throw new ConfigError(
        `LARDER_CORS_ORIGINS lists exact origins (scheme://host[:port], no path or trailing slash, no wildcard), like https://app.example.com; not '${origin}'`,
      );
    }
  }
  return origins;
}

/** Loopback addresses are the only ones a server without API keys may listen on. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function integer(text: string, name: string, min: number, max: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) {
    throw new ConfigError(`${name} must be a whole number from ${min} to ${max}, not '${text}'`);
  }
  return value;
}

function oneOf<T extends string>(text: string, allowed: readonly T[], name: string): T {
  if (!(allowed as readonly string[]).includes(text)) {
    throw new ConfigError(`${name} must be one of ${allowed.join(", ")}, not '${text}'`);
  }
  return text as T;
}

/** `--help`: every setting with its default. */
export function helpText(): string {
  const lines = ["larder: the @ampt/data programming model as a gRPC / Connect service.", "", "Configuration (environment variables):", ""];
  for (const setting of SETTINGS) {
    lines.push(`  ${setting.name.padEnd(28)} ${setting.about}`);
    if (setting.fallback) lines.push(`  ${"".padEnd(28)} default: ${setting.fallback}`);
  }
  return lines.join("\n");
}
