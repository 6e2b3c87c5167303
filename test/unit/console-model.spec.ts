import { expect } from "chai";
import fc from "fast-check";
import { countUtf8Bytes } from "../../core/json.js";
import { checkDraft, countdown, diffItems, draftOf, sameJson, toSetRequest, type ConsoleItem } from "../../console/model.js";
import { formatRoute, parseRoute, queryRoute, type Route } from "../../console/route.js";

const item = (value: ConsoleItem["value"], extra: Partial<ConsoleItem> = {}): ConsoleItem => ({
  key: "users:jane",
  value,
  version: 4,
  created: new Date(Date.UTC(2026, 0, 1)),
  modified: new Date(Date.UTC(2026, 0, 2)),
  labels: [undefined, undefined, undefined, undefined, undefined],
  ...extra,
});

describe("console: links, drafts and diffs (pure parts, no browser)", () => {
  it("routes round-trip through the hash, keeping ':' readable and '+' a plus", () => {
    const routes: Route[] = [
      queryRoute(),
      queryRoute({ expression: "users:*" }),
      queryRoute({ expression: "orders:>=2024|2025*", label: "label2", limit: 7, reverse: true, start: "orders:2024-01" }),
      { view: "item", key: "users:jane" },
      { view: "item", key: "a+b: #?&=%/ <script>" },
      { view: "new", key: "users:" },
      { view: "events", filters: ["created:users:*", "deleted"] },
      { view: "environments" },
    ];
    for (const route of routes) expect(parseRoute(formatRoute(route)), formatRoute(route)).to.deep.equal(route);
    expect(formatRoute(queryRoute({ expression: "users:*" }))).to.equal("#/query?expression=users:*");
    expect(formatRoute({ view: "item", key: "users:jane" })).to.equal("#/item/users:jane");
    expect(formatRoute({ view: "events", filters: ["created:users:*"] })).to.equal("#/events?filter=created:users:*");
    expect(parseRoute("#/query?expression=a+b")).to.deep.equal(queryRoute({ expression: "a+b" }));
    expect(parseRoute("#/query?limit=5000")).to.deep.equal(queryRoute());
    expect(parseRoute("")).to.deep.equal(queryRoute());
    expect(parseRoute("#/item/%E0%A4%A")).to.deep.equal({ view: "item", key: "%E0%A4%A" });
  });

  it("a draft is checked by the service's own rules before it is sent", () => {
    const fresh = (change: Partial<ReturnType<typeof draftOf>>) =>
      checkDraft({ ...draftOf(undefined, "users:jane"), valueText: "{}", ...change }, undefined);
    expect(fresh({ valueText: "{ nope" }).error).to.match(/^The value is not JSON/);
    expect(fresh({ key: "users:a*" }).error).to.equal("Invalid key: Key names in collections cannot contain the '|' or the '*' characters.");
    expect(fresh({ key: ":x" }).error).to.equal("Invalid key");
    expect(fresh({ valueText: "null" }).error).to.equal("Value can not be undefined without setting a 'default'");
    expect(fresh({ valueText: JSON.stringify("x".repeat(410_000)) }).error).to.match(
      /^Item size of [\d.]+ KB is greater than the maximum size of 400 KB\.$/,
    );
    expect(fresh({ labels: ["city:*", "", "", "", ""] }).error).to.match(/^Invalid key/);
    expect(fresh({ ttl: "not a date" }).error).to.equal("Invalid ttl value.");
    const good = fresh({ valueText: '{"name":"Jane"}', labels: ["city:oslo", "", "", "", ""], ttl: "3600" });
    expect(good.error).to.equal(undefined);
    const request = toSetRequest(good.input!);
    expect(request.exists).to.equal(false);
    expect(request.overwrite).to.equal(false);
    expect(request.ifVersion).to.equal(undefined);
    expect(request.label1?.action).to.deep.equal({ case: "set", value: "city:oslo" });
    expect(request.label2).to.equal(undefined);
    expect(request.ttl?.kind).to.deep.equal({ case: "seconds", value: 3600 });
  });

  it("an edit replaces the item, removes cleared labels and ttl, and keeps created through the integrity check", () => {
    const existing = item({ a: 1 }, { labels: ["x", "y", undefined, undefined, undefined], ttl: new Date(Date.UTC(2030, 0, 1)) });
    const draft = { ...draftOf(existing), labels: ["x", "", "", "", ""], ttl: "" };
    const check = checkDraft(draft, existing);
    expect(check.error).to.equal(undefined);
    const request = toSetRequest(check.input!);
    expect(request.overwrite).to.equal(true);
    expect(request.exists).to.equal(undefined);
    expect(request.created).to.equal(existing.created!.getTime());
    expect(request.ifVersion).to.equal(4n);
    expect(request.label2?.action).to.deep.equal({ case: "remove", value: true });
    expect(request.ttl?.kind).to.deep.equal({ case: "remove", value: true });
    expect(draftOf(existing).ttl).to.equal("2030-01-01T00:00:00.000Z");
  });

  it("diffs of updates: root attributes added, removed and changed, labels and ttl; order of attributes does not count", () => {
    const before = item({ a: 1, b: { x: [1, 2] }, c: "same", d: true });
    const after = item({ d: true, c: "same", b: { x: [1, 3] }, e: null }, { labels: ["new", undefined, undefined, undefined, undefined] });
    expect(diffItems(before, after)).to.deep.equal([
      { attribute: "a", kind: "removed", before: 1 },
      { attribute: "b", kind: "changed", before: { x: [1, 2] }, after: { x: [1, 3] } },
      { attribute: "e", kind: "added", after: null },
      { attribute: "(label1)", kind: "added", before: undefined, after: "new" },
    ]);
    expect(diffItems(item(1), item(2))).to.deep.equal([{ kind: "changed", before: 1, after: 2 }]);
    expect(diffItems(item({ a: 1, b: 2 }), item({ b: 2, a: 1 }))).to.deep.equal([]);
    expect(sameJson({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] })).to.equal(true);
    expect(sameJson([1], { 0: 1 })).to.equal(false);
  });

  it("countdowns", () => {
    const now = Date.UTC(2026, 0, 1);
    expect(countdown(new Date(now - 1), now)).to.equal("expired");
    expect(countdown(new Date(now + 9_500), now)).to.equal("9s");
    expect(countdown(new Date(now + 65_000), now)).to.equal("1m 05s");
    expect(countdown(new Date(now + 3 * 3600_000 + 60_000), now)).to.equal("3h 01m");
    expect(countdown(new Date(now + 2 * 86_400_000 + 3600_000), now)).to.equal("2d 1h");
  });
});

describe("domain: UTF-8 lengths counted without Node's Buffer (for the console) match Buffer's", () => {
  it("on any string, lone surrogates included", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "binary" }),
        fc.string({ unit: fc.integer({ min: 0xd7f0, max: 0xe010 }).map((code) => String.fromCharCode(code)) }),
        (text, surrogates) => {
          for (const sample of [text, surrogates, text + surrogates]) expect(countUtf8Bytes(sample)).to.equal(Buffer.byteLength(sample, "utf8"));
        },
      ),
    );
    for (const sample of ["", "a", "é", "～", "😀", "\ud800", "\udc00", "\ud800\ud800\udc00", "a\udbff"])
      expect(countUtf8Bytes(sample), JSON.stringify(sample)).to.equal(Buffer.byteLength(sample, "utf8"));
  });
});
