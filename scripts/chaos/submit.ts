/**
 * The users of the cloud during the chaos: boots submitted through Temporal as client.ts submits them
 * (createInstance on the controller queue, the workflow id derived from the request id), some submitted
 * twice (a client's retry), each followed to its end; some ACTIVE servers then deleted (deleteInstance).
 * Every call to Temporal rides out the dev server's restart by retrying until the run's deadline.
 */
import {
  isGrpcServiceError,
  ServiceError,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  type Client,
  type Connection,
  type WorkflowHandle,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { bootWorkflowId, CONTROLLER_QUEUE, deleteWorkflowId } from '../../workflows/names';
import type { BootRequest, BootResult, DeleteRequest, DeleteResult } from '../../workflows/types';
import type { PlannedRequest } from './plan';
import type { ChaosFixtures } from './setup';

export type BootEnd =
  | { ok: true; result: BootResult }
  | { ok: false; type: string; message: string; details: Record<string, unknown> };

export interface TrackedRequest {
  planned: PlannedRequest;
  workflowId: string;
  firstRunId?: string;
  submittedAt?: number;
  endedAt?: number;
  /** What the second submission of the same request id got. */
  resubmission?: 'already-started' | 'started-again' | 'error';
  boot?: BootEnd;
  /** Times chaos reset its boot (each reset ends the run as terminated and starts a new one, followed). */
  resets?: number;
  /** Chaos terminated its boot mid-flight: the reconciler is to finish the server (ERROR, nothing held). */
  terminated?: boolean;
  /** Its boot or delete was still running when the run's time bound ran out. */
  unfinished?: 'boot' | 'delete';
  deletion?: {
    reason: 'planned' | 'capacity';
    workflowId: string;
    result?: DeleteResult;
    error?: string;
  };
}

export interface DriverOptions {
  client: Client;
  connection: Connection;
  /** Operator knob of every boot: how long work may wait for a compute host before it counts as down. */
  hostPickupMs?: number;
  fixtures: ChaosFixtures;
  /** Boots running at once. */
  concurrency: number;
  /** ACTIVE servers kept at most; beyond it, finished servers are deleted to make room. */
  liveCap: number;
  /** No boot is submitted after this (epoch ms): what is left of the plan is not submitted. */
  submitUntil: number;
  /** Nothing is waited for after this (epoch ms). */
  deadline: number;
  log: (line: string) => void;
}

function transient(err: unknown): boolean {
  if (err instanceof ServiceError || isGrpcServiceError(err)) return true;
  const message = err instanceof Error ? err.message : String(err);
  return /UNAVAILABLE|ECONNREFUSED|DEADLINE_EXCEEDED|Connection|connect|socket|transport/i.test(message);
}

async function bootRequest(
  planned: PlannedRequest,
  fx: ChaosFixtures,
  hostPickupMs?: number,
): Promise<BootRequest> {
  const workflowId = bootWorkflowId(planned.requestId);
  const base = {
    ...(hostPickupMs ? { timeouts: { hostPickupMs } } : {}),
    requestId: planned.requestId,
    auth: await fx.grant(fx.demoToken, 'createInstance', workflowId),
    name: `chaos-${planned.index}`,
    flavor: 'm1.tiny',
    image: fx.imageId,
    networks: [fx.privateNetworkId],
  };
  switch (planned.kind) {
    case 'image':
      return base;
    case 'volume':
      return { ...base, bootVolume: { sizeGb: 1, deleteOnTermination: !planned.keepVolume } };
    case 'quota':
      return {
        ...base,
        auth: await fx.grant(fx.quotaToken, 'createInstance', workflowId),
        flavor: 'm1.small',
        networks: [fx.publicNetworkId],
      };
    case 'missing-image':
      return { ...base, image: `no-such-image-${planned.index}` };
    case 'corrupt-image':
      return { ...base, image: fx.corruptImageId };
    case 'full-subnet':
      return { ...base, networks: [fx.fullNetworkId] };
  }
}

function failureOf(err: WorkflowFailedError): BootEnd {
  const cause = err.cause;
  if (cause instanceof ApplicationFailure) {
    const details = (cause.details?.[0] ?? {}) as Record<string, unknown>;
    return { ok: false, type: cause.type ?? 'Error', message: cause.message, details };
  }
  return { ok: false, type: cause?.name ?? 'Error', message: cause?.message ?? err.message, details: {} };
}

export class Driver {
  readonly tracked: TrackedRequest[] = [];
  private inFlight = 0;
  private readonly followUps: Array<Promise<void>> = [];
  /** ACTIVE servers not (being) deleted, newest last. */
  private readonly live: TrackedRequest[] = [];

  /** Cuts every call still waiting on Temporal (the deadline passed, or the run is over). */
  private readonly abort = new AbortController();

  constructor(private readonly options: DriverOptions) {
    // Every waiting call listens to the one signal.
    setMaxListeners(0, this.abort.signal);
  }

  private get expired(): boolean {
    return Date.now() > this.options.deadline || this.abort.signal.aborted;
  }

  /** Stops following: calls still waiting end now, so the connection can be closed. */
  stop(): void {
    this.abort.abort(new Error('the chaos run is over'));
  }

  /** Retries `work` while Temporal is unreachable (a restarting dev server), until the deadline. */
  private async retrying<T>(what: string, work: () => Promise<T>): Promise<T> {
    let logged = false;
    for (;;) {
      try {
        return await this.options.connection.withAbortSignal(this.abort.signal, work);
      } catch (err) {
        if (!transient(err) || this.expired) throw err;
        if (!logged) this.options.log(`  (${what}: Temporal unreachable, retrying)`);
        logged = true;
        await sleep(1_000);
      }
    }
  }

  private async start(t: TrackedRequest): Promise<WorkflowHandle> {
    const { client, fixtures } = this.options;
    const args = [await bootRequest(t.planned, fixtures, this.options.hostPickupMs)];
    const handle = await this.retrying(`start ${t.workflowId}`, async () => {
      try {
        return await client.workflow.start('createInstance', {
          taskQueue: CONTROLLER_QUEUE,
          workflowId: t.workflowId,
          args,
        });
      } catch (err) {
        // An earlier attempt reached the server before the connection dropped: follow that run.
        if (err instanceof WorkflowExecutionAlreadyStartedError)
          return client.workflow.getHandle(t.workflowId);
        throw err;
      }
    });
    t.firstRunId = (handle as { firstExecutionRunId?: string }).firstExecutionRunId;
    if (t.planned.resubmit) {
      try {
        await client.workflow.start('createInstance', {
          taskQueue: CONTROLLER_QUEUE,
          workflowId: t.workflowId,
          args,
        });
        t.resubmission = 'started-again';
      } catch (err) {
        t.resubmission = err instanceof WorkflowExecutionAlreadyStartedError ? 'already-started' : 'error';
      }
    }
    return handle;
  }

  /**
   * The boot's outcome. A reset ends the run it replaces as terminated and starts another under the same
   * id: that one is followed in turn. A terminated run with no newer one is the outcome.
   */
  private async outcome(t: TrackedRequest, handle: WorkflowHandle): Promise<BootEnd> {
    let current = handle;
    let followed = t.firstRunId;
    for (;;) {
      const end = await this.retrying(`result of ${t.workflowId}`, async () => {
        try {
          return { ok: true as const, result: (await current.result()) as BootResult };
        } catch (err) {
          if (err instanceof WorkflowFailedError) return failureOf(err);
          throw err;
        }
      });
      if (end.ok || end.type !== 'TerminatedFailure') return end;
      const latest = await this.retrying(`describe ${t.workflowId}`, () =>
        this.options.client.workflow.getHandle(t.workflowId).describe(),
      );
      if (latest.runId === followed) return end;
      followed = latest.runId;
      current = this.options.client.workflow.getHandle(t.workflowId, latest.runId);
    }
  }

  /** Boots submitted and not ended yet (the ones a reset or terminate may pick). */
  running(): TrackedRequest[] {
    return this.tracked.filter((t) => t.firstRunId && !t.boot && !t.unfinished);
  }

  private async follow(t: TrackedRequest, handle: WorkflowHandle): Promise<void> {
    try {
      t.boot = await this.outcome(t, handle);
    } catch (err) {
      if (this.expired) t.unfinished = 'boot';
      this.options.log(`! ${t.workflowId}: no outcome (${(err as Error).message})`);
    } finally {
      t.endedAt = Date.now();
      this.inFlight -= 1;
    }
    if (t.boot?.ok) {
      this.live.push(t);
      if (t.planned.deleteWhenActive) await this.remove(t, 'planned');
      else if (this.live.length > this.options.liveCap && Date.now() < this.options.submitUntil) {
        // Make room for the boots still to come: the oldest server still standing goes.
        const oldest = this.live.find((candidate) => candidate.deletion === undefined);
        if (oldest) await this.remove(oldest, 'capacity');
      }
    }
  }

  private async remove(t: TrackedRequest, reason: 'planned' | 'capacity'): Promise<void> {
    if (!t.boot?.ok || t.deletion) return;
    const instanceUuid = t.boot.result.id;
    const workflowId = deleteWorkflowId(instanceUuid);
    t.deletion = { reason, workflowId };
    this.live.splice(this.live.indexOf(t), 1);
    const request: DeleteRequest = {
      ...(this.options.hostPickupMs ? { timeouts: { hostPickupMs: this.options.hostPickupMs } } : {}),
      requestId: `del-${t.planned.requestId}`,
      auth: await this.options.fixtures.grant(this.options.fixtures.demoToken, 'deleteInstance', workflowId),
      instanceUuid,
    };
    const { client } = this.options;
    try {
      const handle = await this.retrying(`start ${workflowId}`, async () => {
        try {
          return await client.workflow.start('deleteInstance', {
            taskQueue: CONTROLLER_QUEUE,
            workflowId,
            args: [request],
          });
        } catch (err) {
          if (err instanceof WorkflowExecutionAlreadyStartedError)
            return client.workflow.getHandle(workflowId);
          throw err;
        }
      });
      t.deletion.result = await this.retrying(
        `result of ${workflowId}`,
        () => handle.result() as Promise<DeleteResult>,
      );
    } catch (err) {
      if (!(err instanceof WorkflowFailedError) && this.expired) t.unfinished = 'delete';
      t.deletion.error =
        err instanceof WorkflowFailedError ? (err.cause?.message ?? err.message) : (err as Error).message;
    }
  }

  /**
   * Submits every planned request in order, at most `concurrency` boots at once, calling `onSubmitted`
   * with the count after each (the chaos schedule hangs off it). Resolves when every boot and delete has
   * ended, or at the deadline.
   */
  async run(requests: PlannedRequest[], onSubmitted: (count: number) => void): Promise<void> {
    for (const planned of requests) {
      const closed = () => this.expired || Date.now() > this.options.submitUntil;
      while (this.inFlight >= this.options.concurrency && !closed()) await sleep(100);
      if (closed()) break;
      if (planned.gapMs > 0) await sleep(planned.gapMs);
      const t: TrackedRequest = { planned, workflowId: bootWorkflowId(planned.requestId) };
      this.tracked.push(t);
      this.inFlight += 1;
      try {
        const handle = await this.start(t);
        t.submittedAt = Date.now();
        this.followUps.push(this.follow(t, handle));
      } catch (err) {
        this.inFlight -= 1;
        this.options.log(`! ${t.workflowId} could not be submitted: ${(err as Error).message}`);
      }
      onSubmitted(this.tracked.length);
    }
    await Promise.race([
      Promise.allSettled(this.followUps),
      sleep(Math.max(0, this.options.deadline - Date.now())),
    ]);
    // Deletes started by the last boots to finish.
    while (this.tracked.some((t) => t.deletion && !t.deletion.result && !t.deletion.error) && !this.expired) {
      await sleep(200);
    }
  }

  get finished(): number {
    return this.tracked.filter((t) => t.boot !== undefined).length;
  }
}
