import { invalidArgument } from "../../../core/errors.js";

// Free of the driver: the server checks its keys file against it before loading MongoDB's driver.

/** MongoDB refuses database names of 64 bytes or more. */
export const MAX_DATABASE_NAME_BYTES = 63;

/** The database of an environment, or why it cannot have one. */
export function databaseName(prefix: string, environment: string): string {
  const name = prefix + environment;
  if (Buffer.byteLength(name, "utf8") > MAX_DATABASE_NAME_BYTES) {
    // Keys naming such an environment stop the server at startup, so only an AdminService request names one here.
    throw invalidArgument(
      "ENVIRONMENT_NAME_TOO_LONG",
      `The environment '${environment}' would be the MongoDB database '${name}', longer than MongoDB's ` +
        `${MAX_DATABASE_NAME_BYTES} bytes; use a shorter environment name or LARDER_MONGODB_DB_PREFIX`,
    );
  }
  return name;
}
