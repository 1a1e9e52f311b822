/** The stdout tables of a run: one per benchmark, then the goals. */
import Table from 'cli-table3';
import type { BenchResults } from './results';
import { ratio, type Summary } from './stats';

function table(head: string[]): Table.Table {
  return new Table({ head, style: { head: [], border: [] } });
}

const ms = (s: Summary) => `${s.p50} / ${s.p99}`;

export function schedulerTables(r: BenchResults): string[] {
  return r.scheduler.flatMap((s) => {
    const sizes = table([
      `scheduler (${s.db})`,
      'decision p50 / p99 ms',
      'CPU p50 ms',
      'first → last quarter p50 ms',
      'page of 20: p50 (first → last q.) ms',
      'naive p50 / p99 ms',
      'speed-up',
      'query / states / claim p50 ms',
      'seed s',
    ]);
    for (const x of s.sizes) {
      sizes.push([
        `${x.hosts.toLocaleString('en')} hosts`,
        ms(x.scheduler),
        x.schedulerCpu.p50,
        // Older results files lack the quarter figures.
        (x as Partial<typeof x>).firstQuarterP50 === undefined
          ? '—'
          : `${x.firstQuarterP50} → ${x.lastQuarterP50}`,
        (x.smallPage as Partial<typeof x.smallPage>).firstQuarterP50 === undefined
          ? x.smallPage.decision.p50
          : `${x.smallPage.decision.p50} (${x.smallPage.firstQuarterP50} → ${x.smallPage.lastQuarterP50})`,
        ms(x.naive),
        `${x.speedup}×`,
        `${x.parts.candidatesQuery.p50} / ${x.parts.hostStates.p50} / ${x.parts.claim.p50}`,
        x.seedSeconds,
      ]);
    }
    const contention = table([
      `contention (${s.db})`,
      'placed / room',
      'conflicts retried',
      'decisions/s',
      'p50 / p99 ms',
      'over-commit (audit / capacity / beyond room)',
    ]);
    for (const c of [s.contention, s.contentionSpread])
      contention.push([
        `${c.claimers} claimers, ${c.hosts} nearly full hosts, subset ${c.hostSubsetSize}`,
        `${c.decisions} / ${c.room}`,
        `${c.conflictsRetried} of ${c.claimAttempts} claims`,
        c.decisionsPerSecond,
        ms(c.latency),
        `${c.overcommit.auditMismatches} / ${c.overcommit.overCapacity} / ${c.overcommit.beyondRoom}`,
      ]);
    return [sizes.toString(), contention.toString()];
  });
}

export function imageTable(r: BenchResults): string[] {
  const i = r.image;
  if (!i) return [];
  const t = table([`image path (${i.sizeMb} MB × ${i.trials})`, 'p50 MB/s', 'min–max MB/s', 'vs copyFile']);
  const row = (name: string, s: Summary) => [
    name,
    s.p50,
    `${s.min}–${s.max}`,
    `${ratio(s.p50, i.copyFile.p50)}×`,
  ];
  t.push(row('fs.copyFile + fsync', i.copyFile));
  t.push(row('streamed copy + fsync', i.streamCopy));
  t.push(row('verified fetch (size + SHA-512, written, fsynced)', i.verifiedFetch));
  t.push(row('verification alone (HashingMeter), nothing written', i.hashOnly));
  t.push(row('SHA-512 only, nothing written', i.sha512Only));
  t.push(['cache hit', `${i.cacheHit.p50} ms`, `${i.cacheHit.min}–${i.cacheHit.max} ms`, '']);
  return [t.toString()];
}

export function apiTable(r: BenchResults): string[] {
  const a = r.api;
  if (!a) return [];
  const t = table([
    `compute API (${a.servers.toLocaleString('en')} servers, ${a.samples} samples)`,
    'p50 / p99 ms',
    'min–max ms',
  ]);
  t.push([
    `GET /servers/detail (2.79, ${Math.round(a.detailBytes / 1024)} KiB)`,
    ms(a.detail),
    `${a.detail.min}–${a.detail.max}`,
  ]);
  t.push(['GET /servers', ms(a.index), `${a.index.min}–${a.index.max}`]);
  // Older results files lack the write path.
  if (a.post) {
    t.push(['POST /servers (202, not the boot)', ms(a.post), `${a.post.min}–${a.post.max}`]);
    t.push([
      'client: workflow start (same boot)',
      ms(a.clientStart),
      `${a.clientStart.min}–${a.clientStart.max}`,
    ]);
    if (a.postConcurrent)
      t.push([
        `POST /servers, ${a.concurrency} at once`,
        ms(a.postConcurrent),
        `${a.postConcurrent.min}–${a.postConcurrent.max}`,
      ]);
    if (a.alone) {
      t.push([
        'POST /servers, API alone (no worker)',
        ms(a.alone.post),
        `${a.alone.post.min}–${a.alone.post.max}`,
      ]);
      t.push([
        `POST /servers, API alone, ${a.concurrency} at once`,
        ms(a.alone.postConcurrent),
        `${a.alone.postConcurrent.min}–${a.alone.postConcurrent.max}`,
      ]);
      const floor = a.alone.clientStartConcurrent;
      if (floor)
        t.push([
          `client: workflow start alone, ${a.concurrency} at once (the floor)`,
          ms(floor),
          `${floor.min}–${floor.max}`,
        ]);
    }
    t.push([
      `boots/s at ${a.concurrency} at once: API / client`,
      `${a.bootsPerSecondApi} / ${a.bootsPerSecondClient}`,
      '',
    ]);
  }
  return [t.toString()];
}

export function bootTables(r: BenchResults): string[] {
  const b = r.boot;
  if (!b) return [];
  const l = b.latency;
  const lat = table([
    `boot latency (${l.boots} sequential each)`,
    'p50 ms',
    'p95 ms',
    'p99 ms',
    'min–max ms',
    'errors',
    'vs skeleton',
    'sequential / parallel',
  ]);
  const times = (a: Summary, b: Summary) => `${ratio(a.p50, b.p50)}×`;
  const row = (name: string, s: Summary, errors: number, parallel?: Summary) => [
    name,
    s.p50,
    s.p95,
    s.p99,
    `${s.min}–${s.max}`,
    errors,
    times(s, l.skeleton),
    parallel ? times(s, parallel) : '',
  ];
  lat.push(row('createInstance (ours)', l.ours, l.errors.ours));
  // Results files from before createInstanceSequential have no such row.
  const oursSequential = (l as Partial<typeof l>).oursSequential;
  if (oursSequential)
    lat.push(
      row('createInstanceSequential (no parallel branches)', oursSequential, l.errors.oursSequential, l.ours),
    );
  lat.push(row('skeleton, same shape, no-op activities', l.skeleton, l.errors.skeleton));
  lat.push(
    row(
      'skeleton, sequential (no parallel branches)',
      l.skeletonSequential,
      l.errors.skeletonSequential,
      l.skeleton,
    ),
  );
  lat.push(['password login (scrypt), not in the boots above', l.passwordLogin.p50, '', '', '', '', '', '']);

  const steps = table([
    'step (ours, from histories)',
    'per boot',
    'total p50 ms',
    'queue wait p50 ms',
    'run p50 ms',
    'run p99 ms',
  ]);
  for (const s of [...l.steps.ours.steps].sort((a, b) => b.total.p50 - a.total.p50)) {
    steps.push([s.step, s.perBoot, s.total.p50, s.queue.p50, s.run.p50, s.run.p99]);
  }
  const sk = l.steps.skeleton;
  const all = (a: typeof sk) => [a.duration.p50, a.workflowTasksPerBoot, a.workflowTask.p50, a.eventsPerBoot];
  steps.push([
    '— per boot: duration p50 / workflow tasks / task p50 ms / events',
    '',
    ...all(l.steps.ours).map(String),
  ]);
  if (oursSequential)
    steps.push(['— same for createInstanceSequential', '', ...all(l.steps.oursSequential).map(String)]);
  steps.push(['— same for the skeleton', '', ...all(sk).map(String)]);
  steps.push(['— same for the sequential skeleton', '', ...all(l.steps.skeletonSequential).map(String)]);

  const thr = table([
    'concurrent boots',
    'workflow',
    'boots/s',
    'p50 / p99 ms',
    'errors',
    'worker CPU cores',
    'CPU ms/boot',
    'server CPU cores',
    'peak RSS MB',
    'loop delay p99 ms',
    'over-commit',
  ]);
  for (const t of b.throughput) {
    thr.push([
      t.concurrency,
      t.workflow,
      t.bootsPerSecond,
      ms(t.latency),
      t.errors ? `${t.errors} ${JSON.stringify(t.errorTypes)}` : 0,
      t.workerCpuCores,
      t.workerCpuMsPerBoot,
      t.serverCpuCores ?? '—',
      t.peakRssMb,
      t.eventLoopDelayP99Ms,
      t.overcommit ?? '',
    ]);
  }
  const comp = table([
    'compensation (spawn fails)',
    'failed as expected',
    'spawn failure → all released p50 / p99 ms',
    'boot p50 ms',
    'wall s',
    'leaks',
  ]);
  for (const c of b.compensation) {
    comp.push([
      `${c.boots} at once`,
      `${c.failedAsExpected} / ${c.boots}`,
      ms(c.release),
      c.boot.p50,
      c.seconds,
      c.leaks,
    ]);
  }
  return [lat.toString(), steps.toString(), thr.toString(), comp.toString()];
}

export function guestsTable(r: BenchResults): string[] {
  const g = r.guests;
  if (!g) return [];
  const t = table([
    `real guests (${g.boots} boots per driver, one at a time)`,
    'p50',
    'p95',
    'min–max',
    'errors',
  ]);
  const s = (x: Summary, unit: string) => [
    `${x.p50} ${unit}`,
    `${x.p95} ${unit}`,
    `${x.min}–${x.max} ${unit}`,
  ];
  t.push(['fake driver: boot to ACTIVE', ...s(g.fakeActive, 'ms'), g.errors.fake]);
  t.push([`qemu driver: boot to ACTIVE (${g.activeVsFake}× fake)`, ...s(g.qemuActive, 'ms'), g.errors.qemu]);
  t.push(['qemu driver: boot to first ping', ...s(g.qemuFirstPing, 'ms'), '']);
  t.push(['QEMU CPU seconds per boot (to first ping)', ...s(g.qemuCpuSecondsToPing, 's'), '']);
  t.push(['leak audit findings afterwards', g.leaks, '', '', '']);
  // Older results files have no breakdown.
  if (!g.breakdown?.length) return [t.toString()];
  const b = table(['where a boot spends its time (p50 per boot)', 'fake', 'qemu', 'qemu − fake']);
  const cell = (v: number | null) => (v === null ? '' : `${v} ms`);
  for (const row of g.breakdown)
    b.push([
      row.step,
      cell(row.fake),
      cell(row.qemu),
      row.fake !== null && row.qemu !== null ? `${row.qemu - row.fake} ms` : '',
    ]);
  return [t.toString(), b.toString()];
}

export function goalsTable(r: BenchResults): string {
  const t = table(['goal', 'target', 'measured', 'met']);
  for (const g of r.goals)
    t.push([g.goal, g.target, g.measured, g.met === null ? '—' : g.met ? 'yes' : 'NO']);
  return t.toString();
}

export function renderTables(r: BenchResults, extra: (r: BenchResults) => string[] = () => []): string {
  return [
    ...schedulerTables(r),
    ...imageTable(r),
    ...bootTables(r),
    ...apiTable(r),
    ...guestsTable(r),
    ...extra(r),
    goalsTable(r),
  ].join('\n');
}
