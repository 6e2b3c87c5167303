import { spawnSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { REPO_ROOT } from "../support/server.js";

const TSC = join(REPO_ROOT, "node_modules/typescript/bin/tsc");
const FLAGS = [
  "--noEmit",
  "--strict",
  "--skipLibCheck",
  "--module",
  "nodenext",
  "--moduleResolution",
  "nodenext",
  "--target",
  "es2022",
  "--resolveJsonModule",
];

function typeCheck(file: string): { status: number | null; output: string } {
  const result = spawnSync(process.execPath, [TSC, ...FLAGS, file], { cwd: REPO_ROOT, encoding: "utf8" });
  return { status: result.status, output: result.stdout + result.stderr };
}

describe("client: our data is assignable to @ampt/data's Data (types/index.d.ts)", function () {
  this.timeout(120_000);

  it("types-compat.ts type-checks: Node and browser `data` are @ampt/data `Data`", () => {
    const { status, output } = typeCheck("test/client/types-compat.ts");
    expect(output).to.equal("");
    expect(status).to.equal(0);
  });

  it("the check can fail: an object missing scan() is refused", () => {
    const file = join(REPO_ROOT, "test/client/.negative-compat.ts");
    writeFileSync(
      file,
      'import type { Data } from "@ampt/data";\nimport { createData } from "../../client/index.js";\n' +
        'const { scan, ...withoutScan } = createData({ url: "http://x" });\nexport const broken: Data = withoutScan;\nvoid scan;\n',
    );
    try {
      const { status, output } = typeCheck("test/client/.negative-compat.ts");
      expect(status).to.not.equal(0);
      expect(output).to.contain("scan");
    } finally {
      rmSync(file, { force: true });
    }
  });
});
