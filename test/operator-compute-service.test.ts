/**
 * compute-service-<host>: how a compute worker registers and heartbeats its host without opening a controller
 * database. The workflow runs on the time-skipping test server with the real conductor activities over a
 * test Nova and Placement: one registration (service record, compute node, resource provider), one state
 * report per heartbeat, stale reports dropped, and the history rolled over with continue-as-new without a
 * second registration; the periodic power-state sync (the host's driver read on compute@<host>, applied on
 * the controller: power_state recorded, ACTIVE found shut down set STOPPED, tasks in progress skipped), and
 * after it the DHCP agent's sync (the networks the host serves, neutron-server's answer for them, the host
 * told to stop serving the deleted one).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { randomUUID } from 'node:crypto';
import { createComputeServiceActivities, STALE_REPORT_MS } from '../activities/compute-service';
import { defaultHostSpec } from '../cloud/hosts';
import { Nova, POWER_STATES, VM_STATES, type PowerState } from '../cloud/nova';
import { Placement } from '../cloud/placement';
import {
  computeService,
  computeServiceStateQuery,
  computeServiceWorkflowId,
  heartbeatSignal,
  registerSignal,
  type ComputeServiceState,
} from '../workflows/compute-service';
import { computeQueue, CONTROLLER_QUEUE, NETWORK_QUEUE } from '../workflows/names';
import { createNetworkActivities } from '../activities/network';
import { Neutron, type DhcpDetails } from '../cloud/neutron';
import { keepHistory } from './helpers/boot-harness';
import { testDbConfig, type TestDb } from './helpers/cloud-db';
import { timeSkippingEnv } from './helpers/temporal-env';
import { pollUntil } from '../lib/poll';

async function eventually<T>(read: () => Promise<T>, ok: (value: T) => boolean, what: string): Promise<T> {
  let last: T | undefined;
  return pollUntil(
    async () => {
      last = await read().catch(() => undefined);
      return last !== undefined && ok(last) ? last : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 50, what: () => `${what}; last: ${JSON.stringify(last)}` },
  );
}

describe('compute-service workflow: registration and heartbeats through the controller', () => {
  let db: TestDb;
  let nova: Nova;
  let placement: Placement;
  let env: TestWorkflowEnvironment;

  before(async () => {
    db = testDbConfig('compute-service');
    nova = await Nova.open({ db: db.config });
    placement = await Placement.open({ db: db.config });
    env = await timeSkippingEnv();
  });

  after(async () => {
    await env?.teardown();
    await placement?.close();
    await nova?.close();
    await db?.cleanup();
  });

  test('the activities: register once per start, stale reports change nothing', async () => {
    const activities = createComputeServiceActivities({ nova, placement });
    const spec = defaultHostSpec('compute7');
    const node = await activities.registerComputeService(spec);
    const provider = await placement.getResourceProvider(node.nodeUuid);
    assert.equal(provider.name, 'compute7');
    assert.equal(provider.inventories.VCPU?.total, spec.vcpus);
    const before = await nova.getComputeHost('compute7');

    const fresh = await activities.reportComputeServiceState({ host: 'compute7', sentAt: Date.now() });
    assert.equal(fresh.recorded, true);
    assert.equal(fresh.reportCount, before.reportCount + 1);
    const stale = await activities.reportComputeServiceState({
      host: 'compute7',
      sentAt: Date.now() - STALE_REPORT_MS - 1_000,
    });
    assert.equal(stale.recorded, false);
    assert.equal((await nova.getComputeHost('compute7')).reportCount, before.reportCount + 1);
  });

  test('signalWithStart registers the host; heartbeats report; continue-as-new keeps the registration', async () => {
    const real = createComputeServiceActivities({ nova, placement });
    let registrations = 0;
    const activities = {
      ...real,
      registerComputeService: (...args: Parameters<typeof real.registerComputeService>) => {
        registrations += 1;
        return real.registerComputeService(...args);
      },
    };
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: CONTROLLER_QUEUE,
      workflowsPath: require.resolve('../workflows/compute-service'),
      activities,
    });
    const host = 'compute8';
    const spec = defaultHostSpec(host);
    const workflowId = computeServiceWorkflowId(host);
    const state = () => env.client.workflow.getHandle(workflowId).query(computeServiceStateQuery);

    await worker.runUntil(async () => {
      const first = await env.client.workflow.signalWithStart(computeService, {
        workflowId,
        taskQueue: CONTROLLER_QUEUE,
        args: [{ spec, reportsPerRun: 3 }],
        signal: registerSignal,
        signalArgs: [spec],
      });
      const registered = await eventually(state, (s) => s.registered, 'registration');
      assert.equal(registered.host, host);
      const node = await nova.getComputeHost(host);
      assert.equal(registered.nodeUuid, node.nodeUuid);
      assert.equal(node.up, true);
      assert.equal(registrations, 1, 'the start input and the register signal make one registration');

      for (let i = 1; i <= 3; i++) {
        await env.client.workflow.getHandle(workflowId).signal(heartbeatSignal, { sentAt: Date.now() });
        await eventually(state, (s: ComputeServiceState) => s.totalReports === i, `report ${i}`);
      }
      assert.equal((await nova.getComputeHost(host)).reportCount, node.reportCount + 3);

      // Three reports per run here: the third rolled the history over into a new run.
      const latest = await env.client.workflow.getHandle(workflowId).describe();
      assert.notEqual(latest.runId, first.signaledRunId);
      const carried = await state();
      assert.deepEqual(
        { registered: carried.registered, reports: carried.reports, total: carried.totalReports },
        { registered: true, reports: 0, total: 3 },
      );

      // A report that waited too long (the controller was away) says nothing about the host now.
      await env.client.workflow
        .getHandle(workflowId)
        .signal(heartbeatSignal, { sentAt: Date.now() - STALE_REPORT_MS - 5_000 });
      await eventually(state, (s: ComputeServiceState) => s.totalReports === 4, 'stale report handled');
      assert.equal((await nova.getComputeHost(host)).reportCount, node.reportCount + 3);
      assert.equal(registrations, 1, 'continue-as-new does not register again');

      // A restarted compute worker registers again (its resources may have changed).
      await env.client.workflow.signalWithStart(computeService, {
        workflowId,
        taskQueue: CONTROLLER_QUEUE,
        args: [{ spec }],
        signal: registerSignal,
        signalArgs: [{ ...spec, vcpus: spec.vcpus * 2 }],
      });
      await eventually(
        async () => registrations,
        (n) => n === 2,
        'second registration',
      );
      await eventually(
        () => nova.getComputeHost(host),
        (h) => h.vcpus === spec.vcpus * 2,
        'the new vCPU count in Nova',
      );
      // The replay test's histories (BOOTFLOW_WRITE_HISTORIES=1): the first run, which continued as new,
      // and the latest, terminated here.
      await keepHistory(
        'heartbeats-first-run',
        env.client.workflow.getHandle(workflowId, first.signaledRunId),
        'compute-service',
      );
      await env.client.workflow.getHandle(workflowId).terminate('test over');
      await keepHistory(
        'heartbeats-latest-run',
        env.client.workflow.getHandle(workflowId),
        'compute-service',
      );
    });
  });

  test('the power-state sync: the host’s driver read, applied on the controller as Nova’s _sync_power_states', async () => {
    const host = 'compute9';
    const spec = defaultHostSpec(host);
    await createComputeServiceActivities({ nova, placement }).registerComputeService(spec);
    await nova.ensureDefaultFlavors();
    /** An instance placed on the host in the given state, as a finished build (or a task) leaves it. */
    const placed = async (
      vmState: 'active' | 'stopped',
      powerState: PowerState,
      taskState: 'deleting' | null = null,
    ) => {
      const instance = await nova.createInstance({
        uuid: randomUUID(),
        requestId: `req-${randomUUID()}`,
        name: `sync-${vmState}`,
        projectId: 'p-sync',
        userId: 'u-sync',
        flavor: 'm1.tiny',
        imageRef: 'image',
        networks: [],
      });
      await nova.updateInstance(instance.uuid, { host, vmState, powerState, taskState });
      return instance.uuid;
    };
    const shutDownByItself = await placed('active', POWER_STATES.RUNNING);
    const crashed = await placed('active', POWER_STATES.RUNNING);
    const running = await placed('active', POWER_STATES.RUNNING);
    const vanished = await placed('active', POWER_STATES.RUNNING);
    const startedBehindNovasBack = await placed('stopped', POWER_STATES.SHUTDOWN);
    const beingDeleted = await placed('active', POWER_STATES.RUNNING, 'deleting');
    const elsewhere = await nova.createInstance({
      uuid: randomUUID(),
      requestId: `req-${randomUUID()}`,
      name: 'other-host',
      projectId: 'p-sync',
      userId: 'u-sync',
      flavor: 'm1.tiny',
      imageRef: 'image',
      networks: [],
    });
    await nova.updateInstance(elsewhere.uuid, {
      host: 'compute1',
      vmState: 'active',
      powerState: 1,
      taskState: null,
    });

    // The host's driver: what it reports (no guest at all for `vanished`).
    let reads = 0;
    const driverView = [
      { instanceUuid: shutDownByItself, powerState: POWER_STATES.SHUTDOWN },
      { instanceUuid: crashed, powerState: POWER_STATES.CRASHED },
      { instanceUuid: running, powerState: POWER_STATES.RUNNING },
      { instanceUuid: startedBehindNovasBack, powerState: POWER_STATES.RUNNING },
      { instanceUuid: beingDeleted, powerState: POWER_STATES.SHUTDOWN },
      { instanceUuid: elsewhere.uuid, powerState: POWER_STATES.SHUTDOWN },
    ];
    const hostWorker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: computeQueue(host),
      activities: {
        readPowerStates: () => {
          reads += 1;
          return Promise.resolve(driverView);
        },
        // A host serving no network: the DHCP sync after each round is this one read.
        readDhcpNetworks: () => Promise.resolve([]),
      },
    });
    const controllerWorker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: CONTROLLER_QUEUE,
      workflowsPath: require.resolve('../workflows/compute-service'),
      activities: createComputeServiceActivities({ nova, placement }),
    });
    const workflowId = computeServiceWorkflowId(host);
    const handle = env.client.workflow.getHandle(workflowId);
    await hostWorker.runUntil(() =>
      controllerWorker.runUntil(async () => {
        await env.client.workflow.signalWithStart(computeService, {
          workflowId,
          taskQueue: CONTROLLER_QUEUE,
          args: [{ spec, powerSyncIntervalMs: 5_000 }],
          signal: registerSignal,
          signalArgs: [spec],
        });
        await eventually(
          () => handle.query(computeServiceStateQuery),
          (s) => s.registered,
          'registration',
        );
        await env.sleep(6_000);
        const synced = await eventually(
          () => handle.query(computeServiceStateQuery),
          (s) => s.powerSyncs >= 1,
          'a power-state sync',
        );
        assert.equal(synced.lastPowerSyncError, null);
        assert.ok(reads >= 1, 'the driver was read on compute@compute9');
        assert.deepEqual(synced.lastPowerSync?.stopped.sort(), [shutDownByItself, crashed].sort());
        assert.deepEqual(synced.lastPowerSync?.skipped, [beingDeleted]);
        assert.equal(synced.lastPowerSync?.checked, 6, 'only the instances on compute9');
        await handle.terminate('test over');
        await keepHistory('power-sync', handle, 'compute-service');
      }),
    );

    const state = async (uuid: string) => {
      const i = await nova.getInstance(uuid);
      return [i.vmState, i.taskState, i.powerState];
    };
    assert.deepEqual(await state(shutDownByItself), [VM_STATES.STOPPED, null, POWER_STATES.SHUTDOWN]);
    assert.deepEqual(await state(crashed), [VM_STATES.STOPPED, null, POWER_STATES.CRASHED]);
    assert.deepEqual(await state(running), [VM_STATES.ACTIVE, null, POWER_STATES.RUNNING]);
    // Nova: "Instance is unexpectedly not found. Ignore." after recording NOSTATE.
    assert.deepEqual(await state(vanished), [VM_STATES.ACTIVE, null, POWER_STATES.NOSTATE]);
    assert.deepEqual(await state(startedBehindNovasBack), [VM_STATES.STOPPED, null, POWER_STATES.RUNNING]);
    assert.deepEqual(await state(beingDeleted), [VM_STATES.ACTIVE, 'deleting', POWER_STATES.RUNNING]);
    assert.deepEqual(await state(elsewhere.uuid), [VM_STATES.ACTIVE, null, POWER_STATES.RUNNING]);
  });
  test('the DHCP agent sync: the host stops serving a network neutron-server no longer has', async () => {
    const host = 'compute8';
    const spec = defaultHostSpec(host);
    const neutron = await Neutron.open({ db: db.config });
    try {
      const network = await neutron.createNetwork({ name: 'dhcp-sync', projectId: 'p-dhcp' });
      await neutron.createSubnet({ networkId: network.id, cidr: '10.77.0.0/24' });
      const kept = await neutron.ensureDhcpPort(network.id);
      assert.ok(kept);
      const deleted = randomUUID();
      const synced: DhcpDetails[][] = [];
      const hostWorker = await Worker.create({
        connection: env.nativeConnection,
        taskQueue: computeQueue(host),
        activities: {
          readPowerStates: () => Promise.resolve([]),
          readDhcpNetworks: () => Promise.resolve([network.id, deleted]),
          syncDhcpNetworks: (networks: DhcpDetails[]) => {
            synced.push(networks);
            return Promise.resolve({ served: networks.map((n) => n.networkId), removed: [deleted] });
          },
        },
      });
      const { dhcpNetworks } = createNetworkActivities({
        neutron,
        identity: { validateGrant: () => Promise.reject(new Error('no token is checked here')) },
      });
      const networkWorker = await Worker.create({
        connection: env.nativeConnection,
        taskQueue: NETWORK_QUEUE,
        activities: { dhcpNetworks },
      });
      const controllerWorker = await Worker.create({
        connection: env.nativeConnection,
        taskQueue: CONTROLLER_QUEUE,
        workflowsPath: require.resolve('../workflows/compute-service'),
        activities: createComputeServiceActivities({ nova, placement }),
      });
      const workflowId = computeServiceWorkflowId(host);
      const handle = env.client.workflow.getHandle(workflowId);
      await hostWorker.runUntil(() =>
        networkWorker.runUntil(() =>
          controllerWorker.runUntil(async () => {
            await env.client.workflow.signalWithStart(computeService, {
              workflowId,
              taskQueue: CONTROLLER_QUEUE,
              args: [{ spec, powerSyncIntervalMs: 5_000 }],
              signal: registerSignal,
              signalArgs: [spec],
            });
            await eventually(
              () => handle.query(computeServiceStateQuery),
              (s) => s.registered,
              'registration',
            );
            await env.sleep(6_000);
            const state = await eventually(
              () => handle.query(computeServiceStateQuery),
              (s) => s.lastDhcpSync !== null,
              'a DHCP sync',
            );
            assert.equal(state.lastDhcpSyncError, null);
            assert.deepEqual(state.lastDhcpSync, { served: [network.id], removed: [deleted] });
            assert.deepEqual(synced[0], [kept], 'only the network that still has its DHCP subnet');
            await handle.terminate('test over');
            await keepHistory('dhcp-sync', handle, 'compute-service');
          }),
        ),
      );
    } finally {
      await neutron.close();
    }
  });
});
