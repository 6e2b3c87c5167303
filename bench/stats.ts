/**
 * Latency percentiles from every sample, sorted: a cell holds at most a few
 * hundred thousand samples, which sort in milliseconds, so an exact
 * nearest-rank percentile costs less than a histogram dependency.
 */
export interface Summary {
  readonly count: number;
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

export function summarize(samples: ArrayLike<number>): Summary {
  const sorted = Float64Array.from(samples).sort();
  const at = (p: number) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]);
  return {
    count: sorted.length,
    p50: round(at(50), 3),
    p99: round(at(99), 3),
    p999: round(at(99.9), 3),
    max: round(at(100), 3),
  };
}

/** Appends to a growable Float64Array: no boxing, cheap to send over IPC. */
export class Samples {
  private buffer = new Float64Array(4096);
  private size = 0;

  add(ms: number): void {
    if (this.size === this.buffer.length) {
      const grown = new Float64Array(this.buffer.length * 2);
      grown.set(this.buffer);
      this.buffer = grown;
    }
    this.buffer[this.size++] = ms;
  }

  get count(): number {
    return this.size;
  }

  values(): Float64Array {
    return this.buffer.slice(0, this.size);
  }
}

export const round = (value: number, digits = 2): number => {
  if (!Number.isFinite(value)) return value;
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
};
