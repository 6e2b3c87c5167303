import { expect } from "chai";
import { NO_LABELS, type ItemRecord } from "../../core/item.js";
import { parseKey } from "../../core/keys.js";
import type { FeedEvent } from "../../services/feed/change-feed.js";
import {
  decodeHistoryDocument,
  decodeHistoryPosition,
  firstChangeAfter,
  HISTORY_INDEXES,
  historyDocuments,
  historyPage,
  historyWrites,
  lastChangeAtOrBefore,
} from "../../services/stores/mongodb/history.js";

/**
 * The MongoDB key history's documents and queries, as data: what the
 * consumer writes and what History and asOf reads ask for. That MongoDB
 * answers them as intended is for the contract suite (npm run test:mongo).
 */
const T0 = Date.UTC(2026, 11, 5);
const key = parseKey("users:ada");
const item = (value: number, version: number, extra: Partial<ItemRecord> = {}): ItemRecord => ({
  key,
  value: { n: value, "$odd.name": true },
  created: T0,
  modified: T0 + version,
  labels: [parseKey("city:oslo"), undefined, undefined, undefined, undefined],
  version,
  ...extra,
});
const event = (fields: Pick<FeedEvent, "name" | "item"> & Partial<FeedEvent>): FeedEvent => ({ id: "x", token: "t", time: T0 + 7, ...fields });

describe("MongoDB engine: key history (history.ts)", () => {
  it("one document per event of a change, its identity the change's stream position and the event's index, the change as JSON text", () => {
    const order = "8266A1B2C3000000012B022C0100296E5A1004";
    const documents = historyDocuments(
      order,
      [
        event({ name: "deleted", item: item(1, 1, { expires: T0 + 2 }), expired: true }),
        event({ name: "created", item: { ...item(2, 1), labels: NO_LABELS } }),
      ],
      3_600_000,
    );
    expect(documents.map(({ c: _c, ...rest }) => rest)).to.deep.equal([
      { _id: `${order}.0`, k: "users:ada", o: order, i: 0, at: new Date(T0 + 7), expireAt: new Date(T0 + 7 + 3_600_000) },
      { _id: `${order}.1`, k: "users:ada", o: order, i: 1, at: new Date(T0 + 7), expireAt: new Date(T0 + 7 + 3_600_000) },
    ]);
    const [expiry, created] = documents.map(decodeHistoryDocument);
    expect(expiry).to.deep.equal({ position: `${order}.0`, name: "deleted", expired: true, time: T0 + 7, item: item(1, 1, { expires: T0 + 2 }) });
    expect([created.name, created.expired, created.item.value, created.item.labels]).to.deep.equal([
      "created",
      false,
      { n: 2, "$odd.name": true },
      NO_LABELS,
    ]);
    const updated = decodeHistoryDocument(historyDocuments(order, [event({ name: "updated", item: item(3, 2), previous: item(2, 1) })], 1)[0]);
    expect([updated.item.version, updated.previous?.version]).to.deep.equal([2, 1]);
  });

  it("written as ordered upserts by identity: a second server's copy adds nothing but may lengthen the retention", () => {
    const [document] = historyDocuments("82AA", [event({ name: "created", item: item(1, 1) })], 1_000);
    expect(historyWrites([document])).to.deep.equal([
      {
        updateOne: {
          filter: { _id: "82AA.0" },
          update: {
            $setOnInsert: { k: "users:ada", o: "82AA", i: 0, at: new Date(T0 + 7), c: document.c },
            $max: { expireAt: new Date(T0 + 7 + 1_000) },
          },
          upsert: true,
        },
      },
    ]);
  });

  it("indexes: by key in stream order for every read, and a TTL index on each document's own expiry", () => {
    expect(HISTORY_INDEXES).to.deep.equal([
      { key: { k: 1, o: -1, i: -1 }, name: "key_order" },
      { key: { expireAt: 1 }, name: "expire_ttl", expireAfterSeconds: 0 },
    ]);
  });

  it("a page: the key's changes from the horizon, newest first, strictly before the previous page's last one", () => {
    expect(historyPage(key, T0, 11)).to.deep.equal({
      filter: { k: "users:ada", at: { $gte: new Date(T0) } },
      sort: { o: -1, i: -1 },
      limit: 11,
      hint: "key_order",
    });
    expect(historyPage(key, T0, 11, "82AB.1").filter).to.deep.equal({
      k: "users:ada",
      at: { $gte: new Date(T0) },
      $or: [{ o: { $lt: "82AB" } }, { o: "82AB", i: { $lt: 1 } }],
    });
  });

  it("asOf: the last change at or before the instant (from the horizon only), else the first after it", () => {
    expect(lastChangeAtOrBefore(key, T0 + 50, T0)).to.deep.equal({
      filter: { k: "users:ada", at: { $gte: new Date(T0), $lte: new Date(T0 + 50) } },
      sort: { o: -1, i: -1 },
      limit: 1,
      hint: "key_order",
    });
    expect(firstChangeAfter(key, T0 + 50)).to.deep.equal({
      filter: { k: "users:ada", at: { $gt: new Date(T0 + 50) } },
      sort: { o: 1, i: 1 },
      limit: 1,
      hint: "key_order",
    });
  });

  it("a start that is not a position this engine made is INVALID_ARGUMENT", () => {
    expect(decodeHistoryPosition("82ab01.3")).to.deep.equal({ o: "82ab01", i: 3 });
    for (const bad of ["", "12", "82AB.", "82AB.-1", "82AB.01", "zz.1", "82AB.1.2", '{"$gt":1}.0']) {
      expect(() => decodeHistoryPosition(bad), bad)
        .to.throw()
        .with.property("reason", "INVALID_OPTION");
    }
  });
});
