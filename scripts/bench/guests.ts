/**
 * Real guests beside the fake driver (`--only guests`; root, QEMU, tun, dnsmasq and the guest image's tools,
 * a missing one fails the section naming what to install): one cloud and one Temporal, two compute hosts in
 * this process — `bench-fake` (fake driver and agent) and `bench-qemu` (qemu driver, linux-bridge agent) —
 * each in an availability zone of its own, so every boot lands where it is sent. Boots run one at a time,
 * alternating fake and qemu, all of the bootflow guest image (the same Glance path for both):
 *  - boot to ACTIVE (client: start → result) for both;
 *  - qemu only: boot to the guest answering ping from its network's qdhcp namespace (start → first echo
 *    reply; busybox ping every 0.2 s), and the CPU seconds QEMU used from its start to that reply;
 * each guest deleted (deleteInstance) before the next boot, so never more than one runs; the cloud's leak
 * audit afterwards, and everything this run made removed from the machine even when it fails.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { auditLeaks } from '../../cloud/audit';
import { bootstrapCloud } from '../../cloud/bootstrap';
import { listQemuProcesses, type ComputeHost } from '../../cloud/compute';
import { dhcpNamespace } from '../../cloud/compute/linux-bridge';
import { removeCloudFromMachine } from '../../cloud/compute/machine-cleanup';
import { capabilitiesOf, type HostSpec } from '../../cloud/hosts';
import { openCloud, openComputeHost } from '../../cloud/index';
import { ensureGuestImage, INSTALL_COMMAND, missingGuestTools } from '../../lib/guest-image';
import { bootWorkflowId, CONTROLLER_QUEUE, deleteWorkflowId } from '../../workflows/names';
import type { BootRequest, BootResult, DeleteResult } from '../../workflows/types';
import { recordHostSteps, takeHostSteps } from '../../cloud/compute/step-timings';
import { startWorkers, type TemporalTarget } from './boot-env';
import { analyzeHistories } from './histories';
import type { Goal } from './results';
import { ratio, rounded, summarize, type Summary } from './stats';

export interface GuestBenchOptions {
  boots: number;
  warmup: number;
  log(line: string): void;
}

export interface GuestBenchResult {
  /** Measured boots per driver (after the warm-up). */
  boots: number;
  fakeActive: Summary;
  qemuActive: Summary;
  /** Boot start → the guest's first echo reply, ms. */
  qemuFirstPing: Summary;
  /** QEMU's user + system CPU from its start to the first echo reply, s. */
  qemuCpuSecondsToPing: Summary;
  /** qemu ACTIVE p50 / fake ACTIVE p50. */
  activeVsFake: number;
  errors: { fake: number; qemu: number };
  /**
   * Where the time goes, p50 per boot, ms: each workflow step (activity scheduled → closed, from the
   * histories' server timestamps) for both drivers side by side, then the qemu host's own steps inside
   * them (wall clock in the compute host). The step's `fake`/`qemu` is null where that driver has none.
   */
  breakdown: Array<{ step: string; fake: number | null; qemu: number | null }>;
  /** The cloud's leak audit after the last delete (must be 0). */
  leaks: number;
  goals: Goal[];
}

const ZONES = { fake: 'bench-fake-az', qemu: 'bench-qemu-az' } as const;
type Driver = keyof typeof ZONES;

function hostSpec(driver: Driver): HostSpec {
  return {
    host: `bench-${driver}`,
    availabilityZone: ZONES[driver],
    vcpus: 8,
    memoryMb: 16_384,
    diskGb: 100,
    cpuArch: 'x86_64',
    hypervisorType: 'QEMU',
  };
}

/** utime + stime of a process, in seconds (Linux /proc; USER_HZ 100). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Resolves when `address` first answers ping from the namespace (busybox ping every 0.2 s). */
function firstEchoReply(namespace: string, address: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const ping = spawn(
      'ip',
      ['netns', 'exec', namespace, 'busybox', 'ping', '-i', '0.2', '-w', String(timeoutMs / 1000), address],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let answered = false;
    let stderr = '';
    ping.stdout.on('data', (chunk: Buffer) => {
      if (!answered && chunk.toString().includes('bytes from')) {
        answered = true;
        ping.kill('SIGKILL');
        resolve();
      }
    });
    ping.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    ping.on('exit', () => {
      if (!answered) reject(new Error(`${address} did not answer ping in ${timeoutMs} ms ${stderr}`.trim()));
    });
  });
}

/**
 * Per-step p50s: the workflow's steps of both drivers (host names generalized, so the same step lines up),
 * then the qemu host's own steps. Both drivers run the same command sequence, so the rows differ in time only.
 */
async function stepBreakdown(
  temporal: TemporalTarget,
  workflowIds: Record<Driver, string[]>,
  hostSteps: ReadonlyArray<Record<string, number>>,
): Promise<GuestBenchResult['breakdown']> {
  const p50s = async (ids: string[]) => {
    const histories = [];
    for (const id of ids) histories.push(await temporal.client.workflow.getHandle(id).fetchHistory());
    const byStep = new Map<string, number>();
    for (const step of analyzeHistories(histories).steps)
      byStep.set(step.step.replace(/bench-(fake|qemu)/g, '<host>'), step.total.p50 * step.perBoot);
    return byStep;
  };
  const fake = await p50s(workflowIds.fake);
  const qemu = await p50s(workflowIds.qemu);
  const rows: GuestBenchResult['breakdown'] = [...new Set([...fake.keys(), ...qemu.keys()])].map((step) => ({
    step,
    fake: nullable(fake.get(step)),
    qemu: nullable(qemu.get(step)),
  }));
  const hostStepNames = [...new Set(hostSteps.flatMap((s) => Object.keys(s)))];
  for (const step of hostStepNames)
    rows.push({
      step: `  qemu host: ${step}`,
      fake: null,
      qemu: rounded(summarize(hostSteps.map((s) => s[step] ?? 0)), 0).p50,
    });
  return rows;
}

function nullable(ms: number | undefined): number | null {
  return ms === undefined ? null : Math.round(ms);
}

export async function runGuestBench(
  temporal: TemporalTarget,
  options: GuestBenchOptions,
): Promise<GuestBenchResult> {
  const missing = await missingGuestTools();
  if (process.getuid?.() !== 0) missing.push('root (taps, bridges, namespaces)');
  if (missing.length > 0)
    throw new Error(`the guests benchmark needs ${missing.join(', ')}; install: ${INSTALL_COMMAND}`);
  const image = await ensureGuestImage();
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'bootflow-bench-guests-'));
  const hosts: ComputeHost[] = [];
  let heartbeat: NodeJS.Timeout | undefined;
  const cloud = await openCloud({ db: { dataDir } });
  try {
    const specs = [hostSpec('fake'), hostSpec('qemu')];
    const seed = await bootstrapCloud(cloud, { hosts: specs, guestImage: image });
    if (!seed.guestImageId) throw new Error('the bootstrap registered no guest image');
    await cloud.nova.setQuotaLimits(seed.demo.projectId, { instances: -1, cores: -1, ram: -1 });
    hosts.push(
      await openComputeHost({ dataDir, host: 'bench-fake', capabilities: capabilitiesOf(specs[0]!) }),
      await openComputeHost({
        dataDir,
        host: 'bench-qemu',
        capabilities: capabilitiesOf(specs[1]!),
        driver: 'qemu',
        networkAgent: 'linux-bridge',
      }),
    );
    heartbeat = setInterval(() => {
      for (const spec of specs) void cloud.nova.heartbeat(spec.host).catch(() => undefined);
    }, 10_000);
    const { token } = await cloud.keystone.authenticate({
      username: seed.demo.username,
      password: seed.demo.password,
      projectName: seed.demo.projectName,
    });
    const workers = await startWorkers(temporal, { cloud, computeHosts: hosts });
    const run = Date.now().toString(36);
    let seq = 0;
    const namespace = dhcpNamespace(seed.privateNetworkId);
    /** What a client hands each workflow: Keystone's operation grant for that one workflow. */
    const grantFor = async (workflowType: string, workflowId: string) => ({
      grant: (await cloud.keystone.issueGrant(token, { workflowType, workflowId })).grant,
    });

    /** One boot on `driver`'s host, measured, then deleted. */
    const bootOnce = async (
      driver: Driver,
    ): Promise<{
      activeMs: number;
      workflowId: string;
      hostSteps: Record<string, number>;
      pingMs?: number;
      cpuSeconds?: number;
    }> => {
      const requestId = `guests-${run}-${driver}-${seq++}`;
      const request: BootRequest = {
        requestId,
        auth: await grantFor('createInstance', bootWorkflowId(requestId)),
        name: `bench-${driver}-${seq}`,
        flavor: 'm1.tiny',
        image: seed.guestImageId as string,
        networks: [seed.privateNetworkId],
        availabilityZone: ZONES[driver],
      };
      recordHostSteps();
      const started = performance.now();
      const result: BootResult = await temporal.client.workflow.execute('createInstance', {
        taskQueue: CONTROLLER_QUEUE,
        workflowId: bootWorkflowId(requestId),
        args: [request],
        workflowExecutionTimeout: '10 minutes',
      });
      const activeMs = performance.now() - started;
      const hostSteps = takeHostSteps();
      const workflowId = bootWorkflowId(requestId);
      const measure = async () => {
        if (result.host !== `bench-${driver}`)
          throw new Error(`booted on ${result.host}, not bench-${driver}`);
        if (driver === 'fake') return { activeMs, workflowId, hostSteps };
        const address = result.addresses[Object.keys(result.addresses)[0] ?? '']?.[0]?.addr;
        if (!address) throw new Error(`no address: ${JSON.stringify(result.addresses)}`);
        await firstEchoReply(namespace, address, 120_000);
        const pingMs = performance.now() - started;
        const pid = (await listQemuProcesses()).find((p) => p.uuid === result.id)?.pid;
        if (pid === undefined) throw new Error(`no QEMU process for ${result.id}`);
        return { activeMs, workflowId, hostSteps, pingMs, cpuSeconds: cpuSeconds(pid) };
      };
      // Deleted whatever the measurement did, before the next boot.
      const measured = await measure().then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      );
      const deleted: DeleteResult = await temporal.client.workflow.execute('deleteInstance', {
        taskQueue: CONTROLLER_QUEUE,
        workflowId: deleteWorkflowId(result.id),
        args: [
          {
            requestId: `${requestId}-delete`,
            auth: await grantFor('deleteInstance', deleteWorkflowId(result.id)),
            instanceUuid: result.id,
          },
        ],
      });
      if ('error' in measured) throw measured.error;
      if (deleted.outcome !== 'deleted') throw new Error(`delete of ${result.id}: ${deleted.outcome}`);
      return measured.value;
    };

    const samples = {
      fakeActive: [] as number[],
      qemuActive: [] as number[],
      ping: [] as number[],
      cpu: [] as number[],
      workflowIds: { fake: [] as string[], qemu: [] as string[] },
      hostSteps: [] as Array<Record<string, number>>,
    };
    const errors = { fake: 0, qemu: 0 };
    try {
      for (let i = 0; i < options.warmup; i++)
        for (const driver of ['fake', 'qemu'] as const) await bootOnce(driver);
      for (let i = 0; i < options.boots; i++) {
        for (const driver of ['fake', 'qemu'] as const) {
          try {
            const measured = await bootOnce(driver);
            samples.workflowIds[driver].push(measured.workflowId);
            if (driver === 'fake') samples.fakeActive.push(measured.activeMs);
            else {
              samples.qemuActive.push(measured.activeMs);
              samples.hostSteps.push(measured.hostSteps);
              if (measured.pingMs !== undefined && measured.cpuSeconds !== undefined) {
                samples.ping.push(measured.pingMs);
                samples.cpu.push(measured.cpuSeconds);
              }
            }
          } catch (err) {
            errors[driver] += 1;
            options.log(`guests: ${driver} boot failed: ${(err as Error).message}`);
          }
        }
        options.log(`guests: ${i + 1}/${options.boots} pairs`);
      }
    } finally {
      await workers.stop();
    }
    const breakdown = await stepBreakdown(temporal, samples.workflowIds, samples.hostSteps);
    const leaks = (await auditLeaks(cloud)).length;
    const fakeActive = rounded(summarize(samples.fakeActive), 0);
    const qemuActive = rounded(summarize(samples.qemuActive), 0);
    const qemuFirstPing = rounded(summarize(samples.ping), 0);
    const qemuCpuSecondsToPing = rounded(summarize(samples.cpu), 2);
    const activeVsFake = ratio(qemuActive.p50, fakeActive.p50);
    return {
      boots: options.boots,
      fakeActive,
      qemuActive,
      qemuFirstPing,
      qemuCpuSecondsToPing,
      activeVsFake,
      errors,
      breakdown,
      leaks,
      goals: [
        {
          goal: 'real guest: boot to ACTIVE vs the fake driver (same run)',
          target: '≤ 1.5× p50',
          measured: `${activeVsFake}× (${qemuActive.p50} vs ${fakeActive.p50} ms)`,
          met: samples.qemuActive.length > 0 ? activeVsFake <= 1.5 : null,
        },
        {
          goal: 'real guest: boot to first ping (software emulation)',
          target: '≤ 8 s p50',
          measured: `${(qemuFirstPing.p50 / 1000).toFixed(1)} s (p95 ${(qemuFirstPing.p95 / 1000).toFixed(1)} s)`,
          met: samples.ping.length > 0 ? qemuFirstPing.p50 <= 8_000 : null,
        },
        {
          goal: 'real guests: nothing left behind',
          target: '0 leak findings, 0 errors',
          measured: `${leaks} findings, ${errors.fake + errors.qemu} errors`,
          met: leaks === 0 && errors.fake + errors.qemu === 0,
        },
      ],
    };
  } finally {
    if (heartbeat) clearInterval(heartbeat);
    for (const host of hosts) await host.close();
    await cloud.close();
    await removeCloudFromMachine(dataDir).catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
  }
}
