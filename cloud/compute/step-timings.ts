/**
 * Where a real guest's boot spends its time on the host, step by step (the network's wiring, the tap, the
 * overlay, QEMU's start, QMP's answer): off unless a measuring process (the guests benchmark, whose compute
 * hosts run in its own process) switches it on, then each step adds its wall-clock milliseconds here.
 */
import { performance } from 'node:perf_hooks';

let recording: Map<string, number> | undefined;

/** Starts (or restarts) recording; what was recorded before is dropped. */
export function recordHostSteps(): void {
  recording = new Map();
}

/** What was recorded since `recordHostSteps`, per step in ms (summed when a step ran more than once). */
export function takeHostSteps(): Record<string, number> {
  const taken = Object.fromEntries(recording ?? []);
  recording = recording && new Map();
  return taken;
}

/** Runs `work`, adding its duration to `step` while recording. */
export async function timedStep<T>(step: string, work: () => Promise<T>): Promise<T> {
  if (!recording) return work();
  const started = performance.now();
  try {
    return await work();
  } finally {
    recording?.set(step, (recording.get(step) ?? 0) + performance.now() - started);
  }
}
