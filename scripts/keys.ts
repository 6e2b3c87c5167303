import { existsSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { generateKey, hashKey, isEnvironmentName, loadKeysFile } from "../services/access/api-keys.js";
import { isRole, ROLES } from "../services/access/roles.js";

/**
 * `npm run keys -- add --file keys.json --id web --environment prod --role write`
 * adds a key to a keys file (created if missing) and prints the key once: the
 * file keeps only its SHA-256. `npm run keys -- list --file keys.json` and
 * `remove --id web` manage the rest.
 */
const USAGE = `usage:
  npm run keys -- add --file FILE --id NAME --environment ENV --role ${ROLES.join("|")}
  npm run keys -- list --file FILE
  npm run keys -- remove --file FILE --id NAME`;

function main(): number {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      file: { type: "string" },
      id: { type: "string" },
      environment: { type: "string" },
      role: { type: "string" },
    },
  });
  const [command] = positionals;
  if (!values.file || !["add", "list", "remove"].includes(command ?? "")) {
    console.error(USAGE);
    return 2;
  }
  const keys = existsSync(values.file) ? loadKeysFile(values.file) : [];
  const save = (entries: unknown[]) => writeFileSync(values.file!, `${JSON.stringify({ keys: entries }, null, 2)}\n`, { mode: 0o600 });
  if (command === "list") {
    for (const key of keys) console.log(`${key.id}\t${key.environment}\t${key.role}`);
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
  if (!values.environment || !isEnvironmentName(values.environment)) {
    console.error("--environment must be an environment name (a-z, 0-9, - and _)");
    return 2;
  }
  if (!isRole(values.role)) {
    console.error(`--role must be one of ${ROLES.join(", ")}`);
    return 2;
  }
  const key = generateKey();
  save([...keys, { id: values.id, sha256: hashKey(key), environment: values.environment, role: values.role }]);
  console.error(`added '${values.id}' (${values.environment}, ${values.role}) to ${values.file}; the key is shown once:`);
  console.log(key);
  return 0;
}

process.exitCode = main();
