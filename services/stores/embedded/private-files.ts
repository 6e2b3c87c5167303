import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from "node:fs";

/**
 * Items, change logs and subscriptions are readable by the server's user
 * only: directories the engine makes are 0700 and its files 0600. SQLite
 * gives a database's -wal and -shm files the mode of the database file, so
 * making that one private is enough. An existing directory keeps its mode
 * (it may be one the operator shares, such as a mount point).
 */
export function privateDirectory(path: string): void {
  mkdirSync(path, { recursive: true, mode: 0o700 });
}

/** Creates the file 0600 if it is missing, and makes an existing one (of an older version, say) 0600. */
export function privateFile(path: string): void {
  closeSync(openSync(path, "a", 0o600));
  chmodSync(path, 0o600);
}

/** -wal and -shm files an older version left world-readable; new ones take the database file's mode. */
export function privateCompanions(databaseFile: string): void {
  for (const suffix of ["-wal", "-shm"]) {
    if (existsSync(databaseFile + suffix)) chmodSync(databaseFile + suffix, 0o600);
  }
}
