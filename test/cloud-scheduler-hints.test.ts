/**
 * The same_host / different_host scheduler hints (Nova's SameHostFilter and DifferentHostFilter): kept
 * with the instance by Nova (migration 012), read by the scheduler by the instance's uuid as its server
 * group is, each named instance turned into its host (its placement allocation, else the host Nova
 * recorded), over several hosts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ManualClock } from '../cloud/clock';
import { isCloudError } from '../cloud/errors';
import { Nova, type CreateInstanceRequest } from '../cloud/nova';
import { Placement } from '../cloud/placement';
import {
  DEFAULT_FILTERS,
  Scheduler,
  StaticHostStateSource,
  type HostState,
  type SelectDestinationsRequest,
} from '../cloud/scheduler';
import { testDbConfig, type TestDb } from './helpers/cloud-db';

const USER = 'user-a';
const TINY = { id: '1', name: 'm1.tiny', vcpus: 1, memoryMb: 512, rootGb: 1, ephemeralGb: 0, swapMb: 0 };

describe('scheduler hints same_host / different_host', () => {
  let testDb: TestDb;
  let nova: Nova;
  let placement: Placement;
  const clock = new ManualClock(Date.UTC(2026, 0, 1));

  before(async () => {
    testDb = testDbConfig('scheduler-hints');
    nova = await Nova.open({ db: testDb.config, clock });
    placement = await Placement.open({ db: testDb.config, clock });
    await nova.ensureDefaultFlavors();
  });
  after(async () => {
    await placement?.close();
    await nova?.close();
    await testDb?.cleanup();
  });

  /** Hosts with room for many tiny guests each, and a scheduler that reads the hints from Nova. */
  async function cloud(names: string[]) {
    const tag = randomUUID().slice(0, 6);
    const states: HostState[] = [];
    for (const name of names) {
      const nodeUuid = randomUUID();
      const host = `${name}-${tag}`;
      await placement.ensureResourceProvider({
        uuid: nodeUuid,
        name: host,
        inventories: { VCPU: { total: 16 }, MEMORY_MB: { total: 16896 }, DISK_GB: { total: 200 } },
      });
      states.push({
        host,
        nodeUuid,
        up: true,
        disabled: false,
        availabilityZone: 'nova',
        cpuArch: 'x86_64',
        hypervisorType: 'kvm',
        failedBuilds: 0,
      });
    }
    const hosts = new StaticHostStateSource(states);
    // maxPlacementResults 1: the hosts the hints rule out must not hide the others behind a page.
    const scheduler = new Scheduler({ placement, hosts, groups: nova, hints: nova, maxPlacementResults: 1 });
    const projectId = `project-${randomUUID().slice(0, 8)}`;
    const create = async (schedulerHints?: CreateInstanceRequest['schedulerHints']) => {
      const input: CreateInstanceRequest = {
        uuid: randomUUID(),
        requestId: `req-${randomUUID()}`,
        name: 'vm',
        projectId,
        userId: USER,
        flavor: 'm1.tiny',
        imageRef: 'image-id',
        networks: [],
        ...(schedulerHints ? { schedulerHints } : {}),
      };
      return (await nova.createInstance(input)).uuid;
    };
    const request = (instanceUuid: string): SelectDestinationsRequest => ({
      instanceUuid,
      projectId,
      userId: USER,
      flavor: TINY,
      maxAttempts: 3,
    });
    const place = async (schedulerHints?: CreateInstanceRequest['schedulerHints']) => {
      const uuid = await create(schedulerHints);
      return { uuid, selection: await scheduler.selectDestinations(request(uuid)) };
    };
    return { scheduler, create, request, place, hostName: (n: string) => `${n}-${tag}` };
  }

  test('Nova keeps the hints with the instance; an empty hint is no hint', async () => {
    const { create } = await cloud(['k1']);
    const other = randomUUID();
    const hinted = await create({ sameHost: [other], differentHost: [] });
    const row = await nova.store.db
      .selectFrom('instances')
      .select(['scheduler_hints'])
      .where('uuid', '=', hinted)
      .executeTakeFirstOrThrow();
    assert.deepEqual(JSON.parse(row.scheduler_hints!), { sameHost: [other], differentHost: [] });
    // The named instance does not exist: same_host names no host at all; the empty list is left out.
    assert.deepEqual(await nova.schedulingHintsOf(hinted), { sameHost: [] });
    const plain = await create();
    assert.equal(
      (
        await nova.store.db
          .selectFrom('instances')
          .select('scheduler_hints')
          .where('uuid', '=', plain)
          .executeTakeFirstOrThrow()
      ).scheduler_hints,
      null,
    );
    assert.equal(await nova.schedulingHintsOf(plain), null);
  });

  test('same_host: the named instance’s host and no alternate elsewhere', async () => {
    const { place } = await cloud(['s1', 's2', 's3']);
    const first = await place();
    for (let i = 0; i < 3; i++) {
      const next = await place({ sameHost: [first.uuid] });
      assert.equal(next.selection.selected.host, first.selection.selected.host);
      assert.deepEqual(next.selection.alternates, []);
    }
  });

  test('different_host: never a named instance’s host; every host named is NoValidHost, nothing claimed', async () => {
    const { place, create, scheduler, request } = await cloud(['d1', 'd2', 'd3']);
    const a = await place();
    const b = await place({ differentHost: [a.uuid] });
    assert.notEqual(b.selection.selected.host, a.selection.selected.host);
    const c = await place({ differentHost: [a.uuid, b.uuid] });
    const used = [a, b, c].map((p) => p.selection.selected.host);
    assert.equal(new Set(used).size, 3);
    for (const alt of c.selection.alternates) assert.ok(!used.slice(0, 2).includes(alt.host));
    const refused = await create({ differentHost: [a.uuid, b.uuid, c.uuid] });
    await assert.rejects(scheduler.selectDestinations(request(refused)), (err) =>
      isCloudError(err, 'NoValidHost'),
    );
    assert.equal(await placement.getAllocations(refused), null);
  });

  test('same_host naming an instance placed nowhere (or unknown) is NoValidHost', async () => {
    const { create, scheduler, request } = await cloud(['u1', 'u2']);
    const unplaced = await create();
    for (const named of [unplaced, randomUUID(), 'not-a-uuid']) {
      const uuid = await create({ sameHost: [named] });
      await assert.rejects(scheduler.selectDestinations(request(uuid)), (err) =>
        isCloudError(err, 'NoValidHost'),
      );
      assert.equal(await placement.getAllocations(uuid), null);
    }
  });

  test('an instance with no allocation counts on the host Nova recorded; a deleted one nowhere', async () => {
    const { create, place, hostName } = await cloud(['r1', 'r2']);
    const recorded = await create();
    await nova.updateInstance(recorded, { host: hostName('r2') });
    const same = await place({ sameHost: [recorded] });
    assert.equal(same.selection.selected.host, hostName('r2'));
    const different = await place({ differentHost: [recorded] });
    assert.equal(different.selection.selected.host, hostName('r1'));
    await nova.softDeleteInstance(recorded);
    const later = await place({ differentHost: [recorded] });
    assert.ok([hostName('r1'), hostName('r2')].includes(later.selection.selected.host));
  });

  test('the filters are enabled by default after the server group ones, as DevStack enables them', () => {
    const names = DEFAULT_FILTERS.map((f) => f.name);
    assert.deepEqual(names.slice(-2), ['SameHostFilter', 'DifferentHostFilter']);
  });
});
