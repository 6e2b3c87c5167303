import { expect } from "chai";
import { parseKey } from "../../core/keys.js";
import { NO_LABELS } from "../../core/item.js";
import { idempotencyRecord, IDEMPOTENCY_TTL_INDEX, replayableFilter } from "../../services/stores/mongodb/idempotency.js";
import { REMOVED_KEYS, SET_OUTCOME, SET_OUTCOMES } from "../../services/stores/replay.js";

/** The documents and filters of idempotency records on MongoDB, as data (the contract suite runs them on a server). */
describe("MongoDB engine: idempotency records", () => {
  const NOW = Date.UTC(2026, 11, 5, 1, 0, 0);
  const DAY = 24 * 60 * 60 * 1000;

  it("a record is keyed by the idempotency key and expires one window after the write", () => {
    expect(idempotencyRecord({ key: "k1", fingerprint: "f1" }, '{"x":1}', NOW, DAY)).to.deep.equal({
      _id: "k1",
      f: "f1",
      o: '{"x":1}',
      at: new Date(NOW),
      expireAt: new Date(NOW + DAY),
    });
    expect(IDEMPOTENCY_TTL_INDEX).to.deep.equal({ key: { expireAt: 1 }, name: "expire_ttl", expireAfterSeconds: 0 });
  });

  it("only a record written within the window answers: the TTL monitor may be a minute late", () => {
    expect(replayableFilter("k1", NOW, DAY)).to.deep.equal({ _id: "k1", at: { $gt: new Date(NOW - DAY) } });
  });

  it("outcomes round-trip as JSON text: items with their metadata and version, removed keys", () => {
    const item = {
      key: parseKey("users:jane"),
      value: { a: 1, "b.c": [true] },
      created: 1,
      modified: 2,
      expires: 3,
      labels: [parseKey("team:a"), undefined, undefined, undefined, parseKey("solo")] as const,
      version: 4,
    };
    expect(SET_OUTCOME.decode(SET_OUTCOME.encode({ item, previous: item }))).to.deep.equal({ item });
    const plain = { ...item, key: parseKey("k"), value: "v", expires: undefined, labels: NO_LABELS, version: 1 };
    delete (plain as { expires?: number }).expires;
    expect(SET_OUTCOMES.decode(SET_OUTCOMES.encode([{ item }, { item: plain }]))).to.deep.equal([{ item }, { item: plain }]);
    expect(REMOVED_KEYS.decode(REMOVED_KEYS.encode([parseKey("a:b"), parseKey("c")])).map((key) => key.full)).to.deep.equal(["a:b", "c"]);
  });
});
