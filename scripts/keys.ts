import { closeSync, existsSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { parseArgs } from "node:util";
import { generateKey, hashKey, isEnvironmentName, loadKeysFile } from "../services/access/api-keys.js";
import { isRole, OPERATOR, ROLES } from "../services/access/roles.js";

/**
 * `npm run keys -- add --file keys.json --id web --environment prod --role write`
 * adds a key to a keys file (created if missing) and prints the key once: the
 * file keeps only its SHA-256. `--role operator` (and no `--environment`)
 * adds a key that manages every environment through AdminService. `npm run keys -- list --file keys.json` and
 * `remove --id web` manage the rest.
 */
const USAGE = `usage:
  npm run keys -- add --file FILE --id NAME --environment ENV --role ROLE
      adds a key and prints it once (the file keeps only its SHA-256)
  npm run keys -- add --file FILE --id NAME --role operator
      adds an operator key: bound to no environment, it manages every one
  npm run keys -- list --file FILE
      one line per key: id, environment, role (never the key)
  npm run keys -- remove --file FILE --id NAME
      removes the key; restart the server to apply
  npm run keys -- --help

roles:
  read    Get, BatchGet, Query, Count, Scan, Namespaces, Ping
  write   read + Set, BatchSet, Add, Remove, Seed
  watch   read + Watch, Ack
  app     read + write + watch: what an app using data.on() needs
  admin   everything, AdminService included, for its own environment only
  operator  AdminService on every environment (no --environment); nothing on DataService`;

function main(): number {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        file: { type: "string" },
        id: { type: "string" },
        environment: { type: "string" },
        role: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    // An unknown or malformed option: one line saying which, then how to call it (no stack trace).
    console.error(`${(error as Error).message.split(". ")[0]}\n\n${USAGE}`);
    return 2;
  }
  const { positionals, values } = parsed;
  const [command] = positionals;
  if (values.help || command === "help") {
    console.log(USAGE);
    return 0;
  }
  if (!["add", "list", "remove"].includes(command ?? "")) {
    console.error(`${command === undefined ? "a command is required" : `unknown command '${command}'`}\n\n${USAGE}`);
    return 2;
  }
  if (!values.file) {
    console.error(`--file is required\n\n${USAGE}`);
    return 2;
  }
  const keys = existsSync(values.file) ? loadKeysFile(values.file) : [];
  const save = (entries: unknown[]) => replaceFile(values.file!, `${JSON.stringify({ keys: entries }, null, 2)}\n`);
  if (command === "list") {
    for (const key of keys) console.log(`${key.id}\t${key.environment ?? "(every environment)"}\t${key.role}`);
    return 0;
  }
  if (!values.id) {
    console.error(`--id is required\n${USAGE}`);
    return 2;
  }
  if (command === "remove") {
    const kept = keys.filter((key) => key.id !== values.id);
    if (kept.length === keys.length) {
      console.error(`no key with id '${values.id}' in ${values.file}`);
      return 1;
    }
    save(kept);
    console.error(`removed '${values.id}'; restart the server to apply`);
    return 0;
  }
  if (keys.some((key) => key.id === values.id)) {
    console.error(`a key with id '${values.id}' already exists in ${values.file}`);
    return 1;
  }
  if (!isRole(values.role)) {
    console.error(`--role must be one of ${ROLES.join(", ")}`);
    return 2;
  }
  if (values.role === OPERATOR) {
    if (values.environment !== undefined) {
      console.error(`an ${OPERATOR} key manages every environment: leave out --environment`);
      return 2;
    }
  } else if (!values.environment || !isEnvironmentName(values.environment)) {
    console.error("--environment must be an environment name (a-z, 0-9, - and _)");
    return 2;
  }
  const key = generateKey();
  const entry = {
    id: values.id,
    sha256: hashKey(key),
    ...(values.environment === undefined ? {} : { environment: values.environment }),
    role: values.role,
  };
  save([...keys, entry]);
  const scope = values.environment ?? "every environment";
  console.error(`added '${values.id}' (${scope}, ${values.role}) to ${values.file}; the key is shown once:`);
  console.log(key);
  return 0;
}

/**
 * Writes a fresh file readable by its owner only and renames it over the old
 * one: a reader (the server starting) sees the old keys or the new, never half
 * a file, and a keys file made world-readable by hand does not stay so.
 */
function replaceFile(path: string, text: string): void {
  const temporary = `${path}.${process.pid}.tmp`;
  const fd = openSync(temporary, "wx", 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    rmSync(temporary, { force: true });
    throw error;
  }
  closeSync(fd);
  renameSync(temporary, path);
}

process.exitCode = main();
