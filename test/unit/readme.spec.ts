import { readFileSync } from "node:fs";
import { expect } from "chai";
import { SETTINGS } from "../../services/config.js";
import { REPO_ROOT } from "../support/server.js";

/** The README's configuration table is the user's manual of config.ts: it must name every setting, and only those. */
describe("README configuration table", () => {
  it("lists exactly the settings the server reads", () => {
    const readme = readFileSync(`${REPO_ROOT}/README.md`, "utf8");
    const section = readme.slice(readme.indexOf("## Configuration"), readme.indexOf("## API keys"));
    const documented = [...section.matchAll(/^\| `([A-Z0-9_]+)`(?:, `([A-Z0-9_]+)`)? \|/gm)].flatMap((row) => row.slice(1).filter(Boolean));
    expect([...documented].sort()).to.deep.equal(SETTINGS.map((setting) => setting.name).sort());
  });
});
