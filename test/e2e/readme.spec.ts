import { execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { expect } from "chai";
import { createData, type LarderData } from "../../client/index.js";
import { generateKey, hashKey } from "../../services/access/api-keys.js";
import { sleep } from "../support/async.js";
import { CHROMIUM, launchChromium } from "../support/console.js";
import { startInProcess, type InProcessServer } from "../support/in-process.js";
import { findGrpcurl, REPO_ROOT, startServer, type RunningServer } from "../support/server.js";

/**
 * The README's code blocks, run. Every fenced block is either run here against
 * real servers, or listed in NOT_RUN with the reason: a new block that is
 * neither fails the first test, so none escapes silently.
 *
 * What the README shows and what the test does instead:
 * - `127.0.0.1:4150` (the address `npm start` prints) is a fresh server per
 *   block, in this process, on 127.0.0.1 and an OS-chosen port: the address is
 *   rewritten to it. Blocks run one command at a time, in order, with bash.
 * - `HOST:4150` with `$KEY` is a server with a keys file: for the events block
 *   one the test starts with an `app` key; in the keys block, the one that
 *   block's `npm start` line stands for (see below), with the key its first
 *   `npm run keys -- add` printed.
 * - `keys.json` is a file in a temporary directory.
 * - `grpcurl` is the one `findGrpcurl()` finds (GRPCURL, PATH, shared/tools);
 *   without one, the blocks that call it are skipped, saying so.
 * - `<an event id from /events>` is the resume token of a real event.
 * - An instant (`2026-12-05T01:00:00Z`) is the block's start: a fixed date
 *   would drift out of the retained history (HISTORY_EXPIRED) as days pass.
 * - A streaming command (a Watch, `curl -N`) runs until it has shown its
 *   `started` message and one event (`users:jane` is created for it), then it
 *   is stopped.
 * - A comment after a command that shows an output (`# {...}`) is compared with
 *   what the command printed: the same fields and values, `…` matching anything,
 *   fields the README leaves out allowed.
 * - JavaScript blocks are browser code: they run in Chromium, in a page of the
 *   server's own origin, with `larder` its URL and `key` an `app` key of its
 *   keys file; `console.log` is collected, and an item is written for the
 *   events they wait for.
 * - TypeScript blocks run as modules: the README's `./client/index.js` is the
 *   repository's client; blocks that use `data` without making it get a client
 *   of the block's server, and the state their comments describe is written
 *   first (e.g. `docs:1` at version 7 where a comment says `version: 7`).
 */

const README = readFileSync(join(REPO_ROOT, "README.md"), "utf8");

interface Block {
  readonly line: number;
  readonly lang: string;
  readonly text: string;
  /** The block's first line: how the lists below name it. */
  readonly first: string;
}

function readmeBlocks(): Block[] {
  const blocks: Block[] = [];
  const lines = README.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]);
    if (!open) continue;
    const end = lines.findIndex((line, j) => j > i && line.startsWith("```"));
    if (end < 0) throw new Error(`README.md:${i + 1}: a code block that is never closed`);
    const text = lines.slice(i + 1, end).join("\n");
    blocks.push({ line: i + 1, lang: open[1], text, first: text.split("\n").find((line) => line.trim() !== "") ?? "" });
    i = end;
  }
  return blocks;
}

/** Blocks that cannot run here, by their first line, and why. */
const NOT_RUN: Record<string, string> = {
  "npm ci && npm start     # the service on the embedded engine: http://127.0.0.1:4150":
    "`npm ci` would reinstall node_modules under the running suite, `npm start` serves on the fixed port 4150 until stopped, and `npm test` is the suite this test belongs to; the blocks below run against servers started as `npm start` starts one",
  "npm run check           # buf lint, tsc --noEmit, ESLint (typescript-eslint) and prettier --check: what CI runs before the tests":
    "the static checks run as their own CI step (.ci/run); test/unit/check.spec.ts shows their configurations reject seeded violations",
};

/** A block that shows the output of the block before it (checked there). */
const OUTPUTS = new Set(["event: started"]);

/** The languages run here. */
const RUNNERS = new Set(["sh", "ts", "js"]);

describe("README: every code block runs, and shows what it prints", function () {
  this.timeout(180_000);
  const blocks = readmeBlocks();
  const grpcurl = findGrpcurl();
  const curl = ["/usr/bin/curl", "/bin/curl"].find((path) => existsSync(path));
  const scratch = mkdtempSync(join(tmpdir(), "larder-readme-"));
  after(() => rmSync(scratch, { recursive: true, force: true }));

  it("every block is run, or listed with the reason it cannot be; the list names only blocks that exist", () => {
    const firsts = blocks.map((block) => block.first);
    expect(new Set(firsts).size, "two blocks start with the same line: the lists could not tell them apart").to.equal(firsts.length);
    const unlisted = blocks.filter((block) => !(block.first in NOT_RUN) && !OUTPUTS.has(block.first) && !RUNNERS.has(block.lang));
    expect(
      unlisted.map((block) => `README.md:${block.line} (${block.lang || "no language"}) ${block.first}`),
      "blocks neither run nor listed",
    ).to.deep.equal([]);
    expect(
      Object.keys(NOT_RUN).filter((first) => !firsts.includes(first)),
      "NOT_RUN names a block the README no longer has",
    ).to.deep.equal([]);
    for (const output of OUTPUTS) expect(firsts, "an output block the README no longer has").to.include(output);
  });

  for (const [index, block] of blocks.entries()) {
    if (block.first in NOT_RUN || OUTPUTS.has(block.first)) continue;
    const title = `README.md:${block.line} (${block.lang}) ${block.first.slice(0, 70)}`;
    if (block.lang === "sh") {
      it(title, async function () {
        if (!curl && /\bcurl\b/.test(block.text)) return skipWith(this, "no curl in /usr/bin or /bin");
        if (!grpcurl.path && /\bgrpcurl\b/.test(block.text)) return skipWith(this, grpcurl.why);
        await runShellBlock(block, blocks[index + 1], { grpcurl: grpcurl.path, scratch });
      });
    } else if (block.lang === "ts") {
      it(title, async () => runTypeScriptBlock(block, scratch));
    } else if (block.lang === "js") {
      it(title, async function () {
        if (!existsSync(CHROMIUM)) return skipWith(this, `browser code, and no Chromium at ${CHROMIUM}`);
        await runBrowserBlock(block);
      });
    }
  }
});

/** Mocha's skip() takes no reason: say it in the output. */
function skipWith(context: Mocha.Context, why: string): void {
  console.log(`      (skipped: ${why})`);
  context.skip();
}

// ---------------------------------------------------------------------------
// Shell blocks

interface Command {
  readonly text: string;
  /** The comment after it, and comment lines right below it, joined: where the README shows an output. */
  readonly comment: string;
}

/** Splits a shell block into commands: a newline ends one unless it is inside quotes or after a backslash; `#` starts a comment. */
function splitCommands(text: string): Command[] {
  const commands: { text: string; comment: string }[] = [];
  let current = "";
  let comment = "";
  let quote: "'" | '"' | undefined;
  const finish = () => {
    if (current.trim() !== "") commands.push({ text: current.trim(), comment: comment.trim() });
    else if (comment.trim() !== "" && commands.length > 0) commands[commands.length - 1].comment += ` ${comment.trim()}`;
    current = "";
    comment = "";
  };
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (quote) {
      if (char === quote) quote = undefined;
      current += char;
    } else if (char === "\\" && text[i + 1] === "\n") {
      current += " ";
      i++;
    } else if (char === "'" || char === '"') {
      quote = char;
      current += char;
    } else if (char === "#" && (current === "" || /\s$/.test(current))) {
      const end = text.indexOf("\n", i);
      comment = text.slice(i + 1, end < 0 ? text.length : end);
      i = (end < 0 ? text.length : end) - 1;
    } else if (char === "\n") {
      finish();
    } else {
      current += char;
    }
  }
  finish();
  return commands;
}

interface ShellContext {
  readonly grpcurl: string | undefined;
  readonly scratch: string;
}

/** Where a block's commands go: the README's addresses, rewritten. */
interface Targets {
  open: InProcessServer;
  /** When the block began, as an ISO instant. */
  began: string;
  keyed?: { url: string; key: string };
}

async function runShellBlock(block: Block, next: Block | undefined, context: ShellContext): Promise<void> {
  const keysFile = join(mkdtempSync(join(context.scratch, "keys-")), "keys.json");
  const open = await startInProcess();
  const targets: Targets = { open, began: new Date().toISOString().replace(/\.\d+Z$/, "Z") };
  let keyedServer: InProcessServer | RunningServer | undefined;
  const printedKeys: string[] = [];
  try {
    let commands = splitCommands(block.text);
    if (/\bHOST:4150\b/.test(block.text) && !/\bnpm start\b/.test(block.text)) {
      // HOST with $KEY: a server with a keys file and an app key.
      const key = generateKey();
      const server = await startInProcess({}, [{ id: "readme", sha256: hashKey(key), environment: "default", role: "app" }]);
      keyedServer = server;
      targets.keyed = { url: server.url, key };
    }
    if (commands.some((command) => command.text.startsWith("npm run keys -- remove"))) {
      // The keys block lists commands, not a script: removing `web` before the start would leave $KEY unknown. It runs last.
      const removes = commands.filter((command) => command.text.startsWith("npm run keys -- remove"));
      commands = [...commands.filter((command) => !removes.includes(command)), ...removes];
    }
    const functions: string[] = [];
    for (const command of commands) {
      if (/^\w+\(\) \{/.test(command.text)) {
        functions.push(await rewrite(command.text, targets, keysFile));
        continue;
      }
      const startLine = /^(?:(\w+=\S+) )*npm start$/.exec(command.text);
      if (startLine) {
        // `npm start` with the line's settings, as a process reading the keys file; on 127.0.0.1, not 0.0.0.0.
        const settings = Object.fromEntries(
          [...command.text.matchAll(/(\w+)=(\S+) /g)].map(([, name, value]) => [
            name,
            name === "LARDER_KEYS_FILE" ? keysFile : value === "0.0.0.0" ? "127.0.0.1" : value,
          ]),
        );
        const server = await startServer({ env: { ...settings, LARDER_PORT: "0" } });
        keyedServer = server;
        targets.keyed = { url: server.url, key: printedKeys[0] };
        continue;
      }
      const script = await rewrite(command.text, targets, keysFile);
      const env = { ...process.env, KEY: targets.keyed?.key ?? "", README_GRPCURL: context.grpcurl ?? "grpcurl" };
      const prelude = ['grpcurl() { "$README_GRPCURL" "$@"; }', ...functions].join("\n");
      const streaming = /\/Watch\b|\bcurl -N\b/.test(command.text);
      const output = streaming
        ? await runStream(`${prelude}\n${script}`, env, command, targets)
        : await runCommand(`${prelude}\n${script}`, env, command);
      if (command.text.startsWith("npm run keys -- add")) printedKeys.push(lastLine(output));
      checkOutput(command, output, streaming ? next : undefined);
    }
  } finally {
    if (keyedServer) await ("stop" in keyedServer ? keyedServer.stop() : keyedServer.close());
    await open.close();
  }
}

/** The README's addresses and placeholders, made real (see the description at the top). */
async function rewrite(text: string, targets: Targets, keysFile: string): Promise<string> {
  const hostPort = (url: string) => url.replace(/^http:\/\//, "");
  let script = text.replaceAll("127.0.0.1:4150", hostPort(targets.open.url)).replaceAll("keys.json", keysFile);
  if (targets.keyed) script = script.replaceAll("HOST:4150", hostPort(targets.keyed.url));
  script = script.replace(/\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\b/g, targets.began);
  if (script.includes("<an event id from /events>")) script = script.replaceAll("<an event id from /events>", await eventId(targets.open.url));
  return script;
}

/** The id of the first event /events sends (its `started` message): a resume token. */
async function eventId(url: string): Promise<string> {
  const abort = new AbortController();
  const response = await fetch(`${url}/events`, { signal: abort.signal });
  const reader = response.body!.getReader();
  let text = "";
  try {
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
      text += Buffer.from(chunk.value).toString();
      const id = /^id: (.+)$/m.exec(text);
      if (id) return id[1];
    }
  } finally {
    abort.abort();
  }
  throw new Error(`/events ended without an id: ${text}`);
}

function lastLine(output: string): string {
  return output.trim().split("\n").at(-1)!.trim();
}

function runCommand(script: string, env: NodeJS.ProcessEnv, command: Command): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("bash", ["-c", script], { cwd: REPO_ROOT, env, timeout: 60_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`\`${command.text}\` failed (${error.code ?? error.signal}):\n${stdout}${stderr}`));
      else resolve(stdout);
    });
  });
}

/** A stream: until it has said `started`, then until the event `users:jane` makes arrives; then it is stopped. */
async function runStream(script: string, env: NodeJS.ProcessEnv, command: Command, targets: Targets): Promise<string> {
  // Its own process group, so that stopping it stops grpcurl or curl too.
  const child = spawn("bash", ["-c", script], { cwd: REPO_ROOT, env, detached: true });
  let output = "";
  let errors = "";
  let exited = false;
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (errors += chunk.toString()));
  child.on("exit", () => (exited = true));
  const until = async (text: string) => {
    const deadline = Date.now() + 20_000;
    while (!output.includes(text) && !exited && Date.now() < deadline) await sleep(20);
    if (!output.includes(text)) throw new Error(`\`${command.text}\` never printed ${text}${exited ? " (it ended)" : ""}:\n${output}${errors}`);
  };
  try {
    await until("started");
    const keyed = command.text.includes("HOST:4150");
    const target = keyed ? targets.keyed! : { url: targets.open.url, key: undefined };
    const data = createData({ url: target.url, apiKey: target.key });
    try {
      await data.remove("users:jane");
      await data.set("users:jane", { name: "Jane" });
    } finally {
      await data.close();
    }
    await until("users:jane");
    return output;
  } finally {
    if (!exited) {
      try {
        process.kill(-child.pid!, "SIGTERM");
      } catch {
        // It ended meanwhile.
      }
    }
  }
}

function checkOutput(command: Command, output: string, shown: Block | undefined): void {
  const expected = shownOutput(command.comment);
  if (expected !== undefined) {
    expect(
      containsShape(parseOutput(output), expected),
      `\`${command.text}\` printed\n${output}\nwhere the README shows\n${command.comment}`,
    ).to.equal(true);
  }
  if (/^(call|admin) |^curl -s /.test(command.text)) {
    // Connect calls over curl: a JSON answer, never an error (curl -s exits 0 on any HTTP status).
    let answer: unknown;
    expect(() => (answer = JSON.parse(output)), `\`${command.text}\` printed ${JSON.stringify(output)}`).not.to.throw();
    expect(answer, `\`${command.text}\` was refused: ${output}`).not.to.have.property("code");
  }
  if (command.text.startsWith("npm run keys -- add")) expect(lastLine(output), "the key, printed once").to.match(/^[A-Za-z0-9_-]{20,}$/);
  if (command.text.startsWith("npm run keys -- list")) expect(output).to.match(/^\w+\t[\w()\s-]+\t\w+$/m);
  if (command.text.startsWith("npm run keys -- --help")) expect(output.toLowerCase()).to.contain("usage");
  if (shown && command.text.startsWith("curl -N") && shown.lang === "text") {
    // The block below shows what this prints: the same events, fields and values, `…` matching anything.
    const [expectedStarted, expectedEvent] = serverSentEvents(shown.text);
    const [actualStarted, actualEvent] = serverSentEvents(output);
    expect(actualStarted, output).to.deep.include({ event: expectedStarted.event });
    expect(sameShape(JSON.parse(actualStarted.data), fromShown(expectedStarted.data)), output).to.equal(true);
    expect(actualEvent.id, "an event's id is its resume token").to.equal((JSON.parse(actualEvent.data) as { resumeToken: string }).resumeToken);
    expect(actualEvent.id).to.match(tokenShape(expectedEvent.id!));
    expect(sameShape(JSON.parse(actualEvent.data), fromShown(expectedEvent.data)), output).to.equal(true);
  }
}

/** What a comment shows as the output, if it shows one: JSON from its first `{`, `…` for what the README leaves out. */
function shownOutput(comment: string): unknown {
  const start = comment.indexOf("{");
  if (start < 0) return undefined;
  // The README wraps a long comment over `#` lines: rejoin them.
  return fromShown(comment.slice(start).replace(/\s+#\s+/g, " "));
}

/** JSON as the README shows it: `,…}` leaves out fields, `[…]` items, `"…"` a value. */
function fromShown(text: string): unknown {
  return JSON.parse(text.replace(/,\s*…\s*\}/g, "}").replace(/\[…\]/g, '["…"]'));
}

/** Everything a command printed that is JSON (grpcurl prints one document per message), as a list. */
function parseOutput(output: string): unknown[] {
  const documents: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < output.length; i++) {
    const char = output[i];
    if (inString) {
      if (char === "\\") i++;
      else if (char === '"') inString = false;
    } else if (char === '"' && depth > 0) inString = true;
    else if (char === "{") {
      if (depth++ === 0) start = i;
    } else if (char === "}" && depth > 0 && --depth === 0) documents.push(JSON.parse(output.slice(start, i + 1)));
  }
  return documents;
}

/** `actual` has every field `expected` names, with the same values; "…" matches anything, ["…"] any list. */
function sameShape(actual: unknown, expected: unknown): boolean {
  if (expected === "…") return true;
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return false;
    if (expected.length === 1 && expected[0] === "…") return true;
    return actual.length === expected.length && expected.every((each, i) => sameShape(actual[i], each));
  }
  if (typeof expected === "object" && expected !== null) {
    if (typeof actual !== "object" || actual === null) return false;
    return Object.entries(expected).every(([key, value]) => key in actual && sameShape((actual as Record<string, unknown>)[key], value));
  }
  if (typeof expected === "string" && typeof actual === "string" && /^\d+(\.\d+)+$/.test(expected)) return tokenShape(expected).test(actual);
  return actual === expected;
}

/** Somewhere in `actual` (at any depth) is a value of `expected`'s shape. */
function containsShape(actual: unknown, expected: unknown): boolean {
  if (sameShape(actual, expected)) return true;
  if (typeof actual !== "object" || actual === null) return false;
  return Object.values(actual).some((value) => containsShape(value, expected));
}

/** A token like the README's `2.1733359815374.0`: the same number of dot-separated numbers. */
function tokenShape(example: string): RegExp {
  return new RegExp(
    `^${example
      .split(".")
      .map(() => "\\d+")
      .join("\\.")}$`,
  );
}

function serverSentEvents(text: string): { event?: string; id?: string; data: string }[] {
  return text
    .split(/\n\n+/)
    .map((chunk) => Object.fromEntries(chunk.split("\n").map((line) => [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 1).trim()])))
    .filter((fields) => fields.data !== undefined) as { event?: string; id?: string; data: string }[];
}

// ---------------------------------------------------------------------------
// TypeScript blocks

/**
 * What each TypeScript block needs that the README leaves to the reader, by its
 * first line: the state its comments describe (`setup`, run with the client
 * before the block), and what to check afterwards.
 */
const TYPESCRIPT: Record<
  string,
  { setup?: (data: LarderData) => Promise<void>; check: (data: LarderData, results: unknown[], logs: unknown[][]) => Promise<void> }
> = {
  '// import { data } from "@ampt/data";': {
    async check(data, results) {
      expect(await data.get("users:jane@doe.com", { meta: true })).to.include({ key: "users:jane@doe.com", label1: "team:a" });
      const page = results[1] as { items: { key: string }[] };
      expect(
        page.items.map((item) => item.key),
        "{ items, lastKey?, next? }",
      ).to.deep.equal(["users:jane@doe.com"]);
      const meta = results[2] as { items: { created: unknown }[] };
      expect(meta.items[0].created, "meta form with Date fields").to.be.instanceOf(Date);
      expect(await data.get("counters:visits")).to.equal(1);
    },
  },
  'await data.count("users:*");              // 30': {
    async setup(data) {
      const names = "abcdefghijklmnopqrstuvwxyz".split("").concat(["zoe", "zack", "zed", "zora"]);
      const items = names.map((name, i) => ({ key: `users:${name}`, value: { name }, label1: i % 3 === 0 ? `city:${i}` : `team:${i}` }));
      for (let at = 0; at < items.length; at += 25) await data.set(items.slice(at, at + 25));
    },
    async check(_data, results) {
      expect(results[0], "// 30").to.equal(30);
      expect(results[1], "keys from a to m").to.equal(13);
      expect(results[2], "items whose label1 is any city:…").to.equal(10);
    },
  },
  "for (;;) {": {
    async setup(data) {
      for (let version = 1; version <= 7; version++) await data.set("docs:1", { title: "Doc", version });
      for (let version = 1; version <= 3; version++) await data.set("stock:widget", 10);
    },
    async check(data) {
      // ifVersion 7, then 8 for the remove: each write saw the version the comments give.
      expect(await data.get("docs:1")).to.equal(undefined);
      expect(await data.get("stock:widget")).to.equal(9);
    },
  },
  'await data.add("orders:42:paid", 1, { idempotencyKey: "payment-7f3a" });   // from a queue consumer': {
    async check(data) {
      expect(await data.get("orders:42:paid")).to.equal(1);
      expect(await data.get("orders:42")).to.deep.equal({ state: "paid" });
    },
  },
  'const page = await data.history("docs:1", { limit: 20 });   // { entries: [{ name, expired, time, item }], lastKey?, next? }': {
    async setup(data) {
      await data.set("docs:1", { title: "first" });
      await data.set("docs:1", { title: "second" });
    },
    async check(_data, results, logs) {
      const [page, older, then, thenMeta] = results as [
        { entries: { name: string; time: Date; item: { version: number } }[] },
        unknown,
        unknown,
        { version: number; value: unknown },
      ];
      expect(page.entries.map((entry) => entry.name)).to.deep.equal(["updated", "created"]);
      expect(
        logs.map((line) => line.slice(1, 3)),
        "console.log(time, name, item.version, …)",
      ).to.deep.equal([
        ["updated", 2],
        ["created", 1],
      ]);
      expect(older, "no older page").to.equal(undefined);
      expect(then, "an hour ago it did not exist").to.equal(undefined);
      expect(thenMeta).to.include({ version: 1 });
      expect(thenMeta.value).to.deep.equal({ title: "first" });
    },
  },
};

async function runTypeScriptBlock(block: Block, scratch: string): Promise<void> {
  const plan = TYPESCRIPT[block.first];
  expect(plan, `README.md:${block.line}: a TypeScript block without a plan in TYPESCRIPT (what state it needs, what to check)`).not.to.equal(
    undefined,
  );
  const server = await startInProcess();
  const data = createData({ url: server.url });
  try {
    await plan.setup?.(data);
    const lines = block.text.split("\n");
    const imports = lines
      .filter((line) => line.startsWith("import "))
      .map((line) => line.replace('"./client/index.js"', JSON.stringify(join(REPO_ROOT, "client/index.js"))));
    const body = lines
      .filter((line) => !line.startsWith("import "))
      .map((line) => line.replaceAll('"http://127.0.0.1:4150"', "context.url"))
      // A statement's value is what its comment describes: keep each top-level `await …;` for the check.
      .map((line) => line.replace(/^await (.*);(\s*\/\/.*)?$/, "__results.push(await $1);$2"));
    const makesData = /\bconst data = /.test(block.text);
    const declared = [...block.text.matchAll(/^const (\w+) = /gm)].map((match) => match[1]).filter((name) => name !== "data");
    const module = [
      ...imports,
      "export async function run(context: { url: string; data: unknown; log: (...args: unknown[]) => void }) {",
      "  const __results: unknown[] = [];",
      "  const console = { log: context.log };",
      // Block 11 edits a document with a function of the reader's: any edit will do.
      "  const edit = (value: Record<string, unknown>) => ({ ...value, edited: true });",
      makesData ? "" : "  const data = context.data as any;",
      ...body.map((line) => `  ${line}`),
      makesData ? "  await data.close();" : "",
      `  return [...__results, ${declared.join(", ")}];`,
      "}",
    ].join("\n");
    const file = join(mkdtempSync(join(scratch, "block-")), "block.ts");
    writeFileSync(file, module);
    const logs: unknown[][] = [];
    const { run } = (await import(pathToFileURL(file).href)) as { run: (context: object) => Promise<unknown[]> };
    const results = await run({ url: server.url, data, log: (...args: unknown[]) => logs.push(args) });
    await plan.check(data, results, logs);
  } finally {
    await data.close();
    await server.close();
  }
}

// ---------------------------------------------------------------------------
// Browser blocks

/** A JavaScript block in Chromium: what it logs once `todos:readme` is created (the blocks listen for events). */
async function runBrowserBlock(block: Block): Promise<void> {
  const key = generateKey();
  const server = await startInProcess({}, [{ id: "browser", sha256: hashKey(key), environment: "default", role: "app" }]);
  const browser = (await launchChromium())!;
  try {
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on("pageerror", (error) => problems.push(String(error)));
    // Any page of the server's origin: the block's fetch and EventSource go to the same origin, as from an app it serves.
    await page.goto(`${server.url}/events/ticket`);
    const script = `(async () => {
      const larder = ${JSON.stringify(server.url)};
      const key = ${JSON.stringify(key)};
      const logged = (window.__logged = []);
      const console = { log: (value) => logged.push(value) };
      ${block.text}
      window.__source = events;
    })()`;
    await page.evaluate(script);
    await page.waitForFunction(() => (window as unknown as { __source: EventSource }).__source.readyState === EventSource.OPEN, undefined, {
      timeout: 20_000,
    });
    const data = createData({ url: server.url, apiKey: key });
    try {
      await data.set("todos:readme", { title: "from the README" });
    } finally {
      await data.close();
    }
    await page.waitForFunction(() => (window as unknown as { __logged: unknown[] }).__logged.length > 0, undefined, { timeout: 20_000 });
    const logged = await page.evaluate(() => (window as unknown as { __logged: unknown[] }).__logged);
    // "{ name, item, previous?, … }": the event the filter created:todos:* lets through.
    expect(logged).to.have.lengthOf(1);
    expect(logged[0]).to.deep.include({ name: "created" });
    expect((logged[0] as { item: unknown }).item).to.deep.include({ key: "todos:readme", value: { title: "from the README" } });
    expect(problems).to.deep.equal([]);
  } finally {
    await browser.close();
    await server.close();
  }
}
