/**
 * Cinder v3 snapshots over HTTP (inject): create (202, `creating`, then `available`), show with the
 * extended attributes, list and detail (filters, sort, marker, offset, limit, next link, all_tenants for an
 * admin), update, delete (202); force for an in-use volume; Cinder's 400s, 403s, 404s and 413s with nothing
 * written; snapshot metadata; the admin actions; a volume from a snapshot; a volume with snapshots refused
 * its delete unless cascade; the view per microversion.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { openApiTestEnv, seedUserToken, type ApiTestEnv } from './helpers/api';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- bodies are read field by field as documented
type Body = Record<string, any>;
type User = { token: string; projectId: string; userId: string };

describe('Cinder v3 snapshots API', () => {
  let env: ApiTestEnv;
  let alice: User;
  let reader: User;
  let bob: User;
  let admin: User;

  before(async () => {
    env = await openApiTestEnv({ services: ['identity', 'volume'], label: 'api-volume-snapshots' });
    alice = await seedUserToken(env, 'alice', 'p-alice');
    reader = await seedUserToken(env, 'rita', 'p-alice', 'reader');
    bob = await seedUserToken(env, 'bob', 'p-bob');
    admin = await seedUserToken(env, 'root', 'p-admin', 'admin');
  });
  after(async () => {
    await env?.close();
  });

  const call = async (
    who: User,
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    url: string,
    payload?: unknown,
    version?: string,
  ) => {
    const res = await env.app.inject({
      method,
      url: `/volume${url}`,
      headers: {
        'x-auth-token': who.token,
        ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(version ? { 'OpenStack-API-Version': `volume ${version}` } : {}),
      },
      ...(payload !== undefined ? { payload: JSON.stringify(payload) } : {}),
    });
    return {
      status: res.statusCode,
      headers: res.headers,
      body: res.body ? (JSON.parse(res.body) as Body) : {},
    };
  };

  async function volume(who: User = alice, size = 1): Promise<string> {
    const res = await call(who, 'POST', '/v3/volumes', { volume: { size } });
    assert.equal(res.status, 202);
    await env.cloud.cinder.waitForVolume(res.body.volume.id, { timeoutMs: 30_000 });
    return res.body.volume.id as string;
  }

  async function snapshot(volumeId: string, extra: Body = {}, who: User = alice): Promise<Body> {
    const res = await call(who, 'POST', '/v3/snapshots', { snapshot: { volume_id: volumeId, ...extra } });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    for (let i = 0; i < 3000; i++) {
      const shown = await call(who, 'GET', `/v3/snapshots/${res.body.snapshot.id}`);
      if (shown.body.snapshot.status !== 'creating') return shown.body.snapshot as Body;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error('snapshot still creating');
  }

  const snapshotRows = async () => env.cloud.cinder.snapshots.list({ includeDeleted: true });

  test("create (202, Cinder's body), show with extended attributes, update, delete (202, then 404)", async () => {
    const volumeId = await volume();
    const created = await call(alice, 'POST', `/v3/${alice.projectId}/snapshots`, {
      snapshot: { volume_id: volumeId, name: 'snap', description: 'first', metadata: { a: '1' } },
    });
    assert.equal(created.status, 202);
    const body = created.body.snapshot;
    assert.deepEqual(Object.keys(body).sort(), [
      'created_at',
      'description',
      'id',
      'metadata',
      'name',
      'size',
      'status',
      'updated_at',
      'volume_id',
    ]);
    assert.deepEqual(
      [body.status, body.name, body.description, body.size, body.volume_id],
      ['creating', 'snap', 'first', 1, volumeId],
    );
    assert.match(body.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/);
    const shown = await snapshot(volumeId, { name: 'other' });
    assert.equal(shown.status, 'available');
    assert.equal(shown['os-extended-snapshot-attributes:progress'], '100%');
    assert.equal(shown['os-extended-snapshot-attributes:project_id'], alice.projectId);

    const updated = await call(alice, 'PUT', `/v3/snapshots/${body.id}`, {
      snapshot: { display_name: 'renamed', description: null },
    });
    assert.equal(updated.status, 200);
    assert.deepEqual([updated.body.snapshot.name, updated.body.snapshot.description], ['renamed', null]);
    assert.equal(updated.body.snapshot['os-extended-snapshot-attributes:progress'], undefined);
    const emptyUpdate = await call(alice, 'PUT', `/v3/snapshots/${body.id}`, { snapshot: {} });
    assert.equal(emptyUpdate.status, 400);

    for (const id of [body.id, shown.id]) {
      for (let i = 0; i < 3000 && (await env.cloud.cinder.snapshots.get(id)).status === 'creating'; i++)
        await new Promise((r) => setTimeout(r, 10));
      const deleted = await call(alice, 'DELETE', `/v3/snapshots/${id}`);
      assert.equal(deleted.status, 202);
      const gone = await call(alice, 'GET', `/v3/snapshots/${id}`);
      assert.equal(gone.status, 404);
      assert.equal(gone.body.itemNotFound.message, `Snapshot ${id} could not be found.`);
    }
  });

  test('microversions: group_snapshot_id from 3.14, user_id from 3.41; the summary list has neither', async () => {
    const volumeId = await volume();
    const snap = await snapshot(volumeId);
    const at = async (version: string) =>
      (await call(alice, 'GET', `/v3/snapshots/${snap.id}`, undefined, version)).body.snapshot as Body;
    assert.equal('group_snapshot_id' in (await at('3.13')), false);
    assert.equal((await at('3.14')).group_snapshot_id, null);
    assert.equal('user_id' in (await at('3.40')), false);
    assert.equal((await at('3.41')).user_id, alice.userId);
    const list = await call(alice, 'GET', '/v3/snapshots', undefined, '3.50');
    const item = list.body.snapshots.find((s: Body) => s.id === snap.id) as Body;
    assert.equal('user_id' in item, false);
    assert.equal('os-extended-snapshot-attributes:progress' in item, false);
    await env.cloud.cinder.deleteVolume(volumeId, { cascade: true });
  });

  test("refusals write nothing: Cinder's 400 (in-use without force, bad body), 403 (reader), 404, 413 (quota)", async () => {
    const volumeId = await volume();
    const instance = randomUUID();
    const attachment = await env.cloud.cinder.reserveVolume(volumeId, instance);
    const connected = await env.cloud.cinder.createAttachment({
      volumeId,
      instanceUuid: instance,
      host: 'compute-1',
    });
    await env.cloud.cinder.completeAttachment(connected.attachmentId);
    const before = await snapshotRows();
    const post = (who: User, snapshot: unknown) => call(who, 'POST', '/v3/snapshots', { snapshot });

    const inUse = await post(alice, { volume_id: volumeId });
    assert.equal(inUse.status, 400);
    assert.equal(
      inUse.body.badRequest.message,
      `Invalid volume: Volume ${volumeId} status must be available, but current status is: in-use.`,
    );
    const notForced = await post(alice, { volume_id: volumeId, force: 'false' });
    assert.equal(notForced.status, 400);
    const badForce = await post(alice, { volume_id: volumeId, force: 'maybe' });
    assert.equal(badForce.status, 400);
    const extra = await post(alice, { volume_id: volumeId, colour: 'red' });
    assert.equal(extra.status, 400);
    assert.match(
      extra.body.badRequest.message,
      /Additional properties are not allowed \('colour' were unexpected\)/,
    );
    assert.equal((await call(alice, 'POST', '/v3/snapshots', { volume_id: volumeId })).status, 400);
    const missing = randomUUID();
    const unknown = await post(alice, { volume_id: missing });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.itemNotFound.message, `Volume ${missing} could not be found.`);
    const none = await post(alice, { volume_id: null });
    assert.equal(none.status, 404);
    assert.equal((await post(bob, { volume_id: volumeId, force: true })).status, 404);
    const readOnly = await post(reader, { volume_id: volumeId, force: true });
    assert.equal(readOnly.status, 403);
    assert.equal(
      readOnly.body.forbidden.message,
      "Policy doesn't allow volume:create_snapshot to be performed.",
    );

    await env.cloud.nova.setQuotaLimits(alice.projectId, { snapshots: 0 });
    const overCount = await post(alice, { volume_id: volumeId, force: true });
    assert.equal(overCount.status, 413);
    assert.equal(overCount.body.overLimit.message, 'Maximum number of snapshots allowed (0) exceeded');
    await env.cloud.nova.setQuotaLimits(alice.projectId, { snapshots: 10, gigabytes: 0 });
    const overSize = await post(alice, { volume_id: volumeId, force: true });
    assert.equal(overSize.status, 413);
    assert.equal(
      overSize.body.overLimit.message,
      'Requested volume or snapshot exceeds allowed gigabytes quota. Requested 1G, quota is 0G and 0G has been consumed.',
    );
    await env.cloud.nova.setQuotaLimits(alice.projectId, { gigabytes: 1000 });
    assert.deepEqual(await snapshotRows(), before);

    const forced = await snapshot(volumeId, { force: true });
    assert.equal(forced.status, 'available');
    // The volume is still attached and has a snapshot: its delete is refused either way.
    await env.cloud.cinder.detachVolume(attachment.id);
    const refused = await call(alice, 'DELETE', `/v3/volumes/${volumeId}`);
    assert.equal(refused.status, 400);
    assert.match(refused.body.badRequest.message, /^Invalid volume: .*have snapshots/);
    assert.equal((await call(alice, 'GET', `/v3/snapshots/${forced.id}`)).status, 200);
    assert.equal((await call(reader, 'DELETE', `/v3/snapshots/${forced.id}`)).status, 403);
    assert.equal((await call(bob, 'DELETE', `/v3/snapshots/${forced.id}`)).status, 404);
    const cascade = await call(alice, 'DELETE', `/v3/volumes/${volumeId}?cascade=true`);
    assert.equal(cascade.status, 202);
    assert.equal((await call(alice, 'GET', `/v3/snapshots/${forced.id}`)).status, 404);
    assert.equal((await call(alice, 'GET', `/v3/volumes/${volumeId}`)).status, 404);
  });

  test('list and detail: filters, sort, marker, offset, limit with next link, all_tenants for an admin', async () => {
    const volumeId = await volume();
    const snaps: Body[] = [];
    for (const name of ['b-snap', 'a-snap', 'c-snap']) snaps.push(await snapshot(volumeId, { name }));
    const bobVolume = await volume(bob);
    const bobSnap = await snapshot(bobVolume, {}, bob);
    const ids = (res: { body: Body }) => (res.body.snapshots as Body[]).map((s) => s.id as string);

    const all = await call(alice, 'GET', '/v3/snapshots');
    assert.deepEqual(ids(all), snaps.map((s) => s.id).reverse(), 'newest first, only her project');
    const byName = await call(alice, 'GET', '/v3/snapshots/detail?name=a-snap&status=available');
    assert.deepEqual(ids(byName), [snaps[1]!.id]);
    assert.equal(byName.body.snapshots[0]['os-extended-snapshot-attributes:project_id'], alice.projectId);
    assert.deepEqual(ids(await call(alice, 'GET', `/v3/snapshots?volume_id=${bobVolume}`)), []);
    const sorted = await call(alice, 'GET', '/v3/snapshots?sort_key=display_name&sort_dir=asc');
    assert.deepEqual(
      (sorted.body.snapshots as Body[]).map((s) => s.name),
      ['a-snap', 'b-snap', 'c-snap'],
    );
    assert.equal((await call(alice, 'GET', '/v3/snapshots?sort_key=name')).status, 400);
    assert.equal((await call(alice, 'GET', '/v3/snapshots?sort_key=name', undefined, '3.30')).status, 200);
    assert.equal((await call(alice, 'GET', '/v3/snapshots?sort_key=invalid')).status, 400);
    assert.equal((await call(alice, 'GET', '/v3/snapshots?limit=invalid')).status, 400);
    assert.equal((await call(alice, 'GET', `/v3/snapshots?marker=${randomUUID()}`)).status, 404);
    assert.deepEqual(ids(await call(alice, 'GET', '/v3/snapshots?limit=0')), []);
    const page = await call(alice, 'GET', '/v3/snapshots?limit=2');
    assert.equal(ids(page).length, 2);
    assert.match(
      page.body.snapshots_links[0].href,
      new RegExp(`/volume/v3/snapshots\\?limit=2&marker=${ids(page)[1]}$`),
    );
    assert.deepEqual(ids(await call(alice, 'GET', '/v3/snapshots?offset=2&limit=3')), [snaps[0]!.id]);
    assert.deepEqual(ids(await call(alice, 'GET', `/v3/snapshots?marker=${snaps[1]!.id}`)), [snaps[0]!.id]);
    // The metadata filter is Cinder's from 3.22.
    await call(alice, 'PUT', `/v3/snapshots/${snaps[2]!.id}/metadata`, { metadata: { k: 'v' } });
    assert.deepEqual(ids(await call(alice, 'GET', "/v3/snapshots?metadata={'k':'v'}", undefined, '3.22')), [
      snaps[2]!.id,
    ]);
    assert.equal(ids(await call(alice, 'GET', "/v3/snapshots?metadata={'k':'v'}")).length, 3);

    // all_tenants: an admin sees every project's; a member still sees only hers.
    const everyone = ids(await call(admin, 'GET', '/v3/snapshots?all_tenants=1'));
    assert.ok(everyone.includes(bobSnap.id) && everyone.includes(snaps[0]!.id));
    assert.deepEqual(ids(await call(admin, 'GET', '/v3/snapshots')), []);
    assert.deepEqual(ids(await call(bob, 'GET', '/v3/snapshots?all_tenants=1')), [bobSnap.id]);
    await env.cloud.cinder.deleteVolume(volumeId, { cascade: true });
    await env.cloud.cinder.deleteVolume(bobVolume, { cascade: true });
  });

  test('snapshot metadata: create (merge), update_all (replace), item show / update / delete', async () => {
    const volumeId = await volume();
    const snap = await snapshot(volumeId, { metadata: { keep: 'me' } });
    const url = `/v3/snapshots/${snap.id}/metadata`;
    const merged = await call(alice, 'POST', url, { metadata: { key1: 'v1', key2: 'v2' } });
    assert.deepEqual(merged.body.metadata, { keep: 'me', key1: 'v1', key2: 'v2' });
    const replaced = await call(alice, 'PUT', url, { metadata: { key3: 'v3' } });
    assert.deepEqual(replaced.body.metadata, { key3: 'v3' });
    assert.deepEqual((await call(alice, 'GET', url)).body.metadata, { key3: 'v3' });
    const item = await call(alice, 'PUT', `${url}/key3`, { meta: { key3: 'new' } });
    assert.deepEqual([item.status, item.body.meta], [200, { key3: 'new' }]);
    assert.deepEqual((await call(alice, 'GET', `${url}/key3`)).body.meta, { key3: 'new' });
    assert.equal((await call(alice, 'PUT', `${url}/other`, { meta: { key3: 'x' } })).status, 400);
    assert.equal((await call(reader, 'PUT', `${url}/key3`, { meta: { key3: 'x' } })).status, 403);
    assert.equal((await call(reader, 'GET', `${url}/key3`)).status, 200);
    assert.equal((await call(alice, 'DELETE', `${url}/key3`)).status, 200);
    const missing = await call(alice, 'DELETE', `${url}/key3`);
    assert.equal(missing.status, 404);
    assert.equal(missing.body.itemNotFound.message, `Snapshot ${snap.id} has no metadata with key key3.`);
    assert.equal((await call(alice, 'POST', url, { metadata: { 'bad key!': 'x' } })).status, 400);
    assert.equal((await call(bob, 'GET', url)).status, 404);
    await env.cloud.cinder.deleteVolume(volumeId, { cascade: true });
  });

  test('admin actions: os-reset_status and os-force_delete (admin only); unknown action 400', async () => {
    const volumeId = await volume();
    const snap = await snapshot(volumeId);
    const action = (who: User, body: unknown) => call(who, 'POST', `/v3/snapshots/${snap.id}/action`, body);
    assert.equal((await action(alice, { 'os-reset_status': { status: 'error' } })).status, 403);
    assert.equal((await action(admin, { 'os-reset_status': { status: 'bogus' } })).status, 400);
    assert.equal((await action(admin, { 'os-reset_status': { status: 'Error' } })).status, 202);
    assert.equal((await env.cloud.cinder.snapshots.get(snap.id)).status, 'error');
    assert.equal((await action(admin, { 'os-reset_status': { status: 'creating' } })).status, 202);
    const refused = await call(alice, 'DELETE', `/v3/snapshots/${snap.id}`);
    assert.equal(refused.status, 400);
    assert.equal(
      refused.body.badRequest.message,
      'Invalid snapshot: Snapshot status must be available or error and must not be part of a group.',
    );
    assert.equal((await action(alice, { 'os-force_delete': {} })).status, 403);
    assert.match(
      (await action(alice, { 'os-fly': {} })).body.badRequest.message,
      /There is no such action: os-fly/,
    );
    assert.equal((await action(admin, { 'os-force_delete': {} })).status, 202);
    assert.equal((await call(alice, 'GET', `/v3/snapshots/${snap.id}`)).status, 404);
    await env.cloud.cinder.deleteVolume(volumeId);
  });

  test('a volume from a snapshot: its size by default, no smaller, snapshot_id shown; 404 for an unseen snapshot', async () => {
    const volumeId = await volume(alice, 2);
    const snap = await snapshot(volumeId);
    const rows = (await env.cloud.cinder.listVolumes({})).length;
    const smaller = await call(alice, 'POST', '/v3/volumes', { volume: { size: 1, snapshot_id: snap.id } });
    assert.equal(smaller.status, 400);
    assert.equal(
      smaller.body.badRequest.message,
      "Invalid input received: Volume size '1'GB cannot be smaller than the snapshot size 2GB. They must be >= original snapshot size.",
    );
    const hidden = await call(bob, 'POST', '/v3/volumes', { volume: { size: 2, snapshot_id: snap.id } });
    assert.equal(hidden.status, 404);
    assert.equal(hidden.body.itemNotFound.message, `Snapshot ${snap.id} could not be found.`);
    assert.equal((await call(alice, 'POST', '/v3/volumes', { volume: {} })).status, 400);
    assert.equal((await env.cloud.cinder.listVolumes({})).length, rows);

    const made = await call(alice, 'POST', '/v3/volumes', { volume: { snapshot_id: snap.id } });
    assert.equal(made.status, 202);
    assert.deepEqual([made.body.volume.size, made.body.volume.snapshot_id], [2, snap.id]);
    await env.cloud.cinder.waitForVolume(made.body.volume.id, { timeoutMs: 30_000 });
    const shown = await call(alice, 'GET', `/v3/volumes/${made.body.volume.id}`);
    assert.deepEqual([shown.body.volume.status, shown.body.volume.snapshot_id], ['available', snap.id]);
    await env.cloud.cinder.deleteVolume(made.body.volume.id);
    await env.cloud.cinder.deleteVolume(volumeId, { cascade: true });
  });
});
