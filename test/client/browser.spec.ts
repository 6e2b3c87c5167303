import { builtinModules } from "node:module";
import { expect } from "chai";
import { createData } from "../../client/browser.js";
import { REPO_ROOT, useServer } from "../support/server.js";
import { sleep } from "../support/async.js";

describe("client: the browser entry (client/browser.ts)", function () {
  this.timeout(60_000);

  it("bundles for platform=browser with nothing of Node's in it", async () => {
    // esbuild comes with tsx; a browser bundler refuses node: imports, which is the point of the check.
    const esbuild = await import("esbuild");
    const result = await esbuild.build({
      absWorkingDir: REPO_ROOT,
      entryPoints: ["client/browser.ts"],
      bundle: true,
      platform: "browser",
      format: "esm",
      write: false,
      metafile: true,
      logLevel: "silent",
    });
    expect(result.errors).to.deep.equal([]);
    const nodeBuiltins = new Set([...builtinModules, ...builtinModules.map((name) => `node:${name}`)]);
    const imported = Object.values(result.metafile.inputs).flatMap((input) => input.imports.map((entry) => entry.path));
    expect(imported.filter((path) => nodeBuiltins.has(path))).to.deep.equal([]);
    const ownFiles = Object.keys(result.metafile.inputs).filter((path) => !path.startsWith("node_modules/"));
    expect(
      ownFiles.every((path) => /^(client|gen|core)\//.test(path)),
      ownFiles.join(", "),
    ).to.equal(true);
  });

  describe("against a live server, over fetch", () => {
    const running = useServer();

    for (const transport of ["grpc-web", "connect"] as const) {
      it(`${transport}: reads, writes, pages and events work as in Node`, async () => {
        const data = createData({ url: running.url, transport });
        await data.set(
          [1, 2, 3].map((n) => ({ key: `${transport}:${n}`, value: n, label1: `l:${transport}` })),
          { overwrite: true },
        );
        expect(await data.get(`${transport}:2`)).to.equal(2);
        const first = await data.getByLabel("label1", `l:${transport}`, { limit: 2 });
        expect(first.items.map((item) => item.key)).to.deep.equal([`${transport}:1`, `${transport}:2`]);
        expect((await first.next!()).items).to.deep.equal([{ key: `${transport}:3`, value: 3 }]);
        const failure = await data.get(`${transport}:*a`).catch((error: unknown) => error);
        expect(failure).to.include({ code: "INVALID_ARGUMENT", reason: "INVALID_EXPRESSION" });

        const events: string[] = [];
        data.on(`*:${transport}:*`, ({ name, item }) => void events.push(`${name} ${(item as { key: string }).key}`));
        await data.ready();
        await data.add(`${transport}:1`, 10);
        await data.remove(`${transport}:1`);
        const deadline = Date.now() + 5_000;
        while (events.length < 2 && Date.now() < deadline) await sleep(10);
        expect(events).to.deep.equal([`updated ${transport}:1`, `deleted ${transport}:1`]);
        await data.close();
      });
    }
  });
});
