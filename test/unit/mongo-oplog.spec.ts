import { expect } from "chai";
import { Timestamp } from "mongodb";
import { LarderMetrics } from "../../services/metrics.js";
import { OPLOG_ENDS, oplogWindow } from "../../services/stores/mongodb/oplog.js";
import { parseExposition } from "../support/in-process.js";

describe("MongoDB oplog window (metrics)", () => {
  it("reads each end of the oplog as one document in natural order, as mongosh does", () => {
    expect(OPLOG_ENDS).to.deep.equal({
      db: "local",
      collection: "oplog.rs",
      first: { sort: { $natural: 1 }, limit: 1, projection: { ts: 1, wall: 1, _id: 0 } },
      last: { sort: { $natural: -1 }, limit: 1, projection: { ts: 1, wall: 1, _id: 0 } },
    });
  });

  it("times entries by their wall clock, else by their optime's seconds; an empty oplog has no window", () => {
    const at = (seconds: number) => new Timestamp({ t: seconds, i: 1 });
    expect(oplogWindow({ ts: at(1_000), wall: new Date(1_000_250) }, { ts: at(4_600), wall: new Date(4_600_750) })).to.deep.equal({
      first: 1_000_250,
      last: 4_600_750,
    });
    expect(oplogWindow({ ts: at(1_000) }, { ts: at(4_600) })).to.deep.equal({ first: 1_000_000, last: 4_600_000 });
    expect(oplogWindow(undefined, undefined)).to.equal(undefined);
  });

  it("exports the window and its oldest entry; nothing when the oplog may not be read", async () => {
    const metrics = new LarderMetrics({ engine: "mongodb", environments: ["prod"], changeRetentionMs: 86_400_000 });
    let oplog: { first: number; last: number } | undefined = { first: 1_700_000_000_000, last: 1_700_007_200_000 };
    metrics.sample({
      callsInFlight: () => 0,
      figures: async () => ({ environments: [{ environment: "prod", feedRing: { events: 3, capacity: 10_000 } }], oplog }),
    });
    let scraped = parseExposition(await metrics.text());
    expect(scraped.get("larder_mongodb_oplog_window_seconds")).to.equal(7_200);
    expect(scraped.get("larder_mongodb_oplog_oldest_timestamp_seconds")).to.equal(1_700_000_000);
    expect(scraped.get('larder_mongodb_feed_ring_events{environment="prod"}')).to.equal(3);
    expect(scraped.get("larder_change_log_retention_seconds")).to.equal(86_400);
    oplog = undefined;
    await new Promise((resolve) => setImmediate(resolve));
    scraped = parseExposition(await metrics.text());
    expect(scraped.has("larder_mongodb_oplog_window_seconds")).to.equal(false);
  });
});
