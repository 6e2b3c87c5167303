import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createRouterTransport, type ServiceImpl } from "@connectrpc/connect";
import { expect } from "chai";
import { bearerAuth, createDataWith, LarderError } from "../../client/index.js";
import { fromValue, toValue } from "../../client/convert.js";
import { DataService, ItemSchema, type Item } from "../../gen/larder/data/v1/data_pb.js";
import { pipelineOver } from "../support/pipeline.js";
import { sleep } from "../support/async.js";

/**
 * What the client sends and how it shapes what it gets, against an in-process
 * DataService that records every request. The live-server suites prove the
 * behavior end to end; these pin the mapping itself and prove that the errors
 * the client raises itself never reach the network.
 */
type Call = { method: string; request: Record<string, unknown>; authorization: string | null };

const created = new Date("2023-06-30T03:51:48.000Z");

function item(key: string, value: unknown, extra: Partial<Omit<Item, "$typeName" | "$unknown">> = {}): Item {
  return create(ItemSchema, {
    key,
    value: toValue(value),
    created: timestampFromDate(created),
    modified: timestampFromDate(created),
    ...extra,
  });
}

function recordingData(options: { apiKey?: string; pageOf?: (start: string) => { keys: string[]; lastKey?: string } } = {}) {
  const calls: Call[] = [];
  const pageOf = options.pageOf ?? ((): { keys: string[]; lastKey?: string } => ({ keys: ["ns:a"] }));
  const transport = createRouterTransport(
    ({ service }) => {
      const record = <T extends DescMessage>(method: string, request: MessageShape<T>, header: Headers) =>
        void calls.push({ method, request: request as unknown as Record<string, unknown>, authorization: header.get("authorization") });
      const double: Partial<ServiceImpl<typeof DataService>> = {
        get: (request, context) => (record("get", request, context.requestHeader), { item: item(request.key, "v") }),
        batchGet: (request, context) => (record("batchGet", request, context.requestHeader), { items: request.keys.map((key) => item(key, 1)) }),
        query: (request, context) => {
          record("query", request, context.requestHeader);
          const page = pageOf(request.start);
          return { items: page.keys.map((key) => item(key, key)), lastKey: page.lastKey };
        },
        set: (request, context) => (record("set", request, context.requestHeader), { item: item(request.key, fromValue(request.value)) }),
        batchSet: (request, context) => (
          record("batchSet", request, context.requestHeader),
          { items: request.items.map((i) => item(i.key, fromValue(i.value))) }
        ),
        add: (request, context) => (record("add", request, context.requestHeader), { item: item(request.key, request.amount) }),
        remove: (request, context) => (record("remove", request, context.requestHeader), { removedKeys: [] }),
        scan: (request, context) => {
          record("scan", request, context.requestHeader);
          return request.count ? { items: [], count: 7n } : { items: [item("a", 1)], lastKey: request.start === "" ? "a" : undefined };
        },
        seed: (request, context) => (record("seed", request, context.requestHeader), { items: BigInt(request.items.length) }),
        async *watch(request, context) {
          record("watch", request, context.requestHeader);
          yield { kind: { case: "started", value: { resumeToken: "t0" } } };
          await new Promise<void>((resolve) => context.signal.addEventListener("abort", () => resolve(), { once: true }));
        },
      };
      service(DataService, { ...double, pipeline: pipelineOver(double) });
    },
    { transport: { interceptors: options.apiKey ? [bearerAuth(options.apiKey)] : [] } },
  );
  const data = createDataWith({ transport });
  return { data, calls };
}

async function refusedLocally(calls: Call[], run: () => Promise<unknown>, message: string): Promise<void> {
  const failure = await run().then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(failure, message).to.be.instanceOf(LarderError);
  expect(failure).to.include({ code: "INVALID_ARGUMENT", message });
  expect(calls, "nothing was sent").to.deep.equal([]);
}

describe("client requests: routing by the key's form (Q1, Q6, B1)", () => {
  it("an exact key is a Get and returns the bare value; a simple key with * is exact too (Q1)", async () => {
    const { data, calls } = recordingData();
    expect(await data.get("users:jane")).to.equal("v");
    expect(await data.get("user*")).to.equal("v");
    expect(calls.map((c) => [c.method, c.request.key])).to.deep.equal([
      ["get", "users:jane"],
      ["get", "user*"],
    ]);
  });

  it("only the key part of a namespaced key is an expression: *, prefix*, <, <=, >, >=, a|b (Q1)", async () => {
    const { data, calls } = recordingData();
    for (const expression of ["ns:*", "ns:ab*", "ns:<b", "ns:<=b", " ns : >b ", "ns:>=b", "ns:a|b"]) {
      expect(await data.get(expression)).to.have.property("items");
    }
    expect(calls.map((c) => c.method)).to.deep.equal(Array(7).fill("query"));
    expect(calls[4].request.expression).to.equal(" ns : >b ");
  });

  it("a label option or getByLabel is a Query even for an exact value, and returns { items } (L3)", async () => {
    const { data, calls } = recordingData();
    expect(await data.getByLabel("label1", "ORDER-9321")).to.deep.equal({ items: [{ key: "ns:a", value: "ns:a" }] });
    expect(await data.get("x", { label: "label2" })).to.have.property("items");
    expect(calls.map((c) => [c.method, c.request.expression, c.request.label])).to.deep.equal([
      ["query", "ORDER-9321", "label1"],
      ["query", "x", "label2"],
    ]);
  });

  it("an array is a BatchGet returning { items } (B1, B3)", async () => {
    const { data, calls } = recordingData();
    expect(await data.get(["a", "b:c"])).to.deep.equal({
      items: [
        { key: "a", value: 1 },
        { key: "b:c", value: 1 },
      ],
    });
    expect(calls[0]).to.deep.include({ method: "batchGet" });
    expect(calls[0].request.keys).to.deep.equal(["a", "b:c"]);
  });

  it("B2, L6: options other than meta on a batch get are refused before sending, named as the published client names them", async () => {
    const { data, calls } = recordingData();
    await refusedLocally(calls, () => data.get(["a"], { limit: 5 }), "Invalid options for batch get request: limit");
    await refusedLocally(calls, () => data.get(["a"], { reverse: true, label: "label1" }), "Invalid options for batch get request: reverse, label");
    await refusedLocally(calls, () => data.getByLabel("label1", ["a"]), "Invalid options for batch get request: label");
  });
});

describe("client requests: options and results (P1, P8, M4, S1)", () => {
  it("P1: true means meta, false means none; meta objects carry Dates (M4)", async () => {
    const { data } = recordingData();
    expect(await data.get("k", false)).to.equal("v");
    expect(await data.get("k", true)).to.deep.equal({ key: "k", value: "v", created, modified: created });
    expect(await data.get("ns:*", true)).to.deep.equal({ items: [{ key: "ns:a", value: "ns:a", created, modified: created }] });
    expect(await data.set("k", "w", false)).to.equal("w");
  });

  it("S1: options of another type are refused before sending", async () => {
    const { data, calls } = recordingData();
    const set = data.set as (...args: unknown[]) => Promise<unknown>;
    await refusedLocally(calls, () => set("k", "v", "meta"), "'options' must be a boolean or object");
    await refusedLocally(calls, () => set("k", "v", 1), "'options' must be a boolean or object");
    await refusedLocally(calls, () => (data.get as (...args: unknown[]) => Promise<unknown>)("k", "x"), "'options' must be a boolean or object");
  });

  it("P8: next() asks for the following page with the same query and options, until there is no lastKey", async () => {
    const pages: Record<string, { keys: string[]; lastKey?: string }> = {
      "": { keys: ["ns:1", "ns:2"], lastKey: "ns:2" },
      "ns:2": { keys: ["ns:3", "ns:4"], lastKey: "ns:4" },
      "ns:4": { keys: ["ns:5"] },
    };
    const { data, calls } = recordingData({ pageOf: (start) => pages[start] });
    let page = await data.get<string>("ns:*", { limit: 2, reverse: false, meta: true });
    const seen: string[] = [];
    for (;;) {
      seen.push(...page.items.map((i) => i.key));
      expect(page.items[0]).to.have.property("created").that.is.instanceOf(Date);
      if (!page.next) {
        expect(page).to.not.have.property("lastKey");
        break;
      }
      page = await page.next();
    }
    expect(seen).to.deep.equal(["ns:1", "ns:2", "ns:3", "ns:4", "ns:5"]);
    expect(calls.map((c) => [c.request.start, c.request.limit, c.request.expression])).to.deep.equal([
      ["", 2, "ns:*"],
      ["ns:2", 2, "ns:*"],
      ["ns:4", 2, "ns:*"],
    ]);
  });

  it("P8: label pages have next() too, carrying the label and the opaque lastKey (P5)", async () => {
    const pages: Record<string, { keys: string[]; lastKey?: string }> = {
      "": { keys: ["a:1"], lastKey: "opaque-1" },
      "opaque-1": { keys: ["a:2"] },
    };
    const { data, calls } = recordingData({ pageOf: (start) => pages[start] });
    const first = await data.getByLabel("label3", "team:*", { limit: 1 });
    expect(first.lastKey).to.equal("opaque-1");
    const second = await first.next!();
    expect(second.items).to.deep.equal([{ key: "a:2", value: "a:2" }]);
    expect(second.next).to.equal(undefined);
    expect(calls.map((c) => [c.request.label, c.request.start])).to.deep.equal([
      ["label3", ""],
      ["label3", "opaque-1"],
    ]);
  });

  it("P2: a limit the API's uint32 cannot carry is refused before sending", async () => {
    const { data, calls } = recordingData();
    await refusedLocally(calls, () => data.get("ns:*", { limit: -1 }), "'limit' must be between 1 and 1000");
    await refusedLocally(calls, () => data.get("ns:*", { limit: 2.5 }), "'limit' must be between 1 and 1000");
  });
});

describe("client requests: writes (V1, V6, V9, L2, T1-T4, AD1, R1, SC1, SE1)", () => {
  it("V6: root attributes given as undefined are sent as unset_attributes; Dates as ISO strings (V1)", async () => {
    const { data, calls } = recordingData();
    await data.set("k", { a: undefined, b: new Date("2030-01-01T00:00:00Z"), c: [undefined] });
    expect(calls[0].request.unsetAttributes).to.deep.equal(["a"]);
    expect(fromValue(calls[0].request.value as never)).to.deep.equal({ b: "2030-01-01T00:00:00.000Z", c: [null] });
  });

  it("V1: a BigInt is refused before sending, with the code and reason attached", async () => {
    const { data, calls } = recordingData();
    const failure = await data.set("k", { n: 1n }).catch((error: unknown) => error);
    expect(failure).to.be.instanceOf(LarderError).and.include({ code: "INVALID_ARGUMENT", reason: "INVALID_VALUE" });
    expect(calls).to.deep.equal([]);
  });

  it("K1/K5/L1: a key or label that is not a string, or holds a lone surrogate, is INVALID_KEY before sending (protobuf would send String(x) or U+FFFD)", async () => {
    const { data, calls } = recordingData();
    const lone = "k:\ud800";
    const attempts: [string, () => Promise<unknown>, string][] = [
      ["set(123)", () => data.set(123 as never, "a"), "Invalid key"],
      ["set({ id })", () => data.set({ id: 1 } as never, "a"), "Invalid key"],
      ["add(7, 1)", () => data.add(7 as never, 1), "Invalid key"],
      ["remove(undefined)", () => data.remove(undefined as never), "Invalid key"],
      ["remove([k, null])", () => data.remove(["k", null] as never), "Invalid key"],
      ["get([k, 5])", () => data.get(["k", 5] as never), "Invalid key"],
      ["get(lone)", () => data.get(lone), "Invalid key: keys must be valid Unicode text"],
      ["set(lone)", () => data.set(lone, 1), "Invalid key: keys must be valid Unicode text"],
      ["batch set(lone)", () => data.set([{ key: lone, value: 1 }]), "Invalid key: keys must be valid Unicode text"],
      ["label1 lone", () => data.set("k", 1, { label1: lone }), "Invalid key: keys must be valid Unicode text"],
      ["label2 [lone]", () => data.set("k", 1, { label2: [lone] }), "Invalid key: keys must be valid Unicode text"],
    ];
    for (const [name, attempt, message] of attempts) {
      const failure = await attempt().catch((error: unknown) => error);
      expect(failure, name).to.be.instanceOf(LarderError).and.include({ code: "INVALID_ARGUMENT", reason: "INVALID_KEY", message });
    }
    const attribute = await data.add("k", "x\udc00", 1).catch((error: unknown) => error);
    expect(attribute).to.be.instanceOf(LarderError).and.include({ reason: "INVALID_VALUE" });
    expect(calls).to.deep.equal([]);
  });

  it("V9: data.removeNulls is the default of every later set and batch set; an option overrides it", async () => {
    const { data, calls } = recordingData();
    await data.set("k", 1);
    data.removeNulls = false;
    await data.set("k", 1);
    await data.set("k", 1, { removeNulls: true });
    await data.set([{ key: "k", value: 1 }]);
    expect(calls.map((c) => c.request.removeNulls)).to.deep.equal([true, false, true, false]);
    expect(() => ((data as { removeNulls: unknown }).removeNulls = 0)).to.throw(LarderError, "removeNulls must be a boolean value");
    expect(data.removeNulls).to.equal(false);
  });

  it("L2, T1-T3, E1, C1: set options map onto the request", async () => {
    const { data, calls } = recordingData();
    await data.set("k", "v", { label1: "a", label2: ["b"], label3: null, ttl: 60, exists: false, created: 1688097108, overwrite: true });
    const request = calls[0].request as Record<string, { action?: unknown; kind?: unknown } | unknown>;
    expect(request.label1).to.deep.include({ action: { case: "set", value: "a" } });
    expect(request.label2).to.deep.include({ action: { case: "setIfAbsent", value: "b" } });
    expect(request.label3).to.deep.include({ action: { case: "remove", value: true } });
    expect(request.label4).to.equal(undefined);
    expect(request.ttl).to.deep.include({ kind: { case: "seconds", value: 60 } });
    expect(request).to.include({ exists: false, created: 1688097108, overwrite: true });
    await data.set("k", "v", { ttl: null });
    expect(calls[1].request.ttl).to.deep.include({ kind: { case: "remove", value: true } });
    await data.set("k", "v", { ttl: undefined });
    expect(calls[2].request.ttl).to.equal(undefined);
  });

  it("C2: a created that is not a number is refused before sending", async () => {
    const { data, calls } = recordingData();
    await refusedLocally(calls, () => data.set("k", "v", { created: "yesterday" as never }), "'created' value must be a number");
  });

  it("AD1: add(key, n, opts) and add(key, attribute, n, opts); AD4 refuses a non-number before sending", async () => {
    const { data, calls } = recordingData();
    expect(await data.add("c", 2)).to.equal(2);
    expect(await data.add("c", "visits", 3, true)).to.deep.include({ key: "c", value: 3 });
    await data.add("c", 5, { overwrite: true });
    expect(calls.map((c) => [c.request.attribute, c.request.amount, c.request.overwrite])).to.deep.equal([
      [undefined, 2, false],
      ["visits", 3, false],
      [undefined, 5, true],
    ]);
    calls.length = 0;
    await refusedLocally(calls, () => data.add("c", "visits", "3" as never), "Values must be numeric");
  });

  it("R1, R2: remove sends one or many keys and returns true", async () => {
    const { data, calls } = recordingData();
    expect(await data.remove("a")).to.equal(true);
    expect(await data.remove(["a", "b"])).to.equal(true);
    expect(calls.map((c) => c.request.keys)).to.deep.equal([["a"], ["a", "b"]]);
  });

  it("SC1, SC5, SC6: scan options map onto the request; count gives { items: [], count }; pages have next()", async () => {
    const { data, calls } = recordingData();
    const page = await data.scan({ limit: 1, attributes: ["a"], segment: 0, totalSegments: 2, label: "label1" });
    expect(page).to.deep.include({ items: [{ key: "a", value: 1 }], lastKey: "a" });
    const last = await page!.next!();
    expect(last).to.deep.equal({ items: [{ key: "a", value: 1 }] });
    expect(await data.scan({ count: true })).to.deep.equal({ items: [], count: 7 });
    expect(calls[0].request).to.deep.include({ limit: 1, attributes: ["a"], segment: 0, totalSegments: 2, label: "label1", count: false });
    expect(calls[1].request).to.deep.include({ start: "a", segment: 0, totalSegments: 2 });
  });

  it("SE1, SE2: seed sends items as given; true means overwrite; a browser-style client without a file reader refuses a path", async () => {
    const { data, calls } = recordingData();
    expect(await data.seed([{ key: "a", value: 1, label1: "l" }], true)).to.deep.equal({ items: 1 });
    expect(calls[0].request).to.include({ overwrite: true });
    calls.length = 0;
    await refusedLocally(calls, () => data.seed("./seed.json"), "seed can read a JSON file only in Node; pass the array of items instead");
  });

  it("SE3: a seed with bad items names each by its index, as the service does, and sends nothing", async () => {
    const { data, calls } = recordingData();
    const items: unknown[] = Array.from({ length: 1000 }, (_, i) => ({ key: `k:${i}`, value: i }));
    items[537] = { key: "k:537" };
    items[900] = { key: "", value: 1 };
    const failure = await data.seed(items as never).catch((error: unknown) => error);
    expect(failure)
      .to.be.instanceOf(LarderError)
      .and.include({
        code: "INVALID_ARGUMENT",
        reason: "INVALID_VALUE",
        message:
          "Invalid items in seed, nothing was written: item 537: A 'value' must be provided in each item; " +
          "item 900: A string value of 'key' must be provided in each item",
      });
    expect(calls).to.deep.equal([]);
  });

  it("BS1: batch items without a string key or without a value are refused before sending", async () => {
    const { data, calls } = recordingData();
    await refusedLocally(calls, () => data.set([{ key: "", value: 1 }]), "A string value of 'key' must be provided in each item");
    await refusedLocally(calls, () => data.set([{ key: "a" } as never]), "A 'value' must be provided in each item");
  });
});

describe("client requests: the API key", () => {
  it("goes as authorization: Bearer <key> on unary calls and on Watch", async () => {
    const { data, calls } = recordingData({ apiKey: "secret-key" });
    await data.get("k");
    data.on("created", () => undefined);
    await data.ready();
    await data.close();
    expect(calls.map((c) => [c.method, c.authorization])).to.deep.equal([
      ["get", "Bearer secret-key"],
      ["watch", "Bearer secret-key"],
    ]);
  });
});

describe("client requests: on() registration (EV1, EV10)", () => {
  it("refuses a bad name, a missing handler or a bad timeout at once, and opens no stream for them", async () => {
    const { data, calls } = recordingData();
    const on = data.on as (...args: unknown[]) => void;
    expect(() => on("changed", () => undefined)).to.throw(LarderError, "Invalid event name: changed");
    expect(() => on("created")).to.throw(LarderError, "An event handler must be a function");
    expect(() => on("created", { timeout: 100 })).to.throw(LarderError, "An event handler must be a function");
    expect(() => on("created", { timeout: "soon" }, () => undefined)).to.throw(LarderError, "'timeout' must be a positive number");
    expect(() => on("created", { timeout: 0 }, () => undefined)).to.throw(LarderError, "'timeout' must be a positive number");
    await sleep(50);
    expect(calls).to.deep.equal([]);
    on("created", { timeout: 100 }, () => undefined);
    await data.ready();
    expect(calls.map((c) => c.method)).to.deep.equal(["watch"]);
    await data.close();
  });
});
