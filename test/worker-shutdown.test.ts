/**
 * Graceful shutdown of a worker loses no activity. Real processes on a real dev server (free port, temporary
 * data directory): worker.ts as the controller+network node and as compute1, a boot whose spawn is slow on
 * compute1, and SIGTERM to the compute worker while that spawn runs:
 *   - within the grace time, the worker lets the spawn finish, reports it, and exits 0; the boot ends ACTIVE on
 *     compute1 in its first build attempt, and the history shows every activity completed on its first try
 *     (nothing timed out, failed or ran twice);
 *   - past the grace time, the worker hands the spawn back (cancelled, retryable) and exits 0; once a compute1
 *     worker is back, the spawn runs again there and the boot still ends ACTIVE on compute1, first attempt.
 */
import { Keystone } from '../cloud/keystone';
import { grantingInterceptor } from './helpers/grants';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { readOpenrc } from '../cloud/bootstrap';
import { FaultInjector } from '../cloud/compute/faults';
import { hostDirOf } from '../cloud/index';
import { startDevServerOnFreePorts, type RunningDevServer } from '../lib/dev-server';
import { bootflowDataConverter, loadKeyringOrExplain } from '../lib/command-line/temporal';
import { prepareDataDir } from '../scripts/bootstrap';
import { waitForComputeHosts } from '../lib/command-line/compute-services';
import { pollUntil } from '../lib/poll';
import { bootWorkflowId, CONTROLLER_QUEUE } from '../workflows/names';
import { BOOT_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
import type { BootRequest, BootResult } from '../workflows/types';
import { deploymentEnv, startScript, stopChild, workerReady, type ChildHandle } from './helpers/deployment';

const EventType = temporal.api.enums.v1.EventType;

describe('worker shutdown (SIGTERM) loses no activity', () => {
  let dataDir: string;
  let server: RunningDevServer;
  let env: NodeJS.ProcessEnv;
  let controller: ChildHandle;
  let compute: ChildHandle;
  let connection: Connection;
  let keystone: Keystone | undefined;
  let client: Client;
  let faults: FaultInjector;
  let credentials: BootRequest['auth'];
  let counter = 0;

  function startCompute(graceSeconds: number): ChildHandle {
    counter += 1;
    return startScript(
      'worker.ts',
      ['--role', 'compute', '--host', 'compute1', '--shutdown-grace', String(graceSeconds)],
      env,
      path.join(dataDir, `compute1-${counter}.log`),
      { ipc: true },
    );
  }

  async function registered(): Promise<void> {
    await waitForComputeHosts(client, ['compute1'], 120_000);
  }

  /** Resolves once the spawn activity is running on compute1 (its instance directory exists). */
  async function spawnRunning(): Promise<void> {
    const instances = path.join(hostDirOf(dataDir, 'compute1'), 'instances');
    const before = new Set(readdirSync(instances));
    await pollUntil(() => (readdirSync(instances).some((d) => !before.has(d)) ? true : undefined), {
      timeoutMs: 120_000,
      intervalMs: 100,
      what: 'the spawn to start on compute1',
    });
  }

  function boot(name: string): Promise<WorkflowHandle> {
    const request: BootRequest = {
      requestId: `shutdown-${name}`,
      auth: credentials,
      name,
      flavor: 'm1.tiny',
      image: 'cirros',
      networks: ['private'],
      // compute1 is the only host: its work waits for it rather than counting it as down.
      timeouts: { hostPickupMs: 120_000 },
    };
    return client.workflow.start('createInstance', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: bootWorkflowId(request.requestId),
      args: [request],
    });
  }

  /** Every activity of the boot: its type and how each attempt ended. */
  async function activityLog(
    handle: WorkflowHandle,
  ): Promise<Array<{ type: string; attempt: number; end: string }>> {
    const history = await handle.fetchHistory();
    const scheduled = new Map<string, string>();
    const started = new Map<string, number>();
    const out: Array<{ type: string; attempt: number; end: string }> = [];
    for (const e of history.events ?? []) {
      const id = String(e.eventId);
      if (e.activityTaskScheduledEventAttributes)
        scheduled.set(id, e.activityTaskScheduledEventAttributes.activityType?.name ?? '?');
      if (e.activityTaskStartedEventAttributes)
        started.set(
          String(e.activityTaskStartedEventAttributes.scheduledEventId),
          e.activityTaskStartedEventAttributes.attempt ?? 1,
        );
      const closed =
        e.activityTaskCompletedEventAttributes ??
        e.activityTaskFailedEventAttributes ??
        e.activityTaskTimedOutEventAttributes ??
        e.activityTaskCanceledEventAttributes;
      if (closed) {
        const sid = String(closed.scheduledEventId);
        out.push({
          type: scheduled.get(sid) ?? '?',
          attempt: started.get(sid) ?? 0,
          end: EventType[e.eventType ?? 0]?.replace('EVENT_TYPE_ACTIVITY_TASK_', '') ?? '?',
        });
      }
    }
    return out;
  }

  before(async () => {
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'bootflow-shutdown-'));
    await prepareDataDir(dataDir, {});
    const demo = readOpenrc(path.join(dataDir, 'demo-openrc.sh'));
    credentials = {
      credentials: { username: 'demo', password: demo.password ?? '', projectName: 'demo' },
    };
    server = await startDevServerOnFreePorts({
      dataDir,
      headless: true,
      searchAttributes: BOOT_SEARCH_ATTRIBUTES,
      output: { file: path.join(dataDir, 'temporal.log') },
    });
    env = deploymentEnv({ BOOTFLOW_DATA: dataDir, TEMPORAL_ADDRESS: server.address, LOG_LEVEL: 'info' });
    controller = startScript(
      'worker.ts',
      ['--role', 'controller,network'],
      env,
      path.join(dataDir, 'controller.log'),
      {
        ipc: true,
      },
    );
    compute = startCompute(30);
    await Promise.all([workerReady(controller), workerReady(compute)]);
    connection = await Connection.connect({ address: server.address });
    // This cloud's Keystone (its signing key in the data directory) makes each workflow's grant, as a client would.
    keystone = await Keystone.open({ db: { dataDir } });
    client = new Client({
      connection,
      dataConverter: bootflowDataConverter(loadKeyringOrExplain(dataDir)),
      interceptors: { workflow: [grantingInterceptor(() => keystone)] },
    });
    await registered();
    faults = new FaultInjector(hostDirOf(dataDir, 'compute1'), 'compute1');
  });

  after(async () => {
    await connection?.close();
    await keystone?.close();
    for (const w of [compute, controller]) if (w) await stopChild(w, 'SIGTERM', 20_000);
    await server?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test('within the grace time: the spawn in flight finishes, the worker exits 0, the boot is ACTIVE', async () => {
    await faults.set('spawn', { mode: 'slow', ms: 4_000, times: 1 });
    const handle = await boot('graceful');
    await spawnRunning();
    const stopping = Date.now();
    const { code } = await stopChild(compute, 'SIGTERM', 60_000);
    assert.equal(code, 0, compute.output());
    assert.ok(Date.now() - stopping >= 2_000, 'the worker waited for the spawn before it exited');
    assert.match(compute.output(), /"msg":"workers stopped"/);

    const result = (await handle.result()) as BootResult;
    assert.equal(result.status, 'ACTIVE');
    assert.equal(result.host, 'compute1');
    assert.equal(result.attempts, 1);
    assert.deepEqual(result.triedHosts, []);
    const activities = await activityLog(handle);
    assert.ok(activities.some((a) => a.type === 'spawn' && a.end === 'COMPLETED' && a.attempt === 1));
    assert.deepEqual(
      activities.filter((a) => a.end !== 'COMPLETED' || a.attempt !== 1),
      [],
      'every activity completed on its first try',
    );
  });

  test('past the grace time: the spawn is handed back, runs again on the next compute1 worker, ACTIVE', async () => {
    compute = startCompute(2);
    await workerReady(compute);
    await faults.set('spawn', { mode: 'slow', ms: 60_000, times: 1 });
    const handle = await boot('handed-back');
    await spawnRunning();
    const { code } = await stopChild(compute, 'SIGTERM', 60_000);
    assert.equal(code, 0, compute.output());

    compute = startCompute(30);
    await workerReady(compute);
    const result = (await handle.result()) as BootResult;
    assert.equal(result.status, 'ACTIVE');
    assert.equal(result.host, 'compute1');
    assert.equal(result.attempts, 1, 'the same build attempt: no reschedule');
    const spawns = (await activityLog(handle)).filter((a) => a.type === 'spawn');
    assert.deepEqual(spawns, [{ type: 'spawn', attempt: 2, end: 'COMPLETED' }], JSON.stringify(spawns));
  });
});
