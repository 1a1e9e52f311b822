/**
 * Scheduler benchmark. For each fleet size: the scheduler's decision (placement's indexed candidate query,
 * Nova's host states for that page, filters, weighers, claim) against the naive baseline (everything loaded
 * and weighed in JavaScript, same claim), interleaved in one loop so both see the same machine and the same
 * filling cloud. Then contention: 64 claimers at once on nearly full hosts, until no host has room, with
 * the over-commit checks (placement's audit, allocations against capacity, and the exact room count).
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import { ManualClock } from '../../cloud/clock';
import { isCloudError } from '../../cloud/errors';
import { Nova } from '../../cloud/nova';
import { Placement, type Resources } from '../../cloud/placement';
import { Scheduler, resourcesFromFlavor, type FilterSpec, type SchedulerFlavor } from '../../cloud/scheduler';
import { benchDb } from './bench-db';
import { naiveSelectAndClaim } from './naive-scheduler';
import { CPU_RATIO, RESERVED_MEMORY_MB, seedHosts, variedFleet, type SeededHost } from './seed-hosts';
import { ratio, rounded, seededRandom, summarize, type Summary } from './stats';

/** m1.small: what the decisions ask for. */
export const BENCH_FLAVOR: SchedulerFlavor = {
  id: '2',
  name: 'm1.small',
  vcpus: 1,
  memoryMb: 2048,
  rootGb: 20,
  ephemeralGb: 0,
  swapMb: 0,
};
const IMAGE = { properties: { hw_architecture: 'x86_64' } };
const PROJECT = 'bench-project';
/** The scheduler's default page is 100 candidates; this one is enough for a selection and 2 alternates. */
const SMALL_PAGE = 20;
const USER = 'bench-user';

export interface SchedulerBenchOptions {
  sizes: number[];
  /** Measured decisions of the scheduler per size (after a warm-up). */
  decisions(hosts: number): number;
  /** Measured decisions of the naive baseline per size, interleaved with the scheduler's. */
  naiveDecisions(hosts: number): number;
  contention: { claimers: number; hosts: number };
  serverUrl?: string;
  log(line: string): void;
}

export interface SchedulerSizeResult {
  hosts: number;
  seedSeconds: number;
  /** selectDestinations: selection + claim, ms per decision. */
  scheduler: Summary;
  /** CPU time of this process per decision (SQLite runs in-process): less sensitive to a busy machine. */
  schedulerCpu: Summary;
  /** The same decision with maxPlacementResults = pageSize instead of the default 100. */
  smallPage: { pageSize: number; decision: Summary; firstQuarterP50: number; lastQuarterP50: number };
  /**
   * p50 of the first and the last quarter of the decisions: hosts the filters reject (disabled, down,
   * another architecture) are never claimed, so they stay at the head of the free-memory order and each
   * later decision reads more of them before it finds a host.
   */
  firstQuarterP50: number;
  lastQuarterP50: number;
  naive: Summary;
  /** naive p50 / scheduler p50 */
  speedup: number;
  /** What a decision is made of (measured separately, same loop): placement's candidate page, Nova's host states for it, the claim. */
  parts: { candidatesQuery: Summary; hostStates: Summary; claim: Summary };
  claimsPerDecision: number;
}

export interface ContentionResult {
  claimers: number;
  /** Nova's host_subset_size: 1 (the default) sends every claimer to the same best host. */
  hostSubsetSize: number;
  hosts: number;
  /** Instances of the flavor the fleet still had room for before the run. */
  room: number;
  decisions: number;
  noValidHost: number;
  otherErrors: number;
  claimAttempts: number;
  /** Claims that lost to a racing claimer and were retried on the next host. */
  conflictsRetried: number;
  seconds: number;
  decisionsPerSecond: number;
  latency: Summary;
  overcommit: {
    /** placement.auditUsage(): inventory `used` that differs from its allocations. */
    auditMismatches: number;
    /** Inventories whose allocations exceed (total − reserved) × allocation_ratio. */
    overCapacity: number;
    /** Decisions that succeeded beyond the room there was. */
    beyondRoom: number;
  };
}

export interface SchedulerBenchResult {
  db: string;
  flavor: SchedulerFlavor;
  pageSize: number;
  sizes: SchedulerSizeResult[];
  contention: ContentionResult;
  /** The same contention with host_subset_size 16: claimers spread over the best 16 hosts. */
  contentionSpread: ContentionResult;
}

interface Services {
  nova: Nova;
  placement: Placement;
  close(): Promise<void>;
}

async function openServices(
  name: string,
  serverUrl: string | undefined,
  clock: ManualClock,
): Promise<Services> {
  const db = benchDb(name, serverUrl);
  const nova = await Nova.open({ db: db.config, clock });
  const placement = await Placement.open({ db: db.config, clock });
  return {
    nova,
    placement,
    async close() {
      await placement.close();
      await nova.close();
      await db.cleanup();
    },
  };
}

/** Placement with its claims counted and timed (the scheduler takes it as an option). */
function countingPlacement(placement: Placement): {
  placement: Placement;
  stats: { attempts: number; lost: number; ms: number[] };
} {
  const stats = { attempts: 0, lost: 0, ms: [] as number[] };
  const proxy = new Proxy(placement, {
    get(target, prop) {
      if (prop === 'claim') {
        return async (req: Parameters<Placement['claim']>[0]) => {
          stats.attempts++;
          const start = performance.now();
          try {
            return await target.claim(req);
          } catch (err) {
            if (isCloudError(err, 'AllocationCapacityExceeded') || isCloudError(err, 'Conflict'))
              stats.lost++;
            throw err;
          } finally {
            stats.ms.push(performance.now() - start);
          }
        };
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { placement: proxy, stats };
}

function request() {
  return { instanceUuid: randomUUID(), projectId: PROJECT, userId: USER, flavor: BENCH_FLAVOR, image: IMAGE };
}

function quarterP50(samples: readonly number[], which: 'first' | 'last'): number {
  const q = Math.max(1, Math.floor(samples.length / 4));
  return rounded(summarize(which === 'first' ? samples.slice(0, q) : samples.slice(-q))).p50;
}

const SPEC: FilterSpec = { image: { arch: 'x86_64' }, ignoreHosts: new Set() };

async function benchSize(hosts: number, options: SchedulerBenchOptions): Promise<SchedulerSizeResult> {
  const clock = new ManualClock(Date.now());
  const services = await openServices(`sched-${hosts}`, options.serverUrl, clock);
  try {
    const seedSeconds = await seedHosts(services, variedFleet(hosts, hosts), clock.now());
    options.log(`scheduler: ${hosts} hosts seeded in ${seedSeconds.toFixed(1)} s`);
    const counted = countingPlacement(services.placement);
    const scheduler = new Scheduler({ placement: counted.placement, hosts: services.nova });
    // The same decisions with a smaller candidate page, interleaved: how much of a decision is the page.
    const smallPage = new Scheduler({
      placement: services.placement,
      hosts: services.nova,
      maxPlacementResults: SMALL_PAGE,
    });
    const resources: Resources = resourcesFromFlavor({ ...BENCH_FLAVOR, ephemeralGb: 0, swapMb: 0 }, false);
    const naive = (): Promise<unknown> =>
      naiveSelectAndClaim(services, {
        instanceUuid: randomUUID(),
        projectId: PROJECT,
        userId: USER,
        resources,
        spec: SPEC,
      });

    for (let i = 0; i < 10; i++) await scheduler.selectDestinations(request()); // warm-up: JIT, caches
    await naive();
    counted.stats.attempts = 0;
    counted.stats.ms.length = 0;

    const n = options.decisions(hosts);
    const naiveEvery = Math.max(1, Math.floor(n / Math.max(1, options.naiveDecisions(hosts))));
    const ours: number[] = [];
    const oursCpu: number[] = [];
    const theirs: number[] = [];
    const candidateMs: number[] = [];
    const stateMs: number[] = [];
    const smallPageMs: number[] = [];
    for (let i = 0; i < n; i++) {
      let start = performance.now();
      const cpu = process.cpuUsage();
      await scheduler.selectDestinations(request());
      ours.push(performance.now() - start);
      const used = process.cpuUsage(cpu);
      oursCpu.push((used.user + used.system) / 1000);
      start = performance.now();
      await smallPage.selectDestinations(request());
      smallPageMs.push(performance.now() - start);
      // The parts, on the cloud as the next decision will see it.
      start = performance.now();
      const page = await services.placement.allocationCandidates(resources, { limit: 100 });
      candidateMs.push(performance.now() - start);
      start = performance.now();
      await services.nova.listHostStates({ nodeUuids: page.map((c) => c.providerUuid) });
      stateMs.push(performance.now() - start);
      if (i % naiveEvery === naiveEvery - 1 && theirs.length < options.naiveDecisions(hosts)) {
        start = performance.now();
        await naive();
        theirs.push(performance.now() - start);
      }
    }
    const scheduled = summarize(ours);
    const baseline = summarize(theirs);
    return {
      hosts,
      seedSeconds: Math.round(seedSeconds * 10) / 10,
      scheduler: rounded(scheduled),
      schedulerCpu: rounded(summarize(oursCpu)),
      smallPage: {
        pageSize: SMALL_PAGE,
        decision: rounded(summarize(smallPageMs)),
        firstQuarterP50: quarterP50(smallPageMs, 'first'),
        lastQuarterP50: quarterP50(smallPageMs, 'last'),
      },
      firstQuarterP50: quarterP50(ours, 'first'),
      lastQuarterP50: quarterP50(ours, 'last'),
      naive: rounded(baseline),
      speedup: ratio(baseline.p50, scheduled.p50, 1),
      parts: {
        candidatesQuery: rounded(summarize(candidateMs)),
        hostStates: rounded(summarize(stateMs)),
        claim: rounded(summarize(counted.stats.ms)),
      },
      claimsPerDecision: ratio(counted.stats.attempts, n),
    };
  } finally {
    await services.close();
  }
}

/** Hosts with room for 0 to 3 more instances of the flavor (memory is what runs out). */
function nearlyFullFleet(count: number): { hosts: SeededHost[]; room: number } {
  const rand = seededRandom(64);
  let room = 0;
  const hosts = variedFleet(count, 7, 'full').map((h) => {
    const capacity = h.memoryMb - RESERVED_MEMORY_MB;
    const slots = Math.floor(rand() * 4);
    // Exactly `slots` instances fit: used leaves slots × 2048 MB plus less than one more instance.
    const used = capacity - slots * BENCH_FLAVOR.memoryMb - Math.floor(rand() * BENCH_FLAVOR.memoryMb);
    const eligible = h.up && !h.disabled && h.cpuArch === 'x86_64';
    if (eligible) room += slots;
    return {
      ...h,
      used: { VCPU: h.vcpus * CPU_RATIO - 8, MEMORY_MB: used, DISK_GB: Math.floor(h.diskGb / 2) },
    };
  });
  return { hosts, room };
}

/** Inventories whose allocations add up to more than their capacity (must be none). */
export async function overCapacity(placement: Placement): Promise<number> {
  const result = await sql<{ n: number | string }>`select count(*) as n from inventories i
join (select provider_uuid, resource_class, sum(used) as allocated from allocations
      group by provider_uuid, resource_class) a
  on a.provider_uuid = i.provider_uuid and a.resource_class = i.resource_class
where a.allocated > (i.total - i.reserved) * i.allocation_ratio`.execute(placement.database.db);
  return Number(result.rows[0]?.n ?? 0);
}

async function benchContention(
  options: SchedulerBenchOptions,
  hostSubsetSize: number,
): Promise<ContentionResult> {
  const { claimers, hosts: count } = options.contention;
  const clock = new ManualClock(Date.now());
  const services = await openServices('contention', options.serverUrl, clock);
  try {
    const { hosts, room } = nearlyFullFleet(count);
    await seedHosts(services, hosts, clock.now());
    const counted = countingPlacement(services.placement);
    const scheduler = new Scheduler({ placement: counted.placement, hosts: services.nova, hostSubsetSize });
    const latency: number[] = [];
    let noValidHost = 0;
    let otherErrors = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: claimers }, async () => {
        for (;;) {
          const start = performance.now();
          try {
            await scheduler.selectDestinations(request());
            latency.push(performance.now() - start);
          } catch (err) {
            if (isCloudError(err, 'NoValidHost')) {
              noValidHost++;
              return; // the fleet is full
            }
            otherErrors++;
            if (otherErrors > 100) throw err;
          }
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const audit = await services.placement.auditUsage();
    return {
      claimers,
      hostSubsetSize,
      hosts: count,
      room,
      decisions: latency.length,
      noValidHost,
      otherErrors,
      claimAttempts: counted.stats.attempts,
      conflictsRetried: counted.stats.lost,
      seconds: Math.round(seconds * 100) / 100,
      decisionsPerSecond: Math.round(latency.length / seconds),
      latency: rounded(summarize(latency)),
      overcommit: {
        auditMismatches: audit.length,
        overCapacity: await overCapacity(services.placement),
        beyondRoom: Math.max(0, latency.length - room),
      },
    };
  } finally {
    await services.close();
  }
}

export async function runSchedulerBench(options: SchedulerBenchOptions): Promise<SchedulerBenchResult> {
  const sizes: SchedulerSizeResult[] = [];
  for (const hosts of options.sizes) {
    const result = await benchSize(hosts, options);
    options.log(
      `scheduler: ${hosts} hosts: p50 ${result.scheduler.p50} ms (naive ${result.naive.p50} ms, ${result.speedup}×)`,
    );
    sizes.push(result);
  }
  const contention = await benchContention(options, 1);
  const contentionSpread = await benchContention(options, 16);
  for (const c of [contention, contentionSpread]) {
    options.log(
      `scheduler: ${c.claimers} claimers (subset ${c.hostSubsetSize}): ${c.decisions}/${c.room} placed, ` +
        `${c.conflictsRetried} conflicts retried, ${c.decisionsPerSecond}/s`,
    );
  }
  return {
    db: options.serverUrl ? new URL(options.serverUrl).protocol.replace(':', '') : 'sqlite',
    flavor: BENCH_FLAVOR,
    pageSize: 100,
    sizes,
    contention,
    contentionSpread,
  };
}
