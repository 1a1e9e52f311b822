/**
 * The one poll-until helper: checks `probe` every `intervalMs` until it returns a value (anything but
 * undefined), and fails with `what` once `timeoutMs` has passed. For states that announce themselves by
 * no event (a query answer, a file's content, a port opening); wait on an event where there is one.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface PollOptions {
  timeoutMs: number;
  /** Between two probes (default 250 ms). */
  intervalMs?: number;
  /** What is awaited, for the timeout's message; a function is read when the time is up. */
  what: string | (() => string);
}

export async function pollUntil<T>(
  probe: () => Promise<T | undefined> | T | undefined,
  options: PollOptions,
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) {
      const what = typeof options.what === 'function' ? options.what() : options.what;
      throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${what}`);
    }
    await sleep(Math.min(options.intervalMs ?? 250, Math.max(1, deadline - Date.now())));
  }
}
