import { expect } from "chai";
import fc from "fast-check";
import { DomainError } from "../../core/errors.js";
import { parseKeyExpression, prefixEnd, rangeIncludes } from "../../core/expressions.js";
import { parseKey } from "../../core/keys.js";

function messageOf(expression: string): string {
  try {
    parseKeyExpression(expression);
  } catch (error) {
    expect(error).to.be.instanceOf(DomainError);
    return (error as DomainError).message;
  }
  throw new Error(`${expression} should be refused`);
}

const includes = (expression: string, key: string) => rangeIncludes(parseKeyExpression(expression), parseKey(key));

describe("key expressions", () => {
  it("Q1: a simple key is exact, even with expression characters", () => {
    const range = parseKeyExpression("user*");
    expect(range.exact).to.equal(true);
    expect(includes("user*", "user*")).to.equal(true);
    expect(includes("user*", "users")).to.equal(false);
  });

  it("Q1/K8: collection wildcards never include the simple key of the same name", () => {
    expect(includes("users:*", "users")).to.equal(false);
    expect(includes("users:*", "users:0")).to.equal(true);
    expect(includes("users:<b", "users")).to.equal(false);
  });

  it("Q5: comparisons are on whole keys", () => {
    expect(includes("ns:2021-05-01|2021-05-31", "ns:2021-05-31")).to.equal(true);
    expect(includes("ns:2021-05-01|2021-05-31", "ns:2021-05-31T10:00")).to.equal(false);
    expect(includes("ns:<b", "ns:az")).to.equal(true);
    expect(includes("ns:<b", "ns:b")).to.equal(false);
    expect(includes("ns:<=b", "ns:b")).to.equal(true);
    expect(includes("ns:<=b", "ns:ba")).to.equal(false);
    expect(includes("ns:>b", "ns:ba")).to.equal(true);
    expect(includes("ns:>=b", "ns:b")).to.equal(true);
  });

  it("Q2: operands are trimmed and a final * on a bound is ignored", () => {
    expect(parseKeyExpression("ns: >=  2021").lower).to.deep.equal({ value: "2021", inclusive: true });
    expect(parseKeyExpression("ns:>a*").lower).to.deep.equal({ value: "a", inclusive: false });
    expect(parseKeyExpression("ns:a|b*").upper).to.deep.equal({ value: "b", inclusive: true });
  });

  it("Q2-Q4: malformed expressions get the published messages", () => {
    expect(messageOf("q:a*b")).to.equal("Wildcards ('*') can only be used at the end of a key expression");
    expect(messageOf("q:*a")).to.equal("Wildcards ('*') can only be used at the end of a key expression");
    expect(messageOf("q:a*|b")).to.equal("Wildcards ('*') can only be used at the end of a key expression");
    for (const operator of [">", ">=", "<", "<="]) {
      expect(messageOf(`q:${operator} `)).to.equal(`You must supply a key name after '${operator}'`);
    }
    expect(messageOf("q:a|")).to.equal("You must supply a key name before and after '|'");
    expect(messageOf("q:|b")).to.equal("You must supply a key name before and after '|'");
    messageOf("q:a|b|c");
    messageOf("q:b|a");
  });

  it("K4 holds for each key an expression names, so a range between two 256-byte keys is an expression", () => {
    const [a, b, long] = ["a".repeat(256), "b".repeat(256), "é".repeat(129)];
    expect(parseKeyExpression(`ns:${a}|${b}*`)).to.deep.include({ lower: { value: a, inclusive: true }, upper: { value: b, inclusive: true } });
    expect(parseKeyExpression(`ns:>= ${a}`).lower).to.deep.equal({ value: a, inclusive: true });
    expect(parseKeyExpression(`ns: ${a} | ${b} `).upper).to.deep.equal({ value: b, inclusive: true });
    expect(parseKeyExpression(`ns:${a}*`).lower).to.deep.equal({ value: a, inclusive: true });
    for (const expression of [`ns:${a}|${long}`, `ns:${long}|${b}`, `ns:<${long}`, `ns:${long}*`, `ns:${long}`, `ns:${"a".repeat(1025)}`]) {
      expect(() => parseKeyExpression(expression), expression.slice(0, 12))
        .to.throw(DomainError, "Invalid key: Maximum Key size is 256 bytes")
        .with.property("reason", "INVALID_KEY");
    }
  });
  it("prefix ranges end at the exact code-point successor", () => {
    expect(prefixEnd("ab")).to.equal("ac");
    expect(prefixEnd("a\u{10FFFF}")).to.equal("b");
    expect(prefixEnd("\u{D7FF}")).to.equal("\u{E000}");
    expect(prefixEnd("\u{10FFFF}")).to.equal(undefined);
    expect(includes("ns:a\u{10FFFF}*", "ns:a\u{10FFFF}\u{10FFFF}x")).to.equal(true);
    expect(includes("ns:a\u{10FFFF}*", "ns:b")).to.equal(false);
  });

  it("property: a prefix range includes exactly the keys that start with the prefix", () => {
    const text = fc.string({ unit: "grapheme", minLength: 1, maxLength: 5 }).filter((s) => s.trim() === s && !/[*|:<>]/.test(s));
    fc.assert(
      fc.property(text, text, (prefix, key) => {
        expect(includes(`ns:${prefix}*`, `ns:${key}`)).to.equal(key.startsWith(prefix));
        expect(includes(`ns:${prefix}*`, `ns:${prefix}${key}`)).to.equal(true);
      }),
      { numRuns: 3000 },
    );
  });

  it("property: any string parses to a range or an INVALID_ARGUMENT, never a crash", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 40 }), (raw) => {
        try {
          parseKeyExpression(`ns:${raw}`);
        } catch (error) {
          expect(error).to.be.instanceOf(DomainError);
          expect((error as DomainError).code).to.equal("INVALID_ARGUMENT");
        }
      }),
      { numRuns: 3000 },
    );
  });
});
