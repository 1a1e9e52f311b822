/**
 * compute-service-<host>: how a compute worker registers and heartbeats its host without opening a controller
 * database. The workflow runs on the time-skipping test server with the real conductor activities over a
 * test Nova and Placement: one registration (service record, compute node, resource provider), one state
 * report per heartbeat, stale reports dropped, and the history rolled over with continue-as-new without a
 * second registration.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createComputeServiceActivities, STALE_REPORT_MS } from '../activities/compute-service';
import { defaultHostSpec } from '../cloud/hosts';
import { Nova } from '../cloud/nova';
import { Placement } from '../cloud/placement';
import {
  computeService,
  computeServiceStateQuery,
  computeServiceWorkflowId,
  heartbeatSignal,
  registerSignal,
  type ComputeServiceState,
} from '../workflows/compute-service';
import { CONTROLLER_QUEUE } from '../workflows/names';
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
      await env.client.workflow.getHandle(workflowId).terminate('test over');
    });
  });
});
