/**
 * Fault injection for tests and the chaos tool, like a programmable version of Nova's fake driver: per
 * operation, `fail` (throw a typed error), `hang` (wait until the fault is cleared or the call is aborted) or
 * `slow` (wait `ms`, then go on). Faults live in `<hostDir>/faults.json`, so another process can set them;
 * `times` limits a fault to the next N calls.
 */
import path from 'node:path';
import { z } from 'zod';
import { CloudError, ERROR_TYPES, type CloudErrorType } from '../errors';
import { parseRequest } from '../validation';
import { sleep } from './file-lock';
import { JsonStateFile } from './state-file';

export const FAULT_OPERATIONS = [
  'fetchImage',
  'createInstanceDir',
  'plugVif',
  'unplugVif',
  'connectVolume',
  'disconnectVolume',
  'spawn',
  'powerOff',
  'powerOn',
  'reboot',
  'pause',
  'unpause',
  'suspend',
  'resume',
  'destroy',
  'snapshot',
] as const;
export type FaultOperation = (typeof FAULT_OPERATIONS)[number];

const errorTypes = Object.keys(ERROR_TYPES) as [CloudErrorType, ...CloudErrorType[]];

export const faultSpecSchema = z.strictObject({
  mode: z.enum(['fail', 'hang', 'slow']),
  /** For `slow`: how long to wait. */
  ms: z.number().int().min(0).max(3_600_000).optional(),
  /** For `fail`: the error type (default: what Nova's compute manager would make of it, below). */
  errorType: z.enum(errorTypes).optional(),
  message: z.string().min(1).max(500).optional(),
  /**
   * Only the next N calls get the fault. A used-up `hang` stays (times 0) so the calls it holds keep hanging
   * until it is cleared.
   */
  times: z.number().int().min(0).max(1_000_000).optional(),
  /**
   * How many calls have met this fault so far: kept by the injector, so that a test or the chaos tool can
   * wait for a call to be held by a `hang` (an event) instead of sleeping.
   */
  hits: z.number().int().min(0).optional(),
});
export type FaultSpec = z.infer<typeof faultSpecSchema>;

const faultsSchema = z.partialRecord(z.enum(FAULT_OPERATIONS), faultSpecSchema);
type Faults = z.infer<typeof faultsSchema>;

/** A spawn or download failure on one host may not happen on another: Nova reschedules. */
const DEFAULT_ERRORS: Record<FaultOperation, CloudErrorType> = {
  fetchImage: 'RescheduledException',
  createInstanceDir: 'RescheduledException',
  plugVif: 'VirtualInterfaceCreateException',
  unplugVif: 'ServiceUnavailable',
  connectVolume: 'BuildAbortException',
  disconnectVolume: 'ServiceUnavailable',
  spawn: 'RescheduledException',
  powerOff: 'ServiceUnavailable',
  powerOn: 'ServiceUnavailable',
  reboot: 'ServiceUnavailable',
  pause: 'ServiceUnavailable',
  unpause: 'ServiceUnavailable',
  suspend: 'ServiceUnavailable',
  resume: 'ServiceUnavailable',
  destroy: 'ServiceUnavailable',
  snapshot: 'ServiceUnavailable',
};

const HANG_POLL_MS = 100;

export class FaultInjector {
  private readonly file: JsonStateFile<Faults>;

  constructor(
    hostDir: string,
    private readonly host: string,
  ) {
    this.file = new JsonStateFile(path.join(hostDir, 'faults.json'), faultsSchema, () => ({}));
  }

  async set(operation: FaultOperation, spec: FaultSpec): Promise<void> {
    const op = parseRequest(z.enum(FAULT_OPERATIONS), operation, 'fault operation');
    const fault = parseRequest(faultSpecSchema, spec, 'fault');
    await this.file.update((faults) => {
      faults[op] = fault;
    });
  }

  /** Clears one operation's fault, or all of them. A hanging call then goes on. */
  async clear(operation?: FaultOperation): Promise<void> {
    const op =
      operation === undefined
        ? undefined
        : parseRequest(z.enum(FAULT_OPERATIONS), operation, 'fault operation');
    await this.file.update((faults) => {
      for (const key of FAULT_OPERATIONS) if (op === undefined || key === op) delete faults[key];
    });
  }

  async list(): Promise<Faults> {
    return this.file.read();
  }

  /** Applies the fault set for `operation`, if any: throws, waits, or returns at once. */
  async apply(operation: FaultOperation, signal?: AbortSignal): Promise<void> {
    const fault = await this.take(operation);
    if (!fault) return;
    if (fault.mode === 'slow') return sleep(fault.ms ?? 1000, signal);
    if (fault.mode === 'hang') {
      while ((await this.file.read())[operation]?.mode === 'hang') await sleep(HANG_POLL_MS, signal);
      return;
    }
    throw new CloudError(
      fault.errorType ?? DEFAULT_ERRORS[operation],
      fault.message ?? `Injected fault: ${operation} failed on host ${this.host}`,
      { host: this.host, operation, injected: true },
    );
  }

  /**
   * The fault for this call; counts it in `hits` and down `times` (under the lock, so two processes never
   * both take the last).
   */
  private async take(operation: FaultOperation): Promise<FaultSpec | undefined> {
    const seen = (await this.file.read())[operation];
    if (!seen || seen.times === 0) return undefined;
    return this.file.update((faults) => {
      const current = faults[operation];
      if (!current || current.times === 0) return undefined;
      current.hits = (current.hits ?? 0) + 1;
      const taken = { ...current };
      if (current.times === undefined) return taken;
      current.times -= 1;
      if (current.times === 0 && current.mode !== 'hang') delete faults[operation];
      return taken;
    });
  }
}
