import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { ManualClock } from '../cloud/clock';
import { isCloudError } from '../cloud/errors';
import { Placement, type AllocationCandidate } from '../cloud/placement';
import {
  NO_VALID_HOST_MESSAGE,
  Scheduler,
  StaticHostStateSource,
  defaultWeighers,
  normalize,
  weighHosts,
  type CandidateHost,
  type HostState,
  type HostStateFilter,
  type SchedulerFlavor,
  type SelectDestinationsRequest,
  type Selection,
} from '../cloud/scheduler';
import { testDbConfig, testDbDialect, type TestDb } from './helpers/cloud-db';

const TINY: SchedulerFlavor = {
  id: '1',
  name: 'm1.tiny',
  vcpus: 1,
  memoryMb: 512,
  rootGb: 1,
  ephemeralGb: 0,
  swapMb: 0,
};
const SMALL: SchedulerFlavor = {
  id: '2',
  name: 'm1.small',
  vcpus: 1,
  memoryMb: 2048,
  rootGb: 20,
  ephemeralGb: 0,
  swapMb: 0,
};

interface HostSpec {
  name: string;
  vcpus?: number;
  memoryMb?: number;
  diskGb?: number;
  availabilityZone?: string;
  cpuArch?: string;
  hypervisorType?: string;
  up?: boolean;
  disabled?: boolean;
  failedBuilds?: number;
}

function rejectsWith(type: string): (err: unknown) => boolean {
  return (err) => {
    assert.ok(isCloudError(err), `expected a CloudError, got ${String(err)}`);
    assert.equal(err.type, type, err.message);
    return true;
  };
}

describe(`scheduler (${testDbDialect})`, () => {
  let testDb: TestDb;
  let placement: Placement;

  before(async () => {
    testDb = testDbConfig('scheduler');
    placement = await Placement.open({ db: testDb.config, clock: new ManualClock() });
  });
  after(async () => {
    await placement?.close();
    await testDb?.cleanup();
  });

  /** Registers hosts as a compute host would (a provider with inventory) and returns their states. */
  async function cloud(specs: HostSpec[]) {
    const tag = randomUUID().slice(0, 6);
    const states: HostState[] = [];
    for (const s of specs) {
      const nodeUuid = randomUUID();
      const host = `${s.name}-${tag}`;
      await placement.ensureResourceProvider({
        uuid: nodeUuid,
        name: host,
        inventories: {
          VCPU: { total: s.vcpus ?? 4 },
          MEMORY_MB: { total: s.memoryMb ?? 8704 },
          DISK_GB: { total: s.diskGb ?? 100 },
        },
      });
      states.push({
        host,
        nodeUuid,
        up: s.up ?? true,
        disabled: s.disabled ?? false,
        availabilityZone: s.availabilityZone ?? 'nova',
        cpuArch: s.cpuArch ?? 'x86_64',
        hypervisorType: s.hypervisorType ?? 'kvm',
        failedBuilds: s.failedBuilds ?? 0,
      });
    }
    const source = new StaticHostStateSource(states);
    const host = (name: string) => {
      const found = states.find((st) => st.host === `${name}-${tag}`);
      assert.ok(found, name);
      return found;
    };
    return { source, host, scheduler: new Scheduler({ placement, hosts: source }) };
  }

  function request(overrides: Partial<SelectDestinationsRequest> = {}): SelectDestinationsRequest {
    return {
      instanceUuid: randomUUID(),
      projectId: 'project-a',
      userId: 'user-a',
      flavor: TINY,
      image: { properties: {} },
      excludedHosts: [],
      maxAttempts: 3,
      ...overrides,
    };
  }

  test('normalize is nova.weights.normalize', () => {
    assert.deepEqual(normalize([]), []);
    assert.deepEqual(normalize([7, 7, 7]), [0, 0, 0]);
    assert.deepEqual(normalize([1, 2, 3]), [0, 0.5, 1]);
    assert.deepEqual(normalize([-10, 0, 10, 5]), [0, 0.5, 1, 0.75]);
  });

  test('weighers: normalized per weigher, multiplied and summed; build failures dominate', () => {
    const host = (
      name: string,
      ramFree: number,
      cpuFree: number,
      diskFree: number,
      failedBuilds = 0,
    ): CandidateHost => {
      const usage = (free: number) => ({ capacity: free, used: 0, free });
      const candidate: AllocationCandidate = {
        providerUuid: name,
        name,
        generation: 1,
        resources: { MEMORY_MB: usage(ramFree), VCPU: usage(cpuFree), DISK_GB: usage(diskFree) },
      };
      const state: HostState = {
        host: name,
        nodeUuid: name,
        up: true,
        disabled: false,
        availabilityZone: 'nova',
        cpuArch: 'x86_64',
        hypervisorType: 'kvm',
        failedBuilds,
      };
      return { state, candidate };
    };
    const names = (hosts: CandidateHost[], multipliers = {}) =>
      weighHosts(hosts, defaultWeighers(multipliers)).map((w) => w.host.state.host);

    // RAM spreads: the most free memory wins; raw magnitudes do not matter, only the normalized ones.
    const a = host('a', 8000, 2, 50);
    const b = host('b', 4000, 30, 50);
    const c = host('c', 2000, 2, 50);
    assert.deepEqual(names([c, b, a], { cpu: 0, disk: 0 }), ['a', 'b', 'c']);
    // a: ram 1 + cpu 0 = 1; b: ram 1/3 + cpu 1 = 4/3 → b first although its free RAM is half.
    assert.deepEqual(names([a, b, c], { disk: 0 }), ['b', 'a', 'c']);
    const weighed = weighHosts([a, b, c], defaultWeighers({ disk: 0 }));
    assert.ok(Math.abs((weighed[0]?.weight ?? 0) - 4 / 3) < 1e-9);
    // A negative RAM multiplier stacks: the least free memory first.
    assert.deepEqual(names([a, b, c], { ram: -1, cpu: 0, disk: 0 }), ['c', 'b', 'a']);
    // The DiskWeigher decides when RAM and CPU are equal.
    assert.deepEqual(names([host('d1', 4000, 4, 10), host('d2', 4000, 4, 90)]), ['d2', 'd1']);
    // One failed build outweighs everything else (multiplier −1,000,000).
    assert.deepEqual(names([host('f', 64000, 64, 900, 1), host('g', 1000, 1, 10)]), ['g', 'f']);
    assert.deepEqual(names([host('f', 64000, 64, 900, 1), host('g', 1000, 1, 10)], { buildFailure: 0 }), [
      'f',
      'g',
    ]);
    // One host: weight 0, as Nova returns a single object unweighed.
    assert.equal(weighHosts([a], defaultWeighers())[0]?.weight, 0);
  });

  test('selects the best host by the default weighers, claims it, returns max_attempts − 1 unclaimed alternates', async () => {
    const { scheduler, host } = await cloud([
      { name: 'small', memoryMb: 4608 },
      { name: 'large', memoryMb: 16896 },
      { name: 'medium', memoryMb: 8704 },
      { name: 'medium2', memoryMb: 8704, vcpus: 2 },
    ]);
    const req = request({ maxAttempts: 3 });
    const sel = await scheduler.selectDestinations(req);
    assert.equal(sel.selected.host, host('large').host);
    assert.equal(sel.selected.providerUuid, host('large').nodeUuid);
    assert.deepEqual(
      sel.alternates.map((a) => a.host),
      [host('medium').host, host('small').host],
      'weighed order: small has less free RAM than medium2 but twice its free vCPUs (1 + 0 > 1/3 + 1/3)',
    );
    assert.deepEqual(sel.allocation.resources, { VCPU: 1, MEMORY_MB: 512, DISK_GB: 1 });
    const onSelected = await placement.listAllocations({ providerUuid: host('large').nodeUuid });
    assert.deepEqual(
      onSelected.map((a) => a.consumerUuid),
      [req.instanceUuid],
    );
    for (const alt of sel.alternates) {
      assert.deepEqual(
        await placement.listAllocations({ providerUuid: alt.providerUuid }),
        [],
        'alternates stay unclaimed',
      );
    }
    const one = await scheduler.selectDestinations(request({ maxAttempts: 1 }));
    assert.deepEqual(one.alternates, []);
  });

  test('a retried selection returns the same host and makes no second allocation', async () => {
    const { scheduler } = await cloud([
      { name: 'a', memoryMb: 8704 },
      { name: 'b', memoryMb: 8704 },
    ]);
    const req = request();
    const first = await scheduler.selectDestinations(req);
    const again = await scheduler.selectDestinations(req);
    assert.deepEqual(again.selected, first.selected);
    assert.deepEqual(again.allocation, first.allocation);
    const mine = await placement.getAllocations(req.instanceUuid as string);
    assert.equal(mine?.providerUuid, first.selected.providerUuid);
    assert.deepEqual(await placement.usages(first.selected.providerUuid), {
      VCPU: 1,
      MEMORY_MB: 512,
      DISK_GB: 1,
    });
    await assert.rejects(
      scheduler.selectDestinations({ ...req, excludedHosts: [first.selected.host] }),
      (err) => isCloudError(err, 'BadRequest') && /release them before rescheduling/.test(err.message),
    );
  });

  test('ComputeFilter: hosts down or disabled are never chosen', async () => {
    const { scheduler, host } = await cloud([
      { name: 'down', memoryMb: 32768, up: false },
      { name: 'disabled', memoryMb: 32768, disabled: true },
      { name: 'ok', memoryMb: 4608 },
    ]);
    const sel = await scheduler.selectDestinations(request());
    assert.equal(sel.selected.host, host('ok').host);
    assert.deepEqual(sel.alternates, []);
    const { scheduler: onlyDown } = await cloud([{ name: 'down', up: false }]);
    await assert.rejects(onlyDown.selectDestinations(request()), (err) => {
      assert.ok(isCloudError(err, 'NoValidHost'));
      assert.equal(err.message, NO_VALID_HOST_MESSAGE);
      assert.equal(err.retryable, false);
      assert.equal((err.details.rejectedBy as Record<string, number>).ComputeFilter, 1);
      return true;
    });
  });

  test('ImagePropertiesFilter: hw_architecture and img_hv_type against the host, canonicalized as Nova does', async () => {
    const { scheduler, host } = await cloud([
      { name: 'x86', memoryMb: 16896, cpuArch: 'x86_64', hypervisorType: 'kvm' },
      { name: 'arm', memoryMb: 4608, cpuArch: 'aarch64', hypervisorType: 'kvm' },
      { name: 'qemu', memoryMb: 8704, cpuArch: 'x86_64', hypervisorType: 'QEMU' },
    ]);
    const pick = async (properties: Record<string, unknown>) =>
      (await scheduler.selectDestinations(request({ image: { properties } }))).selected.host;
    assert.equal(await pick({ hw_architecture: 'aarch64' }), host('arm').host);
    assert.equal(await pick({ hw_architecture: 'amd64' }), host('x86').host, 'amd64 is x86_64');
    assert.equal(
      await pick({ architecture: 'aarch64' }),
      host('arm').host,
      'the legacy property name counts too',
    );
    assert.equal(
      await pick({ img_hv_type: 'qemu', hw_architecture: 'aarch64' }),
      host('arm').host,
      'KVM hosts run QEMU guests',
    );
    const kvmOnly = await scheduler.selectDestinations(
      request({ image: { properties: { img_hv_type: 'kvm' } } }),
    );
    assert.notEqual(kvmOnly.selected.host, host('qemu').host);
    assert.ok(
      !kvmOnly.alternates.some((a) => a.host === host('qemu').host),
      'a plain QEMU host cannot run a KVM image',
    );
    await assert.rejects(
      scheduler.selectDestinations(request({ image: { properties: { img_hv_type: 'xen' } } })),
      rejectsWith('NoValidHost'),
    );
    const bogus = request({ image: { properties: { hw_architecture: 'pdp11' } } });
    await assert.rejects(scheduler.selectDestinations(bogus), /Architecture name 'pdp11' is not valid/);
    assert.equal(await placement.getAllocations(bogus.instanceUuid as string), null);
  });

  test('AvailabilityZoneFilter: only hosts of the requested zone', async () => {
    const { scheduler, host } = await cloud([
      { name: 'z1', memoryMb: 16896, availabilityZone: 'az1' },
      { name: 'z2', memoryMb: 4608, availabilityZone: 'az2' },
    ]);
    const sel = await scheduler.selectDestinations(request({ availabilityZone: 'az2' }));
    assert.equal(sel.selected.host, host('z2').host);
    assert.deepEqual(sel.alternates, []);
    await assert.rejects(
      scheduler.selectDestinations(request({ availabilityZone: 'nowhere' })),
      rejectsWith('NoValidHost'),
    );
  });

  test('server groups: affinity keeps members together, anti-affinity apart', async () => {
    const { scheduler, host } = await cloud([
      { name: 'g1', memoryMb: 16896 },
      { name: 'g2', memoryMb: 8704 },
      { name: 'g3', memoryMb: 4608 },
    ]);
    const first = await scheduler.selectDestinations(
      request({ serverGroup: { policy: 'affinity', hosts: [] } }),
    );
    assert.equal(first.selected.host, host('g1').host, 'the first member of an affinity group goes anywhere');
    const together = await scheduler.selectDestinations(
      request({ serverGroup: { policy: 'affinity', hosts: [host('g3').host] } }),
    );
    assert.equal(together.selected.host, host('g3').host);
    assert.deepEqual(together.alternates, [], 'no alternate can keep the affinity');
    const apart = await scheduler.selectDestinations(
      request({ serverGroup: { policy: 'anti-affinity', hosts: [host('g1').host, host('g2').host] } }),
    );
    assert.equal(apart.selected.host, host('g3').host);
    await assert.rejects(
      scheduler.selectDestinations(
        request({
          serverGroup: {
            policy: 'anti-affinity',
            hosts: [host('g1').host, host('g2').host, host('g3').host],
          },
        }),
      ),
      rejectsWith('NoValidHost'),
    );
  });

  test('hosts already tried for this request are excluded, from the selection and the alternates', async () => {
    const { scheduler, host } = await cloud([
      { name: 'e1', memoryMb: 16896 },
      { name: 'e2', memoryMb: 8704 },
      { name: 'e3', memoryMb: 4608 },
    ]);
    const sel = await scheduler.selectDestinations(request({ excludedHosts: [host('e1').host] }));
    assert.equal(sel.selected.host, host('e2').host);
    assert.deepEqual(
      sel.alternates.map((a) => a.host),
      [host('e3').host],
    );
    await assert.rejects(
      scheduler.selectDestinations(
        request({ excludedHosts: [host('e1').host, host('e2').host, host('e3').host] }),
      ),
      rejectsWith('NoValidHost'),
    );
  });

  test('NoValidHost when no host has room; boot from volume needs no disk on the host', async () => {
    const { scheduler, host } = await cloud([{ name: 'tiny-disk', memoryMb: 4608, diskGb: 10 }]);
    const big: SchedulerFlavor = { ...SMALL, memoryMb: 8192 };
    const req = request({ flavor: big });
    await assert.rejects(scheduler.selectDestinations(req), (err) => {
      assert.ok(isCloudError(err, 'NoValidHost'));
      assert.equal(err.message, 'No valid host was found. There are not enough hosts available.');
      return true;
    });
    assert.equal(await placement.getAllocations(req.instanceUuid as string), null);
    await assert.rejects(
      scheduler.selectDestinations(request({ flavor: SMALL })),
      rejectsWith('NoValidHost'),
    );
    const bfv = await scheduler.selectDestinations(
      request({ flavor: { ...SMALL, swapMb: 1536 }, bootFromVolume: true }),
    );
    assert.equal(bfv.selected.host, host('tiny-disk').host);
    assert.deepEqual(
      bfv.allocation.resources,
      { VCPU: 1, MEMORY_MB: 2048, DISK_GB: 2 },
      'swap rounds up to whole GB',
    );
  });

  test('when another request takes the best host first, the claim moves on to the next', async () => {
    const { source, host } = await cloud([
      { name: 'best', memoryMb: 4608, vcpus: 1 },
      { name: 'next', memoryMb: 4096 },
    ]);
    // A racing scheduler fills "best" between our candidate query and our claim.
    let raced = false;
    const racing = {
      listHostStates: async (filter?: HostStateFilter) => {
        if (!raced && filter?.nodeUuids) {
          raced = true;
          await placement.claim({
            consumerUuid: randomUUID(),
            providerUuid: host('best').nodeUuid,
            resources: { VCPU: 1, MEMORY_MB: 4096 },
            projectId: 'other',
            userId: 'other',
          });
        }
        return source.listHostStates(filter);
      },
    };
    const scheduler = new Scheduler({ placement, hosts: racing });
    const sel = await scheduler.selectDestinations(request());
    assert.ok(raced);
    assert.equal(sel.selected.host, host('next').host);
    assert.deepEqual(sel.alternates, [], 'the host that lost its room is no alternate');
  });

  test('claimAlternate: after a failed build the conductor claims an alternate; a full one is refused', async () => {
    const { scheduler, host } = await cloud([
      { name: 'a1', memoryMb: 16896 },
      { name: 'a2', memoryMb: 8704 },
      { name: 'a3', memoryMb: 1024 },
    ]);
    const req = request({ flavor: SMALL });
    const sel = await scheduler.selectDestinations(req);
    assert.equal(sel.selected.host, host('a1').host);
    const [alt] = sel.alternates;
    assert.ok(alt);
    // The build failed on a1: its allocation is released, then the alternate claimed.
    await placement.releaseAllocations(req.instanceUuid as string);
    const claimed = await scheduler.claimAlternate(
      req.instanceUuid as string,
      alt,
      SMALL,
      'project-a',
      'user-a',
    );
    assert.equal(claimed.providerUuid, host('a2').nodeUuid);
    const again = await scheduler.claimAlternate(
      req.instanceUuid as string,
      alt,
      SMALL,
      'project-a',
      'user-a',
    );
    assert.deepEqual(again, claimed, 'idempotent');
    const full = { host: host('a3').host, nodeUuid: host('a3').nodeUuid, providerUuid: host('a3').nodeUuid };
    await assert.rejects(
      scheduler.claimAlternate(randomUUID(), full, SMALL, 'project-a', 'user-a'),
      rejectsWith('AllocationCapacityExceeded'),
    );
    await assert.rejects(
      scheduler.claimAlternate(randomUUID(), { ...full, providerUuid: 'x' }, SMALL, 'project-a', 'user-a'),
      rejectsWith('BadRequest'),
    );
  });

  test('bad requests are BadRequest and change nothing', async () => {
    const { scheduler } = await cloud([{ name: 'v1' }]);
    const before = (await placement.listAllocations()).length;
    const bad: Array<Partial<SelectDestinationsRequest> | Record<string, unknown>> = [
      { instanceUuid: 'nope' },
      { flavor: { ...TINY, vcpus: 0 } },
      { flavor: { ...TINY, memoryMb: -1 } },
      { maxAttempts: 0 },
      { serverGroup: { policy: 'no-affinity', hosts: [] } },
      { color: 'red' },
    ];
    for (const b of bad) {
      await assert.rejects(
        scheduler.selectDestinations(request(b as Partial<SelectDestinationsRequest>)),
        rejectsWith('BadRequest'),
      );
    }
    assert.equal((await placement.listAllocations()).length, before);
  });

  test('200 parallel selections against room for exactly 100 instances: 100 placed, 100 NoValidHost, no over-commit', async () => {
    // Five hosts of 20 tiny instances each (memory-bound: (10752 − 512) / 512 = 20).
    const { source, host } = await cloud(
      ['r1', 'r2', 'r3', 'r4', 'r5'].map((name) => ({ name, memoryMb: 10752, vcpus: 8, diskGb: 100 })),
    );
    const second = testDbDialect === 'sqlite' ? placement : await Placement.open({ db: testDb.config });
    try {
      const schedulers = [
        new Scheduler({ placement, hosts: source }),
        new Scheduler({ placement: second, hosts: source }),
      ];
      const requests = Array.from({ length: 200 }, () => request({ projectId: 'race-200' }));
      const results = await Promise.allSettled(
        requests.map((r, i) => (schedulers[i % 2] as Scheduler).selectDestinations(r)),
      );
      const placed = results.filter((r) => r.status === 'fulfilled');
      const refused = results.filter((r) => r.status === 'rejected');
      assert.equal(placed.length, 100);
      for (const r of refused) assert.ok(isCloudError(r.reason, 'NoValidHost'), String(r.reason));
      for (const name of ['r1', 'r2', 'r3', 'r4', 'r5']) {
        const usage = await placement.usages(host(name).nodeUuid);
        assert.equal(usage.MEMORY_MB, 20 * 512, `${name} is exactly full, never over`);
      }
      const allocations = await placement.listAllocations({ projectId: 'race-200' });
      assert.equal(allocations.length, 100);
      const placedUuids = new Set(placed.map((r) => r.value.allocation.consumerUuid));
      assert.deepEqual(new Set(allocations.map((a) => a.consumerUuid)), placedUuids);
      for (const r of placed) {
        assert.ok(!r.value.alternates.some((a) => a.host === r.value.selected.host));
      }
      assert.deepEqual(await placement.auditUsage(), []);
    } finally {
      if (second !== placement) await second.close();
    }
  });

  test('selection over 2,000 hosts: the best host, and a zone found beyond the first page of candidates', async () => {
    const n = 2000;
    const states = await seedHosts(placement, n);
    const source = new StaticHostStateSource(states);
    const scheduler = new Scheduler({ placement, hosts: source });
    const expected = states.reduce((best, s) => (s.memFree > best.memFree ? s : best));
    const timings: number[] = [];
    let sel: Selection | undefined;
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      sel = await scheduler.selectDestinations(request({ availabilityZone: 'bulk' }));
      timings.push(performance.now() - started);
      await placement.releaseAllocations(sel.allocation.consumerUuid);
    }
    assert.equal(sel?.selected.host, expected.host);
    timings.sort((a, b) => a - b);
    assert.ok((timings[2] ?? 0) < 1000, `median selection ${timings[2]?.toFixed(1)} ms`);
    // The only host of zone 'far' has the least free memory of all: it is beyond many pages of candidates.
    const far = states.reduce((worst, s) => (s.memFree < worst.memFree ? s : worst));
    source.update(far.host, { availabilityZone: 'far' });
    const farSel = await scheduler.selectDestinations(request({ availabilityZone: 'far' }));
    assert.equal(farSel.selected.host, far.host);
  });
});

/** Bulk seed in one transaction: providers of distinct sizes in zone 'bulk', and their host states. */
async function seedHosts(placement: Placement, n: number): Promise<Array<HostState & { memFree: number }>> {
  const now = Date.now();
  const states: Array<HostState & { memFree: number }> = [];
  await placement.database.transaction(async (trx) => {
    for (let start = 0; start < n; start += 250) {
      const providers = [];
      const inventories = [];
      for (let i = start; i < Math.min(n, start + 250); i++) {
        const uuid = randomUUID();
        const host = `bulk-${i}-${uuid.slice(0, 6)}`;
        const memTotal = 4096 + i * 8 + 512;
        providers.push({ uuid, name: host, generation: 1, created_at: now, updated_at: now });
        const common = { min_unit: 1, step_size: 1, reserved: 0, used: 0 };
        inventories.push(
          {
            provider_uuid: uuid,
            resource_class: 'VCPU',
            total: 8,
            max_unit: 8,
            allocation_ratio: 4,
            ...common,
          },
          {
            provider_uuid: uuid,
            resource_class: 'MEMORY_MB',
            total: memTotal,
            max_unit: memTotal,
            allocation_ratio: 1,
            ...common,
            reserved: 512,
          },
          {
            provider_uuid: uuid,
            resource_class: 'DISK_GB',
            total: 200,
            max_unit: 200,
            allocation_ratio: 1,
            ...common,
          },
        );
        states.push({
          host,
          nodeUuid: uuid,
          up: true,
          disabled: false,
          availabilityZone: 'bulk',
          cpuArch: 'x86_64',
          hypervisorType: 'kvm',
          failedBuilds: 0,
          memFree: memTotal - 512,
        });
      }
      await trx.insertInto('resource_providers').values(providers).execute();
      await trx.insertInto('inventories').values(inventories).execute();
    }
  });
  if (placement.database.dialect === 'mysql')
    await sql`analyze table inventories, resource_providers`.execute(placement.database.db);
  return states;
}
