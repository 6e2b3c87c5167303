import { readFileSync, readdirSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { expect } from "chai";
import fc from "fast-check";
import { decodeLabelCursor, encodeLabelCursor } from "../../core/cursor.js";
import { compareUtf8, parseKey } from "../../core/keys.js";
import { segmentHash } from "../../core/segments.js";
import { REPO_ROOT } from "../support/server.js";

/**
 * core/ holds the rules server, client and console share. It must run in a
 * browser as it runs in Node: no imports from outside core/, no Node globals.
 */

const CORE = join(REPO_ROOT, "core");
const coreFiles = readdirSync(CORE).filter((name) => name.endsWith(".ts"));

function importsOf(path: string): string[] {
  const source = readFileSync(path, "utf8");
  return Array.from(source.matchAll(/(?:^|\n)\s*(?:import|export)[^"';]*?from\s*["']([^"']+)["']/g), (match) => match[1]!);
}

function withoutComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:])\/\/.*$/gm, "$1");
}

/** Every own file a module reaches through relative imports, itself included. */
function reachable(entry: string): string[] {
  const seen = new Set<string>();
  const pending = [entry];
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const specifier of importsOf(file)) {
      if (!specifier.startsWith(".")) continue;
      pending.push(resolve(dirname(file), specifier.replace(/\.js$/, ".ts")));
    }
  }
  return [...seen].map((file) => relative(REPO_ROOT, file));
}

describe("core: the shared rules stand alone", () => {
  it("core/ imports only core/ and uses no Node globals", () => {
    expect(coreFiles.length).to.be.greaterThan(10);
    for (const name of coreFiles) {
      const path = join(CORE, name);
      const outside = importsOf(path).filter((specifier) => !specifier.startsWith("./"));
      expect(outside, `${name} imports ${outside.join(", ")}`).to.deep.equal([]);
      const code = withoutComments(readFileSync(path, "utf8"));
      expect(code, name).not.to.match(/\bBuffer\.|\bprocess\.|\brequire\(/);
    }
  });

  it("the client reaches core/ and gen/, never services/", () => {
    const files = reachable(join(REPO_ROOT, "client/index.ts")).concat(reachable(join(REPO_ROOT, "client/browser.ts")));
    expect(
      files.some((file) => file.startsWith("core/")),
      "the client shares core/",
    ).to.equal(true);
    expect(files.filter((file) => !/^(client|core|gen)\//.test(file))).to.deep.equal([]);
  });

  it("compareUtf8 orders as UTF-8 bytes do (what the engines store)", () => {
    const text = fc.string({ unit: "grapheme", maxLength: 6 });
    fc.assert(
      fc.property(text, text, (a, b) => {
        expect(compareUtf8(a, b)).to.equal(Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8")));
      }),
      { numRuns: 2000 },
    );
    // The cases UTF-16 order gets wrong: a surrogate pair against U+E000..U+FFFF.
    expect(compareUtf8("\u{1F600}", "\uFF5E")).to.equal(1);
    expect(compareUtf8("\uE000", "\uD7FF")).to.equal(1);
    expect(compareUtf8("ab", "abc")).to.equal(-1);
  });

  it("segmentHash is FNV-1a over the UTF-8 bytes, as stored by both engines", () => {
    const fnv = (text: string) => {
      let hash = 0x811c9dc5;
      for (const byte of Buffer.from(text, "utf8")) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
      return hash;
    };
    fc.assert(
      fc.property(
        fc.string({ unit: "grapheme", minLength: 1, maxLength: 12 }).filter((s) => !s.includes(":") && s.trim() !== ""),
        (part) => {
          const key = parseKey(`ns:${part}`);
          expect(segmentHash(key)).to.equal(fnv(key.full));
        },
      ),
      { numRuns: 500 },
    );
  });

  it("a label cursor is base64url, reads back, and garbage is refused", () => {
    const position = { label: parseKey("city:zürich😀"), item: parseKey("users:jane") };
    const cursor = encodeLabelCursor(position);
    expect(cursor).to.match(/^[A-Za-z0-9_-]+$/);
    expect(Buffer.from(cursor, "base64url").toString("utf8")).to.equal(JSON.stringify([1, "city:zürich😀", "users:jane"]));
    expect(decodeLabelCursor(cursor)).to.deep.equal(position);
    for (const garbage of ["", "%%%", "bm90IGpzb24", Buffer.from('[2,"a","b"]').toString("base64url")]) {
      expect(() => decodeLabelCursor(garbage)).to.throw(/lastKey of a previous label query/);
    }
  });
});
