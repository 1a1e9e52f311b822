/**
 * Smoke test of `npm run bench -- --quick`: the benchmark runs end to end (its own dev server, embedded
 * cloud, workers) and writes a results file with every figure. It checks that it works, never how fast:
 * no timing is asserted, only that each figure was measured and that the correctness side of the
 * benchmarks holds (no over-commit, no failed boots, compensation leaves nothing behind).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BenchResults } from '../scripts/bench/results';
import type { Summary } from '../scripts/bench/stats';

const ROOT = path.resolve(__dirname, '..');

/** Fields that may legitimately be null (not measured in this configuration). */
const NULLABLE = [
  /^versions\.temporalCli$/,
  /^parameters\.temporalAddress$/,
  /^boot\.throughput\.\d+\.overcommit$/,
  /^boot\.throughput\.\d+\.serverCpuCores$/,
  /^(boot\.)?goals\.\d+\.met$/,
];

function nullPaths(value: unknown, at = ''): string[] {
  if (value === null) return [at];
  if (typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([k, v]) => nullPaths(v, at ? `${at}.${k}` : k));
}

function measured(s: Summary, what: string, n?: number): void {
  assert.ok(s.n > 0, `${what}: no samples`);
  if (n !== undefined) assert.equal(s.n, n, `${what}: ${s.n} samples, expected ${n}`);
  for (const key of ['min', 'p50', 'p99', 'max'] as const) {
    assert.ok(Number.isFinite(s[key]) && s[key] >= 0, `${what}.${key} = ${s[key]}`);
  }
}

test('bench --quick runs end to end and writes every figure', { timeout: 10 * 60_000 }, () => {
  const out = mkdtempSync(path.join(os.tmpdir(), 'bootflow-bench-quick-'));
  try {
    const run = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'scripts/bench/index.ts', '--quick', '--out', out],
      {
        cwd: ROOT,
        encoding: 'utf8',
        env: { ...process.env, TEMPORAL_ADDRESS: '' },
        timeout: 9 * 60_000,
      },
    );
    assert.equal(run.status, 0, `bench failed:\n${run.stderr.slice(-4000)}`);
    assert.match(run.stdout, /scheduler \(sqlite\)/);
    assert.match(run.stdout, /goal/);

    const files = readdirSync(out).filter((f) => f.endsWith('.json'));
    assert.equal(files.length, 1);
    assert.match(run.stdout, new RegExp(`results: .*${files[0]}`));
    const r = JSON.parse(readFileSync(path.join(out, files[0]!), 'utf8')) as BenchResults;

    assert.deepEqual(
      nullPaths(r).filter((p) => !NULLABLE.some((re) => re.test(p))),
      [],
      'figures that are null (NaN) in the results',
    );
    assert.ok(r.machine.cpus > 0 && r.machine.memoryMb > 0 && r.machine.cpuModel);
    assert.match(r.versions.node, /^v\d+/);
    assert.match(r.versions.temporalSdk, /^\d+\.\d+\.\d+/);
    assert.equal(r.parameters.quick, true);
    assert.equal(r.complete, true);

    // Scheduler: every size, both sides; contention placed exactly the room there was, never more.
    const [sched] = r.scheduler;
    assert.ok(sched);
    assert.deepEqual(
      sched.sizes.map((s) => s.hosts),
      r.parameters.schedulerSizes,
    );
    for (const s of sched.sizes) {
      measured(s.scheduler, `scheduler ${s.hosts}`);
      measured(s.schedulerCpu, `scheduler cpu ${s.hosts}`);
      measured(s.naive, `naive ${s.hosts}`);
      measured(s.smallPage.decision, `page of ${s.smallPage.pageSize} ${s.hosts}`);
      measured(s.parts.candidatesQuery, `candidates ${s.hosts}`);
      measured(s.parts.hostStates, `host states ${s.hosts}`);
      measured(s.parts.claim, `claim ${s.hosts}`);
      assert.ok(s.speedup > 0);
    }
    for (const c of [sched.contention, sched.contentionSpread]) {
      assert.equal(c.claimers, 64);
      assert.equal(c.decisions, c.room, 'every free slot placed, none twice');
      assert.equal(c.noValidHost, c.claimers, 'each claimer stopped at NoValidHost');
      assert.equal(c.otherErrors, 0);
      assert.deepEqual(c.overcommit, { auditMismatches: 0, overCapacity: 0, beyondRoom: 0 });
      assert.ok(c.claimAttempts >= c.decisions && c.conflictsRetried === c.claimAttempts - c.decisions);
      measured(c.latency, `contention subset ${c.hostSubsetSize}`, c.decisions);
    }

    // Image path: all three measured, and the cache hit.
    assert.ok(r.image);
    for (const key of [
      'copyFile',
      'streamCopy',
      'verifiedFetch',
      'hashOnly',
      'sha512Only',
      'cacheHit',
    ] as const) {
      measured(r.image[key], `image ${key}`, key === 'cacheHit' ? 50 : r.image.trials);
    }
    assert.ok(r.image.fetchVsCopyFile > 0 && r.image.fetchVsStreamCopy > 0);

    // Boots: every boot succeeded; the histories have the 19 activities of the shape on both sides.
    assert.ok(r.boot);
    const l = r.boot.latency;
    measured(l.ours, 'ours', r.parameters.sequentialBoots);
    measured(l.oursSequential, 'ours sequential', r.parameters.sequentialBoots);
    measured(l.skeleton, 'skeleton', r.parameters.sequentialBoots);
    measured(l.skeletonSequential, 'skeleton sequential', r.parameters.sequentialBoots);
    measured(l.passwordLogin, 'password login');
    for (const x of [l.oursVsSkeleton, l.sequentialVsOurs, l.skeletonSequentialVsParallel]) assert.ok(x > 0);
    assert.deepEqual(l.errors, { ours: 0, oursSequential: 0, skeleton: 0, skeletonSequential: 0 });
    const activities = (steps: { perBoot: number }[]) => steps.reduce((sum, s) => sum + s.perBoot, 0);
    assert.equal(activities(l.steps.ours.steps), 19);
    assert.equal(activities(l.steps.skeleton.steps), 19);
    assert.equal(activities(l.steps.skeletonSequential.steps), 19);
    // The sequential variant runs the same steps as ours.
    assert.equal(activities(l.steps.oursSequential.steps), 19);
    assert.deepEqual(
      l.steps.oursSequential.steps.map((s) => s.step).sort(),
      l.steps.ours.steps.map((s) => s.step).sort(),
    );
    assert.ok(r.boot.goals.some((g) => g.goal.startsWith('parallel branches') && g.goal.includes('ours')));
    for (const s of l.steps.ours.steps) measured(s.run, `step ${s.step}`);

    assert.deepEqual(
      r.boot.throughput.map((t) => `${t.concurrency} ${t.workflow}`),
      r.parameters.concurrency.flatMap((n) => [`${n} ours`, `${n} skeleton`]),
    );
    for (const t of r.boot.throughput) {
      assert.equal(t.errors, 0, `${t.concurrency} ${t.workflow}: ${JSON.stringify(t.errorTypes)}`);
      measured(t.latency, `throughput ${t.concurrency} ${t.workflow}`, t.boots);
      assert.ok(t.bootsPerSecond > 0 && t.workerCpuCores > 0 && t.peakRssMb > 0);
      assert.ok(t.serverCpuCores !== null && t.serverCpuCores >= 0, 'the bench started its own dev server');
      if (t.workflow === 'ours') assert.equal(t.overcommit, 0);
    }

    assert.deepEqual(
      r.boot.compensation.map((x) => x.boots),
      r.parameters.compensation,
    );
    for (const x of r.boot.compensation) {
      assert.equal(x.failedAsExpected, x.boots);
      assert.equal(x.leaks, 0, JSON.stringify(x.leakKinds));
      measured(x.release, `compensation ${x.boots}`, x.boots);
    }

    assert.ok(r.api, 'the compute API section ran');
    assert.equal(r.api.servers, r.parameters.apiServers);
    measured(r.api.detail, 'GET /servers/detail', r.api.samples);
    measured(r.api.index, 'GET /servers', r.api.samples);
    assert.ok(r.api.detailBytes > 0);
    measured(r.api.post, 'POST /servers');
    measured(r.api.clientStart, 'client workflow start');
    assert.ok(r.api.postConcurrent, 'POST /servers answers at the concurrency level were measured');
    measured(r.api.postConcurrent, 'POST /servers at once', r.api.concurrency);
    assert.ok(r.api.alone, 'POST /servers with the API alone was measured');
    measured(r.api.alone.post, 'POST /servers alone', r.api.post.n);
    measured(r.api.alone.postConcurrent, 'POST /servers alone at once', r.api.concurrency);
    assert.ok(r.api.bootsPerSecondApi > 0 && r.api.bootsPerSecondClient > 0);

    assert.ok(r.goals.length >= 8);
    for (const g of r.goals) assert.ok(g.measured.length > 0, g.goal);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
