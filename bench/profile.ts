import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

/**
 * Summarizes a V8 CPU profile (`bench/run.ts --profile DIR` writes the
 * server's): self time by function and by package, and inclusive time of
 * the functions that matter most. `npx tsx bench/profile.ts FILE.cpuprofile [--top N] [--focus NAME]`
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: "string", default: "30" }, focus: { type: "string", multiple: true } },
});
if (positionals.length === 0) {
  console.error("usage: npx tsx bench/profile.ts FILE.cpuprofile [--top N] [--focus functionName ...]");
  process.exit(2);
}

for (const file of positionals) {
  const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);

  // The server transpiled by bench/server-process.ts lives under node_modules/.cache/larder-bench/.
  const own = (url: string) =>
    url.includes("node_modules/") && !url.includes("node_modules/.cache/larder-bench/")
      ? undefined
      : /\/((?:services|gen|client)\/.+)$/.exec(url)?.[1];
  const where = (node: ProfileNode) => {
    const { url, lineNumber } = node.callFrame;
    if (url === "") return "";
    if (own(url)) return `${own(url)}:${lineNumber + 1}`;
    const module = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
    if (module) return module[1];
    if (url.startsWith("node:")) return url;
    return `${url}:${lineNumber + 1}`;
  };
  const label = (node: ProfileNode) => `${node.callFrame.functionName || "(anonymous)"} ${where(node)}`.trim();
  const packageOf = (node: ProfileNode) => {
    const { url, functionName } = node.callFrame;
    if (url === "") return functionName.startsWith("(") ? functionName : "(native/V8)";
    const file = own(url);
    if (file) return `larder ${file.split("/")[0]}/`;
    const module = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
    if (module) return module[1];
    if (url.startsWith("node:")) return "node: internals";
    return url;
  };

  const self = new Map<string, number>();
  const packages = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const ms = (profile.timeDeltas[i] ?? 0) / 1000;
    const node = byId.get(profile.samples[i])!;
    total += ms;
    self.set(label(node), (self.get(label(node)) ?? 0) + ms);
    packages.set(packageOf(node), (packages.get(packageOf(node)) ?? 0) + ms);
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const name = label(byId.get(id)!);
      if (seen.has(name)) continue;
      seen.add(name);
      inclusive.set(name, (inclusive.get(name) ?? 0) + ms);
    }
  }
  const idle = self.get("(idle)") ?? 0;
  const busy = total - idle;
  const pct = (ms: number) => `${((100 * ms) / busy).toFixed(1)}%`.padStart(6);
  const top = Number(args.top);
  const print = (title: string, entries: Map<string, number>, count: number, filter: (name: string) => boolean = () => true) => {
    console.log(`\n${title}`);
    for (const [name, ms] of [...entries]
      .filter(([name]) => filter(name))
      .sort((a, b) => b[1] - a[1])
      .slice(0, count)) {
      console.log(`${pct(ms)} ${ms.toFixed(0).padStart(7)} ms  ${name}`);
    }
  };
  console.log(`${file}: ${(total / 1000).toFixed(1)} s profiled, ${(busy / 1000).toFixed(1)} s busy (percentages are of busy time)`);
  print("Self time by package", packages, 20, (name) => name !== "(idle)");
  print(`Self time, top ${top} functions`, self, top, (name) => name !== "(idle)");
  print(`Inclusive time, top ${top} functions`, inclusive, top, (name) => name !== "(idle)" && name !== "(root)");
  for (const focus of args.focus ?? []) {
    print(`Inclusive time of functions named like '${focus}'`, inclusive, top, (name) => name.includes(focus));
  }
}
