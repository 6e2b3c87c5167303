import { spawn } from "node:child_process";
import { expect } from "chai";
import { generateKey } from "../../services/access/api-keys.js";
import { REPO_ROOT, useServer } from "../support/server.js";
import { keysFile } from "../support/keys.js";

async function runExample(url: string, apiKey?: string): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", "examples/todo.ts"], {
    cwd: REPO_ROOT,
    env: { ...process.env, LARDER_URL: url, ...(apiKey ? { LARDER_API_KEY: apiKey } : {}) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  return { code, output };
}

/** The example is documentation: it must keep running against a real server, unchanged. */
describe("examples/todo.ts against a live server", function () {
  this.timeout(60_000);
  const running = useServer();

  it("runs to the end with exit code 0 and shows the app's events, label query, pages and ttl", async () => {
    const { code, output } = await runExample(running.url);
    expect(code, output).to.equal(0);
    const lines = output.trim().split("\n");
    expect(lines.slice(0, 4)).to.deep.equal([
      "event: created todos:001",
      "event: created todos:002",
      "event: created todos:003",
      "event: updated todos:002",
    ]);
    expect(lines).to.include("open: [ 'todos:001 Buy milk', 'todos:003 Ship it' ]");
    expect(lines).to.include("todos:002: ✔ Write the README");
    expect(lines.find((line) => line.startsWith("todos:003 expires "))).to.match(/expires \d{4}-\d\d-\d\dT/);
  });
});

/** An app reads, writes and listens: the `app` role is enough for it, and less than admin. */
describe("examples/todo.ts with an `app` key", function () {
  this.timeout(60_000);
  const appKey = generateKey();
  const running = useServer({ env: { LARDER_KEYS_FILE: keysFile([{ id: "todo-app", key: appKey, environment: "todo", role: "app" }]) } });

  it("runs to the end, events included", async () => {
    const { code, output } = await runExample(running.url, appKey);
    expect(code, output).to.equal(0);
    expect(output).to.contain("event: created todos:001");
  });
});
