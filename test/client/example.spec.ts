import { spawn } from "node:child_process";
import { expect } from "chai";
import { REPO_ROOT, useServer } from "../support/server.js";

/** The example is documentation: it must keep running against a real server, unchanged. */
describe("examples/todo.ts against a live server", function () {
  this.timeout(60_000);
  const running = useServer();

  it("runs to the end with exit code 0 and shows the app's events, label query, pages and ttl", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "examples/todo.ts"], {
      cwd: REPO_ROOT,
      env: { ...process.env, LARDER_URL: running.url },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
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
