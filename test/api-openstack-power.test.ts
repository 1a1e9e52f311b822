/**
 * The unmodified `openstack` CLI and bootflow's own client against a running bootflow (dev server, one
 * worker with every role, the API): `openstack server stop` / `start` (which have no --wait: the test polls
 * `server show`), `server reboot --hard --wait` and `server reboot --wait`, Nova's 409 for a stop of a
 * stopped server, `server event list` / `event show` with the compute events, then the same through
 * `bootflow server stop|start|reboot [--hard] [--wait]`, and an empty leak audit after the delete. Needs
 * scripts/setup-openstack-clients.sh (the test fails and says so when it has not run).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { pollUntil } from '../lib/poll';
import type { ApiDeployment } from './helpers/api-deployment';
import { runClient } from './helpers/deployment';
import { openstack, openstackJson, createActiveServer, startCliDeployment } from './helpers/openstack-cli';

type Json = Record<string, unknown>;

describe('the openstack CLI and the bootflow client: stop, start, reboot', { timeout: 15 * 60_000 }, () => {
  let d: ApiDeployment;
  let id = '';

  before(async () => {
    d = await startCliDeployment('api-power-cli');
  });
  after(async () => {
    await d?.close();
  });

  async function show(): Promise<Json> {
    return openstackJson<Json>(d.demoEnv, ['server', 'show', id]);
  }

  /** `server stop` and `server start` return at the 202: poll `server show` as a user would. */
  function waitForStatus(status: string): Promise<Json> {
    let last: Json = {};
    return pollUntil(
      async () => {
        last = await show();
        return last.status === status && last['OS-EXT-STS:task_state'] === null ? last : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500, what: () => `status ${status}; last ${String(last.status)}` },
    );
  }

  test('openstack server stop, start, reboot --hard --wait, reboot --wait; 409 for a second stop; events', async () => {
    const created = await createActiveServer(d.demoEnv, 'cli-power');
    id = created.id as string;

    const stop = await openstack(d.demoEnv, ['server', 'stop', id]);
    assert.equal(stop.code, 0, stop.stderr);
    const stopped = await waitForStatus('SHUTOFF');
    assert.deepEqual([stopped['OS-EXT-STS:vm_state'], stopped['OS-EXT-STS:power_state']], ['stopped', 4]);

    const again = await openstack(d.demoEnv, ['server', 'stop', id]);
    assert.notEqual(again.code, 0);
    assert.match(
      again.stderr,
      new RegExp(`409.*Cannot 'stop' instance ${id} while it is in vm_state stopped`),
    );

    const start = await openstack(d.demoEnv, ['server', 'start', id]);
    assert.equal(start.code, 0, start.stderr);
    const started = await waitForStatus('ACTIVE');
    assert.equal(started['OS-EXT-STS:power_state'], 1);

    const hard = await openstack(d.demoEnv, ['server', 'reboot', '--hard', '--wait', id], 180_000);
    assert.equal(hard.code, 0, hard.stderr);
    const soft = await openstack(d.demoEnv, ['server', 'reboot', '--wait', id], 180_000);
    assert.equal(soft.code, 0, soft.stderr);
    assert.equal((await waitForStatus('ACTIVE'))['OS-EXT-STS:vm_state'], 'active');

    const events = await openstackJson<Array<{ Action: string; 'Request ID': string }>>(d.demoEnv, [
      'server',
      'event',
      'list',
      id,
    ]);
    assert.deepEqual(
      events.map((e) => e.Action),
      ['reboot', 'reboot', 'start', 'stop', 'create'],
    );
    const stopEvent = events.find((e) => e.Action === 'stop')!;
    const detail = await openstackJson<{ action: string; events: Array<{ event: string; result: string }> }>(
      d.adminEnv,
      ['server', 'event', 'show', id, stopEvent['Request ID']],
    );
    assert.equal(detail.action, 'stop');
    assert.deepEqual(
      detail.events.map((e) => [e.event, e.result]),
      [['compute_stop_instance', 'Success']],
    );
  });

  test('openstack server lock --reason, a locked server refuses stop (409), unlock; server rebuild --image --wait', async () => {
    const lock = await openstack(d.demoEnv, ['server', 'lock', '--reason', 'maintenance', id]);
    assert.equal(lock.code, 0, lock.stderr);
    const locked = await show();
    assert.deepEqual([locked.locked, locked.locked_reason], [true, 'maintenance']);
    const refused = await openstack(d.demoEnv, ['server', 'stop', id]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, new RegExp(`409.*Instance ${id} is locked`));
    const unlock = await openstack(d.demoEnv, ['server', 'unlock', id]);
    assert.equal(unlock.code, 0, unlock.stderr);
    assert.equal((await show()).locked, false);

    const before = await show();
    const rebuild = await openstack(
      d.demoEnv,
      ['server', 'rebuild', '--image', 'cirros', '--wait', id],
      180_000,
    );
    assert.equal(rebuild.code, 0, rebuild.stderr);
    const rebuilt = await waitForStatus('ACTIVE');
    assert.deepEqual(
      [rebuilt.name, rebuilt.addresses, rebuilt['OS-EXT-STS:vm_state']],
      ['cli-power', before.addresses, 'active'],
    );
    const events = await openstackJson<Array<{ Action: string }>>(d.demoEnv, ['server', 'event', 'list', id]);
    assert.deepEqual(
      events.slice(0, 3).map((e) => e.Action),
      ['rebuild', 'unlock', 'lock'],
    );
  });

  test('bootflow server stop|start|reboot: --wait reports the states; a refused stop exits 1 with why', async () => {
    const stop = await runClient(['server', 'stop', '--wait', id], d.env);
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stdout, /stopped: vm_state stopped, power_state 4/);
    assert.equal((await show()).status, 'SHUTOFF');

    const refused = await runClient(['server', 'stop', id], d.env);
    assert.equal(refused.code, 1, refused.stdout);
    assert.match(refused.stderr, new RegExp(`Cannot 'stop' instance ${id} while it is in vm_state stopped`));

    const start = await runClient(['server', 'start', id], d.env);
    assert.equal(start.code, 0, start.stderr);
    assert.match(start.stdout, /Starting server cli-power/);
    await waitForStatus('ACTIVE');

    const reboot = await runClient(
      ['-f', 'json', 'server', 'reboot', '--hard', '--wait', 'cli-power'],
      d.env,
    );
    assert.equal(reboot.code, 0, reboot.stderr);
    const [result] = JSON.parse(reboot.stdout) as Array<{
      operation: string;
      vmState: string;
      powerState: number;
    }>;
    assert.deepEqual([result?.operation, result?.vmState, result?.powerState], ['reboot-hard', 'active', 1]);

    const deleted = await openstack(d.demoEnv, ['server', 'delete', '--wait', id], 240_000);
    assert.equal(deleted.code, 0, deleted.stderr);
    const audit = await runClient(['-f', 'json', 'audit'], d.env);
    assert.equal(audit.code, 0, audit.stderr);
    assert.deepEqual(JSON.parse(audit.stdout), []);
  });
});
