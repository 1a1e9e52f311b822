/**
 * Day two under chaos: while the boots run, a seeded mix of what users do to live servers — stop, start,
 * reboot (soft and hard), a volume created and attached, an attached one detached — each one workflow
 * started through Temporal as the client starts it (stopInstance, startInstance, rebootInstance,
 * attachServerVolume, detachServerVolume on the controller queue), several at once, some sent on purpose
 * to a server whose state refuses them or while another operation of it runs (Nova's 409). When the plan's
 * compute host is lost for good, the operator's answer: its nova-compute forced down
 * (`openstack compute service set --down`), then one `bootflow host evacuate` of it (evacuateHost).
 *
 * The verdict (verifyDayTwo): every request has exactly one outcome — done, refused (4xx: nothing ran) or
 * failed (undone: task_state back to None, the volume as it was) — none lost; every surviving server's
 * vm_state and power_state, in Nova and on its host, are what its last successful power action left
 * (active/running after a start, a reboot or an evacuation, stopped/shutdown after a stop); every volume
 * is attached exactly as its last successful attach or detach left it; every evacuated server is ACTIVE on
 * another host with the same ports, IPs and volumes.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  type Client,
  type Connection,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import Table from 'cli-table3';
import { openrcPath, readOpenrc } from '../../cloud/bootstrap';
import type { ComputeHost } from '../../cloud/compute';
import type { Cloud } from '../../cloud/index';
import type { EvacuateHostResult } from '../../workflows/evacuate';
import {
  CONTROLLER_QUEUE,
  evacuateWorkflowId,
  serverOperationWorkflowId,
  volumeAttachWorkflowId,
  volumeDetachWorkflowId,
} from '../../workflows/names';
import { setComputeFault } from './faults';
import { Rng } from './rng';
import type { TrackedRequest } from './submit';

export type DayTwoOp = 'stop' | 'start' | 'reboot-soft' | 'reboot-hard' | 'attach' | 'detach' | 'evacuate';
export type DayTwoOutcome = 'done' | 'refused' | 'failed' | 'lost';
const OPS: DayTwoOp[] = ['stop', 'start', 'reboot-soft', 'reboot-hard', 'attach', 'detach', 'evacuate'];
const POWER_OPS: ReadonlySet<DayTwoOp> = new Set(['stop', 'start', 'reboot-soft', 'reboot-hard']);

/** Nova's power_state numbers. */
const RUNNING = 1;
const SHUTDOWN = 4;

const WORKFLOW_OF: Record<Exclude<DayTwoOp, 'evacuate'>, string> = {
  stop: 'stopInstance',
  start: 'startInstance',
  'reboot-soft': 'rebootInstance',
  'reboot-hard': 'rebootInstance',
  attach: 'attachServerVolume',
  detach: 'detachServerVolume',
};

export interface DayTwoRequest {
  op: DayTwoOp;
  requestId: string;
  workflowId: string;
  instanceUuid: string;
  /** The boot request of the server. */
  bootRequestId: string;
  volumeId?: string;
  /** Sent on purpose where it should be refused: a wrong state, or another operation of the server running. */
  probe?: 'state' | 'busy';
  outcome?: DayTwoOutcome;
  failureType?: string;
  message?: string;
  /** When it ended (client clock): orders the successes of one server. */
  endedAt?: number;
}

/** What verify.ts checks a live server against once day two touched it. */
export interface ServerExpectation {
  vmState: 'active' | 'stopped' | 'error';
  powerState: number;
  /** Day-two volumes attached to it (besides its boot volume). */
  volumes: string[];
  /** Evacuated off this host: its old domain there is the dead host's to clean, its boot host no longer holds. */
  evacuatedFrom?: string;
  /** A reboot or evacuation of it failed after its last successful power action: ERROR is Nova's answer. */
  errorAllowed?: boolean;
}

export interface DayTwoOptions {
  seed: number;
  short: boolean;
  client: Client;
  connection: Connection;
  cloud: Cloud;
  fixtures: {
    dataDir: string;
    demoProjectId: string;
    demoToken: string;
    grant(token: string, workflowType: string, workflowId: string): Promise<{ grant: string }>;
  };
  /** The boots' tracked requests (ACTIVE ones not being deleted are the candidates). */
  tracked: () => readonly TrackedRequest[];
  /** True while boots may still come. */
  submitting: () => boolean;
  lostHost: string;
  isLost: () => boolean;
  hostPickupMs?: number;
  /** No request is sent after this (epoch ms). */
  stopAt: number;
  deadline: number;
  log: (line: string) => void;
}

interface Server {
  uuid: string;
  bootRequestId: string;
  host: string;
  /** What it should be now, as far as the requests that ended say (picks the next operation). */
  stopped: boolean;
  /** Day-two requests of it still running. */
  busy: number;
  attached: Set<string>;
  detaching: Set<string>;
}

export interface EvacuationRecord {
  host: string;
  /** Servers on the host when it was evacuated, with what they held. */
  before: Array<{ uuid: string; ports: string[]; ips: string[]; volumes: string[] }>;
  workflowId: string;
  result?: EvacuateHostResult;
  error?: string;
}

/** Failure types nova-api (or Cinder, for a volume) answers before anything ran: 4xx, "refused". */
function refusal(code: unknown): boolean {
  return typeof code === 'number' && code >= 400 && code < 500;
}

export class DayTwo {
  readonly requests: DayTwoRequest[] = [];
  readonly volumes = new Map<string, { server: string; created: 'available' | 'error' }>();
  evacuation?: EvacuationRecord;
  faultsInjected = 0;
  private readonly servers = new Map<string, Server>();
  private readonly rng: Rng;
  private readonly running: Array<Promise<void>> = [];
  private inFlight = 0;
  private adminToken?: string;

  constructor(private readonly o: DayTwoOptions) {
    this.rng = new Rng(o.seed).fork('day-two');
  }

  private get expired(): boolean {
    return Date.now() > this.o.deadline;
  }

  /** Live servers: booted ACTIVE, no delete asked, not on a host that is gone. */
  private candidates(): Server[] {
    for (const t of this.o.tracked()) {
      if (!t.boot?.ok || this.servers.has(t.boot.result.id)) continue;
      const { id, host } = t.boot.result;
      this.servers.set(id, {
        uuid: id,
        bootRequestId: t.planned.requestId,
        host,
        stopped: false,
        busy: 0,
        attached: new Set(),
        detaching: new Set(),
      });
    }
    const deleting = new Set(
      this.o
        .tracked()
        .filter((t) => t.deletion || t.planned.deleteWhenActive)
        .map((t) => (t.boot?.ok ? t.boot.result.id : '')),
    );
    const lost = this.o.isLost() ? this.o.lostHost : undefined;
    return [...this.servers.values()].filter((s) => !deleting.has(s.uuid) && s.host !== lost);
  }

  /** Sends the seeded mix until the plan's count is reached or the time is up; then the evacuation ends. */
  async run(): Promise<void> {
    const total = this.o.short ? 24 : 120;
    const concurrency = this.o.short ? 4 : 6;
    const evacuation = this.watchLoss();
    let sent = 0;
    let faulted = false;
    while (sent < total && Date.now() < this.o.stopAt) {
      await sleep(this.rng.int(100, 700));
      if (this.inFlight >= concurrency) continue;
      const servers = this.candidates();
      if (servers.length === 0) {
        if (!this.o.submitting() && this.o.tracked().every((t) => t.boot)) break;
        continue;
      }
      // Once in the run: the next power operations on one host fail past their retries (a failing driver).
      if (!faulted && sent >= total / 3) {
        faulted = true;
        const host = this.rng.pick(servers).host;
        this.o.log(`chaos: day two: power off, on and reboot fail on ${host} (past their retries)`);
        for (const op of ['powerOff', 'powerOn', 'reboot'] as const)
          await setComputeFault(this.o.fixtures.dataDir, host, op, { mode: 'fail', times: 4 });
        this.faultsInjected += 1;
      }
      const op = this.rng.weighted({
        stop: 3,
        start: 3,
        'reboot-soft': 2,
        'reboot-hard': 2,
        attach: 3,
        detach: 2,
      } satisfies Record<Exclude<DayTwoOp, 'evacuate'>, number>);
      const launched = this.launch(op, servers);
      if (!launched) continue;
      sent += 1;
      this.inFlight += 1;
      this.running.push(launched.finally(() => (this.inFlight -= 1)));
    }
    await Promise.allSettled(this.running);
    await evacuation;
  }

  /** Picks a server for `op` and starts it; undefined when none fits now. */
  private launch(op: Exclude<DayTwoOp, 'evacuate'>, servers: Server[]): Promise<void> | undefined {
    // The newest servers: the run deletes the oldest to make room, and the check reads the survivors.
    const idle = servers.filter((s) => s.busy === 0).slice(-8);
    const probe = this.rng.chance(0.15) ? this.rng.pick(['state', 'busy'] as const) : undefined;
    let server: Server | undefined;
    let volumeId: string | undefined;
    if (op === 'detach') {
      const holders = idle.filter((s) => [...s.attached].some((v) => !s.detaching.has(v)));
      if (holders.length === 0) return undefined;
      server = this.rng.pick(holders);
      volumeId = this.rng.pick([...server.attached].filter((v) => !server!.detaching.has(v)));
      server.detaching.add(volumeId);
    } else if (probe === 'busy' && servers.some((s) => s.busy > 0) && op !== 'attach') {
      server = this.rng.pick(servers.filter((s) => s.busy > 0));
    } else {
      // Ordinarily a server whose state lets the operation run; a state probe asks the opposite.
      const fits = (s: Server) =>
        op === 'start' ? s.stopped : op === 'stop' || op === 'reboot-soft' ? !s.stopped : true;
      const pool = idle.filter((s) => (probe === 'state' ? !fits(s) : fits(s)));
      if (pool.length === 0) return undefined;
      server = this.rng.pick(pool);
    }
    const s = server;
    const requestId = `day2-${this.o.seed}-${this.requests.length}`;
    const workflowId =
      op === 'attach'
        ? volumeAttachWorkflowId(s.uuid, requestId)
        : op === 'detach'
          ? volumeDetachWorkflowId(s.uuid, requestId)
          : serverOperationWorkflowId(op, s.uuid, requestId);
    const request: DayTwoRequest = {
      op,
      requestId,
      workflowId,
      instanceUuid: s.uuid,
      bootRequestId: s.bootRequestId,
      ...(volumeId ? { volumeId } : {}),
      ...(probe && op !== 'detach' && (probe === 'state' || s.busy > 0) ? { probe } : {}),
    };
    this.requests.push(request);
    s.busy += 1;
    return this.carryOut(request, s).finally(() => {
      s.busy -= 1;
      if (volumeId) s.detaching.delete(volumeId);
    });
  }

  private async carryOut(request: DayTwoRequest, server: Server): Promise<void> {
    const { op } = request;
    if (op === 'evacuate') return;
    try {
      if (op === 'attach') {
        const volume = await this.createVolume(request);
        if (!volume) return;
        request.volumeId = volume;
      }
      const workflowType = WORKFLOW_OF[op];
      const args = {
        requestId: request.requestId,
        auth: await this.o.fixtures.grant(this.o.fixtures.demoToken, workflowType, request.workflowId),
        instanceUuid: request.instanceUuid,
        ...(request.volumeId ? { volumeId: request.volumeId } : {}),
        ...(op === 'reboot-soft' ? { type: 'SOFT' } : op === 'reboot-hard' ? { type: 'HARD' } : {}),
        ...(this.o.hostPickupMs ? { timeouts: { hostPickupMs: this.o.hostPickupMs } } : {}),
      };
      await this.execute(request, workflowType, args);
    } catch (err) {
      request.outcome = 'lost';
      request.message = (err as Error).message;
      this.o.log(`! day two ${request.workflowId}: no outcome (${request.message})`);
    }
    request.endedAt = Date.now();
    if (request.outcome !== 'done') return;
    if (op === 'stop') server.stopped = true;
    if (op === 'start' || op === 'reboot-soft' || op === 'reboot-hard') server.stopped = false;
    if (op === 'attach' && request.volumeId) server.attached.add(request.volumeId);
    if (op === 'detach' && request.volumeId) server.attached.delete(request.volumeId);
  }

  /** Cinder's volume create, as the volume API does it; a creation that fails is the request's outcome. */
  private async createVolume(request: DayTwoRequest): Promise<string | undefined> {
    const { cinder } = this.o.cloud;
    const volume = await cinder.createVolume({
      requestKey: `chaos-day-two:${request.requestId}`,
      projectId: this.o.fixtures.demoProjectId,
      sizeGb: 1,
      name: `${request.requestId}-vol`,
    });
    try {
      await cinder.waitForVolume(volume.id, { timeoutMs: 120_000, pollMs: 200 });
      this.volumes.set(volume.id, { server: request.instanceUuid, created: 'available' });
      return volume.id;
    } catch (err) {
      // Cinder's create failed (an injected backend fault): the request failed; the volume goes, as a user would.
      this.volumes.set(volume.id, { server: request.instanceUuid, created: 'error' });
      await cinder.deleteVolume(volume.id, { force: true });
      request.volumeId = volume.id;
      request.outcome = 'failed';
      request.failureType = 'VolumeNotCreated';
      request.message = (err as Error).message;
      return undefined;
    }
  }

  /** Starts the workflow (riding out a restarting dev server) and records how it ended. */
  private async execute(request: DayTwoRequest, workflowType: string, args: object): Promise<void> {
    const { client, connection } = this.o;
    for (;;) {
      try {
        const handle = await connection.withDeadline(this.o.deadline, async () => {
          try {
            return await client.workflow.start(workflowType, {
              taskQueue: CONTROLLER_QUEUE,
              workflowId: request.workflowId,
              args: [args],
            });
          } catch (err) {
            if (err instanceof WorkflowExecutionAlreadyStartedError)
              return client.workflow.getHandle(request.workflowId);
            throw err;
          }
        });
        await connection.withDeadline(this.o.deadline, () => handle.result());
        request.outcome = 'done';
        return;
      } catch (err) {
        if (err instanceof WorkflowFailedError) {
          const cause = err.cause;
          const details = (cause instanceof ApplicationFailure ? cause.details?.[0] : undefined) as
            { code?: unknown } | undefined;
          request.failureType = cause instanceof ApplicationFailure ? (cause.type ?? 'Error') : 'Error';
          request.message = cause?.message ?? err.message;
          request.outcome = refusal(details?.code) ? 'refused' : 'failed';
          return;
        }
        if (this.expired) throw err;
        await sleep(1_000); // The dev server restarting: the same workflow id finds the same run.
      }
    }
  }

  /** When the plan's host is lost: wait out what runs on it, force it down, evacuate it once. */
  private async watchLoss(): Promise<void> {
    while (!this.o.isLost()) {
      if (Date.now() > this.o.stopAt) return;
      await sleep(500);
    }
    const host = this.o.lostHost;
    // The operations sent to its servers before it died end first (the host pickup bound fails them).
    while ([...this.servers.values()].some((s) => s.host === host && s.busy > 0) && !this.expired)
      await sleep(500);
    const { cloud } = this.o;
    await cloud.nova.setHostForcedDown(host, true);
    // Builds caught on it go elsewhere on their own (their work there times out); the operator evacuates
    // the servers that stand there (a build would be refused: vm_state building).
    const settled = Date.now() + 90_000;
    const building = async () =>
      (await cloud.nova.listInstances({ allProjects: true })).some(
        (i) => i.host === host && !i.deleted && i.vmState === 'building',
      );
    while ((await building()) && Date.now() < settled && !this.expired) await sleep(1_000);
    this.o.log(`chaos: day two: ${host} forced down; evacuating it`);
    const before: EvacuationRecord['before'] = [];
    for (const instance of await cloud.nova.listInstances({ allProjects: true })) {
      if (instance.host !== host || instance.deleted) continue;
      const ports = await cloud.neutron.listPorts({ deviceId: instance.uuid });
      const attachments = await cloud.cinder.listAttachments({ instanceUuid: instance.uuid });
      before.push({
        uuid: instance.uuid,
        ports: ports.map((p) => p.id).sort(),
        ips: ports.flatMap((p) => p.fixedIps.map((ip) => ip.ipAddress)).sort(),
        volumes: attachments.map((a) => a.volumeId).sort(),
      });
    }
    const requestId = `day2-${this.o.seed}-evacuate-${randomUUID().slice(0, 8)}`;
    const workflowId = `evacuate-host-${host}-${requestId}`;
    const record: EvacuationRecord = { host, before, workflowId };
    this.evacuation = record;
    try {
      const token = await this.admin();
      const args = {
        requestId,
        auth: await this.o.fixtures.grant(token, 'evacuateHost', workflowId),
        host,
        ...(this.o.hostPickupMs ? { timeouts: { hostPickupMs: this.o.hostPickupMs } } : {}),
      };
      for (;;) {
        try {
          const handle = await this.o.client.workflow
            .start('evacuateHost', { taskQueue: CONTROLLER_QUEUE, workflowId, args: [args] })
            .catch((err: unknown) => {
              if (err instanceof WorkflowExecutionAlreadyStartedError)
                return this.o.client.workflow.getHandle(workflowId);
              throw err;
            });
          record.result = (await handle.result()) as EvacuateHostResult;
          break;
        } catch (err) {
          if (err instanceof WorkflowFailedError || this.expired) throw err;
          await sleep(1_000);
        }
      }
    } catch (err) {
      record.error = (err as Error).message;
    }
    const ended = Date.now();
    if (!record.result) {
      // The evacuation itself has no outcome: one request lost.
      this.requests.push({
        op: 'evacuate',
        requestId,
        workflowId,
        instanceUuid: '',
        bootRequestId: '',
        endedAt: ended,
        outcome: 'lost',
        message: record.error ?? 'no result',
      });
    }
    // One request per server evacuateHost found on the host (a server gone from it since the snapshot is
    // not one of them).
    const servers = [
      ...(record.result?.evacuated ?? []).map((e) => ({
        uuid: e.instanceUuid,
        evacuated: e,
        failed: undefined,
      })),
      ...(record.result?.failed ?? []).map((f) => ({
        uuid: f.instanceUuid,
        evacuated: undefined,
        failed: f,
      })),
    ];
    for (const { uuid, evacuated, failed } of servers) {
      // evacuateHost reports a child's failure as the child's; its own typed failure says refused or failed.
      const child = failed ? await this.childFailure(evacuateWorkflowId(uuid, requestId)) : undefined;
      const known = this.servers.get(uuid);
      this.requests.push({
        op: 'evacuate',
        requestId: `${requestId}-${uuid}`,
        workflowId: evacuateWorkflowId(uuid, requestId),
        instanceUuid: uuid,
        bootRequestId: known?.bootRequestId ?? '',
        endedAt: ended,
        ...(evacuated
          ? { outcome: 'done' as const }
          : {
              outcome: refusal(child?.code) ? ('refused' as const) : ('failed' as const),
              failureType: child?.type ?? failed?.type ?? 'Error',
              message: child?.message ?? failed?.message ?? '',
            }),
      });
      if (evacuated && known) {
        known.host = evacuated.host;
        known.stopped = false;
      }
    }
    const moved = record.result?.evacuated.length ?? 0;
    this.o.log(`chaos: day two: ${moved} of ${servers.length} servers evacuated off ${host}`);
  }

  private async childFailure(workflowId: string) {
    try {
      await this.o.client.workflow.getHandle(workflowId).result();
      return undefined;
    } catch (err) {
      const cause = err instanceof WorkflowFailedError ? err.cause : undefined;
      if (!(cause instanceof ApplicationFailure)) return undefined;
      const details = cause.details?.[0] as { code?: unknown } | undefined;
      return { type: cause.type ?? 'Error', message: cause.message, code: details?.code };
    }
  }

  private async admin(): Promise<string> {
    if (this.adminToken) return this.adminToken;
    const creds = readOpenrc(openrcPath(this.o.fixtures.dataDir, 'admin'));
    const auth = await this.o.cloud.keystone.authenticate({
      username: creds.username ?? 'admin',
      password: creds.password ?? '',
      projectName: creds.projectName ?? 'admin',
    });
    this.adminToken = auth.token;
    return auth.token;
  }

  /**
   * What each server day two touched should be now: its last successful power action (ended last) and
   * evacuation decide vm_state and power_state; its last successful attach or detach of each volume
   * decides what is attached. A failed reboot or evacuation may leave ERROR (Nova's rules) — allowed then.
   */
  expectations(): Map<string, ServerExpectation> {
    const out = new Map<string, ServerExpectation>();
    const byServer = new Map<string, DayTwoRequest[]>();
    for (const r of this.requests) {
      const list = byServer.get(r.instanceUuid) ?? [];
      list.push(r);
      byServer.set(r.instanceUuid, list);
    }
    for (const [uuid, list] of byServer) {
      // Refused requests ran nothing: a server day two only met through refusals (e.g. a terminated boot
      // the host-wide evacuation listed) is as its boot left it, which the boots' verdict checks.
      if (list.every((r) => r.outcome === 'refused')) continue;
      const done = list.filter((r) => r.outcome === 'done').sort((a, b) => a.endedAt! - b.endedAt!);
      const lastPower = [...done].reverse().find((r) => POWER_OPS.has(r.op) || r.op === 'evacuate');
      const stopped = lastPower?.op === 'stop';
      const errorAllowed = list.some(
        (r) =>
          r.outcome === 'failed' &&
          (r.op === 'reboot-soft' || r.op === 'reboot-hard' || r.op === 'evacuate') &&
          (r.endedAt ?? 0) >= (lastPower?.endedAt ?? 0),
      );
      const volumes = new Set<string>();
      for (const r of done) {
        if (r.op === 'attach' && r.volumeId) volumes.add(r.volumeId);
        if (r.op === 'detach' && r.volumeId) volumes.delete(r.volumeId);
      }
      const evacuated = done.some((r) => r.op === 'evacuate');
      out.set(uuid, {
        vmState: stopped ? 'stopped' : 'active',
        powerState: stopped ? SHUTDOWN : RUNNING,
        volumes: [...volumes].sort(),
        ...(evacuated && this.evacuation ? { evacuatedFrom: this.evacuation.host } : {}),
        ...(errorAllowed ? { errorAllowed: true } : {}),
      });
    }
    return out;
  }
}

export interface DayTwoVerdict {
  byOp: Record<DayTwoOp, Record<DayTwoOutcome, number>>;
  probes: { sent: number; refused: number };
  /** Surviving servers day two touched, and how many hold the power state their last action asked for. */
  powerChecked: number;
  powerMatched: number;
  volumes: { created: number; createFailed: number; attached: number; available: number };
  evacuation: { host: string; servers: number; moved: number; samePortsIpsVolumes: number } | null;
  faultsInjected: number;
  violations: string[];
}

/** Reads the cloud once every workflow has ended and the workers have stopped. */
export async function verifyDayTwo(
  dayTwo: DayTwo,
  cloud: Cloud,
  hosts: Map<string, ComputeHost>,
): Promise<DayTwoVerdict> {
  const violations: string[] = [];
  const fail = (what: string) => violations.push(`day two: ${what}`);
  const zero = () => ({ done: 0, refused: 0, failed: 0, lost: 0 });
  const byOp = Object.fromEntries(OPS.map((op) => [op, zero()])) as DayTwoVerdict['byOp'];
  for (const r of dayTwo.requests) {
    if (!r.outcome) {
      fail(`${r.workflowId}: no outcome`);
      continue;
    }
    byOp[r.op][r.outcome] += 1;
    if (r.outcome === 'lost') fail(`${r.workflowId}: no outcome (${r.message ?? ''})`);
  }
  const probes = dayTwo.requests.filter((r) => r.probe);

  // Every server day two touched: gone (deleted), or in the state its last successful action asked for.
  const expectations = dayTwo.expectations();
  let powerChecked = 0;
  let powerMatched = 0;
  for (const [uuid, want] of expectations) {
    const instance = await cloud.nova.getInstance(uuid, { includeDeleted: true });
    if (instance.deleted) continue;
    if (instance.taskState !== null) fail(`${uuid}: task_state ${instance.taskState} left behind`);
    if (instance.vmState === 'error') {
      if (!want.errorAllowed) fail(`${uuid}: ERROR, though no reboot or evacuation of it failed`);
      else if ((await cloud.nova.listFaults(uuid)).length === 0) fail(`${uuid}: ERROR without a fault`);
      continue;
    }
    powerChecked += 1;
    const onHost = instance.host ? await hosts.get(instance.host)?.getPowerState(uuid) : undefined;
    if (
      instance.vmState === want.vmState &&
      instance.powerState === want.powerState &&
      onHost === want.powerState
    )
      powerMatched += 1;
    else
      fail(
        `${uuid}: vm_state ${instance.vmState}, power_state ${instance.powerState} (host ${instance.host}: ${onHost}); its last action asked for ${want.vmState}/${want.powerState}`,
      );
    if (want.evacuatedFrom && instance.host === want.evacuatedFrom)
      fail(`${uuid}: evacuated, yet still on ${want.evacuatedFrom}`);
  }

  // Every day-two volume: attached exactly where its last successful attach (not detached since) put it.
  let attached = 0;
  let available = 0;
  let createFailed = 0;
  for (const [volumeId, { server, created }] of dayTwo.volumes) {
    const volume = (await cloud.cinder.listVolumes({ includeDeleted: true })).find((v) => v.id === volumeId);
    if (created === 'error') {
      createFailed += 1;
      if (volume && volume.deletedAt === null)
        fail(`volume ${volumeId}: its creation failed, yet it is still there`);
      continue;
    }
    if (!volume) {
      fail(`volume ${volumeId}: gone`);
      continue;
    }
    const instance = await cloud.nova.getInstance(server, { includeDeleted: true });
    const want = !instance.deleted && (expectations.get(server)?.volumes.includes(volumeId) ?? false);
    const attachments = await cloud.cinder.listAttachments({ volumeId });
    if (want) {
      attached += 1;
      const a = attachments[0];
      if (
        volume.status !== 'in-use' ||
        attachments.length !== 1 ||
        a?.instanceUuid !== server ||
        a.attachStatus !== 'attached' ||
        a.attachedHost !== instance.host
      )
        fail(
          `volume ${volumeId}: should be attached to ${server} on ${instance.host}, is ${volume.status} with ${attachments.map((x) => `${x.instanceUuid}/${x.attachStatus}@${x.attachedHost}`).join(', ') || 'no attachment'}`,
        );
      const connected = instance.host
        ? (await hosts.get(instance.host)?.listVolumeConnections())?.some(
            (c) => c.instanceUuid === server && c.volumeId === volumeId,
          )
        : false;
      if (!connected) fail(`volume ${volumeId}: attached to ${server} but not connected on ${instance.host}`);
    } else {
      available += 1;
      if (volume.status !== 'available' || attachments.length !== 0)
        fail(
          `volume ${volumeId}: should be available, is ${volume.status} with ${attachments.length} attachments`,
        );
    }
  }

  // The evacuation: every server it moved is ACTIVE elsewhere with the same ports, IPs and volumes.
  let evacuation: DayTwoVerdict['evacuation'] = null;
  const record = dayTwo.evacuation;
  if (record) {
    if (record.error) fail(`evacuation of ${record.host}: ${record.error}`);
    let same = 0;
    const moved = record.result?.evacuated ?? [];
    for (const e of moved) {
      const was = record.before.find((b) => b.uuid === e.instanceUuid);
      const instance = await cloud.nova.getInstance(e.instanceUuid, { includeDeleted: true });
      if (instance.deleted) {
        same += 1; // Deleted after it moved (room for new boots): its delete is checked with its boot.
        continue;
      }
      const ports = await cloud.neutron.listPorts({ deviceId: e.instanceUuid });
      const now = {
        ports: ports.map((p) => p.id).sort(),
        ips: ports.flatMap((p) => p.fixedIps.map((ip) => ip.ipAddress)).sort(),
      };
      const wantVolumes = new Set(was?.volumes ?? []);
      const volumesNow = (await cloud.cinder.listAttachments({ instanceUuid: e.instanceUuid })).map(
        (a) => a.volumeId,
      );
      // Later day-two attaches and detaches change the volumes; those are checked above.
      const laterVolumeOps = dayTwo.requests.some(
        (r) =>
          r.instanceUuid === e.instanceUuid &&
          (r.op === 'attach' || r.op === 'detach') &&
          r.outcome === 'done' &&
          (r.endedAt ?? 0) > (dayTwo.requests.find((x) => x.op === 'evacuate')?.endedAt ?? 0),
      );
      const volumesOk =
        laterVolumeOps ||
        (volumesNow.length === wantVolumes.size && volumesNow.every((v) => wantVolumes.has(v)));
      const ok =
        was !== undefined &&
        instance.host !== record.host &&
        instance.host === e.host &&
        ['active', 'stopped'].includes(instance.vmState) &&
        now.ports.join() === was.ports.join() &&
        now.ips.join() === was.ips.join() &&
        volumesOk;
      if (ok) same += 1;
      else
        fail(
          `${e.instanceUuid}: evacuated to ${e.host} but is on ${instance.host} (${instance.vmState}) with ports ${now.ports} IPs ${now.ips} volumes ${volumesNow}; before ${JSON.stringify(was)}`,
        );
    }
    for (const f of record.result?.failed ?? []) {
      const instance = await cloud.nova.getInstance(f.instanceUuid, { includeDeleted: true });
      const r = dayTwo.requests.find((x) => x.op === 'evacuate' && x.instanceUuid === f.instanceUuid);
      if (r?.outcome === 'failed' && !instance.deleted && instance.vmState !== 'error')
        fail(`${f.instanceUuid}: its evacuation failed (${f.type}) yet it is ${instance.vmState}`);
    }
    evacuation = {
      host: record.host,
      servers: moved.length + (record.result?.failed.length ?? 0),
      moved: moved.length,
      samePortsIpsVolumes: same,
    };
  }
  return {
    byOp,
    probes: { sent: probes.length, refused: probes.filter((r) => r.outcome === 'refused').length },
    powerChecked,
    powerMatched,
    volumes: { created: dayTwo.volumes.size, createFailed, attached, available },
    evacuation,
    faultsInjected: dayTwo.faultsInjected,
    violations,
  };
}

/** The day-two table of the chaos report. */
export function dayTwoTable(v: DayTwoVerdict): string {
  const t = new Table({
    head: ['day two', 'done', 'refused', 'failed', 'lost'],
    style: { head: [], border: [] },
  });
  for (const op of OPS) {
    const c = v.byOp[op];
    if (c.done + c.refused + c.failed + c.lost === 0) continue;
    t.push([`${op} (${c.done + c.refused + c.failed + c.lost})`, c.done, c.refused, c.failed, c.lost]);
  }
  const all = OPS.map((op) => v.byOp[op]);
  const sum = (k: DayTwoOutcome) => all.reduce((n, c) => n + c[k], 0);
  t.push([
    `all (${sum('done') + sum('refused') + sum('failed') + sum('lost')})`,
    sum('done'),
    sum('refused'),
    sum('failed'),
    sum('lost'),
  ]);
  const e = v.evacuation;
  const lines = [
    t.toString(),
    `day two: ${v.probes.sent} sent to be refused (wrong state or another operation running), ${v.probes.refused} refused; ` +
      `driver power faults injected ${v.faultsInjected}`,
    `day two: power state as last asked ${v.powerMatched} of ${v.powerChecked} surviving servers; ` +
      `volumes ${v.volumes.created} (create failed ${v.volumes.createFailed}, attached ${v.volumes.attached}, available ${v.volumes.available})`,
    e
      ? `day two: evacuate ${e.host}: ${e.moved} of ${e.servers} servers moved, ${e.samePortsIpsVolumes} with the same ports/IPs/volumes`
      : 'day two: no evacuation (no host was lost)',
    `day two: violations ${v.violations.length}`,
  ];
  return lines.join('\n');
}
