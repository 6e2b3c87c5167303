import { expect } from "chai";
import vectors from "./fixtures/vectors.json" with { type: "json" };
import { createData, LarderError, type LarderData, type ListenerPath } from "../client/index.js";
import { useServer } from "./support/server.js";
import { sleep } from "./support/async.js";

/**
 * Every case of the test vectors of docs/rules.md (test/fixtures/vectors.json)
 * runs through the real client against a live server, on an empty environment
 * each.
 */
interface Step {
  readonly call: string;
  readonly args?: unknown[];
  readonly returns?: unknown;
  readonly throws?: { code?: string; message?: string };
  readonly save?: Record<string, string>;
}
interface Case {
  readonly id: string;
  readonly rules: string[];
  readonly title: string;
  readonly steps: Step[];
}

type Saved = Map<string, unknown>;

const isForm = (value: unknown, name: string): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value) && Object.prototype.hasOwnProperty.call(value, name);

const padded = (prefix: string, count: number) => {
  const width = Math.max(2, String(count - 1).length);
  return Array.from({ length: count }, (_, i) => `${prefix}${String(i).padStart(width, "0")}`);
};

/** Expands the argument forms of the vectors' header into real values. */
function expandArgs(value: unknown, saved: Saved): unknown {
  if (Array.isArray(value)) return value.map((element) => expandArgs(element, saved));
  if (typeof value !== "object" || value === null) return value;
  if (isForm(value, "$undefined")) return undefined;
  if (isForm(value, "$repeat")) {
    const [text, count] = value.$repeat as [string, number];
    return text.repeat(count);
  }
  if (isForm(value, "$concat")) return (expandArgs(value.$concat, saved) as string[]).join("");
  if (isForm(value, "$keys")) return padded(...(value.$keys as [string, number]));
  if (isForm(value, "$keysItems")) {
    return padded(...(value.$keysItems as [string, number])).map((key, index) => ({ key, value: index }));
  }
  if (isForm(value, "$saved")) {
    const date = saved.get(value.$saved as string) as Date;
    return value.as === "epochSeconds" ? Math.floor(date.getTime() / 1000) : date.getTime();
  }
  const object: Record<string, unknown> = {};
  for (const [name, element] of Object.entries(value)) {
    Object.defineProperty(object, name, { value: expandArgs(element, saved), enumerable: true, writable: true, configurable: true });
  }
  return object;
}

/** An item in the meta form (M4): it has a key and the write times. */
function isMetaForm(expected: object): boolean {
  return "key" in expected && "created" in expected && "modified" in expected;
}

/** Deep comparison with the result forms of the header; no extra properties, functions ignored. */
function match(actual: unknown, expected: unknown, saved: Saved, path: string): void {
  if (isForm(expected, "$undefined")) return void expect(actual, path).to.equal(undefined);
  if (isForm(expected, "$any")) return;
  if (isForm(expected, "$string")) return void expect(actual, path).to.be.a("string");
  if (isForm(expected, "$date")) {
    expect(actual, path).to.be.instanceOf(Date);
    if (typeof expected.$date === "string") expect((actual as Date).toISOString(), path).to.equal(expected.$date);
    return;
  }
  if (isForm(expected, "$dateFromNow")) {
    const [seconds, tolerance] = expected.$dateFromNow as [number, number];
    expect(actual, path).to.be.instanceOf(Date);
    expect((actual as Date).getTime(), path).to.be.closeTo(Date.now() + seconds * 1000, tolerance * 1000);
    return;
  }
  if (isForm(expected, "$saved")) {
    const value = saved.get(expected.$saved as string);
    if (value instanceof Date) return void expect((actual as Date).getTime(), path).to.equal(value.getTime());
    return void expect(actual, path).to.deep.equal(value);
  }
  if (isForm(expected, "$after")) {
    expect(actual, path).to.be.instanceOf(Date);
    expect((actual as Date).getTime(), path).to.be.greaterThan((saved.get(expected.$after as string) as Date).getTime());
    return;
  }
  if (isForm(expected, "$length")) {
    expect(actual, path)
      .to.be.an("array")
      .with.length(expected.$length as number);
    return;
  }
  if (isForm(expected, "$keysItems") || isForm(expected, "$repeat") || isForm(expected, "$concat")) {
    return match(actual, expandArgs(expected, saved), saved, path);
  }
  if (Array.isArray(expected)) {
    expect(actual, path).to.be.an("array").with.length(expected.length);
    expected.forEach((element, index) => match((actual as unknown[])[index], element, saved, `${path}[${index}]`));
    return;
  }
  if (typeof expected === "object" && expected !== null) {
    expect(actual, path).to.be.an("object");
    const actualObject = actual as Record<string, unknown>;
    let present = Object.keys(actualObject).filter((name) => typeof actualObject[name] !== "function");
    if (isMetaForm(expected) && !("version" in expected)) {
      // Larder's one addition to the meta form (M4): the item's version, which the spec does not know.
      expect(actualObject.version, `${path}.version`).to.satisfy((version: unknown) => Number.isInteger(version) && (version as number) >= 1);
      present = present.filter((name) => name !== "version");
    }
    expect(present.sort(), `${path}: properties`).to.deep.equal(Object.keys(expected).sort());
    for (const [name, element] of Object.entries(expected)) match(actualObject[name], element, saved, `${path}.${name}`);
    return;
  }
  expect(actual, path).to.deep.equal(expected);
}

async function runCase(data: LarderData, testCase: Case): Promise<void> {
  const saved: Saved = new Map();
  const events: unknown[] = [];
  let previous: unknown;
  for (const [index, step] of testCase.steps.entries()) {
    const where = `${testCase.id} step ${index} (${step.call})`;
    const args = expandArgs(step.args ?? [], saved) as unknown[];
    let result: unknown;
    let failure: unknown;
    try {
      switch (step.call) {
        case "next":
          result = await (previous as { next: () => Promise<unknown> }).next();
          break;
        case "setRemoveNulls":
          data.removeNulls = args[0] as boolean;
          break;
        case "sleep":
          await sleep(args[0] as number);
          break;
        case "collectAll": {
          const items: unknown[] = [];
          let page = (await (data.get as (...a: unknown[]) => Promise<unknown>)(...args)) as
            { items: unknown[]; next?: () => Promise<unknown> } | undefined;
          while (page) {
            items.push(...page.items);
            page = page.next ? ((await page.next()) as typeof page) : undefined;
          }
          result = { items };
          break;
        }
        case "subscribe":
          // No ready(): an @ampt/data app never calls it, and the writes that follow must still be seen.
          data.on(args[0] as ListenerPath, (event) => void events.push(event));
          break;
        case "events": {
          const wanted = (step.returns as unknown[]).length;
          const deadline = Date.now() + 5_000;
          while (events.length < wanted && Date.now() < deadline) await sleep(10);
          await sleep(100);
          result = events.map((event) => {
            const { name, item, previous: before } = event as Record<string, unknown>;
            return before === undefined ? { name, item } : { name, item, previous: before };
          });
          break;
        }
        default:
          result = await (data as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[step.call](...args);
      }
    } catch (error) {
      failure = error;
    }
    if (step.throws) {
      expect(failure, `${where} should have failed`).to.be.instanceOf(Error);
      if (step.throws.code) expect((failure as LarderError).code, `${where}: code`).to.equal(step.throws.code);
      if (step.throws.message) expect((failure as Error).message, `${where}: message`).to.contain(step.throws.message);
      continue;
    }
    if (failure) throw Object.assign(failure as Error, { message: `${where}: ${(failure as Error).message}` });
    if ("returns" in step) match(result, step.returns, saved, where);
    if (step.save) {
      for (const [name, property] of Object.entries(step.save)) saved.set(name, (result as Record<string, unknown>)[property]);
    }
    previous = result;
  }
}

describe("vectors: every case of the spec through the client against a live server", () => {
  const running = useServer({ env: { LARDER_ENGINE: "embedded" } });
  let data: LarderData | undefined;

  beforeEach(async () => {
    data = createData({ url: running.url });
    await data.seed([], { overwrite: true });
  });
  afterEach(async () => {
    await data?.close();
  });

  for (const testCase of vectors.cases as Case[]) {
    it(`${testCase.id} [${testCase.rules.join(", ")}] ${testCase.title}`, async () => {
      await runCase(data!, testCase);
    });
  }

  it("the event-filter table: each specifier's handler gets exactly the events the table says", async () => {
    const table = vectors.filters as [string | string[], string, string, boolean][];
    const received = table.map(() => [] as { name: string; key: string }[]);
    table.forEach(([specifier], row) =>
      data!.on(specifier as ListenerPath | ListenerPath[], (event) => {
        const { name, item } = event as { name: string; item: { key: string } };
        received[row].push({ name, key: item.key });
      }),
    );
    await data!.ready();
    const keys = [...new Set(table.map(([, , key]) => key))];
    for (const key of keys) {
      await data!.set(key, 1);
      await data!.set(key, 2);
      await data!.remove(key);
    }
    // The catch-all row sees every event; once it has them all, every handler has had its turn.
    const catchAll = table.findIndex(([specifier]) => specifier === "*");
    const deadline = Date.now() + 5_000;
    while (received[catchAll].length < keys.length * 3 && Date.now() < deadline) await sleep(10);
    expect(received[catchAll]).to.have.length(keys.length * 3);
    await sleep(100);
    table.forEach(([specifier, name, key, receives], row) => {
      const got = received[row].some((event) => event.name === name && event.key === key);
      expect(got, `row ${row}: ${JSON.stringify(specifier)} ${name} ${key}`).to.equal(receives);
    });
  });
});
