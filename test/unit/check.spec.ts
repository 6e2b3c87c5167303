import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { expect } from "chai";
import { REPO_ROOT } from "../support/server.js";

const BIN = `${REPO_ROOT}/node_modules/.bin`;

/** Runs one of the tools `npm run check` runs, on `input` as if it were the file at `path`; resolves with its exit code and output. */
function run(tool: string, args: string[], input: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(`${BIN}/${tool}`, args, { cwd: REPO_ROOT, timeout: 60_000 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== "number") reject(error);
      else resolve({ code: error ? Number(error.code) : 0, output: stdout + stderr });
    });
    child.stdin!.end(input);
  });
}

const eslint = (code: string, path = "services/seeded.ts") => run("eslint", ["--stdin", "--stdin-filename", path], code);
const prettierCheck = (code: string, path = "services/seeded.ts") => run("prettier", ["--check", "--stdin-filepath", path], code);

describe("npm run check: what it runs, and where", () => {
  it("check is lint plus prettier --check; lint is buf lint, tsc and ESLint; CI runs check", () => {
    const { scripts } = JSON.parse(readFileSync(`${REPO_ROOT}/package.json`, "utf8")) as { scripts: Record<string, string> };
    expect(scripts.check.split(" && ")).to.deep.equal(["npm run --silent lint", "prettier --check ."]);
    expect(scripts.lint.split(" && ")).to.deep.equal(["buf lint", "tsc --noEmit -p tsconfig.json", "eslint ."]);
    expect(readFileSync(`${REPO_ROOT}/.ci/run`, "utf8")).to.match(/^npm run -s check$/m);
  });
});

/**
 * `npm run check` must be able to fail: the repository's ESLint and Prettier
 * configurations, given code that breaks them, exit non-zero naming the rule —
 * and leave alone what they are told to ignore.
 */
describe("npm run check: the lint and format configurations bite", function () {
  this.timeout(120_000);
  before(function () {
    if (!existsSync(`${BIN}/eslint`) || !existsSync(`${BIN}/prettier`)) this.skip(); // node_modules predates the tools: `npm ci` installs them
  });

  it("ESLint: an unused variable and an explicit any fail; clean code passes", async () => {
    const unused = await eslint("export function f(): number {\n  const unused = 1;\n  return 2;\n}\n");
    expect(unused.code, unused.output).to.equal(1);
    expect(unused.output).to.contain("@typescript-eslint/no-unused-vars");
    const any = await eslint("export const x: any = 1;\n");
    expect(any.code, any.output).to.equal(1);
    expect(any.output).to.contain("@typescript-eslint/no-explicit-any");
    // What the rules mean here: a leading underscore marks a deliberate skip.
    const clean = await eslint("export const [, second] = [1, 2];\nexport const { a: _a, ...rest } = { a: 1, b: 2 };\n");
    expect(clean, clean.output).to.deep.equal({ code: 0, output: "" });
  });

  it("ESLint: a spec that writes its own sleep or failureOf again is told to import test/support's", async () => {
    const inline = await eslint(
      "export async function wait(): Promise<void> {\n  await new Promise((resolve) => setTimeout(resolve, 10));\n}\n",
      "test/unit/seeded.spec.ts",
    );
    expect(inline.code, inline.output).to.equal(1);
    expect(inline.output).to.contain("Use sleep() from test/support/async.ts");
    const copy = await eslint('export const failureOf = (call: Promise<unknown>) => call.then(() => "no");\n', "test/e2e/seeded.spec.ts");
    expect(copy.code, copy.output).to.equal(1);
    expect(copy.output).to.contain("This helper lives in test/support/");
    // test/support itself is where they are written.
    expect(
      (await eslint("export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));\n", "test/support/seeded.ts")).code,
    ).to.equal(0);
  });

  it("ESLint ignores generated code", async () => {
    const generated = await eslint("export const x: any = 1;\n", "gen/larder/data/v1/seeded.ts");
    expect(generated.code, generated.output).to.equal(0);
    expect(generated.output).to.contain("ignored");
  });

  it("Prettier: the repository's style (150 columns, double quotes, trailing commas, semicolons) passes, other styles fail", async () => {
    expect((await prettierCheck('export const a = { b: "c", d: [1, 2] };\n')).code).to.equal(0);
    expect((await prettierCheck("export const a = { b: 'c', d: [1, 2] }\n")).code, "single quotes, no semicolon").to.equal(1);
    const long = `export const names = [${Array.from({ length: 30 }, (_, i) => `"name${i}"`).join(", ")}];\n`;
    expect((await prettierCheck(long)).code, "a line past 150 columns").to.equal(1);
  });
});
