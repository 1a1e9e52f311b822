/**
 * The unmodified `openstack` CLI against a running bootflow (dev server, one worker with every role, the API
 * role): `volume create`, `server add volume` (the attach workflow: in-use on the server's host), `volume
 * show` with its attachment, `volume delete` refused while attached, `volume snapshot create` (refused for
 * the in-use volume without --force, taken with it), `volume snapshot list`, `server remove volume`, the
 * volume's delete refused while it has a snapshot, `volume snapshot delete`, and the volume available and
 * deletable again, the leak audit empty. Needs scripts/setup-openstack-clients.sh (the test
 * fails and says so when it has not run).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ApiDeployment } from './helpers/api-deployment';
import { runClient } from './helpers/deployment';
import { openstack, openstackJson, createActiveServer, startCliDeployment } from './helpers/openstack-cli';

type Json = Record<string, unknown>;

describe('the openstack CLI: volumes on a running server', { timeout: 15 * 60_000 }, () => {
  let d: ApiDeployment;

  before(async () => {
    d = await startCliDeployment('api-volumes-cli');
  });
  after(async () => {
    await d?.close();
  });

  test('server add volume → in-use with its attachment; volume delete refused; server remove volume → available', async () => {
    const created = await createActiveServer(d.demoEnv, 'cli-vol-vm');
    const serverId = created.id as string;
    const volume = await openstackJson<Json>(d.demoEnv, ['volume', 'create', '--size', '1', 'cli-data']);
    const volumeId = volume.id as string;
    let status = '';
    for (let i = 0; i < 60 && status !== 'available'; i++) {
      status = (await openstackJson<Json>(d.demoEnv, ['volume', 'show', volumeId])).status as string;
      if (status !== 'available') await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(status, 'available');

    const added = await openstack(d.demoEnv, ['server', 'add', 'volume', 'cli-vol-vm', 'cli-data'], 180_000);
    assert.equal(added.code, 0, added.stderr);
    const inUse = await openstackJson<Json>(d.demoEnv, ['volume', 'show', 'cli-data']);
    assert.equal(inUse.status, 'in-use');
    const attachments = inUse.attachments as Json[];
    assert.equal(attachments.length, 1);
    assert.equal(attachments[0]?.server_id, serverId);
    assert.equal(attachments[0]?.device, '/dev/vdb');
    const server = await openstackJson<Json>(d.demoEnv, ['server', 'show', serverId]);
    assert.match(JSON.stringify(server.volumes_attached), new RegExp(volumeId));

    const refused = await openstack(d.demoEnv, ['volume', 'delete', 'cli-data']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /Volume status must be available or error/);
    assert.equal((await openstackJson<Json>(d.demoEnv, ['volume', 'show', volumeId])).status, 'in-use');

    // A snapshot of the in-use volume: refused without --force (Cinder's 400), taken with it.
    const unforced = await openstack(d.demoEnv, [
      'volume',
      'snapshot',
      'create',
      '--volume',
      'cli-data',
      'cli-snap',
    ]);
    assert.notEqual(unforced.code, 0);
    assert.match(unforced.stderr, /status must be available, but current status is: in-use/);
    const snapshot = await openstackJson<Json>(d.demoEnv, [
      'volume',
      'snapshot',
      'create',
      '--force',
      '--volume',
      'cli-data',
      'cli-snap',
    ]);
    let snapshotStatus = '';
    for (let i = 0; i < 60 && snapshotStatus !== 'available'; i++) {
      snapshotStatus = (await openstackJson<Json>(d.demoEnv, ['volume', 'snapshot', 'show', 'cli-snap']))
        .status as string;
      if (snapshotStatus !== 'available') await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(snapshotStatus, 'available');
    const listed = await openstackJson<Json[]>(d.demoEnv, ['volume', 'snapshot', 'list']);
    assert.deepEqual(
      listed.map((s) => [s.ID, s.Name, s.Status, s.Size]),
      [[snapshot.id, 'cli-snap', 'available', 1]],
    );

    const removed = await openstack(
      d.demoEnv,
      ['server', 'remove', 'volume', 'cli-vol-vm', 'cli-data'],
      180_000,
    );
    assert.equal(removed.code, 0, removed.stderr);
    const available = await openstackJson<Json>(d.demoEnv, ['volume', 'show', volumeId]);
    assert.equal(available.status, 'available');
    assert.deepEqual(available.attachments, []);
    // Its snapshot stands in the way of its delete until the snapshot goes.
    const withSnapshot = await openstack(d.demoEnv, ['volume', 'delete', volumeId]);
    assert.notEqual(withSnapshot.code, 0);
    assert.match(withSnapshot.stderr, /have snapshots/);
    assert.equal((await openstack(d.demoEnv, ['volume', 'snapshot', 'delete', 'cli-snap'])).code, 0);
    assert.deepEqual(await openstackJson<Json[]>(d.demoEnv, ['volume', 'snapshot', 'list']), []);

    const events = await openstackJson<Array<Json>>(d.demoEnv, ['server', 'event', 'list', serverId]);
    const actions = events.map((e) => e.Action);
    assert.ok(actions.includes('attach_volume') && actions.includes('detach_volume'), JSON.stringify(events));

    assert.equal((await openstack(d.demoEnv, ['volume', 'delete', volumeId])).code, 0);
    const deleted = await openstack(d.demoEnv, ['server', 'delete', '--wait', serverId], 240_000);
    assert.equal(deleted.code, 0, deleted.stderr);
    const audit = await runClient(['-f', 'json', 'audit'], d.env);
    assert.equal(audit.code, 0, audit.stderr);
    assert.deepEqual(JSON.parse(audit.stdout), []);
  });
});
