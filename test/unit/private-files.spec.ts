import { expect } from "chai";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "../../scripts/larder-process.js";
import { EmbeddedEngine } from "../../services/stores/embedded/embedded-engine.js";

const mode = (path: string) => statSync(path).mode & 0o777;

describe("private files", () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "larder-private-"));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it("the embedded engine makes its data directory 0700 and every SQLite file (-wal, -shm too) 0600", async () => {
    const dataDir = join(root, "data", "nested");
    const engine = new EmbeddedEngine({ dataDir, durability: "normal", sweepIntervalMs: 60_000, changeRetentionMs: 60_000 });
    try {
      await engine.environment("prod");
      expect(mode(dataDir).toString(8)).to.equal("700");
      expect(mode(join(root, "data")).toString(8)).to.equal("700");
      const files = readdirSync(dataDir);
      expect(files).to.include.members(["prod.sqlite", "prod.sqlite-wal", "prod.sqlite-shm"]);
      for (const file of files) expect(`${file} ${mode(join(dataDir, file)).toString(8)}`).to.equal(`${file} 600`);
    } finally {
      await engine.close();
    }
  });

  it("a database file an older version left 0644 is made 0600 when opened", async () => {
    const engine = new EmbeddedEngine({ dataDir: root, durability: "normal", sweepIntervalMs: 60_000, changeRetentionMs: 60_000 });
    await engine.environment("old");
    await engine.close();
    for (const file of readdirSync(root)) chmodSync(join(root, file), 0o644);
    const again = new EmbeddedEngine({ dataDir: root, durability: "normal", sweepIntervalMs: 60_000, changeRetentionMs: 60_000 });
    try {
      await again.environment("old");
      for (const file of readdirSync(root)) expect(`${file} ${mode(join(root, file)).toString(8)}`).to.equal(`${file} 600`);
    } finally {
      await again.close();
    }
  });

  it("npm run keys rewrites the keys file by rename with 0600, whatever mode the old one had", function () {
    this.timeout(60_000);
    const file = join(root, "keys.json");
    const keys = (...args: string[]) =>
      execFileSync(process.execPath, ["--import", "tsx", "scripts/keys.ts", ...args, "--file", file], {
        cwd: REPO_ROOT,
        encoding: "utf8",
        stdio: "pipe",
      });
    keys("add", "--id", "one", "--environment", "prod", "--role", "read");
    expect(mode(file).toString(8)).to.equal("600");
    chmodSync(file, 0o644);
    const before = statSync(file).ino;
    keys("add", "--id", "two", "--environment", "prod", "--role", "write");
    expect(mode(file).toString(8)).to.equal("600");
    // A new inode: the file was replaced whole (a reader sees the old keys or the new, never half), not rewritten in place.
    expect(statSync(file).ino).to.not.equal(before);
    expect(JSON.parse(readFileSync(file, "utf8")).keys.map((key: { id: string }) => key.id)).to.deep.equal(["one", "two"]);
    expect(readdirSync(root)).to.deep.equal(["keys.json"]);
  });
});
