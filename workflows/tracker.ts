/**
 * What a boot is doing, for the `status` query, the workflow's current details in the Web UI, and the
 * search attributes (kept in step with the Nova states the conductor writes).
 */
import { defineQuery, setCurrentDetails, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import { ComputeHostKey, InstanceIdKey, ProjectIdKey, VmStateKey } from './search-attributes';
import type { BootStatus, LastError, StepTiming } from './types';

export const statusQuery = defineQuery<BootStatus>('status');

export class BootTracker {
  private readonly status: BootStatus;

  constructor(init: { requestId: string; name: string; maxAttempts: number }) {
    this.status = {
      requestId: init.requestId,
      instanceUuid: null,
      name: init.name,
      step: 'accepted',
      vmState: null,
      taskState: null,
      powerState: 0,
      host: null,
      attempt: 0,
      maxAttempts: init.maxAttempts,
      triedHosts: [],
      timings: [],
      lastError: null,
      compensations: [],
      done: false,
    };
    setHandler(statusQuery, () => this.snapshot());
  }

  snapshot(): BootStatus {
    return JSON.parse(JSON.stringify(this.status)) as BootStatus;
  }

  get timings(): StepTiming[] {
    return JSON.parse(JSON.stringify(this.status.timings)) as StepTiming[];
  }

  get triedHosts(): string[] {
    return [...this.status.triedHosts];
  }

  get host(): string | null {
    return this.status.host;
  }

  setStep(step: string): void {
    this.status.step = step;
    setCurrentDetails(
      `**${step}**${this.status.host ? ` on ${this.status.host}` : ''}` +
        (this.status.attempt > 1 ? ` (attempt ${this.status.attempt} of ${this.status.maxAttempts})` : ''),
    );
  }

  /** Times one step; parallel branches time themselves side by side. */
  async time<T>(step: string, work: () => Promise<T>, host?: string): Promise<T> {
    const timing: StepTiming = { step, startedAt: Date.now(), ...(host ? { host } : {}) };
    this.status.timings.push(timing);
    try {
      const result = await work();
      this.finish(timing, 'ok');
      return result;
    } catch (err) {
      this.finish(timing, 'failed');
      throw err;
    }
  }

  private finish(timing: StepTiming, outcome: 'ok' | 'failed'): void {
    timing.endedAt = Date.now();
    timing.ms = timing.endedAt - timing.startedAt;
    timing.outcome = outcome;
  }

  recorded(instanceUuid: string, projectId: string): void {
    this.status.instanceUuid = instanceUuid;
    upsertSearchAttributes([
      { key: InstanceIdKey, value: instanceUuid },
      { key: ProjectIdKey, value: projectId },
    ]);
    this.states({ vmState: 'building', taskState: 'scheduling', powerState: 0 });
  }

  /** Mirrors what the conductor just wrote; the search attribute follows vm_state. */
  states(patch: { vmState?: string; taskState?: string | null; powerState?: number }): void {
    const vmChanged = patch.vmState !== undefined && patch.vmState !== this.status.vmState;
    Object.assign(this.status, patch);
    if (vmChanged && patch.vmState) upsertSearchAttributes([{ key: VmStateKey, value: patch.vmState }]);
  }

  /** The host the build is on (null between attempts). ComputeHost keeps the last host tried. */
  onHost(host: string | null, attempt: number): void {
    this.status.host = host;
    this.status.attempt = attempt;
    if (host) upsertSearchAttributes([{ key: ComputeHostKey, value: host }]);
  }

  hostFailed(host: string): void {
    this.status.triedHosts.push(host);
  }

  error(error: LastError): void {
    this.status.lastError = error;
  }

  compensated(line: string): void {
    this.status.compensations.push(line);
  }

  done(): void {
    this.status.done = true;
  }
}
