import { readFileSync, readdirSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "chai";
import ts from "typescript";
import vectors from "../fixtures/vectors.json" with { type: "json" };

/**
 * docs/rules.md is the only definition of the rule ids that code and tests cite. The page
 * records the complete id set itself (its "Rule ids" section), so this test needs nothing
 * outside the repository: the page must define exactly that set, and every id cited in
 * services/, client/ and test/ must be one of them.
 */
const REPO = fileURLToPath(new URL("../..", import.meta.url));
const RULES_PAGE = "docs/rules.md";
const SCANNED_TREES = ["services", "client", "test"];
const SOURCE_FILE = /\.(?:ts|tsx|mts|cts)$/;

interface Citation {
  readonly cited: string;
  readonly at: string;
}

const page = readFileSync(join(REPO, RULES_PAGE), "utf8");

function sectionOf(markdown: string, heading: string): string {
  const start = markdown.indexOf(`\n## ${heading}\n`);
  if (start < 0) throw new Error(`${RULES_PAGE} has no "## ${heading}" section`);
  const end = markdown.indexOf("\n## ", start + 1);
  return markdown.slice(start, end < 0 ? undefined : end);
}

/** The complete id set as the page records it: ranges such as `K1–K8`. */
function recordedIds(markdown: string): string[] {
  const ranges = [...sectionOf(markdown, "Rule ids").matchAll(/`([A-Z]{1,3})(\d+)–\1(\d+)`/g)];
  return ranges.flatMap(([, family, first, last]) =>
    Array.from({ length: Number(last) - Number(first) + 1 }, (_, i) => `${family}${Number(first) + i}`),
  );
}

/** The ids the page defines: list items opening with the bold id, as in `- **K4 Size.**`. */
function definedIds(markdown: string): string[] {
  return [...markdown.matchAll(/^- \*\*([A-Z]{1,3}\d{1,2})\b/gm)].map(([, id]) => id!);
}

const sectionNumbers = (markdown: string) => new Set([...markdown.matchAll(/^## (\d+)\. /gm)].map(([, n]) => Number(n)));

/**
 * A rule id of one of the page's families. Numbers never start at 0, and take two digits only
 * in families whose ids reach 10 (EV10), so a time `T0` or a percentile `P99` is not read as
 * a citation, while a one-digit id beyond a family's last rule still is.
 */
function citationPattern(ids: readonly string[]): RegExp {
  const widest = new Map<string, number>();
  for (const [, family, number] of ids.map((id) => id.match(/^([A-Z]+)(\d+)$/)!)) {
    widest.set(family!, Math.max(widest.get(family!) ?? 0, number!.length));
  }
  const alternatives = (width: number) =>
    [...widest]
      .filter(([, digits]) => digits === width)
      .map(([family]) => family)
      .sort((a, b) => b.length - a.length);
  const oneDigit = alternatives(1),
    twoDigits = alternatives(2);
  const forms = [
    ...(twoDigits.length ? [`(?:${twoDigits.join("|")})[1-9]\\d?`] : []),
    ...(oneDigit.length ? [`(?:${oneDigit.join("|")})[1-9]`] : []),
  ];
  return new RegExp(`\\b(?:${forms.join("|")})\\b`, "g");
}

/** Section references such as `§14` or `§15.13` (section 15); an RFC's sections are not ours. */
const SECTION_REFERENCE = /(?<!RFC \d+ )§(\d+)/g;

/** A piece of a source file's prose, and the line it starts on. */
interface Prose {
  readonly text: string;
  readonly offset: number;
  readonly lineAt: (offset: number) => number;
}

/**
 * The prose of a source file: its comments and its string and template texts (test titles,
 * assertion messages, failure codes such as "V5"). Identifiers and other code are left out,
 * so a variable named after a letter and a digit cites nothing.
 */
function proseOf(fileName: string, text: string): Prose[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true);
  const lineAt = (offset: number) => source.getLineAndCharacterOfPosition(offset).line + 1;
  const prose: Prose[] = [];
  const seenComments = new Set<number>();
  const addComments = (ranges: ts.CommentRange[] | undefined) => {
    for (const range of ranges ?? []) {
      if (seenComments.has(range.pos)) continue;
      seenComments.add(range.pos);
      prose.push({ text: text.slice(range.pos, range.end), offset: range.pos, lineAt });
    }
  };
  const visit = (node: ts.Node) => {
    addComments(ts.getLeadingCommentRanges(text, node.pos));
    addComments(ts.getTrailingCommentRanges(text, node.end));
    if (ts.isStringLiteralLike(node) || ts.isTemplateLiteralToken(node)) {
      const start = node.getStart(source);
      prose.push({ text: text.slice(start, node.end), offset: start, lineAt });
    }
    for (const child of node.getChildren(source)) visit(child);
  };
  visit(source);
  return prose.sort((a, b) => a.offset - b.offset);
}

function citationsInProse(fileName: string, prose: readonly Prose[], pattern: RegExp): Citation[] {
  return prose.flatMap(({ text, offset, lineAt }) =>
    [...text.matchAll(pattern)].map((match) => ({ cited: match[1] ?? match[0], at: `${fileName}:${lineAt(offset + match.index!)}` })),
  );
}

const citationsIn = (fileName: string, text: string, pattern: RegExp) => citationsInProse(fileName, proseOf(fileName, text), pattern);

function sourceFiles(directory: string): string[] {
  return readdirSync(directory, { withFileTypes: true }).flatMap((entry) => {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) return entry.name === "node_modules" ? [] : sourceFiles(path);
    return SOURCE_FILE.test(entry.name) ? [path] : [];
  });
}

let treeProse: { fileName: string; prose: Prose[] }[] | undefined;

/** Parsing every file is the slow part, so it is done once for all the tests. */
function citationsInTrees(pattern: RegExp): Citation[] {
  treeProse ??= SCANNED_TREES.flatMap((tree) => sourceFiles(join(REPO, tree))).map((path) => {
    const fileName = relative(REPO, path);
    return { fileName, prose: proseOf(fileName, readFileSync(path, "utf8")) };
  });
  return treeProse.flatMap(({ fileName, prose }) => citationsInProse(fileName, prose, pattern));
}

const unknown = (citations: Citation[], known: ReadonlySet<string>) =>
  citations.filter(({ cited }) => !known.has(cited)).map(({ cited, at }) => `${at} cites ${cited}`);

describe(`${RULES_PAGE}: the rule ids the code cites`, function () {
  // Parsing every source file of three trees takes seconds on a busy machine.
  this.timeout(120_000);
  const recorded = recordedIds(page);
  const defined = definedIds(page);
  const known = new Set(defined);
  const ruleId = citationPattern(recorded);

  it("defines every rule of the recorded id set exactly once, and nothing else", () => {
    const [, count, families] = page.match(/The complete set, (\d+) rules in (\d+) families/) ?? [];
    expect(recorded, "the recorded set names each id once").to.have.lengthOf(new Set(recorded).size);
    expect(recorded).to.have.lengthOf(Number(count));
    expect(new Set(recorded.map((id) => id.replace(/\d+$/, ""))).size).to.equal(Number(families));
    expect(
      defined.filter((id, index) => defined.indexOf(id) !== index),
      "defined twice",
    ).to.deep.equal([]);
    expect([...defined].sort()).to.deep.equal([...recorded].sort());
  });

  it("cites only defined rules within the page itself", () => {
    const [, ...body] = page.split("\n## Rule ids\n");
    const citations = [...body.join("").matchAll(ruleId)].map(([cited]) => ({ cited, at: RULES_PAGE }));
    expect(citations.length).to.be.greaterThan(100);
    expect(unknown(citations, known)).to.deep.equal([]);
  });

  it("every rule id cited in services/, client/ and test/ is defined there", () => {
    const citations = citationsInTrees(ruleId);
    for (const tree of SCANNED_TREES) {
      expect(
        citations.some(({ at }) => at.startsWith(`${tree}/`)),
        `citations found in ${tree}/`,
      ).to.equal(true);
    }
    expect(unknown(citations, known), `not rules of ${RULES_PAGE}; cite a defined rule, or add it there`).to.deep.equal([]);
  });

  it("every rule the test vectors name is defined there", () => {
    const citations = vectors.cases.flatMap((vector) => vector.rules.map((cited) => ({ cited, at: `vector ${vector.id}` })));
    expect(citations).to.not.have.lengthOf(0);
    expect(unknown(citations, known)).to.deep.equal([]);
  });

  it("every section (§N) cited in services/, client/ and test/ is a section there", () => {
    const sections = new Set([...sectionNumbers(page)].map(String));
    const citations = citationsInTrees(SECTION_REFERENCE);
    expect(citations).to.not.have.lengthOf(0);
    expect(unknown(citations, sections)).to.deep.equal([]);
  });

  it("reads comments and strings as citations, and code as code", () => {
    const undefinedId = ["K", "9"].join("");
    const sample = [
      "const T1 = 1, P99 = 2; // why: V8, not at T0 or P99",
      "/** K4 and Q2–Q3, EV10 */",
      'it("EV6: expiry emits deleted", () => expect(x, `P6 for ${T1}`).to.equal("A4"));',
      `const x = T1 + P99; // RFC 9113 §3.4, but §14; ${undefinedId}`,
    ].join("\n");
    const citations = citationsIn("sample.ts", sample, ruleId);
    expect(citations.map(({ cited }) => cited)).to.deep.equal(["V8", "K4", "Q2", "Q3", "EV10", "EV6", "P6", "A4", undefinedId]);
    expect(unknown(citations, known)).to.deep.equal([`sample.ts:4 cites ${undefinedId}`]);
    expect(citationsIn("sample.ts", sample, SECTION_REFERENCE).map(({ cited, at }) => `${cited}@${at}`)).to.deep.equal(["14@sample.ts:4"]);
  });
});
