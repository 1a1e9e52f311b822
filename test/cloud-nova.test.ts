import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ManualClock } from '../cloud/clock';
import { isCloudError, type CloudErrorType } from '../cloud/errors';
import {
  Nova,
  POWER_STATES,
  TASK_STATES,
  VM_STATES,
  statusFromState,
  type CreateInstanceRequest,
  type NovaDb,
} from '../cloud/nova';
import type { HostStateSource as SchedulerHostStateSource } from '../cloud/scheduler/host-state';
import { testDbConfig, type TestDb } from './helpers/cloud-db';

const PROJECT = 'demo-project';
const USER = 'demo-user';

function isType(type: CloudErrorType, message?: RegExp) {
  return (err: unknown) => isCloudError(err, type) && (!message || message.test(err.message));
}

const TABLES: Array<keyof NovaDb> = [
  'flavors',
  'instances',
  'instance_faults',
  'instance_actions',
  'instance_actions_events',
  'quotas',
  'quota_usages',
  'quota_allocations',
  'services',
  'compute_nodes',
];

/** Every row of every nova table, in a stable order: "nothing changed" means this is deep-equal. */
async function snapshot(nova: Nova): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {};
  for (const table of TABLES) {
    const rows = await nova.store.db.selectFrom(table).selectAll().execute();
    out[table] = rows.map((r) => JSON.stringify(r)).sort();
  }
  return out;
}

function bootRequest(overrides: Partial<CreateInstanceRequest> = {}): CreateInstanceRequest {
  return {
    uuid: randomUUID(),
    requestId: `req-${randomUUID()}`,
    name: 'vm1',
    projectId: PROJECT,
    userId: USER,
    flavor: 'm1.tiny',
    imageRef: 'cirros-image-id',
    networks: ['private-net-id'],
    ...overrides,
  };
}

describe('nova', () => {
  let testDb: TestDb;
  let nova: Nova;
  const clock = new ManualClock(Date.UTC(2025, 0, 1));

  before(async () => {
    testDb = testDbConfig('nova');
    nova = await Nova.open({ db: testDb.config, clock });
    await nova.ensureDefaultFlavors();
  });
  after(async () => {
    await nova?.close();
    await testDb?.cleanup();
  });

  describe('flavors', () => {
    test('the DevStack defaults, seeded once', async () => {
      await nova.ensureDefaultFlavors();
      const flavors = await nova.listFlavors();
      assert.deepEqual(
        flavors.map((f) => [f.id, f.name, f.vcpus, f.memoryMb, f.rootGb]),
        [
          ['1', 'm1.tiny', 1, 512, 1],
          ['2', 'm1.small', 1, 2048, 20],
          ['3', 'm1.medium', 2, 4096, 40],
          ['4', 'm1.large', 4, 8192, 80],
          ['5', 'm1.xlarge', 8, 16384, 160],
        ],
      );
      assert.equal((await nova.getFlavor('3')).name, 'm1.medium');
      assert.equal((await nova.getFlavor('m1.large')).id, '4');
      await assert.rejects(
        nova.getFlavor('m1.huge'),
        isType('NotFound', /Flavor m1.huge could not be found/),
      );
    });
  });

  describe('states', () => {
    test('API status follows Nova’s state map', () => {
      assert.equal(statusFromState('building', 'scheduling'), 'BUILD');
      assert.equal(statusFromState('building', 'deleting'), 'BUILD');
      assert.equal(statusFromState('active', null), 'ACTIVE');
      // An active server being deleted is still ACTIVE (deleting has no entry in _STATE_MAP).
      assert.equal(statusFromState('active', 'deleting'), 'ACTIVE');
      assert.equal(statusFromState('error', 'spawning'), 'ERROR');
      assert.equal(statusFromState('error', null), 'ERROR');
      assert.equal(statusFromState('stopped', null), 'SHUTOFF');
      assert.equal(statusFromState('deleted', null), 'DELETED');
      assert.equal(statusFromState('bogus', null), 'UNKNOWN');
      assert.deepEqual(POWER_STATES, {
        NOSTATE: 0,
        RUNNING: 1,
        PAUSED: 3,
        SHUTDOWN: 4,
        CRASHED: 6,
        SUSPENDED: 7,
      });
    });
  });

  describe('instances', () => {
    test('create: building/scheduling/NOSTATE, flavor copied, create action recorded', async () => {
      const req = bootRequest({ availabilityZone: 'nova' });
      const inst = await nova.createInstance(req);
      assert.equal(inst.vmState, VM_STATES.BUILDING);
      assert.equal(inst.taskState, TASK_STATES.SCHEDULING);
      assert.equal(inst.powerState, POWER_STATES.NOSTATE);
      assert.equal(nova.apiStatus(inst), 'BUILD');
      assert.deepEqual(inst.flavor, {
        id: '1',
        name: 'm1.tiny',
        vcpus: 1,
        memoryMb: 512,
        rootGb: 1,
        ephemeralGb: 0,
        swapMb: 0,
      });
      assert.deepEqual(inst.networks, ['private-net-id']);
      assert.equal(inst.host, null);
      assert.equal(inst.createdAt, clock.now());
      const row = await nova.store.db
        .selectFrom('instances')
        .selectAll()
        .where('uuid', '=', req.uuid)
        .executeTakeFirstOrThrow();
      assert.equal(row.vcpus, 1);
      assert.equal(row.memory_mb, 512);
      assert.equal(row.deleted, 0);
      const actions = await nova.listActions(req.uuid);
      assert.equal(actions.length, 1);
      assert.equal(actions[0]?.action, 'create');
      assert.equal(actions[0]?.requestId, req.requestId);
      assert.deepEqual(await nova.getInstance(req.uuid), inst);
    });

    test('create is idempotent by uuid and by request id; a reused uuid is refused', async () => {
      const req = bootRequest();
      const [a, b] = await Promise.all([nova.createInstance(req), nova.createInstance(req)]);
      assert.deepEqual(a, b);
      const again = await nova.createInstance({ ...req, uuid: randomUUID() });
      assert.equal(again.uuid, req.uuid, 'a retry with the same request id returns the first instance');
      await assert.rejects(
        nova.createInstance({ ...req, requestId: 'req-other' }),
        isType('Conflict', /already exists for another request/),
      );
      const rows = await nova.store.db
        .selectFrom('instances')
        .select('uuid')
        .where('request_id', '=', req.requestId)
        .execute();
      assert.equal(rows.length, 1);
      assert.equal((await nova.listActions(req.uuid)).length, 1);
    });

    test('boot from volume needs no image; boot from image does', async () => {
      const inst = await nova.createInstance(bootRequest({ imageRef: undefined, bootFromVolume: true }));
      assert.equal(inst.bootFromVolume, true);
      assert.equal(inst.imageRef, null);
      await assert.rejects(
        nova.createInstance(bootRequest({ imageRef: undefined })),
        isType('BadRequest', /imageRef/),
      );
    });

    test('the conductor’s path: guarded updates through the build to ACTIVE', async () => {
      const req = bootRequest();
      await nova.createInstance(req);
      const steps: Array<[string | null, string | null]> = [
        [TASK_STATES.SCHEDULING, TASK_STATES.NETWORKING],
        [TASK_STATES.NETWORKING, TASK_STATES.BLOCK_DEVICE_MAPPING],
        [TASK_STATES.BLOCK_DEVICE_MAPPING, TASK_STATES.SPAWNING],
      ];
      for (const [from, to] of steps) {
        await nova.updateInstance(
          req.uuid,
          { taskState: to as 'networking', host: 'compute1', node: 'compute1' },
          { expectedTaskState: from as 'scheduling' },
        );
      }
      clock.advance(5000);
      const active = await nova.updateInstance(
        req.uuid,
        { vmState: 'active', taskState: null, powerState: POWER_STATES.RUNNING, launchedAt: clock.now() },
        { expectedTaskState: 'spawning' },
      );
      assert.equal(nova.apiStatus(active), 'ACTIVE');
      assert.equal(active.host, 'compute1');
      assert.equal(active.launchedAt, clock.now());
      assert.equal(active.updatedAt, clock.now());
      const row = await nova.store.db
        .selectFrom('instances')
        .selectAll()
        .where('uuid', '=', req.uuid)
        .executeTakeFirstOrThrow();
      assert.equal(row.vm_state, 'active');
      assert.equal(row.task_state, null);
      assert.equal(row.power_state, 1);
    });

    test('the conductor’s build steps run again after the build went on: done, not a conflict', async () => {
      // A local activity whose workflow task was lost runs again with the steps after it already done.
      const req = bootRequest();
      await nova.createInstance(req);
      const step = { instanceUuid: req.uuid, requestId: req.requestId };
      const setHost = () => nova.conductor.setHost({ ...step, host: 'compute1', nodeUuid: 'node-1' });
      const networking = () =>
        nova.conductor.setTaskState({ ...step, taskState: 'networking', expected: 'scheduling' });
      await setHost();
      await networking();
      await nova.conductor.setTaskState({
        ...step,
        taskState: 'block_device_mapping',
        expected: 'networking',
      });
      await setHost();
      await networking();
      const inst = await nova.getInstance(req.uuid);
      assert.equal(inst.taskState, 'block_device_mapping');
      assert.equal(inst.host, 'compute1');
      // Another host, or a delete that took over: still Nova's UnexpectedTaskStateError.
      await assert.rejects(
        nova.conductor.setHost({ ...step, host: 'compute2', nodeUuid: 'node-2' }),
        isType('Conflict'),
      );
      await nova.updateInstance(req.uuid, { taskState: 'deleting' });
      await assert.rejects(networking(), isType('Conflict'));
      await assert.rejects(setHost(), isType('Conflict'));
      assert.equal((await nova.getInstance(req.uuid)).taskState, 'deleting');
    });

    test('UnexpectedTaskState: a delete that started meanwhile wins, nothing is overwritten', async () => {
      const req = bootRequest();
      await nova.createInstance(req);
      await nova.updateInstance(req.uuid, { taskState: 'spawning' }, { expectedTaskState: 'scheduling' });
      await nova.updateInstance(req.uuid, { taskState: 'deleting' });
      await assert.rejects(
        nova.updateInstance(
          req.uuid,
          { vmState: 'active', taskState: null },
          { expectedTaskState: 'spawning' },
        ),
        (err: unknown) =>
          isType('Conflict', /Expected task_state: \[spawning\]\. Actual: deleting/)(err) &&
          isCloudError(err) &&
          err.details.reason === 'UnexpectedTaskState',
      );
      // A list of expected states, None included, as Nova's expected_task_state takes.
      await nova.updateInstance(req.uuid, { powerState: 4 }, { expectedTaskState: ['spawning', 'deleting'] });
      const inst = await nova.getInstance(req.uuid);
      assert.equal(inst.vmState, 'building');
      assert.equal(inst.taskState, 'deleting');
      assert.equal(inst.powerState, 4);
      await nova.softDeleteInstance(req.uuid);
      await assert.rejects(
        nova.updateInstance(req.uuid, { vmState: 'active' }, { expectedTaskState: null }),
        (err: unknown) =>
          isType('Conflict', /has been deleted/)(err) &&
          isCloudError(err) &&
          err.details.reason === 'InstanceDeleted',
      );
      await assert.rejects(nova.updateInstance(randomUUID(), { powerState: 1 }), isType('NotFound'));
    });

    test('soft delete keeps the row, sets deleted state, is idempotent, hides it from lists', async () => {
      const req = bootRequest();
      await nova.createInstance(req);
      clock.advance(1000);
      const [d1, d2] = await Promise.all([
        nova.softDeleteInstance(req.uuid),
        nova.softDeleteInstance(req.uuid),
      ]);
      assert.deepEqual(d1, d2);
      assert.equal(d1.deleted, true);
      assert.equal(d1.vmState, 'deleted');
      assert.equal(d1.taskState, null);
      assert.equal(d1.deletedAt, clock.now());
      assert.equal(d1.terminatedAt, clock.now());
      assert.equal(nova.apiStatus(d1), 'DELETED');
      clock.advance(1000);
      assert.deepEqual(await nova.softDeleteInstance(req.uuid), d1);
      await assert.rejects(nova.getInstance(req.uuid), isType('NotFound'));
      assert.equal((await nova.getInstance(req.uuid, { includeDeleted: true })).deleted, true);
      const live = await nova.listInstances({ projectId: PROJECT });
      assert.ok(!live.some((i) => i.uuid === req.uuid));
      const all = await nova.listInstances({ projectId: PROJECT, includeDeleted: true });
      assert.ok(all.some((i) => i.uuid === req.uuid));
      const row = await nova.store.db
        .selectFrom('instances')
        .selectAll()
        .where('uuid', '=', req.uuid)
        .executeTakeFirstOrThrow();
      assert.equal(row.deleted, 1);
      await assert.rejects(nova.softDeleteInstance(randomUUID()), isType('NotFound'));
    });

    test('lists are per project unless allProjects', async () => {
      const other = await nova.createInstance(bootRequest({ projectId: 'alt-project', name: 'alt-vm' }));
      const mine = await nova.listInstances({ projectId: PROJECT });
      assert.ok(mine.length > 0 && mine.every((i) => i.projectId === PROJECT));
      const all = await nova.listInstances({ allProjects: true });
      assert.ok(all.some((i) => i.uuid === other.uuid) && all.some((i) => i.projectId === PROJECT));
      await assert.rejects(nova.listInstances({}), isType('BadRequest', /projectId or allProjects/));
    });
  });

  describe('faults and the action trail', () => {
    test('faults: newest first, message cut to 255 like Nova, details kept', async () => {
      const req = bootRequest();
      await nova.createInstance(req);
      await nova.addFault(req.uuid, { code: 500, message: 'first', host: 'compute1' });
      const long = 'x'.repeat(400);
      const second = await nova.addFault(req.uuid, {
        code: 500,
        message: long,
        details: 'Traceback ...',
        host: 'compute2',
      });
      assert.equal(second.message.length, 255);
      const faults = await nova.listFaults(req.uuid);
      assert.deepEqual(
        faults.map((f) => [f.message.slice(0, 5), f.host, f.details]),
        [
          ['xxxxx', 'compute2', 'Traceback ...'],
          ['first', 'compute1', null],
        ],
      );
      await assert.rejects(nova.addFault(randomUUID(), { code: 500, message: 'x' }), isType('NotFound'));
    });

    test('actions and events: idempotent by request id, an Error event marks the action', async () => {
      const req = bootRequest();
      await nova.createInstance(req);
      const base = { instanceUuid: req.uuid, requestId: req.requestId };
      await nova.recordEvent({ ...base, event: 'conductor_schedule_and_build_instances' });
      clock.advance(10);
      await nova.recordEvent({ ...base, event: 'conductor_schedule_and_build_instances', result: 'Success' });
      await nova.recordEvent({ ...base, event: 'compute__do_build_and_run_instance', host: 'compute1' });
      await nova.recordEvent({ ...base, event: 'compute__do_build_and_run_instance', host: 'compute1' });
      clock.advance(10);
      await nova.recordEvent({
        ...base,
        event: 'compute__do_build_and_run_instance',
        host: 'compute1',
        result: 'Error',
        details: 'RescheduledException',
      });
      // The retry of a finish returns the first finish.
      await nova.recordEvent({
        ...base,
        event: 'compute__do_build_and_run_instance',
        host: 'compute1',
        result: 'Error',
      });
      await nova.recordEvent({ ...base, event: 'compute__do_build_and_run_instance', host: 'compute2' });
      await nova.recordEvent({
        ...base,
        event: 'compute__do_build_and_run_instance',
        host: 'compute2',
        result: 'Success',
      });
      const finished = await nova.finishAction(base);
      assert.equal(await nova.finishAction(base).then((a) => a.finishTime), finished.finishTime);
      const [action] = await nova.listActions(req.uuid);
      assert.equal(action?.message, 'Error');
      assert.equal(action?.finishTime, clock.now());
      assert.deepEqual(
        action?.events.map((e) => [e.event, e.host, e.result, e.details]),
        [
          ['conductor_schedule_and_build_instances', null, 'Success', null],
          ['compute__do_build_and_run_instance', 'compute1', 'Error', 'RescheduledException'],
          ['compute__do_build_and_run_instance', 'compute2', 'Success', null],
        ],
      );
      const del = { ...base, requestId: 'req-delete-1', action: 'delete', userId: USER, projectId: PROJECT };
      const [d1, d2] = await Promise.all([nova.startAction(del), nova.startAction(del)]);
      assert.equal(d1.id, d2.id);
      assert.deepEqual(
        (await nova.listActions(req.uuid)).map((a) => a.action),
        ['create', 'delete'],
      );
      await assert.rejects(
        nova.recordEvent({ ...base, requestId: 'req-unknown', event: 'x' }),
        isType('NotFound', /req-unknown/),
      );
    });
  });

  describe('compute services', () => {
    const caps = { vcpus: 8, memoryMb: 16384, diskGb: 200, cpuArch: 'x86_64', hypervisorType: 'QEMU' };

    test('register is idempotent and updates resources; node uuid stays', async () => {
      const [a, b] = await Promise.all([
        nova.registerComputeHost({ host: 'compute1', availabilityZone: 'az1', ...caps }),
        nova.registerComputeHost({ host: 'compute1', availabilityZone: 'az1', ...caps }),
      ]);
      assert.equal(a.nodeUuid, b.nodeUuid);
      const bigger = await nova.registerComputeHost({
        host: 'compute1',
        availabilityZone: 'az1',
        ...caps,
        vcpus: 16,
      });
      assert.equal(bigger.nodeUuid, a.nodeUuid);
      assert.equal(bigger.vcpus, 16);
      const services = await nova.store.db
        .selectFrom('services')
        .selectAll()
        .where('host', '=', 'compute1')
        .execute();
      assert.equal(services.length, 1);
      assert.equal(services[0]?.binary, 'nova-compute');
      assert.equal(services[0]?.topic, 'compute');
      const nodes = await nova.store.db
        .selectFrom('compute_nodes')
        .selectAll()
        .where('host', '=', 'compute1')
        .execute();
      assert.equal(nodes.length, 1);
      assert.equal(nodes[0]?.availability_zone, 'az1');
      assert.deepEqual(JSON.parse(nodes[0]?.cpu_info ?? '{}'), { arch: 'x86_64' });
      const defaultAz = await nova.registerComputeHost({ host: 'compute9', ...caps });
      assert.equal(defaultAz.availabilityZone, 'nova');
    });

    test('up follows heartbeats by the clock (service_down_time 60 s); forced down wins', async () => {
      await nova.registerComputeHost({ host: 'compute2', ...caps });
      const t0 = clock.now();
      clock.advance(60_000);
      assert.equal((await nova.getComputeHost('compute2')).up, true);
      clock.advance(1);
      assert.equal((await nova.getComputeHost('compute2')).up, false);
      const beat = await nova.heartbeat('compute2');
      assert.equal(beat.up, true);
      assert.equal(beat.lastHeartbeatAt, t0 + 60_001);
      assert.ok(beat.reportCount >= 2);
      await nova.setHostForcedDown('compute2', true);
      assert.equal((await nova.getComputeHost('compute2')).up, false);
      await nova.setHostForcedDown('compute2', false);
      assert.equal((await nova.getComputeHost('compute2')).up, true);
      await assert.rejects(nova.heartbeat('compute-unknown'), isType('ComputeHostNotFound'));
    });

    test('disable with a reason; build failures count up and reset; host states for the scheduler', async () => {
      await nova.registerComputeHost({
        host: 'compute3',
        availabilityZone: 'az2',
        ...caps,
        cpuArch: 'aarch64',
      });
      const disabled = await nova.setHostDisabled('compute3', true, 'maintenance');
      assert.equal(disabled.disabled, true);
      assert.equal(disabled.disabledReason, 'maintenance');
      assert.equal((await nova.setHostDisabled('compute3', false)).disabledReason, null);
      await nova.recordBuildFailure('compute3');
      await Promise.all([nova.recordBuildFailure('compute3'), nova.recordBuildFailure('compute3')]);
      assert.equal((await nova.getComputeHost('compute3')).failedBuilds, 3);
      await nova.recordBuildSuccess('compute3');
      await nova.recordBuildFailure('compute3');
      await nova.setHostDisabled('compute3', true);
      const states = await nova.listHostStates();
      const c3 = states.find((s) => s.host === 'compute3');
      assert.deepEqual(c3, {
        host: 'compute3',
        nodeUuid: (await nova.getComputeHost('compute3')).nodeUuid,
        up: true,
        disabled: true,
        availabilityZone: 'az2',
        cpuArch: 'aarch64',
        hypervisorType: 'QEMU',
        failedBuilds: 1,
      });
      assert.deepEqual(
        states.map((s) => s.host),
        [...states.map((s) => s.host)].sort(),
      );
      const hosts = await nova.listComputeHosts();
      assert.equal(hosts.length, states.length);
      // Host states come from a narrower query of their own: each is still its compute host, projected.
      const projected = async () =>
        (await nova.listComputeHosts()).map((h) => ({
          host: h.host,
          nodeUuid: h.nodeUuid,
          up: h.up,
          disabled: h.disabled,
          availabilityZone: h.availabilityZone,
          cpuArch: h.cpuArch,
          hypervisorType: h.hypervisorType,
          failedBuilds: h.failedBuilds,
        }));
      assert.deepEqual(states, await projected());
      await nova.setHostForcedDown('compute3', true);
      const down = await nova.listHostStates();
      assert.equal(down.find((s) => s.host === 'compute3')?.up, false);
      assert.deepEqual(down, await projected());
      await nova.setHostForcedDown('compute3', false);
    });

    test('host states narrow to the scheduler’s node uuids or hosts (long lists in chunks)', async () => {
      const all = await nova.listHostStates();
      assert.ok(all.length >= 3);
      const [first, second] = all;
      assert.ok(first && second);
      // The scheduler's HostStateSource contract, checked by the compiler.
      const source: SchedulerHostStateSource = nova;
      const noise = Array.from({ length: 1200 }, () => randomUUID());
      const byNode = await source.listHostStates({ nodeUuids: [...noise, second.nodeUuid, first.nodeUuid] });
      assert.deepEqual(
        byNode.map((s) => s.host),
        [first.host, second.host],
      );
      const byHost = await nova.listHostStates({ hosts: [second.host, 'no-such-host'] });
      assert.deepEqual(byHost, [second]);
      const both = await nova.listHostStates({
        nodeUuids: [first.nodeUuid, second.nodeUuid],
        hosts: [second.host],
      });
      assert.deepEqual(both, [second]);
      assert.deepEqual(await nova.listHostStates({ nodeUuids: [] }), []);
    });

    test('the node uuid survives a restart of the service', async () => {
      const before = await nova.registerComputeHost({ host: 'compute-restart', ...caps });
      await nova.close();
      nova = await Nova.open({ db: testDb.config, clock });
      const after = await nova.registerComputeHost({ host: 'compute-restart', ...caps });
      assert.equal(after.nodeUuid, before.nodeUuid);
      assert.equal(
        (await nova.listHostStates()).find((s) => s.host === 'compute-restart')?.nodeUuid,
        before.nodeUuid,
      );
    });
  });

  describe('bad input', () => {
    test('is refused with a clear error and changes nothing', async () => {
      const inst = await nova.createInstance(bootRequest());
      await nova.registerComputeHost({
        host: 'compute-bad',
        vcpus: 1,
        memoryMb: 512,
        diskGb: 1,
        cpuArch: 'x86_64',
        hypervisorType: 'fake',
      });
      const before = await snapshot(nova);
      const bad = (value: unknown) => value as never;
      const cases: Array<[string, () => Promise<unknown>, CloudErrorType, RegExp?]> = [
        [
          'name too long',
          () => nova.createInstance(bootRequest({ name: 'n'.repeat(256) })),
          'BadRequest',
          /name/,
        ],
        ['blank name', () => nova.createInstance(bootRequest({ name: '   ' })), 'BadRequest'],
        ['control chars', () => nova.createInstance(bootRequest({ name: 'a\u0000b' })), 'BadRequest'],
        [
          'unknown field',
          () => nova.createInstance(bad({ ...bootRequest(), color: 'red' })),
          'BadRequest',
          /color/,
        ],
        ['bad uuid', () => nova.createInstance(bootRequest({ uuid: 'not-a-uuid' })), 'BadRequest', /uuid/],
        [
          'unknown flavor',
          () => nova.createInstance(bootRequest({ flavor: 'm9.giant' })),
          'BadRequest',
          /m9.giant/,
        ],
        [
          'wrong type',
          () => nova.createInstance(bad({ ...bootRequest(), networks: 'private' })),
          'BadRequest',
        ],
        ['patch: unknown field', () => nova.updateInstance(inst.uuid, bad({ deleted: 1 })), 'BadRequest'],
        ['patch: empty', () => nova.updateInstance(inst.uuid, {}), 'BadRequest', /changes nothing/],
        [
          'patch: vm_state deleted',
          () => nova.updateInstance(inst.uuid, bad({ vmState: 'deleted' })),
          'BadRequest',
        ],
        ['patch: power state 2', () => nova.updateInstance(inst.uuid, bad({ powerState: 2 })), 'BadRequest'],
        [
          'patch: bad task state',
          () => nova.updateInstance(inst.uuid, bad({ taskState: 'dancing' })),
          'BadRequest',
        ],
        [
          'guard: bad expected state',
          () => nova.updateInstance(inst.uuid, { powerState: 1 }, bad({ expectedTaskState: 'dancing' })),
          'BadRequest',
        ],
        [
          'guard: wrong state',
          () => nova.updateInstance(inst.uuid, { powerState: 1 }, { expectedTaskState: 'spawning' }),
          'Conflict',
        ],
        ['fault: code 42', () => nova.addFault(inst.uuid, { code: 42, message: 'x' }), 'BadRequest'],
        ['fault: empty message', () => nova.addFault(inst.uuid, { code: 500, message: '' }), 'BadRequest'],
        [
          'event: bad result',
          () =>
            nova.recordEvent(
              bad({ instanceUuid: inst.uuid, requestId: inst.requestId, event: 'e', result: 'Maybe' }),
            ),
          'BadRequest',
        ],
        [
          'event: unknown request',
          () => nova.recordEvent({ instanceUuid: inst.uuid, requestId: 'nope', event: 'e' }),
          'NotFound',
        ],
        [
          'action: unknown instance',
          () =>
            nova.startAction({
              instanceUuid: randomUUID(),
              requestId: 'r',
              action: 'delete',
              userId: USER,
              projectId: PROJECT,
            }),
          'NotFound',
        ],
        ['delete: bad uuid', () => nova.softDeleteInstance('x'), 'BadRequest'],
        [
          'host: zero vcpus',
          () =>
            nova.registerComputeHost({
              host: 'compute-bad',
              vcpus: 0,
              memoryMb: 1,
              diskGb: 1,
              cpuArch: 'x86_64',
              hypervisorType: 'fake',
            }),
          'BadRequest',
          /vcpus/,
        ],
        [
          'host: name with space',
          () =>
            nova.registerComputeHost({
              host: 'bad host',
              vcpus: 1,
              memoryMb: 1,
              diskGb: 1,
              cpuArch: 'x86_64',
              hypervisorType: 'fake',
            }),
          'BadRequest',
        ],
        [
          'host: huge memory',
          () =>
            nova.registerComputeHost({
              host: 'compute-bad',
              vcpus: 1,
              memoryMb: 2 ** 40,
              diskGb: 1,
              cpuArch: 'x86_64',
              hypervisorType: 'fake',
            }),
          'BadRequest',
        ],
        [
          'host: unknown field',
          () =>
            nova.registerComputeHost(
              bad({
                host: 'compute-bad',
                vcpus: 1,
                memoryMb: 1,
                diskGb: 1,
                cpuArch: 'x86_64',
                hypervisorType: 'fake',
                gpu: 1,
              }),
            ),
          'BadRequest',
        ],
        ['disable: not a bool', () => nova.setHostDisabled('compute-bad', bad('yes')), 'BadRequest'],
        ['disable: unknown host', () => nova.setHostDisabled('compute-none', true), 'ComputeHostNotFound'],
        ['build failure: unknown host', () => nova.recordBuildFailure('compute-none'), 'ComputeHostNotFound'],
      ];
      for (const [what, run, type, message] of cases) {
        await assert.rejects(run(), isType(type, message), what);
      }
      assert.deepEqual(await snapshot(nova), before);
    });
  });

  describe('locks (os-lock-server)', () => {
    test('lock / unlock write the row and the action with its api_ event; a re-lock by the owner writes nothing', async () => {
      const created = await nova.createInstance(bootRequest());
      const uuid = created.uuid;
      assert.deepEqual([created.locked, created.lockedBy, created.lockedReason], [false, null, null]);
      const step = { instanceUuid: uuid, userId: USER, projectId: PROJECT };
      const locked = await nova.setInstanceLock({
        ...step,
        requestId: 'req-lock-1',
        locked: true,
        by: 'owner',
        reason: 'audit',
      });
      assert.deepEqual([locked.locked, locked.lockedBy, locked.lockedReason], [true, 'owner', 'audit']);
      const row = await nova.store.db
        .selectFrom('instances')
        .select(['locked', 'locked_by', 'locked_reason'])
        .where('uuid', '=', uuid)
        .executeTakeFirstOrThrow();
      assert.deepEqual(
        { ...row, locked: Number(row.locked) },
        { locked: 1, locked_by: 'owner', locked_reason: 'audit' },
      );
      const unchanged = await snapshot(nova);
      await nova.setInstanceLock({ ...step, requestId: 'req-lock-2', locked: true, by: 'owner' });
      assert.deepEqual(await snapshot(nova), unchanged);
      // An admin's lock takes it over and keeps the reason; unlock clears everything.
      const byAdmin = await nova.setInstanceLock({
        ...step,
        requestId: 'req-lock-3',
        locked: true,
        by: 'admin',
      });
      assert.deepEqual([byAdmin.lockedBy, byAdmin.lockedReason], ['admin', 'audit']);
      const unlocked = await nova.setInstanceLock({
        ...step,
        requestId: 'req-unlock',
        locked: false,
        by: 'admin',
      });
      assert.deepEqual([unlocked.locked, unlocked.lockedBy, unlocked.lockedReason], [false, null, null]);
      const actions = await nova.listActions(uuid);
      assert.deepEqual(
        actions.map((a) => [a.action, a.finishTime !== null, a.events.map((e) => [e.event, e.result])]),
        [
          ['create', false, []],
          ['lock', true, [['api_lock', 'Success']]],
          ['lock', true, [['api_lock', 'Success']]],
          ['unlock', true, [['api_unlock', 'Success']]],
        ],
      );
      // Bad input and a missing server are refused and change nothing.
      const before = await snapshot(nova);
      await assert.rejects(
        nova.setInstanceLock({ ...step, requestId: 'req-bad', locked: false, by: 'owner', reason: 'x' }),
        isType('BadRequest'),
      );
      await assert.rejects(
        nova.setInstanceLock({ ...step, requestId: 'req-bad', locked: true, by: 'owner', reason: '' }),
        isType('BadRequest'),
      );
      await assert.rejects(
        nova.setInstanceLock({
          ...step,
          instanceUuid: randomUUID(),
          requestId: 'req-bad',
          locked: true,
          by: 'owner',
        }),
        isType('NotFound'),
      );
      assert.deepEqual(await snapshot(nova), before);
    });
  });
});
