/**
 * Fault hooks for tests: creation (of a volume, or of a snapshot) can hang (stuck cinder-volume), fail, or be
 * slow; the attachment update, attachment complete, begin_detaching and volume delete calls can fail
 * (Cinder's API answering an error). Set them in code (Cinder.open({ faults }) / setFaults) or in
 * `<dataDir>/volumes/faults.json`, read at every such call so a test can steer a worker in another process.
 * Code-set faults win over the file.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { CloudError, ERROR_TYPES, type CloudErrorType } from '../errors';
import type { CallFault, CinderFaults } from './types';

const errorTypes = Object.keys(ERROR_TYPES) as [CloudErrorType, ...CloudErrorType[]];
const callFaultSchema = z
  .strictObject({
    mode: z.literal('fail'),
    /** Default ServiceUnavailable (Cinder's API answering 503): the workflow's retries run out first. */
    errorType: z.enum(errorTypes).optional(),
    message: z.string().max(1000).optional(),
  })
  .optional();

const createFaultSchema = z
  .strictObject({
    mode: z.enum(['hang', 'fail', 'slow']),
    delayMs: z.number().int().min(0).max(3_600_000).optional(),
    message: z.string().max(1000).optional(),
  })
  .optional();

export const faultsSchema = z.strictObject({
  create: createFaultSchema,
  createSnapshot: createFaultSchema,
  attachmentUpdate: callFaultSchema,
  attachmentComplete: callFaultSchema,
  beginDetaching: callFaultSchema,
  volumeDelete: callFaultSchema,
});

export function faultsFile(volumesDir: string): string {
  return path.join(volumesDir, 'faults.json');
}

export async function readFaultsFile(volumesDir: string): Promise<CinderFaults> {
  let text: string;
  try {
    text = await readFile(faultsFile(volumesDir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
  const parsed = faultsSchema.safeParse(JSON.parse(text));
  if (!parsed.success)
    throw new CloudError('BadRequest', `Invalid ${faultsFile(volumesDir)}: ${parsed.error.message}`);
  return parsed.data;
}

/** Resolves after ms, or rejects with the signal's reason when aborted first. */
export function sleep(ms: number, signal: AbortSignal, options: { unref?: boolean } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason as Error);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    // A hang must not keep a process alive on its own.
    if (options.unref) timer.unref();
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Applies the creation fault (of a volume, or with `createSnapshot` of a snapshot), if any: waits (slow),
 * throws (fail) or waits until aborted (hang).
 */
export async function applyCreateFault(
  faults: CinderFaults,
  signal: AbortSignal,
  which: 'create' | 'createSnapshot' = 'create',
): Promise<void> {
  const fault = faults[which];
  if (!fault) return;
  if (fault.mode === 'hang') {
    for (;;) await sleep(2 ** 31 - 1, signal, { unref: true });
  }
  if (fault.mode === 'slow') return sleep(fault.delayMs ?? 2000, signal);
  await sleep(fault.delayMs ?? 0, signal);
  throw new Error(
    fault.message ?? `Injected fault: ${which === 'create' ? 'volume' : 'snapshot'} creation failed`,
  );
}

/** Throws the call's fault, if one is set: the call fails before it changes anything. */
export function applyCallFault(faults: CinderFaults, call: CallFault): void {
  const fault = faults[call];
  if (!fault) return;
  throw new CloudError(
    fault.errorType ?? 'ServiceUnavailable',
    fault.message ?? `Injected fault: ${call} failed`,
  );
}
