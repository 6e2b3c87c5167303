import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve, sep } from "node:path";
import { expect } from "chai";
import ts from "typescript";
import { REPO_ROOT } from "../support/server.js";

/**
 * Dependencies point downward only (issue 17). LAYERS is the architecture: each own file
 * under core/, client/, console/ and services/ belongs to the first layer whose pattern
 * matches its path, and imports only its own layer and the layers listed beside it.
 * A layer nobody lists (main) is imported by nothing. Type-only imports count: a file
 * that names another's types cannot be read, moved or shipped without it. There are no
 * exceptions: a violation is fixed where it is, by moving a type or function to the layer
 * it belongs to or by inverting the dependency through a port.
 */
interface Layer {
  readonly name: string;
  readonly files: RegExp;
  readonly mayImport: readonly string[];
}

const LAYERS: readonly Layer[] = [
  // The pure rules server, client and console share; browser-safe (core-boundary.spec.ts).
  { name: "core", files: /^core\//, mayImport: [] },
  // Written by `npm run generate` from proto/: a target only.
  { name: "gen", files: /^gen\//, mayImport: [] },
  // The @ampt/data client ships alone: dist/client imports nothing from the server.
  { name: "client", files: /^client\//, mayImport: ["core", "gen"] },
  // The console is a browser app over the browser client: never the server.
  { name: "console", files: /^console\//, mayImport: ["client", "core", "gen"] },
  // The logger type and its factory: a leaf any server layer may log through.
  { name: "log", files: /^services\/log\.ts$/, mayImport: [] },
  // Core <-> protobuf and Connect: items as messages, a DomainError as a ConnectError with its ErrorInfo.
  { name: "wire", files: /^services\/(errors|item-message)\.ts$/, mayImport: ["core", "gen"] },
  // The Watch stream: feed events as protobuf messages.
  { name: "watch", files: /^services\/feed\/watch\.ts$/, mayImport: ["feed", "core", "gen", "wire", "log"] },
  // The change feed the engines publish into: no protobuf, and it never reaches into an engine.
  { name: "feed", files: /^services\/feed\//, mayImport: ["core", "log"] },
  // Opens the engine the configuration names: the one file that knows both engines.
  {
    name: "engine choice",
    files: /^services\/stores\/open-engine\.ts$/,
    mayImport: ["embedded engine", "mongodb engine", "engine port", "feed", "core", "log"],
  },
  // The Store and Engine ports and what works over any engine (sweeper, replay, timing). No protobuf here.
  { name: "engine port", files: /^services\/stores\/[^/]+\.ts$/, mayImport: ["feed", "core", "log"] },
  // The engines: each behind the port, neither knowing the other.
  { name: "embedded engine", files: /^services\/stores\/embedded\//, mayImport: ["engine port", "feed", "core", "log"] },
  { name: "mongodb engine", files: /^services\/stores\/mongodb\//, mayImport: ["engine port", "feed", "core", "log"] },
  // Configuration, engine, server, signals: the top. Nothing imports it.
  {
    name: "main",
    files: /^services\/main\.ts$/,
    mayImport: ["handlers/server", "engine choice", "engine port", "watch", "feed", "wire", "log", "core", "gen"],
  },
  // Handlers, the server, http/, access/, config, metrics: they reach an engine only through its port.
  { name: "handlers/server", files: /^services\/(?!stores\/|feed\/)/, mayImport: ["engine port", "watch", "feed", "wire", "log", "core", "gen"] },
];

/** A database driver is its engine's own business: only that engine's folder imports it. */
const DRIVERS: Readonly<Record<string, string>> = { "better-sqlite3": "embedded engine", mongodb: "mongodb engine" };

/** Bundled for browsers: nothing they reach may need Node. */
const BROWSER_ENTRIES = ["client/browser.ts", "console/main.tsx"];
const NODE_ONLY_PACKAGES = ["@connectrpc/connect-node"];

/** What a file imports: own files by their path from the repository root, and packages. */
interface Imports {
  readonly own: readonly string[];
  readonly packages: readonly string[];
}
type Graph = ReadonlyMap<string, Imports>;

const ROOTS = ["core", "services", "client", "console"];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.tsx?$/.test(name) && !name.endsWith(".d.ts") ? [path] : [];
  });
}

const fromRoot = (path: string) => relative(REPO_ROOT, path).split(sep).join("/");

/** An own file a relative specifier names: `./x.js` is `x.ts` or `x.tsx` in the source tree. */
function resolveOwn(importer: string, specifier: string): string {
  const path = resolve(REPO_ROOT, dirname(importer), specifier);
  const candidates = specifier.endsWith(".js") ? [path.replace(/\.js$/, ".ts"), path.replace(/\.js$/, ".tsx")] : [path];
  const found = candidates.find((candidate) => existsSync(candidate) && statSync(candidate).isFile());
  if (found === undefined) throw new Error(`${importer} imports ${specifier}, which names no file: the walk would miss an edge`);
  return fromRoot(found);
}

/** Every import and export-from of every own file, dynamic imports included (ts.preProcessFile). */
function readGraph(): Graph {
  const graph = new Map<string, Imports>();
  for (const path of ROOTS.flatMap((root) => sourceFiles(join(REPO_ROOT, root)))) {
    const file = fromRoot(path);
    const specifiers = ts.preProcessFile(readFileSync(path, "utf8"), true, true).importedFiles.map((imported) => imported.fileName);
    graph.set(file, {
      own: specifiers.filter((specifier) => specifier.startsWith(".")).map((specifier) => resolveOwn(file, specifier)),
      packages: specifiers.filter((specifier) => !specifier.startsWith(".")),
    });
  }
  return graph;
}

function layerOf(file: string): Layer | undefined {
  return LAYERS.find((layer) => layer.files.test(file));
}

function layerViolations(graph: Graph): string[] {
  const found: string[] = [];
  for (const [file, { own }] of graph) {
    const layer = layerOf(file);
    if (layer === undefined) {
      found.push(`${file} is in no layer: add it to LAYERS`);
      continue;
    }
    for (const target of own) {
      const to = layerOf(target);
      if (to === layer || (to !== undefined && layer.mayImport.includes(to.name))) continue;
      found.push(
        `${file} (${layer.name}) imports ${target} (${to?.name ?? "no layer"}); ${layer.name} may import only ${[layer.name, ...layer.mayImport].join(", ")}`,
      );
    }
  }
  return found;
}

const packageName = (specifier: string) =>
  specifier
    .split("/")
    .slice(0, specifier.startsWith("@") ? 2 : 1)
    .join("/");

function driverViolations(graph: Graph): string[] {
  const found: string[] = [];
  for (const [file, { packages }] of graph) {
    for (const specifier of packages) {
      const owner = DRIVERS[packageName(specifier)];
      if (owner !== undefined && layerOf(file)?.name !== owner) found.push(`${file} imports ${specifier}, which only the ${owner} may import`);
    }
  }
  return found;
}

const needsNode = (specifier: string) =>
  specifier.startsWith("node:") || builtinModules.includes(packageName(specifier)) || NODE_ONLY_PACKAGES.includes(packageName(specifier));

function browserViolations(graph: Graph): string[] {
  const found: string[] = [];
  for (const entry of BROWSER_ENTRIES) {
    const via = new Map<string, string[]>([[entry, [entry]]]);
    const pending = [entry];
    while (pending.length > 0) {
      const file = pending.shift()!;
      const imports = graph.get(file);
      if (imports === undefined) continue;
      for (const specifier of imports.packages.filter(needsNode))
        found.push(`${via.get(file)!.join(" → ")} imports ${specifier}, which browsers lack`);
      for (const target of imports.own) {
        if (via.has(target)) continue;
        via.set(target, [...via.get(file)!, target]);
        pending.push(target);
      }
    }
  }
  return found;
}

interface Cycle {
  /** Files that import each other, directly or around (a strongly connected component), in name order. */
  readonly files: readonly string[];
  /** The shortest cycle from the first of them back to itself. */
  readonly path: readonly string[];
}

/** Tarjan's strongly connected components of the own-file graph. */
function cycles(graph: Graph): Cycle[] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: Cycle[] = [];
  const visit = (file: string) => {
    index.set(file, index.size);
    low.set(file, index.get(file)!);
    stack.push(file);
    onStack.add(file);
    for (const target of graph.get(file)?.own ?? []) {
      if (!index.has(target)) {
        visit(target);
        low.set(file, Math.min(low.get(file)!, low.get(target)!));
      } else if (onStack.has(target)) low.set(file, Math.min(low.get(file)!, index.get(target)!));
    }
    if (low.get(file) !== index.get(file)) return;
    const component: string[] = [];
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      component.push(member);
    } while (member !== file);
    if (component.length > 1 || graph.get(file)?.own.includes(file)) {
      const files = component.sort();
      found.push({ files, path: cyclePath(graph, files) });
    }
  };
  for (const file of graph.keys()) if (!index.has(file)) visit(file);
  return found;
}

function cyclePath(graph: Graph, files: readonly string[]): string[] {
  const component = new Set(files);
  const start = files[0]!;
  const via = new Map<string, string[]>();
  const pending = [start];
  while (pending.length > 0) {
    const file = pending.shift()!;
    for (const target of graph.get(file)?.own ?? []) {
      if (!component.has(target)) continue;
      const path = [...(via.get(file) ?? [start]), target];
      if (target === start) return path;
      if (via.has(target)) continue;
      via.set(target, path);
      pending.push(target);
    }
  }
  throw new Error(`no cycle through ${start}`);
}

function cycleReports(graph: Graph): string[] {
  return cycles(graph).map(
    ({ files, path }) => `import cycle: ${path.join(" → ")}${files.length > path.length - 1 ? ` (and around it: ${files.join(", ")})` : ""}`,
  );
}

describe("layers: dependencies point downward only", () => {
  let graph: Graph;
  before(() => {
    graph = readGraph();
  });

  it("reads every own file's imports", () => {
    for (const root of ROOTS) expect([...graph.keys()].filter((file) => file.startsWith(`${root}/`)).length, root).to.be.greaterThan(5);
    expect(graph.get("services/main.ts")!.own).to.include("services/server.ts");
    expect(graph.get("console/main.tsx")!.own).to.include("console/console.css");
    // open-engine.ts loads the MongoDB engine with import(): dynamic imports are edges too.
    expect(graph.get("services/stores/open-engine.ts")!.own).to.include("services/stores/mongodb/mongo-engine.ts");
  });

  it("no own files import each other, directly or around a cycle", () => {
    expect(cycleReports(graph)).to.deep.equal([]);
  });

  it("each layer imports only itself and the layers LAYERS lists for it", () => {
    expect(layerViolations(graph)).to.deep.equal([]);
  });

  it("nothing imports services/main.ts", () => {
    const importers = [...graph].filter(([, { own }]) => own.includes("services/main.ts")).map(([file]) => file);
    expect(importers).to.deep.equal([]);
  });

  it("only an engine's own folder imports its database driver", () => {
    expect(driverViolations(graph)).to.deep.equal([]);
  });

  it("the browser client and the console reach nothing that needs Node", () => {
    expect(browserViolations(graph)).to.deep.equal([]);
  });

  describe("each rule can fail", () => {
    const sample = (layer: Layer) =>
      layer.name === "gen" ? "gen/larder/data/v1/data_pb.ts" : [...graph.keys()].find((file) => layerOf(file) === layer);
    const one = (file: string, own: string[], packages: string[] = []): [string, Imports] => [file, { own, packages }];

    it("every layer holds a file today, and refuses an import of each layer it does not list", () => {
      expect(existsSync(join(REPO_ROOT, "gen/larder/data/v1/data_pb.ts")), "gen sample").to.equal(true);
      for (const from of LAYERS.filter((layer) => layer.name !== "gen")) {
        const importer = sample(from);
        expect(importer, `a file of ${from.name}`).to.be.a("string");
        for (const to of LAYERS) {
          const target = sample(to)!;
          const allowed = to === from || from.mayImport.includes(to.name);
          const violations = layerViolations(new Map([one(importer!, [target])]));
          expect(violations, `${from.name} -> ${to.name}`).to.have.length(allowed ? 0 : 1);
        }
      }
      // One spelled out: the feed must not reach into an engine.
      expect(layerViolations(new Map([one("services/feed/change-feed.ts", ["services/stores/embedded/embedded-store.ts"])]))).to.deep.equal([
        "services/feed/change-feed.ts (feed) imports services/stores/embedded/embedded-store.ts (embedded engine); feed may import only feed, core, log",
      ]);
    });

    it("a layer nobody lists is imported by nothing: services/main.ts", () => {
      for (const layer of LAYERS) expect(layer.mayImport, layer.name).not.to.include("main");
      expect(layerViolations(new Map([one("services/server.ts", ["services/main.ts"])]))).to.have.length(1);
    });

    it("a file outside every layer is reported", () => {
      expect(layerViolations(new Map([one("elsewhere/x.ts", [])]))).to.deep.equal(["elsewhere/x.ts is in no layer: add it to LAYERS"]);
      // A new folder under stores/ is placed on purpose, not taken for a handler.
      expect(layerViolations(new Map([one("services/stores/shared/x.ts", [])]))).to.deep.equal([
        "services/stores/shared/x.ts is in no layer: add it to LAYERS",
      ]);
    });

    it("a cycle is reported with its path and every file around it", () => {
      const a = "services/stores/store.ts";
      const b = "services/feed/change-feed.ts";
      const c = "core/item.ts";
      expect(cycleReports(new Map([one(a, [b]), one(b, [c]), one(c, [a])]))).to.deep.equal([`import cycle: ${c} → ${a} → ${b} → ${c}`]);
      expect(cycleReports(new Map([one(a, [a])]))).to.deep.equal([`import cycle: ${a} → ${a}`]);
      expect(cycleReports(new Map([one(c, [a]), one(a, [c, b]), one(b, [a])]))).to.deep.equal([
        `import cycle: ${c} → ${a} → ${c} (and around it: ${c}, ${b}, ${a})`,
      ]);
      expect(cycleReports(new Map([one(a, [b]), one(b, [c]), one(c, [])]))).to.deep.equal([]);
    });

    it("a driver imported outside its engine's folder is reported", () => {
      const outside = new Map([
        one("services/metrics.ts", [], ["mongodb"]),
        one("services/stores/embedded/embedded-store.ts", [], ["mongodb/lib/bson"]),
        one("services/stores/open-engine.ts", [], ["better-sqlite3"]),
      ]);
      expect(driverViolations(outside)).to.have.length(3);
      const inside = new Map([one("services/stores/mongodb/x.ts", [], ["mongodb"]), one("services/stores/embedded/x.ts", [], ["better-sqlite3"])]);
      expect(driverViolations(inside)).to.deep.equal([]);
    });

    it("a Node module reached from a browser entry is reported with the path to it", () => {
      const reached = new Map([
        one("console/main.tsx", ["console/app.tsx"]),
        one("console/app.tsx", ["client/index.ts"]),
        one("client/index.ts", [], ["node:fs/promises"]),
      ]);
      expect(browserViolations(reached)).to.deep.equal([
        "console/main.tsx → console/app.tsx → client/index.ts imports node:fs/promises, which browsers lack",
      ]);
      expect(browserViolations(new Map([one("client/browser.ts", [], ["fs", "@connectrpc/connect-node"])]))).to.have.length(2);
      expect(browserViolations(new Map([one("client/browser.ts", [], ["@connectrpc/connect-web", "@bufbuild/protobuf"])]))).to.deep.equal([]);
    });
  });
});
