import { pino, type Logger } from "pino";

export type { Logger } from "pino";

/** One JSON line per record on stdout, as log collectors expect. */
export function createLogger(level: string): Logger {
  return pino({ level, base: { service: "larder" }, timestamp: pino.stdTimeFunctions.isoTime });
}
