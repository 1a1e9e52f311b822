/** The stdout tables of a run: one per benchmark, then the goals. */
import Table from 'cli-table3';
import type { BenchResults } from './results';
import type { Summary } from './stats';

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
        ms(x.naive),
        `${x.speedup}×`,
        `${x.parts.candidatesQuery.p50} / ${x.parts.hostStates.p50} / ${x.parts.claim.p50}`,
        x.seedSeconds,
      ]);
    }
    const c = s.contention;
    const contention = table([
      `contention (${s.db})`,
      'placed / room',
      'conflicts retried',
      'decisions/s',
      'p50 / p99 ms',
      'over-commit (audit / capacity / beyond room)',
    ]);
    contention.push([
      `${c.claimers} claimers, ${c.hosts} nearly full hosts`,
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
    `${Math.round((s.p50 / i.copyFile.p50) * 100) / 100}×`,
  ];
  t.push(row('fs.copyFile + fsync', i.copyFile));
  t.push(row('streamed copy + fsync', i.streamCopy));
  t.push(row('verified fetch (MD5 + SHA-512)', i.verifiedFetch));
  t.push(row('hashes only, nothing written', i.hashOnly));
  t.push(row('SHA-512 only, nothing written', i.sha512Only));
  t.push(['cache hit', `${i.cacheHit.p50} ms`, `${i.cacheHit.min}–${i.cacheHit.max} ms`, '']);
  return [t.toString()];
}

export function goalsTable(r: BenchResults): string {
  const t = table(['goal', 'target', 'measured', 'met']);
  for (const g of r.goals)
    t.push([g.goal, g.target, g.measured, g.met === null ? '—' : g.met ? 'yes' : 'NO']);
  return t.toString();
}

export function renderTables(r: BenchResults, extra: (r: BenchResults) => string[] = () => []): string {
  return [...schedulerTables(r), ...imageTable(r), ...extra(r), goalsTable(r)].join('\n');
}
