import { Code } from "@connectrpc/connect";
import { expect } from "chai";
import { describeContract, expectFailure } from "./harness.js";
import { json } from "./values.js";
import { subscribe } from "./watching.js";
import { sleep } from "../support/async.js";

/**
 * The change history is bounded (24 h by default); these servers keep it for
 * a second and sweep often, so the edges can be tested in real time.
 */
describeContract(
  "contract: change history retention and background expiry",
  ({ client }) => {
    it("a token older than the retained history → OUT_OF_RANGE TOKEN_EXPIRED, never a silent gap", async () => {
      const watch = subscribe(client, { filters: ["*"] });
      await watch.started;
      await client.set({ key: "old:a", value: json(1) });
      const [first] = await watch.until(1);
      await watch.close();
      await sleep(2_500);
      await client.set({ key: "old:b", value: json(2) });
      // Past the 1 s retention by a margin: on MongoDB the event's time is the server's clock.
      await sleep(3_000);
      const stale = subscribe(client, { resumeToken: first.resumeToken });
      await stale.started;
      await stale.close();
      await expectFailure(Promise.reject(stale.failure), Code.OutOfRange, "TOKEN_EXPIRED");
    });

    it("EV6/T7: an item expires in the background with one deleted event marked expired, no write needed", async () => {
      const watch = subscribe(client, { filters: ["deleted:bg:*"] });
      await watch.started;
      await client.set({ key: "bg:a", value: json(1), ttl: { kind: { case: "seconds", value: 1 } } });
      const events = await watch.until(1, 90_000);
      await watch.close();
      expect(events.map((event) => [event.name, event.item?.key, event.expired])).to.deep.equal([["deleted", "bg:a", true]]);
      expect((await client.get({ key: "bg:a" })).item).to.equal(undefined);
    }).timeout(100_000);
  },
  { env: { LARDER_CHANGE_RETENTION_MS: "1000", LARDER_SWEEP_INTERVAL_MS: "200" } },
);
