/**
 * Issue 15, finding 2: with only the Temporal port, someone started `compute-service-rogueN` with a host of
 * 1000 vCPUs (signal-with-start `register`, then `heartbeat`) and every boot went to it and failed. Compute
 * hosts now prove who they are with the service credential the bootstrap issued them: the rogue host (no
 * key) and a forged re-registration of a real host (wrong MAC) are refused and logged for the audit, the
 * hypervisor list shows neither, and a boot goes to a real host.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, Connection } from '@temporalio/client';
import { DEFAULT_HOSTS } from '../cloud/hosts';
import { loadKeyring } from '../lib/codec';
import { bootflowDataConverter } from '../lib/command-line/temporal';
import { pollUntil } from '../lib/poll';
import {
  computeService,
  computeServiceWorkflowId,
  heartbeatSignal,
  registerSignal,
} from '../workflows/compute-service';
import { CONTROLLER_QUEUE } from '../workflows/names';
import type { HypervisorView, ServerView } from '../workflows/operator-types';
import { startApiDeployment, type ApiDeployment } from './helpers/api-deployment';
import { parseJson, runClient } from './helpers/deployment';

const ROGUES = ['rogue1', 'rogue2'];

describe('rogue compute hosts are refused and audited', () => {
  let d: ApiDeployment;
  let connection: Connection;
  let client: Client;

  before(async () => {
    d = await startApiDeployment('rogue');
    connection = await Connection.connect({ address: d.temporalAddress });
    // The attacker's client may even have the codec: what it lacks is a host's service credential.
    client = new Client({
      connection,
      dataConverter: bootflowDataConverter(loadKeyring({ dataDir: d.dataDir })),
    });
  });

  after(async () => {
    await connection?.close();
    await d?.close();
  });

  test('signal-with-start of unknown hosts and a forged real one: refused, logged, never scheduled', async () => {
    const big = { ...DEFAULT_HOSTS[0]!, vcpus: 1000, memoryMb: 4_096_000, diskGb: 100_000 };
    for (const host of ROGUES) {
      const spec = { ...big, host };
      await client.workflow.signalWithStart(computeService, {
        workflowId: computeServiceWorkflowId(host),
        taskQueue: CONTROLLER_QUEUE,
        args: [{ spec }],
        signal: registerSignal,
        signalArgs: [spec],
      });
      await client.workflow.signalWithStart(computeService, {
        workflowId: computeServiceWorkflowId(host),
        taskQueue: CONTROLLER_QUEUE,
        args: [{ spec }],
        signal: heartbeatSignal,
        signalArgs: [{ sentAt: Date.now() }],
      });
    }
    // A real host's name, re-registered 1000 vCPUs larger with a made-up MAC.
    await client.workflow
      .getHandle(computeServiceWorkflowId('compute1'))
      .signal(registerSignal, { ...big, host: 'compute1', proof: { sentAt: Date.now(), mac: 'AAAA' } });

    const log = await pollUntil(
      () => {
        const text = d.worker.output();
        const refused = [...ROGUES, 'compute1'].every((host) =>
          new RegExp(
            `compute-service-refused[^\\n]*"host":"${host}"|"host":"${host}"[^\\n]*compute-service-refused`,
          ).test(text),
        );
        return refused ? text : undefined;
      },
      { timeoutMs: 60_000, what: 'the refusals in the controller log' },
    );
    assert.match(log, /Compute host 'rogue1' has no service credential: refused/);
    assert.match(log, /Compute host 'compute1' did not prove who it is \(register\): refused/);
    for (const host of ROGUES) {
      const state = await client.workflow
        .getHandle(computeServiceWorkflowId(host))
        .query<{ registered: boolean; lastError: string | null }>('state');
      assert.equal(state.registered, false, host);
      assert.match(state.lastError ?? '', /no service credential/);
    }

    const hypervisors = parseJson<HypervisorView[]>(
      await runClient(['-f', 'json', 'hypervisor', 'list'], d.env),
      'hypervisor list',
    );
    assert.deepEqual(hypervisors.map((h) => h.host).sort(), ['compute1', 'compute2', 'compute3']);
    assert.equal(hypervisors.find((h) => h.host === 'compute1')?.vcpus.total, DEFAULT_HOSTS[0]!.vcpus);

    const created = await runClient(
      [
        '-f',
        'json',
        'server',
        'create',
        '--flavor',
        'm1.tiny',
        '--image',
        'cirros',
        '--network',
        'private',
      ].concat(['--wait', 'after-rogues']),
      d.env,
    );
    assert.equal(created.code, 0, created.stderr);
    const id = parseJson<ServerView>(created, 'create').id;
    const shown = parseJson<ServerView>(
      await runClient(['-f', 'json', 'server', 'show', '--all-projects', id], d.env),
      'show',
    );
    assert.equal(shown.status, 'ACTIVE');
    assert.match(shown.host ?? '', /^compute[123]$/);
  });
});
