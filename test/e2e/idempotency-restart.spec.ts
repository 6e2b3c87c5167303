import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { DataService } from "../../gen/larder/data/v1/data_pb.js";
import { enginesUnderTest } from "../contract/harness.js";
import { plain } from "../contract/values.js";
import { startServer } from "../support/server.js";

/**
 * An idempotency record is stored with its write, so it outlives the
 * process: after a crash (SIGKILL) and a restart, a retry of a write that
 * was applied still gets the first outcome and applies nothing.
 */
for (const engine of enginesUnderTest()) {
  describe(`e2e: idempotency records survive a crash and a restart [${engine.name}]`, function () {
    before(function () {
      if (engine.skipReason) this.skip();
    });

    it("add retried with its key after SIGKILL and a restart counts once; a new key counts again", async function () {
      this.timeout(120_000);
      const dataDir = mkdtempSync(join(tmpdir(), "larder-idempotency-"));
      try {
        const first = await startServer({ dataDir, env: engine.env });
        const before = createClient(DataService, createGrpcTransport({ baseUrl: first.url }));
        const applied = await before.add({ key: "crash:counter", amount: 1, idempotencyKey: "before-the-crash" });
        await first.stop("SIGKILL");

        const second = await startServer({ dataDir, env: engine.env });
        try {
          const after = createClient(DataService, createGrpcTransport({ baseUrl: second.url }));
          const retried = await after.add({ key: "crash:counter", amount: 1, idempotencyKey: "before-the-crash" });
          expect(retried.item).to.deep.equal(applied.item);
          expect(plain((await after.get({ key: "crash:counter" })).item!.value)).to.equal(1);
          expect(plain((await after.add({ key: "crash:counter", amount: 1, idempotencyKey: "after-the-restart" })).item!.value)).to.equal(2);
        } finally {
          await second.stop();
        }
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  });
}
