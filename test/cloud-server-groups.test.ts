/**
 * Server groups in the cloud: Nova's rows and quotas (groups per project, members per group), membership
 * written with the instance and removed with it, and the scheduler placing a group's members by its policy
 * (hard filters, max_server_per_host, soft weighers) from the group Nova records, over several hosts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ManualClock } from '../cloud/clock';
import { isCloudError, type CloudErrorType } from '../cloud/errors';
import { Nova, type CreateInstanceRequest, type NovaDb } from '../cloud/nova';
import { Placement } from '../cloud/placement';
import {
  Scheduler,
  StaticHostStateSource,
  type HostState,
  type SelectDestinationsRequest,
  type WeightMultipliers,
} from '../cloud/scheduler';
import { testDbConfig, type TestDb } from './helpers/cloud-db';

const USER = 'user-a';
const TINY = { id: '1', name: 'm1.tiny', vcpus: 1, memoryMb: 512, rootGb: 1, ephemeralGb: 0, swapMb: 0 };

function isType(type: CloudErrorType, message?: RegExp) {
  return (err: unknown) => isCloudError(err, type) && (!message || message.test(err.message));
}

const TABLES: Array<keyof NovaDb> = [
  'instances',
  'instance_groups',
  'instance_group_members',
  'quota_allocations',
];

async function snapshot(nova: Nova): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const table of TABLES) {
    const rows = await nova.store.db.selectFrom(table).selectAll().execute();
    out[table] = rows.map((r) => JSON.stringify(r)).sort();
  }
  return out;
}

describe('server groups', () => {
  let testDb: TestDb;
  let nova: Nova;
  let placement: Placement;
  const clock = new ManualClock(Date.UTC(2026, 0, 1));

  before(async () => {
    testDb = testDbConfig('server-groups');
    nova = await Nova.open({ db: testDb.config, clock });
    placement = await Placement.open({ db: testDb.config, clock });
    await nova.ensureDefaultFlavors();
  });
  after(async () => {
    await placement?.close();
    await nova?.close();
    await testDb?.cleanup();
  });

  const project = () => `project-${randomUUID().slice(0, 8)}`;

  function boot(projectId: string, serverGroup?: string): CreateInstanceRequest {
    return {
      uuid: randomUUID(),
      requestId: `req-${randomUUID()}`,
      name: 'member',
      projectId,
      userId: USER,
      flavor: 'm1.tiny',
      imageRef: 'image-id',
      networks: [],
      ...(serverGroup ? { serverGroup } : {}),
    };
  }

  describe('in Nova', () => {
    test('create, show, list, delete; bad input is BadRequest and writes nothing', async () => {
      const p = project();
      const a = await nova.createServerGroup({ name: 'web', projectId: p, userId: USER, policy: 'affinity' });
      const b = await nova.createServerGroup({
        name: 'db',
        projectId: p,
        userId: USER,
        policy: 'anti-affinity',
        rules: { max_server_per_host: 2 },
      });
      assert.deepEqual(await nova.getServerGroup(b.uuid), { ...b, members: [] });
      assert.deepEqual(b.rules, { max_server_per_host: 2 });
      assert.deepEqual(
        (await nova.listServerGroups({ projectId: p })).map((g) => g.uuid).sort(),
        [a.uuid, b.uuid].sort(),
      );
      assert.equal((await nova.listServerGroups({ projectId: p, limit: 1, offset: 1 })).length, 1);
      assert.equal(await nova.countServerGroups(p), 2);

      const before = await snapshot(nova);
      const bad: unknown[] = [
        { name: 'x', projectId: p, userId: USER, policy: 'legacy' },
        { name: '   ', projectId: p, userId: USER, policy: 'affinity' },
        { name: 'x', projectId: p, userId: USER, policy: 'affinity', rules: { max_server_per_host: 2 } },
        { name: 'x', projectId: p, userId: USER, policy: 'anti-affinity', rules: { max_server_per_host: 0 } },
        { name: 'x', projectId: p, userId: USER, policy: 'anti-affinity', rules: { color: 'red' } },
      ];
      for (const input of bad) {
        await assert.rejects(
          nova.createServerGroup(input as Parameters<Nova['createServerGroup']>[0]),
          isType('BadRequest'),
        );
      }
      assert.deepEqual(await snapshot(nova), before);

      await nova.deleteServerGroup(a.uuid);
      await assert.rejects(
        nova.getServerGroup(a.uuid),
        isType('NotFound', /Instance group .* could not be found/),
      );
      await assert.rejects(nova.deleteServerGroup(a.uuid), isType('NotFound'));
      await assert.rejects(nova.getServerGroup('not-a-uuid'), isType('NotFound'));
    });

    test('the server_groups quota: the 11th group of a project is refused and not written', async () => {
      const p = project();
      for (let i = 0; i < 10; i++)
        await nova.createServerGroup({ name: `g${i}`, projectId: p, userId: USER, policy: 'affinity' });
      const before = await snapshot(nova);
      await assert.rejects(
        nova.createServerGroup({ name: 'g10', projectId: p, userId: USER, policy: 'affinity' }),
        isType('QuotaExceeded', /^Quota exceeded, too many server groups\.$/),
      );
      assert.deepEqual(await snapshot(nova), before);
      // Another project has its own count.
      await nova.createServerGroup({ name: 'g0', projectId: project(), userId: USER, policy: 'affinity' });
    });

    test('members join with the instance, leave when it is deleted; the 11th member is refused with no row', async () => {
      const p = project();
      const group = await nova.createServerGroup({
        name: 'g',
        projectId: p,
        userId: USER,
        policy: 'anti-affinity',
      });
      const members: string[] = [];
      for (let i = 0; i < 10; i++) members.push((await nova.createInstance(boot(p, group.uuid))).uuid);
      assert.deepEqual([...(await nova.getServerGroup(group.uuid)).members].sort(), [...members].sort());
      assert.equal((await nova.serverGroupsOf([members[0]!])).get(members[0]!), group.uuid);

      const before = await snapshot(nova);
      const eleventh = boot(p, group.uuid);
      await assert.rejects(
        nova.createInstance(eleventh, { instances: 1, cores: 1, ram: 512 }),
        isType('QuotaExceeded', /^Quota exceeded, too many servers in group$/),
      );
      assert.deepEqual(await snapshot(nova), before, 'neither the instance, its quota nor a member row');

      await nova.softDeleteInstance(members[0]!);
      assert.equal((await nova.getServerGroup(group.uuid)).members.length, 9);
      assert.equal((await nova.serverGroupsOf([members[0]!])).size, 0);
      await nova.createInstance(eleventh);
      assert.equal((await nova.getServerGroup(group.uuid)).members.length, 10);

      // A group that is gone: the boot is refused and nothing is written.
      const gone = await nova.createServerGroup({
        name: 'gone',
        projectId: p,
        userId: USER,
        policy: 'affinity',
      });
      await nova.deleteServerGroup(gone.uuid);
      const snap = await snapshot(nova);
      await assert.rejects(nova.createInstance(boot(p, gone.uuid)), isType('NotFound', /Instance group/));
      assert.deepEqual(await snapshot(nova), snap);
    });

    test('deleting a group removes its members rows, not the instances', async () => {
      const p = project();
      const group = await nova.createServerGroup({
        name: 'g',
        projectId: p,
        userId: USER,
        policy: 'affinity',
      });
      const member = await nova.createInstance(boot(p, group.uuid));
      await nova.deleteServerGroup(group.uuid);
      assert.equal((await nova.serverGroupsOf([member.uuid])).size, 0);
      assert.equal((await nova.getInstance(member.uuid)).deleted, false);
      assert.equal(await nova.schedulingGroupOf(member.uuid), null);
    });
  });

  describe('scheduling', () => {
    /** Hosts with room for many tiny guests each, and a scheduler that reads the groups from Nova. */
    async function cloud(names: string[], weights?: WeightMultipliers) {
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
      const scheduler = new Scheduler({ placement, hosts, groups: nova, ...(weights ? { weights } : {}) });
      const p = project();
      const member = async (groupUuid: string) => (await nova.createInstance(boot(p, groupUuid))).uuid;
      const request = (instanceUuid: string): SelectDestinationsRequest => ({
        instanceUuid,
        projectId: p,
        userId: USER,
        flavor: TINY,
        maxAttempts: 3,
      });
      const group = async (
        policy: 'affinity' | 'anti-affinity' | 'soft-affinity' | 'soft-anti-affinity',
        rules?: { max_server_per_host: number },
      ) =>
        (
          await nova.createServerGroup({
            name: 'g',
            projectId: p,
            userId: USER,
            policy,
            ...(rules ? { rules } : {}),
          })
        ).uuid;
      const hostName = (name: string) => `${name}-${tag}`;
      return { scheduler, member, request, group, hostName };
    }

    test('anti-affinity spreads the members over the hosts; one more than the hosts is NoValidHost', async () => {
      const { scheduler, member, request, group, hostName } = await cloud(['a1', 'a2', 'a3']);
      const g = await group('anti-affinity');
      const placed: string[] = [];
      for (let i = 0; i < 3; i++)
        placed.push((await scheduler.selectDestinations(request(await member(g)))).selected.host);
      assert.deepEqual([...placed].sort(), [hostName('a1'), hostName('a2'), hostName('a3')].sort());
      const fourth = await member(g);
      await assert.rejects(scheduler.selectDestinations(request(fourth)), isType('NoValidHost'));
      assert.equal(await placement.getAllocations(fourth), null, 'nothing claimed for the refused member');
      // An instance outside the group still fits anywhere.
      const outsider = (await nova.createInstance(boot('other-project'))).uuid;
      await scheduler.selectDestinations({ ...request(outsider), projectId: 'other-project' });
    });

    test('anti-affinity members scheduled at the same time still land on different hosts', async () => {
      const { scheduler, member, request, group } = await cloud(['p1', 'p2', 'p3']);
      const g = await group('anti-affinity');
      const uuids = [await member(g), await member(g), await member(g)];
      const selections = await Promise.all(uuids.map((u) => scheduler.selectDestinations(request(u))));
      assert.equal(new Set(selections.map((s) => s.selected.host)).size, 3);
    });

    test('affinity packs the members on the first one’s host, with no alternate elsewhere', async () => {
      const { scheduler, member, request, group } = await cloud(['f1', 'f2', 'f3']);
      const g = await group('affinity');
      const first = await scheduler.selectDestinations(request(await member(g)));
      for (let i = 0; i < 3; i++) {
        const next = await scheduler.selectDestinations(request(await member(g)));
        assert.equal(next.selected.host, first.selected.host);
        assert.deepEqual(next.alternates, []);
      }
    });

    test('affinity with the members’ host full is NoValidHost, not another host', async () => {
      const { scheduler, member, request, group } = await cloud(['n1', 'n2']);
      const g = await group('affinity');
      const first = await scheduler.selectDestinations(request(await member(g)));
      // Fill the host: a consumer outside the group takes the rest of its memory (512 MB are reserved).
      await placement.claim({
        consumerUuid: randomUUID(),
        providerUuid: first.selected.providerUuid,
        resources: { MEMORY_MB: 16896 - 512 - 512 },
        projectId: 'filler',
        userId: 'filler',
      });
      await assert.rejects(scheduler.selectDestinations(request(await member(g))), isType('NoValidHost'));
    });

    test('max_server_per_host: 2 lets two members share a host, and no third', async () => {
      const { scheduler, member, request, group } = await cloud(['m1', 'm2']);
      const g = await group('anti-affinity', { max_server_per_host: 2 });
      const placed: string[] = [];
      for (let i = 0; i < 4; i++)
        placed.push((await scheduler.selectDestinations(request(await member(g)))).selected.host);
      const perHost = new Map<string, number>();
      for (const h of placed) perHost.set(h, (perHost.get(h) ?? 0) + 1);
      assert.deepEqual([...perHost.values()], [2, 2]);
      await assert.rejects(scheduler.selectDestinations(request(await member(g))), isType('NoValidHost'));
    });

    test('a failed member’s delete frees its host for the group', async () => {
      const { scheduler, member, request, group } = await cloud(['d1']);
      const g = await group('anti-affinity');
      const first = await member(g);
      await scheduler.selectDestinations(request(first));
      const second = await member(g);
      await assert.rejects(scheduler.selectDestinations(request(second)), isType('NoValidHost'));
      // The first member is deleted (its allocation and membership go): the second fits now.
      await placement.releaseAllocations(first);
      await nova.softDeleteInstance(first);
      await scheduler.selectDestinations(request(second));
    });

    test('an alternate that a later member took is refused (the late check), a free one is claimed', async () => {
      const { scheduler, member, request, group } = await cloud(['l1', 'l2', 'l3']);
      const g = await group('anti-affinity');
      await scheduler.selectDestinations(request(await member(g)));
      const b = await member(g);
      const sel = await scheduler.selectDestinations(request(b));
      assert.equal(sel.alternates.length, 1);
      const alternate = sel.alternates[0]!;
      // A third member takes the alternate's host while b builds; b's build then fails on its host.
      const c = await scheduler.selectDestinations(request(await member(g)));
      assert.equal(c.selected.host, alternate.host);
      await placement.releaseAllocations(b);
      await assert.rejects(
        scheduler.claimAlternate(b, alternate, TINY, request(b).projectId, USER),
        isType('Conflict', /no longer fits the anti-affinity policy/),
      );
      assert.equal(await placement.getAllocations(b), null);
      // Its own host, where no other member runs, still fits: that claim goes through.
      await scheduler.claimAlternate(b, sel.selected, TINY, request(b).projectId, USER);
    });

    test('soft-anti-affinity prefers hosts without members and never fails for them', async () => {
      const { scheduler, member, request, group } = await cloud(['s1', 's2']);
      const g = await group('soft-anti-affinity');
      const a = (await scheduler.selectDestinations(request(await member(g)))).selected.host;
      const b = (await scheduler.selectDestinations(request(await member(g)))).selected.host;
      assert.notEqual(a, b);
      await scheduler.selectDestinations(request(await member(g)));
    });

    test('soft-affinity (its multiplier over the resource weighers) stacks the members', async () => {
      const { scheduler, member, request, group } = await cloud(['t1', 't2', 't3'], { softAffinity: 10 });
      const g = await group('soft-affinity');
      const first = (await scheduler.selectDestinations(request(await member(g)))).selected.host;
      for (let i = 0; i < 2; i++)
        assert.equal((await scheduler.selectDestinations(request(await member(g)))).selected.host, first);
    });
  });
});
