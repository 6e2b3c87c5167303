import { expect } from "chai";
import fc from "fast-check";
import { DomainError } from "../../core/errors.js";
import { compareKeys, looksLikeExpression, parseKey, parseWritableKey, textLooksLikeExpression } from "../../core/keys.js";

function failure(run: () => unknown): DomainError {
  try {
    run();
  } catch (error) {
    expect(error).to.be.instanceOf(DomainError);
    return error as DomainError;
  }
  throw new Error("expected a DomainError");
}

describe("keys", () => {
  it("K1: the first colon splits namespace and key part; later colons belong to the key part", () => {
    expect(parseKey("users:a:b")).to.deep.equal({ full: "users:a:b", ns: "users", part: "a:b" });
    expect(parseKey("simple")).to.deep.equal({ full: "simple", ns: "simple", part: "" });
  });

  it("K2: every colon-separated piece is trimmed; inner spaces stay", () => {
    expect(parseKey(" users : jane ").full).to.equal("users:jane");
    expect(parseKey(" keyName ").full).to.equal("keyName");
    expect(parseKey("foo Obj").full).to.equal("foo Obj");
    expect(parseKey("ns: a : b ").part).to.equal("a:b");
  });

  it("K3: empty keys and empty leading parts are invalid; later empty pieces are allowed", () => {
    for (const bad of ["", "   ", ":x", "ns:", "ns::x", "ns: :x"]) {
      const error = failure(() => parseKey(bad));
      expect([error.code, error.reason, error.message]).to.deep.equal(["INVALID_ARGUMENT", "INVALID_KEY", "Invalid key"]);
    }
    expect(parseKey("ns:a::b").part).to.equal("a::b");
  });

  it("K4: 256 bytes of UTF-8 for a simple key, a namespace and a key part, each", () => {
    expect(parseKey("é".repeat(128)).full).to.have.length(128);
    expect(failure(() => parseKey("é".repeat(129))).message).to.equal("Invalid key: Maximum Key size is 256 bytes");
    expect(parseKey(`${"a".repeat(256)}:${"b".repeat(256)}`).part).to.have.length(256);
    expect(failure(() => parseKey(`${"a".repeat(257)}:b`)).message).to.equal("Invalid key: Maximum collection name size is 256 bytes");
    expect(failure(() => parseKey(`a:${"😀".repeat(65)}`)).message).to.equal("Invalid key: Maximum Key size is 256 bytes");
  });

  it("K5: unpaired surrogates are refused; emoji and CJK are fine", () => {
    expect(failure(() => parseKey("a\ud800b")).reason).to.equal("INVALID_KEY");
    expect(parseKey("日本:😀").part).to.equal("😀");
  });

  it("K6: written collection keys may not contain * or | nor start with < or >; simple keys may", () => {
    expect(failure(() => parseWritableKey("ns:a*")).message).to.contain("cannot contain the '|' or the '*' characters");
    expect(failure(() => parseWritableKey("ns:a|b")).message).to.contain("cannot contain the '|' or the '*' characters");
    expect(failure(() => parseWritableKey("ns:>a")).message).to.contain("cannot start with the '>' or '<' characters");
    expect(parseWritableKey("user*").full).to.equal("user*");
    expect(parseWritableKey("ns:a>b").part).to.equal("a>b");
  });

  it("Q1: only collection key parts can be expressions", () => {
    expect(looksLikeExpression(parseKey("user*"))).to.equal(false);
    expect(looksLikeExpression(parseKey("ns:a*"))).to.equal(true);
    expect(looksLikeExpression(parseKey("ns:<a"))).to.equal(true);
    expect(looksLikeExpression(parseKey("ns:a|b"))).to.equal(true);
    expect(looksLikeExpression(parseKey("ns:a"))).to.equal(false);
  });

  it("Q1: the client's reading of a key's text (get or query) agrees with the service's on every valid key", () => {
    expect(textLooksLikeExpression("user*")).to.equal(false);
    expect(textLooksLikeExpression("ns: >a")).to.equal(true);
    expect(textLooksLikeExpression("ns:a : <b")).to.equal(false);
    const text = fc.string({ unit: fc.constantFrom("a", " ", ":", "*", "|", "<", ">", "é"), maxLength: 12 });
    fc.assert(
      fc.property(text, (raw) => {
        let key;
        try {
          key = parseKey(raw);
        } catch {
          return;
        }
        expect(textLooksLikeExpression(raw), JSON.stringify(raw)).to.equal(looksLikeExpression(key));
      }),
      { numRuns: 2000 },
    );
  });

  it("K7: order is by UTF-8 bytes, not UTF-16 units", () => {
    const parts = ["😀", "～", "ä", "a", "B", "9", "10"].map((p) => parseKey(`n:${p}`));
    expect(parts.sort(compareKeys).map((k) => k.part)).to.deep.equal(["10", "9", "B", "a", "ä", "～", "😀"]);
  });

  it("SC2: a simple key sorts right before the collection of the same name", () => {
    const keys = ["users:a", "users", "usert", "user:z"].map(parseKey).sort(compareKeys);
    expect(keys.map((k) => k.full)).to.deep.equal(["user:z", "users", "users:a", "usert"]);
  });

  it("property: parseKey either returns a trimmed key or throws INVALID_KEY, never anything else", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (raw) => {
        try {
          const key = parseKey(raw);
          expect(key.ns).to.equal(key.ns.trim());
          expect(key.full).to.equal(key.part === "" ? key.ns : `${key.ns}:${key.part}`);
          expect(parseKey(key.full)).to.deep.equal(key);
        } catch (error) {
          expect(error).to.be.instanceOf(DomainError);
          expect((error as DomainError).reason).to.equal("INVALID_KEY");
        }
      }),
      { numRuns: 2000 },
    );
  });
});
