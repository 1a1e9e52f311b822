/**
 * Summaries of timing samples. The machine is shared and noisy, so every figure is a distribution
 * (median and spread), and comparisons are ratios of medians measured side by side in the same run.
 */
import { performance } from 'node:perf_hooks';

export interface Summary {
  n: number;
  min: number;
  p25: number;
  p50: number;
  p75: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentile of sorted values (p in 0..100). */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] ?? Number.NaN;
}

export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const sum = sorted.reduce((s, v) => s + v, 0);
  return {
    n: sorted.length,
    min: sorted[0] ?? Number.NaN,
    p25: percentile(sorted, 25),
    p50: percentile(sorted, 50),
    p75: percentile(sorted, 75),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: sorted.at(-1) ?? Number.NaN,
    mean: sorted.length ? sum / sorted.length : Number.NaN,
  };
}

/** Rounds every number of a summary (for JSON and tables); times stay in milliseconds. */
export function rounded(s: Summary, digits = 3): Summary {
  const f = 10 ** digits;
  const r = (v: number) => Math.round(v * f) / f;
  return {
    n: s.n,
    min: r(s.min),
    p25: r(s.p25),
    p50: r(s.p50),
    p75: r(s.p75),
    p95: r(s.p95),
    p99: r(s.p99),
    max: r(s.max),
    mean: r(s.mean),
  };
}

export function ratio(a: number, b: number, digits = 2): number {
  const f = 10 ** digits;
  return b === 0 ? Number.NaN : Math.round((a / b) * f) / f;
}

/** Milliseconds taken by `work`, with its result. */
export async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const start = performance.now();
  const value = await work();
  return { ms: performance.now() - start, value };
}

/** A small seeded PRNG (mulberry32): the same cloud on every run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
