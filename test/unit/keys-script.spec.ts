import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { expect } from "chai";
import { authenticate, loadKeysFile } from "../../services/access/api-keys.js";
import { REPO_ROOT } from "../support/server.js";

const run = promisify(execFile);

/** `npm run keys` is the first thing an operator runs: it must explain itself, never dump a stack. */
async function keys(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ["--import", "tsx", "scripts/keys.ts", ...args], { cwd: REPO_ROOT, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe("scripts/keys.ts (npm run keys)", function () {
  this.timeout(60_000);

  it("--help prints the usage of every command and the roles, exit 0", async () => {
    for (const flag of ["--help", "-h", "help"]) {
      const { code, stdout } = await keys(flag);
      expect(code, flag).to.equal(0);
      for (const text of ["add --file", "list --file", "remove --file", "app "]) expect(stdout, flag).to.contain(text);
    }
  });

  it("an unknown option is one line naming it, then the usage; exit 2 and no stack trace", async () => {
    const { code, stderr } = await keys("list", "--file", "x.json", "--bogus");
    expect(code).to.equal(2);
    expect(stderr.split("\n")[0]).to.contain("'--bogus'");
    expect(stderr).to.contain("usage:");
    expect(stderr).not.to.match(/ERR_PARSE_ARGS|\n\s+at /);
  });

  it("add, list and remove a key of the app role", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "larder-keys-")), "keys.json");
    const added = await keys("add", "--file", file, "--id", "web", "--environment", "prod", "--role", "app");
    expect(added.code, added.stderr).to.equal(0);
    const key = added.stdout.trim();
    expect(authenticate(loadKeysFile(file), key)).to.deep.equal({ keyId: "web", environment: "prod", role: "app", manages: "own" });
    expect(readFileSync(file, "utf8")).not.to.contain(key);
    expect((await keys("list", "--file", file)).stdout).to.equal("web\tprod\tapp\n");
    expect((await keys("remove", "--file", file, "--id", "web")).code).to.equal(0);
    expect((await keys("list", "--file", file)).stdout).to.equal("");
  });

  it("add an operator key: bound to no environment, and refused with one (issue 16)", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "larder-keys-")), "keys.json");
    const bound = await keys("add", "--file", file, "--id", "ops", "--environment", "prod", "--role", "operator");
    expect([bound.code, bound.stderr.trim()]).to.deep.equal([2, "an operator key manages every environment: leave out --environment"]);
    const added = await keys("add", "--file", file, "--id", "ops", "--role", "operator");
    expect(added.code, added.stderr).to.equal(0);
    expect(authenticate(loadKeysFile(file), added.stdout.trim())).to.deep.equal({
      keyId: "ops",
      environment: undefined,
      role: "operator",
      manages: "every",
    });
    expect((await keys("list", "--file", file)).stdout).to.equal("ops\t(every environment)\toperator\n");
    const unbound = await keys("add", "--file", file, "--id", "web", "--role", "write");
    expect([unbound.code, unbound.stderr.trim()]).to.deep.equal([2, "--environment must be an environment name (a-z, 0-9, - and _)"]);
  });
});
