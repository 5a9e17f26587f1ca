/** Latency summary in milliseconds. */
export interface LatencyFigure {
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  count: number;
}

/**
 * Times several functions in turns (a, b, c, a, b, c, ...) after a shared warm-up, so that drift — JIT, the PDP's
 * caches, the machine's other work — lands on all of them alike instead of on whichever ran first.
 */
export async function interleavedLatency(
  fns: readonly (() => Promise<unknown>)[],
  count: number,
  warmup = Math.min(200, count),
): Promise<LatencyFigure[]> {
  for (let i = 0; i < warmup; i++) for (const fn of fns) await fn();
  const samples = fns.map(() => new Float64Array(count));
  for (let i = 0; i < count; i++) {
    for (const [index, fn] of fns.entries()) {
      const started = performance.now();
      await fn();
      (samples[index] as Float64Array)[i] = performance.now() - started;
    }
  }
  return samples.map(summarize);
}

/** This process's CPU time per call of `fn` (user + system, in ms), over `count` sequential calls. */
export async function cpuPerCall(fn: () => Promise<unknown>, count: number): Promise<number> {
  const before = process.cpuUsage();
  for (let i = 0; i < count; i++) await fn();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000 / count;
}

/** Runs `total` calls of `fn` with `concurrency` in flight at once; returns calls per second. */
export async function throughput(fn: () => Promise<unknown>, total: number, concurrency: number): Promise<number> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < total) {
      next++;
      await fn();
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return total / ((performance.now() - started) / 1000);
}

export function summarize(samples: Float64Array): LatencyFigure {
  const sorted = Float64Array.from(samples).sort();
  const at = (quantile: number) => sorted[Math.min(sorted.length - 1, Math.floor(quantile * sorted.length))] ?? 0;
  const mean = sorted.reduce((sum, value) => sum + value, 0) / Math.max(1, sorted.length);
  return { p50Ms: round(at(0.5)), p99Ms: round(at(0.99)), meanMs: round(mean), count: sorted.length };
}

export function round(value: number, digits = 4): number {
  return Number(value.toFixed(digits));
}
