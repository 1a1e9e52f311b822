/**
 * Locks shared by every process that works on one host directory. Across processes: proper-lockfile (an
 * atomic mkdir whose mtime the holder keeps fresh; a lock left by a dead process goes stale and is taken
 * over). Within a process: a promise queue in front of it, so local callers wait their turn instead of
 * polling the file system.
 */
import lockfile from 'proper-lockfile';
import { CloudError } from '../errors';

export interface FileLockOptions {
  /** A lock not refreshed for this long belongs to a dead process (proper-lockfile's minimum is 2000). */
  staleMs?: number;
  /** Give up waiting after this long. */
  waitMs?: number;
  signal?: AbortSignal;
  /** Checked while waiting: when it turns true, stop waiting and return undefined (e.g. the work got done). */
  doneElsewhere?: () => Promise<boolean>;
}

const localQueues = new Map<string, Promise<void>>();

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }
    function onAbort() {
      clearTimeout(timer);
      reject(abortError(signal as AbortSignal));
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Waits for this process's previous holder of the lock, but no longer than the deadline and not past an
 * abort. The timer is cleared when the wait ends, so it never keeps the process alive.
 */
function waitTurn(
  previous: Promise<void>,
  lockPath: string,
  deadline: number,
  signal?: AbortSignal,
): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const finish = (err?: Error) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve();
    };
    const onAbort = () => finish(abortError(signal as AbortSignal));
    const timer = setTimeout(
      () =>
        finish(
          new CloudError('ServiceUnavailable', `Timed out waiting for the lock ${lockPath}`, {
            lock: lockPath,
          }),
        ),
      Math.max(0, deadline - Date.now()),
    );
    signal?.addEventListener('abort', onAbort, { once: true });
    void previous.then(() => finish());
  });
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('Operation aborted');
}

/**
 * Runs fn while holding the lock `lockPath` (a directory proper-lockfile creates). Returns undefined without
 * running fn if `doneElsewhere` became true while waiting.
 */
export async function withFileLock<T>(
  lockPath: string,
  fn: () => Promise<T>,
  options: FileLockOptions = {},
): Promise<T | undefined> {
  const previous = localQueues.get(lockPath) ?? Promise.resolve();
  let releaseLocal!: () => void;
  const mine = new Promise<void>((resolve) => (releaseLocal = resolve));
  const tail = previous.then(() => mine);
  localQueues.set(lockPath, tail);
  try {
    const deadline = Date.now() + (options.waitMs ?? 60_000);
    await waitTurn(previous, lockPath, deadline, options.signal);
    const release = await acquire(lockPath, deadline, options);
    if (!release) return undefined;
    let compromised: Error | undefined;
    release.onCompromised = (err) => (compromised = err);
    try {
      const result = await fn();
      if (compromised)
        throw new CloudError('ServiceUnavailable', `Lost the lock ${lockPath}: ${compromised.message}`);
      return result;
    } finally {
      await release.unlock().catch(() => undefined);
    }
  } finally {
    releaseLocal();
    if (localQueues.get(lockPath) === tail) localQueues.delete(lockPath);
  }
}

interface HeldLock {
  unlock: () => Promise<void>;
  onCompromised: (err: Error) => void;
}

async function acquire(
  lockPath: string,
  deadline: number,
  options: FileLockOptions,
): Promise<HeldLock | undefined> {
  const held: HeldLock = { unlock: async () => undefined, onCompromised: () => undefined };
  for (let attempt = 0; ; attempt++) {
    if (options.doneElsewhere && (await options.doneElsewhere())) return undefined;
    try {
      held.unlock = await lockfile.lock(lockPath, {
        realpath: false,
        lockfilePath: lockPath,
        stale: Math.max(2000, options.staleMs ?? 10_000),
        retries: 0,
        onCompromised: (err) => held.onCompromised(err),
      });
      return held;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
    }
    if (Date.now() >= deadline)
      throw new CloudError('ServiceUnavailable', `Timed out waiting for the lock ${lockPath}`, {
        lock: lockPath,
      });
    await sleep(Math.min(200, 10 * 2 ** Math.min(attempt, 4)) * (0.5 + Math.random()), options.signal);
  }
}
