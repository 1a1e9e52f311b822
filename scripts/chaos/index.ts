/**
 * `npm run chaos`: a bounded, seeded fault-injection run against the real deployment, and its verdict.
 *
 *   tsx scripts/chaos/index.ts [--seed N] [--boots N] [--short | --guests] [--concurrency N] [--live N]
 *                              [--minutes M] [--data-dir DIR] [--keep] [--json FILE]
 *
 * A Temporal dev server persisted to one SQLite file (free loopback port), the controller, network and three
 * compute workers as separate worker.ts processes, a few hundred boots (from image, from volume, and ones
 * that must fail: over quota, missing or corrupt image, full subnet), deletes of finished servers; and,
 * at seeded points of the submission: kill -9 of the controller, of the network worker and of a compute
 * worker (each restarted after a pause), one compute host lost for good, one restart of the dev server,
 * faults in the services (failing and slow spawns, failing downloads, a damaged cached image, slow and
 * failing volume creation, a database held busy). Then, with every workflow ended (bounded wait), the
 * verification of scripts/chaos/verify.ts, a summary table, and exit code 1 on any violation.
 * `--short` is the CI preset (30 boots, a few kills: about two minutes; bounded at six on a loaded machine).
 * `--guests` is the real-guest preset: the compute workers run the qemu driver and the linux-bridge agent
 * (root and the real guests' Debian packages; missing ones fail the run naming them), the ordinary boots
 * are of the bootflow guest image, from image only (8 boots, one at a time and one kept ACTIVE: at most two
 * guests at once), with the short run's kills and faults and the same verification; every QEMU process and
 * device the run made is removed from the machine at the end, whatever the verdict.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { Command } from 'commander';
import { openRecordedHosts } from '../../cloud/audit';
import { hostDirOf, openCloud } from '../../cloud/index';
import { removeCloudFromMachine } from '../../cloud/compute/machine-cleanup';
import { freePort } from '../../lib/dev-server';
import { ensureGuestImage, INSTALL_COMMAND, missingGuestTools } from '../../lib/guest-image';
import { bootflowDataConverter, loadKeyringOrExplain } from '../../lib/command-line/temporal';
import { waitForComputeHosts } from '../../lib/command-line/compute-services';
import { pollUntil } from '../../lib/poll';
import {
  clearAllFaults,
  cinderFaultFor,
  corruptCachedImage,
  holdDatabaseLock,
  resetPoints,
  resetWorkflow,
  setComputeFault,
} from './faults';
import { DayTwo, dayTwoTable, verifyDayTwo, type DayTwoVerdict } from './day-two';
import { readBootHistory, type BootHistory } from './histories';
import { Rng } from './rng';
import { COMPUTE_HOSTS, makePlan, type ChaosEvent, type ChaosEventType } from './plan';
import { Cluster, type WorkerName } from './processes';
import { outcomeTable, summaryTable, type RunFacts } from './report';
import { prepareChaosCloud, type ChaosFixtures } from './setup';
import { Driver, type TrackedRequest } from './submit';
import { verify } from './verify';

export interface ChaosOptions {
  seed: number;
  boots: number;
  short: boolean;
  /** The real-guest preset. */
  guests: boolean;
  concurrency: number;
  liveCap: number;
  /** Bound on submitting and draining (the set-up and the verification come on top). */
  minutes: number;
  dataDir?: string;
  keep: boolean;
  json?: string;
}

function parseOptions(argv: string[]): ChaosOptions {
  const opts = new Command('chaos')
    .description('seeded, bounded chaos run against a real dev server and worker processes')
    .option('--seed <n>', 'seed of the plan (default: random, printed)')
    .option('--boots <n>', 'boots to submit (default 240; 30 with --short)')
    .option('--short', 'the CI preset: 30 boots, fewer kills, about two minutes')
    .option(
      '--guests',
      'real-guest preset: qemu driver + linux-bridge agent (root), 8 boots of the guest image one at a time, the short kills',
    )
    .option('--concurrency <n>', 'boots running at once')
    .option('--live <n>', 'ACTIVE servers kept at most (finished ones beyond it are deleted)')
    .option('--minutes <m>', 'bound on submission and drain (default 10; 6 with --short)')
    .option('--data-dir <dir>', 'where the run keeps its data (default: a new temporary directory)')
    .option('--keep', 'keep the data directory (it is kept anyway when the run fails)')
    .option('--json <file>', 'write the verdicts and facts as JSON')
    .parse(argv)
    .opts<Record<string, string | boolean | undefined>>();
  const num = (v: unknown, fallback: number) => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`not a positive number: ${String(v)}`);
    return n;
  };
  const guests = opts.guests === true;
  // The real-guest preset plans like the short run: its kills and faults, scaled to its few boots.
  const short = opts.short === true || guests;
  return {
    seed: Math.floor(num(opts.seed, Math.floor(Math.random() * 1_000_000))),
    boots: Math.floor(num(opts.boots, guests ? 8 : short ? 30 : 240)),
    short,
    guests,
    concurrency: Math.floor(num(opts.concurrency, guests ? 1 : short ? 15 : 20)),
    liveCap: Math.floor(num(opts.live, guests ? 1 : short ? 12 : 24)),
    minutes: num(opts.minutes, guests ? 10 : short ? 6 : 10),
    ...(typeof opts.dataDir === 'string' ? { dataDir: path.resolve(opts.dataDir) } : {}),
    keep: opts.keep === true,
    ...(typeof opts.json === 'string' ? { json: path.resolve(opts.json) } : {}),
  };
}

/** The reconciler's grace (a minute untouched), its interval (a minute), its run (a dead host: 30 s). */
const RECONCILER_WAIT_MS = 200_000;

const started = Date.now();
function log(line: string): void {
  const s = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  process.stdout.write(`[${s}s] ${line}\n`);
}

interface EventContext {
  cluster: Cluster;
  fixtures: ChaosFixtures;
  client: Client;
  driver: Driver;
}

/** The running boots in the order a seeded shuffle gives them. */
function shuffled<T>(items: T[], rng: Rng): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** How long a reset or terminate waits for boots working on a host (the kills may have stalled them all). */
const MID_FLIGHT_WAIT_MS = 60_000;

/**
 * Up to `count` running boots, in seeded order, that already work on a host (their instance exists and holds
 * resources), with their current run's id; `act` is tried on each and says whether it took. Waits for such
 * boots up to MID_FLIGHT_WAIT_MS.
 */
async function onBootsMidFlight(
  ctx: EventContext,
  rng: Rng,
  count: number,
  eligible: (t: TrackedRequest) => boolean,
  act: (t: TrackedRequest, runId: string, history: BootHistory) => Promise<string | undefined>,
): Promise<string[]> {
  const done: string[] = [];
  const until = Date.now() + MID_FLIGHT_WAIT_MS;
  while (done.length < count && Date.now() < until) {
    for (const t of shuffled(ctx.driver.running().filter(eligible), rng)) {
      if (done.length >= count) break;
      const run = await ctx.client.workflow.getHandle(t.workflowId).describe();
      if (run.status.name !== 'RUNNING') continue;
      const history = await readBootHistory(ctx.client, t.workflowId, run.runId);
      if (history.hostsWorkedOn.length === 0) continue;
      const what = await act(t, run.runId, history);
      if (what) done.push(what);
    }
    if (done.length < count) await sleep(2_000);
  }
  return done;
}

/** Resets `count` boots mid-flight, each to one of its workflow-task-completed events (seeded). */
async function resetBoots(ctx: EventContext, count: number, rng: Rng): Promise<string | null> {
  const done = await onBootsMidFlight(
    ctx,
    rng,
    count,
    (t) => !t.terminated && !t.resets,
    async (t, runId) => {
      const points = await resetPoints(ctx.client, t.workflowId, runId);
      if (points.length === 0) return undefined;
      const eventId = rng.pick(points);
      t.resets = (t.resets ?? 0) + 1;
      await resetWorkflow(ctx.client, t.workflowId, runId, eventId);
      return `${t.workflowId} to event ${eventId} (of ${points.length} workflow tasks)`;
    },
  );
  if (done.length === 0) return 'reset (no boot was working on a host)';
  log(`chaos: workflow reset of ${done.join(', ')}`);
  return null;
}

/** Terminates one boot mid-flight: the reconciler is to finish its server. */
async function terminateBoot(ctx: EventContext, rng: Rng): Promise<string | null> {
  const done = await onBootsMidFlight(
    ctx,
    rng,
    1,
    (t) => !t.terminated && !t.resets,
    async (t, runId, history) => {
      t.terminated = true;
      try {
        // That run only: one that ended meanwhile is not terminated (NotFound), and another is tried.
        await ctx.client.workflow.getHandle(t.workflowId, runId).terminate('chaos: terminated mid-flight');
      } catch {
        t.terminated = false;
        return undefined;
      }
      return `${t.workflowId} (working on ${history.hostsWorkedOn.join(', ')})`;
    },
  );
  if (done.length === 0) return 'terminate (no boot was working on a host)';
  log(`chaos: workflow terminate of ${done.join(', ')}`);
  return null;
}

/**
 * Waits until the reconciler Schedule has finished every terminated boot's server (no longer building,
 * no task): a minute's grace after the last touch, then its next run, each a minute apart.
 */
async function waitForReconciler(
  dataDir: string,
  terminated: TrackedRequest[],
  until: number,
): Promise<void> {
  if (terminated.length === 0) return;
  const cloud = await openCloud({ db: { dataDir } });
  try {
    const pending = () => terminated.map((t) => t.planned.requestId);
    let left = pending();
    log(`waiting for the reconciler to finish ${left.length} terminated boot(s)`);
    await pollUntil(
      async () => {
        const instances = await cloud.nova.listInstances({ allProjects: true, includeDeleted: true });
        left = pending().filter((id) =>
          instances.some((i) => i.requestId === id && (i.vmState === 'building' || i.taskState !== null)),
        );
        return left.length === 0 ? true : undefined;
      },
      {
        timeoutMs: Math.max(0, until - Date.now()),
        intervalMs: 2_000,
        what: () => `the reconciler to finish ${left.join(', ')}`,
      },
    ).catch((err: unknown) => log(`! ${(err as Error).message}`));
    log('the reconciler finished every terminated boot');
  } finally {
    await cloud.close();
  }
}

/** Carries out one event; resolves when it is over (the killed worker back, the lock released). */
async function carryOut(event: ChaosEvent, ctx: EventContext): Promise<string | null> {
  const { cluster, fixtures } = ctx;
  const dataDir = fixtures.dataDir;
  switch (event.type) {
    case 'kill-controller':
    case 'kill-network': {
      const name: WorkerName = event.type === 'kill-controller' ? 'controller' : 'network';
      log(`chaos: kill -9 ${name}; back in ${event.pauseMs} ms`);
      await cluster.bounce(name, event.pauseMs);
      log(`chaos: ${name} is back`);
      return null;
    }
    case 'kill-compute':
      if (cluster.isLost(event.host)) return `kill ${event.host} (already lost)`;
      log(`chaos: kill -9 ${event.host}; back in ${event.pauseMs} ms`);
      await cluster.bounce(event.host, event.pauseMs);
      log(`chaos: ${event.host} is back`);
      return null;
    case 'lose-compute': {
      // Caught with builds on it: its spawns stall, and it dies once one is stuck there (or after 20 s).
      await setComputeFault(dataDir, event.host, 'spawn', { mode: 'slow', ms: 120_000 });
      const instances = path.join(hostDirOf(dataDir, event.host), 'instances');
      const before = new Set(await readdir(instances).catch(() => []));
      const until = Date.now() + 20_000;
      while (Date.now() < until && (await readdir(instances).catch(() => [])).every((d) => before.has(d))) {
        await sleep(250);
      }
      log(`chaos: kill -9 ${event.host} for good`);
      await cluster.lose(event.host);
      return null;
    }
    case 'restart-server':
      log(`chaos: restarting the Temporal dev server (same database file), ${event.pauseMs} ms down`);
      await cluster.restartServer(event.pauseMs);
      log('chaos: dev server is back');
      return null;
    case 'spawn-fail':
      log(`chaos: the next ${event.times} spawns on ${event.host} fail`);
      await setComputeFault(dataDir, event.host, 'spawn', { mode: 'fail', times: event.times });
      return null;
    case 'spawn-slow':
      log(`chaos: the next ${event.times} spawns on ${event.host} take ${event.ms} ms more`);
      await setComputeFault(dataDir, event.host, 'spawn', { mode: 'slow', ms: event.ms, times: event.times });
      return null;
    case 'fetch-fail':
      log(`chaos: the next ${event.times} image downloads on ${event.host} fail`);
      await setComputeFault(dataDir, event.host, 'fetchImage', { mode: 'fail', times: event.times });
      return null;
    case 'corrupt-cache': {
      // The planned host first; if it has not cached the image yet, the next host still alive that has.
      const candidates = [event.host, ...COMPUTE_HOSTS.filter((h) => h !== event.host && !cluster.isLost(h))];
      for (const host of candidates) {
        if (await corruptCachedImage(dataDir, host, fixtures.imageId, event.how)) {
          log(`chaos: cached image on ${host} damaged (${event.how})`);
          return null;
        }
      }
      return 'corrupt cache (no host had cached the image)';
    }
    case 'volume-slow':
      log(`chaos: volume creation takes ${event.delayMs} ms more for ${event.forMs} ms`);
      await cinderFaultFor(dataDir, { create: { mode: 'slow', delayMs: event.delayMs } }, event.forMs);
      log('chaos: volume creation back to normal');
      return null;
    case 'volume-fail':
      log(`chaos: volume creation fails for ${event.forMs} ms`);
      await cinderFaultFor(
        dataDir,
        { create: { mode: 'fail', message: 'Injected fault: backend I/O error' } },
        event.forMs,
      );
      log('chaos: volume creation back to normal');
      return null;
    case 'db-busy':
      log(`chaos: ${event.service} database held busy for ${event.holdMs} ms`);
      await holdDatabaseLock(dataDir, event.service, event.holdMs);
      log(`chaos: ${event.service} database released`);
      return null;
    case 'reset-boots':
      return resetBoots(ctx, event.count, new Rng(event.seed));
    case 'terminate-boot':
      return terminateBoot(ctx, new Rng(event.seed));
  }
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv);
  if (options.guests) {
    const missing = await missingGuestTools();
    if (process.getuid?.() !== 0) missing.push('root (taps, bridges, namespaces)');
    if (missing.length > 0)
      throw new Error(`the real-guest preset needs ${missing.join(', ')}; install: ${INSTALL_COMMAND}`);
  }
  const plan = makePlan({
    seed: options.seed,
    boots: options.boots,
    short: options.short,
    noVolumeBoots: options.guests,
  });
  const dataDir = options.dataDir ?? mkdtempSync(path.join(os.tmpdir(), `bootflow-chaos-${options.seed}-`));
  const logsDir = path.join(dataDir, 'logs');
  mkdirSync(logsDir, { recursive: true });
  log(
    `chaos: ${options.guests ? 'real guests (qemu, linux-bridge), ' : ''}seed ${options.seed}, ` +
      `${options.boots} boots, ${options.concurrency} at once, ` +
      `${plan.events.length} events, ${plan.lostHost} to be lost; data in ${dataDir}`,
  );

  const fixtures = await prepareChaosCloud(
    dataDir,
    options.guests ? { guestImage: await ensureGuestImage() } : {},
  );
  const cluster = new Cluster({
    dataDir,
    logsDir,
    port: await freePort(),
    heartbeatSeconds: 5,
    ...(options.guests
      ? { workerEnv: { BOOTFLOW_VIRT_DRIVER: 'qemu', BOOTFLOW_NETWORK_AGENT: 'linux-bridge' } }
      : {}),
    log,
  });
  let connection: Connection | undefined;
  let ok = false;
  // Ctrl-C (or a CI timeout's SIGTERM): take the dev server and the workers down with us.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: stopping the dev server and the workers; data kept in ${dataDir}`);
      void cluster.stopAll().finally(() => process.exit(130));
    });
  }
  try {
    await cluster.startServer();
    log(`dev server on ${cluster.address}; starting controller, network, ${COMPUTE_HOSTS.join(', ')}`);
    await Promise.all(
      (['controller', 'network', ...COMPUTE_HOSTS] as WorkerName[]).map((w) => cluster.startWorker(w)),
    );
    connection = await Connection.connect({ address: cluster.address });
    const client = new Client({
      connection,
      dataConverter: bootflowDataConverter(loadKeyringOrExplain(dataDir)),
    });
    await waitForComputeHosts(client, COMPUTE_HOSTS, 120_000);
    log('every compute host registered; submitting');

    const submitStart = Date.now();
    const deadline = submitStart + options.minutes * 60_000;
    // Boots are submitted in the first part of the bound (70 %; half of the short run's generous bound,
    // which only a loaded machine needs); the rest is for them to end.
    const window = options.minutes * 60_000 * (options.short ? 0.5 : 0.7);
    const submitUntil = submitStart + window;
    const driver = new Driver({
      client,
      connection,
      fixtures,
      submitUntil,
      concurrency: options.concurrency,
      liveCap: options.liveCap,
      deadline,
      log,
      // The short run cannot wait Nova's 30 s for a lost host's every build; the long run keeps the default.
      ...(options.short ? { hostPickupMs: 10_000 } : {}),
    });
    // Day two: power actions, volumes and the lost host's evacuation, on the servers as they come up.
    const dayTwoCloud = await openCloud({ db: { dataDir } });
    const dayTwo = new DayTwo({
      seed: options.seed,
      short: options.short,
      client,
      connection,
      cloud: dayTwoCloud,
      fixtures,
      tracked: () => driver.tracked,
      submitting: () => submitting,
      lostHost: plan.lostHost,
      isLost: () => cluster.isLost(plan.lostHost),
      ...(options.short ? { hostPickupMs: 10_000 } : {}),
      stopAt: submitUntil,
      deadline,
      log,
    });
    const ran: Partial<Record<ChaosEventType, number>> = {};
    const skipped: string[] = [];
    const running: Array<Promise<void>> = [];
    let next = 0;
    const ticker = setInterval(
      () => log(`progress: ${driver.tracked.length} submitted, ${driver.finished} ended`),
      15_000,
    );
    // Events in plan order, each once its submission count is reached and at least `gap` after the one
    // before (the first boots go out in one burst; their events should not all land in the same second).
    const gap = options.short ? 3_000 : 8_000;
    let submitted = 0;
    let lastFired = 0;
    let submitting = true;
    // Day two goes on after the last boot ends (and waits for the lost host to evacuate it): the events
    // go on with it, so that a run whose boots end early still loses its host and meets its faults.
    let dayTwoRunning = true;
    const scheduler = (async () => {
      while (
        next < plan.events.length &&
        Date.now() < deadline &&
        (submitting || driver.finished < driver.tracked.length || dayTwoRunning)
      ) {
        const due = plan.events[next]!;
        const reached =
          due.atBoot <= submitted || Date.now() - submitStart >= due.atFraction * window || !submitting;
        if (reached && Date.now() - lastFired >= gap) {
          next += 1;
          lastFired = Date.now();
          const { event } = due;
          running.push(
            carryOut(event, { cluster, fixtures, client, driver }).then(
              (skip) => {
                if (skip) skipped.push(skip);
                else ran[event.type] = (ran[event.type] ?? 0) + 1;
              },
              (err: unknown) => {
                skipped.push(`${event.type} (${(err as Error).message.split('\n')[0]})`);
                log(`! chaos event ${event.type} failed: ${(err as Error).message}`);
              },
            ),
          );
        }
        await sleep(250);
      }
    })();
    const dayTwoRun = dayTwo.run().finally(() => {
      dayTwoRunning = false;
    });
    await driver.run(plan.requests, (count) => {
      submitted = count;
    });
    submitting = false;
    await scheduler;
    await dayTwoRun.finally(() => dayTwoCloud.close());
    for (; next < plan.events.length; next++)
      skipped.push(`${plan.events[next]!.event.type} (the run ended first)`);
    clearInterval(ticker);
    driver.stop();
    const seconds = Math.round((Date.now() - submitStart) / 1000);
    log(
      `submission and drain done in ${seconds} s: ${driver.finished} of ${driver.tracked.length} boots ended`,
    );
    await Promise.race([Promise.allSettled(running), sleep(60_000)]);
    await clearAllFaults(dataDir, COMPUTE_HOSTS);
    // A terminated boot's outcome is the reconciler's to give; it gets past the bound if it needs it.
    await waitForReconciler(
      dataDir,
      driver.tracked.filter((t) => t.terminated),
      Math.max(deadline, Date.now() + RECONCILER_WAIT_MS),
    );

    const histories = new Map<string, BootHistory>();
    for (const t of driver.tracked) {
      if (!t.firstRunId) continue;
      const history = await readBootHistory(client, t.workflowId, t.firstRunId).catch(() => undefined);
      if (history) histories.set(t.planned.requestId, history);
    }
    log('stopping the workers (SIGTERM: drain, then exit)');
    const gracefulStop = await cluster.stopWorkers(60_000);

    const cloud = await openCloud({ db: { dataDir } });
    const hostList = await openRecordedHosts(dataDir);
    let dayTwoVerdict: DayTwoVerdict | undefined;
    const verification = await (async () => {
      try {
        const hosts = new Map(hostList.map((h) => [h.host, h]));
        const verdict = await verify({
          cloud,
          hosts,
          lostHost: plan.lostHost,
          fixtures,
          tracked: driver.tracked,
          histories,
          dayTwo: dayTwo.expectations(),
        });
        dayTwoVerdict = await verifyDayTwo(dayTwo, cloud, hosts);
        verdict.violations.push(...dayTwoVerdict.violations);
        return verdict;
      } finally {
        await cloud.close();
      }
    })();
    for (const w of gracefulStop) {
      if (w.code !== 0)
        verification.violations.push(
          `worker ${w.name} did not stop cleanly on SIGTERM (${w.code ?? w.signal})`,
        );
    }
    for (const crash of cluster.crashes) {
      verification.violations.push(
        `worker ${crash.name} exited by itself (${crash.code ?? crash.signal}): ${crash.log}`,
      );
    }

    const facts: RunFacts = {
      seed: options.seed,
      boots: driver.tracked.length,
      planned: plan.requests.length,
      windowSeconds: Math.round(window / 1000),
      seconds,
      lostHost: plan.lostHost,
      events: ran,
      skippedEvents: skipped,
      workerCrashes: cluster.crashes.length,
      startsRetried: cluster.unavailableStarts,
      resubmissions: {
        total: driver.tracked.filter((t) => t.resubmission).length,
        answeredAlreadyStarted: driver.tracked.filter((t) => t.resubmission === 'already-started').length,
      },
      deletes: {
        asked: driver.tracked.filter((t) => t.deletion).length,
        deleted: driver.tracked.filter((t) => t.deletion?.result?.outcome === 'deleted').length,
      },
      reschedules: verification.verdicts.reduce((n, v) => n + v.triedHosts.length, 0),
      compensations: [...histories.values()].reduce((n, h) => n + h.compensations, 0),
      gracefulStop,
    };
    process.stdout.write(`\n${outcomeTable(verification)}\n${summaryTable(facts, verification)}\n`);
    if (dayTwoVerdict) process.stdout.write(`${dayTwoTable(dayTwoVerdict)}\n`);
    if (verification.violations.length > 0) {
      process.stdout.write(`\nVIOLATIONS (${verification.violations.length}):\n`);
      for (const v of verification.violations.slice(0, 50)) process.stdout.write(`  - ${v}\n`);
    } else {
      process.stdout.write('\nno violations: every request has one outcome, nothing leaked\n');
    }
    if (options.json) {
      writeFileSync(
        options.json,
        `${JSON.stringify({ options, facts, verification, dayTwo: { verdict: dayTwoVerdict, requests: dayTwo.requests, evacuation: dayTwo.evacuation }, tracked: driver.tracked.map((t) => ({ ...t.planned, boot: t.boot, deletion: t.deletion, resubmission: t.resubmission })) }, null, 2)}\n`,
      );
    }
    ok = verification.violations.length === 0;
    return ok ? 0 : 1;
  } finally {
    await connection?.close().catch(() => undefined);
    await fixtures.close().catch(() => undefined);
    await cluster.stopAll().catch(() => undefined);
    // Real guests outlive their workers (the lost host's too): this run's QEMU, taps, bridges, dnsmasq go.
    if (options.guests) await removeCloudFromMachine(dataDir).catch(() => undefined);
    if (ok && !options.keep && !options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    else log(`data and logs kept in ${dataDir}`);
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(
      `chaos failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(2);
  },
);
