/**
 * Boot benchmarks against a real Temporal server:
 *  - latency: boots one after the other of createInstance, its variant without parallel sections
 *    (createInstanceSequential), the skeleton (same shape, no-op activities: the floor) and the skeleton
 *    without parallel sections, interleaved one by one so all four see the same machine; time per step
 *    from the histories;
 *  - throughput: C boots started at once over three hosts (fresh cloud per level), for ours and the
 *    skeleton: boots/s, latency, errors, worker CPU, peak RSS, event-loop delay, server CPU;
 *  - compensation: every spawn fails; time from the failed spawn to the workflow's close with everything
 *    released, checked by the cloud's leak audit.
 */
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { ApplicationFailure, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { auditLeaks } from '../../cloud/audit';
import { bootWorkflowId, CONTROLLER_QUEUE } from '../../workflows/names';
import type { SkeletonBootInput } from '../../workflows/skeleton';
import { BENCH_HOSTS, openBootCloud, startWorkers, type BootCloud, type TemporalTarget } from './boot-env';
import { analyzeHistories, failureToClose, type HistoryAnalysis } from './histories';
import type { Goal } from './results';
import { overCapacity } from './scheduler';
import { ratio, rounded, summarize, type Summary } from './stats';

export interface BootBenchOptions {
  sequentialBoots: number;
  warmup: number;
  concurrency: number[];
  /** At least this many boots per throughput level (small levels run several rounds). */
  minBootsPerLevel: number;
  compensation: number[];
  log(line: string): void;
  /** Called after each phase with what is measured so far (the caller saves it). */
  progress?(partial: BootBenchResult): void;
}

export interface LatencyResult {
  boots: number;
  /** Client-side: start request → result, ms. */
  ours: Summary;
  /** createInstanceSequential: the same boot with its parallel sections one after the other. */
  oursSequential: Summary;
  skeleton: Summary;
  skeletonSequential: Summary;
  /** p50 ratios. */
  oursVsSkeleton: number;
  /** ours sequential / ours: what our parallel sections save. */
  sequentialVsOurs: number;
  /** skeleton sequential / skeleton: what the parallel sections save with no-op activities. */
  skeletonSequentialVsParallel: number;
  errors: Record<LatencyRun, number>;
  steps: Record<LatencyRun, HistoryAnalysis>;
  /** One password login (scrypt) — the boots use a token, as a client session does. */
  passwordLogin: Summary;
}

/** The four boots of each latency round, in the order they run. */
const LATENCY_RUNS = ['ours', 'oursSequential', 'skeleton', 'skeletonSequential'] as const;
type LatencyRun = (typeof LATENCY_RUNS)[number];

export interface ThroughputRow {
  workflow: 'ours' | 'skeleton';
  concurrency: number;
  boots: number;
  seconds: number;
  bootsPerSecond: number;
  latency: Summary;
  errors: number;
  errorTypes: Record<string, number>;
  /** CPU of this process (workers, embedded cloud, client) over the wall time, in cores. */
  workerCpuCores: number;
  workerCpuMsPerBoot: number;
  /** CPU of the dev server process, in cores (null with TEMPORAL_ADDRESS). */
  serverCpuCores: number | null;
  peakRssMb: number;
  eventLoopDelayP99Ms: number;
  /** Ours only: placement audit mismatches + inventories over capacity after the level. */
  overcommit: number | null;
}

export interface CompensationRow {
  boots: number;
  seconds: number;
  /** Failed with the injected BuildAbortException, as expected. */
  failedAsExpected: number;
  unexpected: number;
  /** Failed spawn → workflow closed with every undo done (server timestamps), ms. */
  release: Summary;
  /** Whole boot, start request → failure seen by the client, ms. */
  boot: Summary;
  /** Findings of the cloud's leak audit afterwards (must be 0). */
  leaks: number;
  leakKinds: Record<string, number>;
}

export interface BootBenchResult {
  /** The latency phase's server (every phase gets a fresh dev server when the bench runs its own). */
  temporalAddress: string;
  devServer: boolean;
  auth: string;
  hosts: Array<{ host: string; vcpus: number; memoryMb: number; diskGb: number }>;
  latency: LatencyResult;
  throughput: ThroughputRow[];
  compensation: CompensationRow[];
  goals: Goal[];
}

interface Outcome {
  ms: number;
  ok: boolean;
  errorType?: string;
  workflowId: string;
}

function errorType(err: unknown): string {
  if (err instanceof WorkflowFailedError && err.cause instanceof ApplicationFailure)
    return err.cause.type ?? 'ApplicationFailure';
  if (err instanceof WorkflowFailedError) return err.cause?.name ?? 'WorkflowFailed';
  return err instanceof Error ? err.name : 'unknown';
}

let runSeq = 0;
const runId = Date.now().toString(36);

async function runWorkflow(
  temporal: TemporalTarget,
  workflowType: 'createInstance' | 'createInstanceSequential' | 'skeletonBoot',
  workflowId: string,
  args: unknown[],
): Promise<Outcome> {
  const start = performance.now();
  let handle: WorkflowHandle | undefined;
  try {
    handle = await temporal.client.workflow.start(workflowType, {
      taskQueue: CONTROLLER_QUEUE,
      workflowId,
      args,
      workflowExecutionTimeout: '1 hour',
      ...(temporal.eagerStart ? { requestEagerStart: true } : {}),
    });
    await handle.result();
    return { ms: performance.now() - start, ok: true, workflowId };
  } catch (err) {
    return { ms: performance.now() - start, ok: false, errorType: errorType(err), workflowId };
  }
}

async function ours(
  temporal: TemporalTarget,
  bc: BootCloud,
  label: string,
  sequential = false,
): Promise<Outcome> {
  const requestId = `${runId}-${label}-${runSeq++}`;
  const workflowType = sequential ? 'createInstanceSequential' : 'createInstance';
  const request = await bc.request(requestId, {}, workflowType);
  return runWorkflow(temporal, workflowType, bootWorkflowId(requestId), [request]);
}

function skeleton(temporal: TemporalTarget, label: string, sequential: boolean): Promise<Outcome> {
  const n = runSeq++;
  const input: SkeletonBootInput = { host: BENCH_HOSTS[n % BENCH_HOSTS.length]!.host, sequential };
  return runWorkflow(temporal, 'skeletonBoot', `skeleton-${runId}-${label}-${n}`, [input]);
}

async function histories(temporal: TemporalTarget, ids: readonly string[]) {
  const out = [];
  for (const id of ids) out.push(await temporal.client.workflow.getHandle(id).fetchHistory());
  return out;
}

export type OpenTemporal = () => Promise<TemporalTarget>;

/**
 * A fresh Temporal (a new dev server when the bench runs its own: nothing left from an earlier phase in
 * its database or its queues) and a fresh cloud with its workers, for one phase.
 */
async function withCloud<T>(
  open: OpenTemporal,
  label: string,
  work: (temporal: TemporalTarget, bc: BootCloud) => Promise<T>,
): Promise<T> {
  const temporal = await open();
  try {
    const bc = await openBootCloud(label);
    try {
      const workers = await startWorkers(temporal, bc);
      try {
        return await work(temporal, bc);
      } finally {
        await workers.stop();
      }
    } finally {
      await bc.close();
    }
  } finally {
    await temporal.close();
  }
}

async function latency(
  open: OpenTemporal,
  options: BootBenchOptions,
): Promise<LatencyResult & { address: string; devServer: boolean }> {
  return withCloud(open, 'latency', async (temporal, bc) => {
    const boot: Record<LatencyRun, (label: string) => Promise<Outcome>> = {
      ours: (label) => ours(temporal, bc, label),
      oursSequential: (label) => ours(temporal, bc, label, true),
      skeleton: (label) => skeleton(temporal, label, false),
      skeletonSequential: (label) => skeleton(temporal, label, true),
    };
    for (let i = 0; i < options.warmup; i++) for (const run of LATENCY_RUNS) await boot[run]('warm');
    const runs: Record<LatencyRun, Outcome[]> = {
      ours: [],
      oursSequential: [],
      skeleton: [],
      skeletonSequential: [],
    };
    for (let i = 0; i < options.sequentialBoots; i++) {
      for (const run of LATENCY_RUNS) runs[run].push(await boot[run]('seq'));
      if ((i + 1) % 50 === 0) options.log(`boot: latency ${i + 1}/${options.sequentialBoots}`);
    }
    const logins: number[] = [];
    for (let i = 0; i < 5; i++) {
      const start = performance.now();
      await bc.passwordLogin();
      logins.push(performance.now() - start);
    }
    const ok = (o: Outcome[]) => o.filter((x) => x.ok);
    const summary = {} as Record<LatencyRun, Summary>;
    const errors = {} as Record<LatencyRun, number>;
    const steps = {} as Record<LatencyRun, HistoryAnalysis>;
    for (const run of LATENCY_RUNS) {
      const done = ok(runs[run]);
      summary[run] = rounded(summarize(done.map((x) => x.ms)), 1);
      errors[run] = runs[run].length - done.length;
      steps[run] = analyzeHistories(
        await histories(
          temporal,
          done.map((x) => x.workflowId),
        ),
      );
    }
    return {
      address: temporal.address,
      devServer: temporal.server !== null,
      boots: options.sequentialBoots,
      ours: summary.ours,
      oursSequential: summary.oursSequential,
      skeleton: summary.skeleton,
      skeletonSequential: summary.skeletonSequential,
      oursVsSkeleton: ratio(summary.ours.p50, summary.skeleton.p50),
      sequentialVsOurs: ratio(summary.oursSequential.p50, summary.ours.p50),
      skeletonSequentialVsParallel: ratio(summary.skeletonSequential.p50, summary.skeleton.p50),
      errors,
      steps,
      passwordLogin: rounded(summarize(logins), 1),
    };
  });
}

/** utime + stime of a process, in ms (Linux /proc). */
function processCpuMs(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
  } catch {
    return null;
  }
}

async function measureLevel(
  temporal: TemporalTarget,
  workflow: ThroughputRow['workflow'],
  concurrency: number,
  rounds: number,
  start: () => Promise<Outcome>,
): Promise<Omit<ThroughputRow, 'overcommit'>> {
  const loop = monitorEventLoopDelay({ resolution: 10 });
  let peakRss = process.memoryUsage.rss();
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 50);
  const serverPid = temporal.server?.process.pid;
  const serverBefore = processCpuMs(serverPid);
  const cpu = process.cpuUsage();
  loop.enable();
  const began = performance.now();
  const outcomes: Outcome[] = [];
  for (let r = 0; r < rounds; r++) {
    outcomes.push(...(await Promise.all(Array.from({ length: concurrency }, () => start()))));
  }
  const wallMs = performance.now() - began;
  loop.disable();
  clearInterval(sampler);
  const used = process.cpuUsage(cpu);
  const serverAfter = processCpuMs(serverPid);
  const cpuMs = (used.user + used.system) / 1000;
  const errorTypes: Record<string, number> = {};
  for (const o of outcomes)
    if (!o.ok) errorTypes[o.errorType ?? '?'] = (errorTypes[o.errorType ?? '?'] ?? 0) + 1;
  return {
    workflow,
    concurrency,
    boots: outcomes.length,
    seconds: Math.round(wallMs / 10) / 100,
    bootsPerSecond: ratio(outcomes.length, wallMs / 1000, 1),
    latency: rounded(summarize(outcomes.filter((o) => o.ok).map((o) => o.ms)), 1),
    errors: outcomes.filter((o) => !o.ok).length,
    errorTypes,
    workerCpuCores: ratio(cpuMs, wallMs),
    workerCpuMsPerBoot: Math.round(cpuMs / outcomes.length),
    serverCpuCores:
      serverBefore === null || serverAfter === null ? null : ratio(serverAfter - serverBefore, wallMs),
    peakRssMb: Math.round(peakRss / 2 ** 20),
    eventLoopDelayP99Ms: Math.round(loop.percentile(99) / 1e4) / 100,
  };
}

/** Each level, ours then the skeleton, each on its own fresh Temporal and cloud. */
async function throughput(
  open: OpenTemporal,
  options: BootBenchOptions,
  add: (row: ThroughputRow) => void,
): Promise<void> {
  for (const c of options.concurrency) {
    const rounds = Math.max(1, Math.ceil(options.minBootsPerLevel / c));
    const o = await withCloud(open, `c${c}`, async (temporal, bc) => {
      await ours(temporal, bc, 'warm'); // the workers' first workflow task sets the bundle's context up
      const row = await measureLevel(temporal, 'ours', c, rounds, () => ours(temporal, bc, `c${c}`));
      const audit = await bc.cloud.placement.auditUsage();
      return { ...row, overcommit: audit.length + (await overCapacity(bc.cloud.placement)) };
    });
    add(o);
    const sk = await withCloud(open, `c${c}-skeleton`, async (temporal) => {
      await skeleton(temporal, 'warm', false);
      const row = await measureLevel(temporal, 'skeleton', c, rounds, () =>
        skeleton(temporal, `c${c}`, false),
      );
      return { ...row, overcommit: null };
    });
    add(sk);
    options.log(
      `boot: ${c} at once: ours ${o.bootsPerSecond}/s p50 ${o.latency.p50} ms (${o.errors} errors), ` +
        `skeleton ${sk.bootsPerSecond}/s p50 ${sk.latency.p50} ms`,
    );
  }
}

async function compensation(open: OpenTemporal, options: BootBenchOptions): Promise<CompensationRow[]> {
  return withCloud(open, 'compensation', async (temporal, bc) => {
    for (const host of bc.computeHosts) {
      await host.setFault('spawn', {
        mode: 'fail',
        errorType: 'BuildAbortException',
        message: 'bench: spawn fails',
      });
    }
    const rows: CompensationRow[] = [];
    for (const n of options.compensation) {
      const began = performance.now();
      const outcomes = await Promise.all(Array.from({ length: n }, () => ours(temporal, bc, `fail${n}`)));
      const seconds = (performance.now() - began) / 1000;
      const expected = outcomes.filter((o) => !o.ok && o.errorType === 'BuildAbortException');
      const release: number[] = [];
      for (const h of await histories(
        temporal,
        expected.map((o) => o.workflowId),
      )) {
        const ms = failureToClose(h, 'spawn');
        if (ms !== null) release.push(ms);
      }
      const leaks = await auditLeaks(bc.cloud, { hosts: bc.computeHosts });
      const leakKinds: Record<string, number> = {};
      for (const l of leaks) leakKinds[l.kind] = (leakKinds[l.kind] ?? 0) + 1;
      rows.push({
        boots: n,
        seconds: Math.round(seconds * 100) / 100,
        failedAsExpected: expected.length,
        unexpected: n - expected.length,
        release: rounded(summarize(release), 1),
        boot: rounded(summarize(outcomes.map((o) => o.ms)), 1),
        leaks: leaks.length,
        leakKinds,
      });
      options.log(
        `boot: compensation of ${n}: release p50 ${rows.at(-1)?.release.p50} ms, ${leaks.length} leaks`,
      );
    }
    return rows;
  });
}

function bootGoals(r: Omit<BootBenchResult, 'goals'>): Goal[] {
  const l = r.latency;
  const goals: Goal[] = [
    {
      goal: 'our boot vs the skeleton (p50, sequential boots)',
      target: '≤ 1.5×',
      measured: `${l.oursVsSkeleton}× (${l.ours.p50} ms vs ${l.skeleton.p50} ms)`,
      met: l.oursVsSkeleton <= 1.5,
    },
    {
      // Judged on our boot; the skeleton's ratio (no-op activities) is the context.
      goal: 'parallel branches measurably faster than sequential (ours)',
      target: 'sequential p25 > parallel p75',
      measured:
        `${l.sequentialVsOurs}× (p50 ${l.oursSequential.p50} vs ${l.ours.p50} ms, ` +
        `p25 ${l.oursSequential.p25} vs p75 ${l.ours.p75} ms); skeleton ${l.skeletonSequentialVsParallel}× ` +
        `(p50 ${l.skeletonSequential.p50} vs ${l.skeleton.p50} ms)`,
      met: l.oursSequential.p25 > l.ours.p75,
    },
  ];
  const top = r.throughput.find((t) => t.workflow === 'ours' && t.concurrency === 1000);
  goals.push({
    goal: '1,000 concurrent boots: no errors, no over-commit',
    target: '0 errors, 0 over-commit',
    measured: top
      ? `${top.errors} errors, ${top.overcommit} over-commit, ${top.bootsPerSecond} boots/s`
      : 'not run',
    met: top ? top.errors === 0 && top.overcommit === 0 : null,
  });
  for (const c of r.compensation) {
    goals.push({
      goal: `compensation of ${c.boots} failing boot(s) releases everything`,
      target: '0 leaks',
      measured: `${c.leaks} leaks, ${c.unexpected} unexpected outcomes, release p50 ${c.release.p50} ms`,
      met: c.leaks === 0 && c.unexpected === 0,
    });
  }
  return goals;
}

export async function runBootBench(open: OpenTemporal, options: BootBenchOptions): Promise<BootBenchResult> {
  const { address, devServer, ...latencyResult } = await latency(open, options);
  options.log(
    `boot: latency p50 ours ${latencyResult.ours.p50} ms, sequential ${latencyResult.oursSequential.p50} ms, ` +
      `skeleton ${latencyResult.skeleton.p50} ms, sequential skeleton ${latencyResult.skeletonSequential.p50} ms`,
  );
  const result: Omit<BootBenchResult, 'goals'> = {
    temporalAddress: address,
    devServer,
    auth: 'a Keystone token from one password login (a client session); the workflow validates it',
    hosts: BENCH_HOSTS.map(({ host, vcpus, memoryMb, diskGb }) => ({ host, vcpus, memoryMb, diskGb })),
    latency: latencyResult,
    throughput: [],
    compensation: [],
  };
  const report = () => options.progress?.({ ...result, goals: bootGoals(result) });
  report();
  await throughput(open, options, (row) => {
    result.throughput.push(row);
    report();
  });
  result.compensation = await compensation(open, options);
  return { ...result, goals: bootGoals(result) };
}
