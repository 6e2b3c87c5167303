import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem } from "node:os";
import { round } from "./stats.js";

/** Readings from /proc (Linux): memory and CPU time of a process, and of the whole machine. */

let ticksPerSecond: number | undefined;
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** Resident memory of a process, in MiB (VmRSS), and its peak so far (VmHWM). */
export function memoryMiB(pid: number): { rss: number; peak: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
    return { rss: round(kb("VmRSS") / 1024, 1), peak: round(kb("VmHWM") / 1024, 1) };
  } catch {
    return { rss: NaN, peak: NaN };
  }
}

/** CPU time (user + system, every thread) a process has used, in ms. */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name may hold spaces and parentheses: fields are counted after its closing one.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks();
  } catch {
    return NaN;
  }
}

/** Busy CPU time of the whole machine (every core, not idle or iowait), in ms. */
export function machineBusyMs(): number {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0];
    const [user, nice, system, _idle, _iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
    return ((user + nice + system + irq + softirq + steal) * 1000) / clockTicks();
  } catch {
    return NaN;
  }
}

export interface MachineFacts {
  readonly cpu: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly node: string;
  readonly kernel: string;
  readonly loadAverage: readonly number[];
}

export function machineFacts(): MachineFacts {
  const cores = cpus();
  return {
    cpu: cores[0]?.model.trim() ?? "unknown",
    cores: cores.length,
    memoryGiB: round(totalmem() / 1024 ** 3, 1),
    node: process.version,
    kernel: release(),
    loadAverage: loadavg().map((value) => round(value, 2)),
  };
}

/**
 * CPU used by the processes we measure and by everything else on the
 * machine between two readings: benchmarks on a shared machine are only as
 * good as the quiet around them, so every run says how quiet it was.
 */
export class CpuMeter {
  private readonly startBusy = machineBusyMs();
  private readonly startOwn: Map<number, number>;
  private readonly startSelf = process.cpuUsage();
  private readonly startedAt = performance.now();

  constructor(private readonly pids: readonly number[]) {
    this.startOwn = new Map(pids.map((pid) => [pid, cpuMs(pid)]));
  }

  /** ms of CPU of each pid, and cores' worth of CPU used by everything else (the runner itself excluded). */
  read(): { wallMs: number; byPid: Map<number, number>; otherCores: number } {
    const wallMs = performance.now() - this.startedAt;
    const byPid = new Map(this.pids.map((pid) => [pid, cpuMs(pid) - this.startOwn.get(pid)!]));
    const self = process.cpuUsage(this.startSelf);
    const ours = [...byPid.values()].reduce((a, b) => a + b, 0) + (self.user + self.system) / 1000;
    const other = machineBusyMs() - this.startBusy - ours;
    return { wallMs, byPid, otherCores: round(Math.max(0, other) / wallMs, 2) };
  }
}
