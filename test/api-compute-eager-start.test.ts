/**
 * Eager workflow start where it is claimed: POST /servers with `eagerStart` (worker.ts sets it when the API
 * shares the controller worker's NativeConnection) hands the boot's first workflow task to that worker in
 * the start RPC's answer; without it the worker polls the task from matching. Told apart by the history
 * the server wrote: an eager first WorkflowTaskStarted carries the start request's identity (here the API
 * client's own), a polled one the polling worker's. A real dev server, the embedded cloud and every worker
 * role in this process (the benchmark's environment, scripts/bench/boot-env.ts); the boots run to ACTIVE.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { buildApiApp, DEFAULT_REGION } from '../api';
import { createLogger } from '../lib/logger';
import {
  openBootCloud,
  openTemporal,
  startWorkers,
  type BootCloud,
  type RunningWorkers,
  type TemporalTarget,
} from '../scripts/bench/boot-env';
import { bootWorkflowId } from '../workflows/names';

const EventType = temporal.api.enums.v1.EventType;
const API_IDENTITY = 'bootflow-api-eager-test';

let target: TemporalTarget;
let bc: BootCloud;
let workers: RunningWorkers;

before(async () => {
  target = await openTemporal(() => undefined);
  bc = await openBootCloud('eager-start');
  workers = await startWorkers(target, bc);
});
after(async () => {
  await workers?.stop();
  await bc?.close();
  await target?.close();
});

/** POST /servers through an API whose client is on the workers' connection; the first task's starter. */
async function bootThroughApi(eagerStart: boolean): Promise<{ identity: string; status: string }> {
  const client = new Client({
    connection: target.nativeConnection,
    namespace: target.namespace,
    identity: API_IDENTITY,
  });
  const app = await buildApiApp(
    {
      cloud: bc.cloud,
      temporal: client,
      publicUrl: 'http://127.0.0.1:8770',
      region: DEFAULT_REGION,
      log: createLogger({ name: 'eager-test', env: { ...process.env, LOG_LEVEL: 'error' } }),
      eagerStart,
    },
    { services: ['compute'] },
  );
  try {
    await app.ready();
    const res = await app.inject({
      method: 'POST',
      url: '/compute/v2.1/servers',
      headers: { 'x-auth-token': bc.token, 'content-type': 'application/json' },
      payload: JSON.stringify({
        server: {
          name: `eager-${eagerStart}`,
          imageRef: bc.imageId,
          flavorRef: '1',
          networks: [{ uuid: bc.networkId }],
        },
      }),
    });
    assert.equal(res.statusCode, 202, res.body);
    const handle = client.workflow.getHandle(bootWorkflowId(String(res.headers['x-openstack-request-id'])));
    await handle.result();
    const events = (await handle.fetchHistory()).events ?? [];
    const firstStarted = events.find((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED);
    assert.ok(firstStarted, 'no WorkflowTaskStarted in the history');
    const server = (res.json() as { server: { id: string } }).server;
    const row = await bc.cloud.nova.getInstance(server.id);
    return {
      identity: firstStarted.workflowTaskStartedEventAttributes?.identity ?? '',
      status: row?.vmState ?? 'missing',
    };
  } finally {
    await app.close();
  }
}

test('POST /servers with eagerStart: the first workflow task goes to the local worker without a poll', async () => {
  const eager = await bootThroughApi(true);
  assert.equal(eager.identity, API_IDENTITY);
  assert.equal(eager.status, 'active');
});

test('POST /servers without it: the first workflow task is polled by the worker', async () => {
  const polled = await bootThroughApi(false);
  assert.notEqual(polled.identity, API_IDENTITY);
  assert.match(polled.identity, /^\d+@/); // the worker's `<pid>@<host>`
  assert.equal(polled.status, 'active');
});
