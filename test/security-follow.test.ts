/**
 * Issue 15, findings 2 (workflow-id squatting), 4 (same request id, same boot) and 5 (following through a
 * Temporal outage), against a real dev server and a worker process with every role (the API's Keystone
 * included), with client.ts both in this process (`main`) and as processes.
 *
 * - 50 creates with one --request-id: 40 in this process (concurrent `main` calls, each its own
 *   connection and session, as separate processes would have) and 10 processes (all 2 cores can start
 *   side by side without starving the others), then one plain retry after the boot ended: one server, every
 *   client exits 0 with it ACTIVE.
 * - A squatted delete-<uuid> / boot-<requestId> (a workflow an attacker with the Temporal port started):
 *   refused with a clear error by the client and by the compute API's DELETE /servers/{id} (409, where it
 *   answered 204 and nothing was deleted), nothing claimed or deleted, and the real delete runs once the
 *   squat is gone.
 * - A create --wait through a kill -9 of the dev server and its restart (same port, same SQLite file): the
 *   client says "Temporal is unreachable", reconnects and exits 0 with the server ACTIVE; with Temporal
 *   away past its bound, exit 3.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { main } from '../client';
import { RECONCILER_SCHEDULE_ID } from '../lib/reconciler-schedule';
import { resolveAuth } from '../lib/command-line/credentials';
import { bootflowDataConverter, loadKeyringOrExplain } from '../lib/command-line/temporal';
import { issueToken } from '../lib/command-line/keystone';
import { deleteWorkflowId, bootWorkflowId } from '../workflows/names';
import type { ServerView } from '../workflows/operator-types';
import { startApiDeployment, type ApiDeployment } from './helpers/api-deployment';
import {
  parseJson,
  runClient,
  startScript,
  stopChild,
  waitForOutput,
  workerReady,
  type ChildHandle,
} from './helpers/deployment';

const IN_PROCESS_CLIENTS = 40;
const CLIENT_PROCESSES = 10;

describe('clients follow their own boot and delete: one request id, squatted ids, a Temporal restart', () => {
  let d: ApiDeployment;
  let token: string;
  let rawClient: Client;
  let connection: Connection;
  const extraWorkers: ChildHandle[] = [];
  const savedEnv = { ...process.env };

  const create = (name: string, extra: string[] = []) => [
    '-f',
    'json',
    '--os-token',
    token,
    'server',
    'create',
    '--flavor',
    'm1.tiny',
    '--image',
    'cirros',
    '--network',
    'private',
    ...extra,
    name,
  ];
  const argv = (args: string[]) => [process.execPath, 'client.ts', ...args];
  const listServers = async (): Promise<ServerView[]> => {
    const run = await runClient(['-f', 'json', '--os-token', token, 'server', 'list'], d.env);
    assert.equal(run.code, 0, run.stderr);
    return parseJson<ServerView[]>(run, 'server list');
  };

  /** DELETE /servers/{id} at the compute API while a foreign workflow holds delete-<uuid>. */
  const assertApiDeleteRefused = async (serverId: string, why: RegExp) => {
    const res = await fetch(`${d.apiUrl}/compute/v2.1/servers/${serverId}`, {
      method: 'DELETE',
      headers: { 'X-Auth-Token': token },
    });
    const body = (await res.json()) as { conflictingRequest?: { code: number; message: string } };
    assert.equal(res.status, 409, JSON.stringify(body));
    assert.equal(body.conflictingRequest?.code, 409);
    assert.match(
      body.conflictingRequest?.message ?? '',
      new RegExp(`Workflow ${deleteWorkflowId(serverId)} is not the delete of server ${serverId}`),
    );
    assert.match(body.conflictingRequest?.message ?? '', why);
  };

  before(async () => {
    d = await startApiDeployment('follow');
    // The in-process clients read the same environment as the processes.
    process.env.TEMPORAL_ADDRESS = d.temporalAddress;
    process.env.BOOTFLOW_DATA = d.dataDir;
    const given = resolveAuth({}, { dataDir: d.dataDir, fallbackUser: 'demo' });
    assert.ok('password' in given);
    token = await issueToken(given.authUrl, given.password);
    connection = await Connection.connect({ address: d.temporalAddress });
    rawClient = new Client({ connection });
  });

  after(async () => {
    process.env = savedEnv;
    await connection?.close();
    for (const w of extraWorkers) await stopChild(w, 'SIGTERM', 30_000);
    await d?.close();
  });

  test('the worker process registered the reconciler schedule at start (finding 3)', async () => {
    const client = new Client({
      connection,
      dataConverter: bootflowDataConverter(loadKeyringOrExplain(d.dataDir)),
    });
    const described = await client.schedule.getHandle(RECONCILER_SCHEDULE_ID).describe();
    assert.equal(described.action.type, 'startWorkflow');
    assert.equal(described.action.workflowType, 'reconcileInstances');
  });

  test('50 creates with one --request-id and a retry after it ended: one server, every client exits 0', async () => {
    const requestId = `req-same-${randomUUID()}`;
    const args = create('same-id', ['--request-id', requestId, '--wait']);
    const inProcess = Array.from({ length: IN_PROCESS_CLIENTS }, () => main(argv(args)));
    const processes = Array.from({ length: CLIENT_PROCESSES }, () => runClient(args, d.env, 240_000));
    const codes = await Promise.all(inProcess);
    const runs = await Promise.all(processes);
    assert.deepEqual(codes, Array(IN_PROCESS_CLIENTS).fill(0));
    for (const run of runs) assert.equal(run.code, 0, run.stderr);
    const retry = await runClient(args, d.env, 120_000);
    assert.equal(retry.code, 0, retry.stderr);
    assert.match(retry.stderr, /already submitted; following its workflow/);

    const servers = [...runs, retry].map((run) => parseJson<ServerView>(run, 'create'));
    const ids = new Set(servers.map((s) => s.id));
    assert.equal(ids.size, 1, `one server for all: ${[...ids].join(', ')}`);
    assert.ok(servers.every((s) => s.status === 'ACTIVE'));
    const named = (await listServers()).filter((s) => s.name === 'same-id');
    assert.deepEqual(
      named.map((s) => [s.id, s.status]),
      [[[...ids][0], 'ACTIVE']],
    );
    // One workflow run under the request's id: no second boot that ended in Conflict.
    const runsOfId = [];
    for await (const w of rawClient.workflow.list({ query: `WorkflowId = '${bootWorkflowId(requestId)}'` })) {
      runsOfId.push(w);
    }
    assert.deepEqual(
      runsOfId.map((w) => [w.type, w.status.name]),
      [['createInstance', 'COMPLETED']],
    );
  });

  test('a squatted delete-<uuid> is refused, nothing is deleted; once it is gone the delete runs', async () => {
    const [server] = (await listServers()).filter((s) => s.name === 'same-id');
    assert.ok(server);
    const workflowId = deleteWorkflowId(server.id);
    // What anyone with the frontend port can do: same id, a queue no worker polls, a plain input.
    const squat = await rawClient.workflow.start('deleteInstance', {
      taskQueue: 'squatter',
      workflowId,
      args: [{ requestId: 'req-squat', instanceUuid: server.id }],
    });
    const refused = await runClient(['--os-token', token, 'server', 'delete', '--wait', server.id], d.env);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(
      refused.stderr,
      new RegExp(`Workflow ${workflowId} is not the delete of server ${server.id}`),
    );
    assert.match(refused.stderr, /task queue squatter/);
    assert.doesNotMatch(refused.stdout, /deleted/);
    // The compute API too: a clear 409, not a 204 for a delete that nobody runs.
    await assertApiDeleteRefused(server.id, /task queue squatter/);
    // The same type on the controller's queue, but an input this deployment did not encrypt.
    await squat.terminate('test: next squat');
    const plain = await rawClient.workflow.start('notADelete', {
      taskQueue: 'controller',
      workflowId,
      args: [{ instanceUuid: server.id }],
    });
    const refusedAgain = await runClient(['--os-token', token, 'server', 'delete', server.id], d.env);
    assert.equal(refusedAgain.code, 1);
    assert.match(refusedAgain.stderr, /it runs notADelete/);
    await assertApiDeleteRefused(server.id, /it runs notADelete/);
    const still = (await listServers()).find((s) => s.id === server.id);
    assert.equal(still?.status, 'ACTIVE');

    await plain.terminate('test: squat removed');
    const deleted = await runClient(['--os-token', token, 'server', 'delete', '--wait', server.id], d.env);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.match(deleted.stdout, new RegExp(`Server same-id \\(${server.id}\\) deleted`));
    assert.equal(
      (await listServers()).find((s) => s.id === server.id),
      undefined,
    );
  });

  test('a squatted boot-<requestId> is refused with a clear error and no server is created', async () => {
    const requestId = `req-squatted-${randomUUID()}`;
    const squat = await rawClient.workflow.start('createInstance', {
      taskQueue: 'controller-squat',
      workflowId: bootWorkflowId(requestId),
      args: [{ requestId }],
    });
    try {
      const run = await runClient(create('squatted', ['--request-id', requestId, '--wait']), d.env);
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, new RegExp(`is not the boot of request ${requestId}`));
      assert.equal((await listServers()).filter((s) => s.name === 'squatted').length, 0);
    } finally {
      await squat.terminate('test over');
    }
  });

  test('create --wait through kill -9 of the dev server and its restart: "unreachable", then ACTIVE', async () => {
    // No worker while Temporal goes away, so the boot cannot finish before it does; only the API stays, for
    // the client's Keystone (its token and the workflow's grant).
    await stopChild(d.worker, 'SIGTERM', 30_000);
    const api = startScript('worker.ts', ['--role', 'api'], d.env, path.join(d.dataDir, 'worker-api.log'), {
      ipc: true,
    });
    extraWorkers.push(api);
    await workerReady(api);
    const log = path.join(os.tmpdir(), `bootflow-follow-client-${process.pid}.log`);
    const client = startScript('client.ts', create('through-restart', ['--wait']), d.env, log, {
      ipc: false,
    });
    try {
      await waitForOutput(client, /Creating server through-restart/, 60_000);
      await d.killTemporal();
      await waitForOutput(client, /Temporal is unreachable at /, 60_000);
      await d.restartTemporal();
      const worker = startScript(
        'worker.ts',
        ['--role', 'controller', '--role', 'network', '--role', 'compute'],
        d.env,
        path.join(d.dataDir, 'worker2.log'),
        { ipc: true },
      );
      extraWorkers.push(worker);
      await workerReady(worker);
      const exit = await client.exited;
      const out = client.output();
      assert.equal(exit.code, 0, out);
      assert.match(out, /"status": "ACTIVE"/);
      assert.match(out, /"name": "through-restart"/);
      const during = out.slice(out.indexOf('Temporal is unreachable'));
      assert.doesNotMatch(during, /was not created|Failed to get Workflow execution history/);
    } finally {
      if (client.running()) client.child.kill('SIGKILL');
    }
  });

  test('Temporal away past the bound: exit 3, saying Temporal is unreachable', async () => {
    const log = path.join(os.tmpdir(), `bootflow-follow-bound-${process.pid}.log`);
    // The boot cannot end while no worker runs: the client is following it when Temporal goes.
    await stopChild(extraWorkers.pop() as ChildHandle, 'SIGTERM', 30_000);
    const env = { ...d.env, BOOTFLOW_OUTAGE_LIMIT_MS: '3000' };
    const client = startScript('client.ts', create('bound', ['--wait']), env, log, { ipc: false });
    try {
      await waitForOutput(client, /Creating server bound/, 60_000);
      await d.killTemporal();
      const exit = await client.exited;
      assert.equal(exit.code, 3, client.output());
      assert.match(client.output(), /Temporal is unreachable at .* for \d+ s/);
    } finally {
      if (client.running()) client.child.kill('SIGKILL');
      await d.restartTemporal();
    }
  });
});
