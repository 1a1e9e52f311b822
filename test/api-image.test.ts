/**
 * Glance v2 over HTTP (inject): versions, create (queued), upload streamed and hashed, download with
 * Content-MD5, list filters, sorting and pagination, Glance's visibility rules, PATCH, tags, members,
 * deactivate/reactivate, protected images, delete; bad requests change nothing.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { Kysely } from 'kysely';
import { openServiceDb } from '../cloud/db';
import { generateQcow2Image } from '../cloud/glance';
import { glanceMigrations } from '../cloud/glance/migrations';
import type { GlanceDb } from '../cloud/glance/schema';
import { openApiTestEnv, seedUserToken, type ApiTestEnv } from './helpers/api';

const json = { 'content-type': 'application/json' };

describe('Glance v2 API', () => {
  let env: ApiTestEnv;
  let alice: string;
  let bob: string;
  let root: string;
  let rita: string;
  let aliceProject: string;
  let bobProject: string;

  async function token(user: string, project: string): Promise<string> {
    const res = await env.app.inject({
      method: 'POST',
      url: '/identity/v3/auth/tokens',
      headers: json,
      payload: {
        auth: {
          identity: {
            methods: ['password'],
            password: { user: { name: user, domain: { id: 'default' }, password: `${user}-pw` } },
          },
          scope: { project: { name: project, domain: { id: 'default' } } },
        },
      },
    });
    assert.equal(res.statusCode, 201, res.body);
    return String(res.headers['x-subject-token']);
  }

  before(async () => {
    env = await openApiTestEnv({ services: ['identity', 'image', 'compute'], label: 'api-image' });
    const ks = env.cloud.keystone;
    for (const [user, project] of [
      ['alice', 'p-alice'],
      ['bob', 'p-bob'],
    ] as const) {
      await ks.ensureProject({ name: project });
      await ks.ensureUser({ name: user, password: `${user}-pw` });
      await ks.assignRole({ user, project, role: 'member' });
    }
    alice = await token('alice', 'p-alice');
    bob = await token('bob', 'p-bob');
    root = (await seedUserToken(env, 'root', 'p-root', 'admin')).token;
    rita = (await seedUserToken(env, 'rita', 'p-alice', 'reader')).token;
    bobProject = (await ks.ensureProject({ name: 'p-bob' })).id;
    aliceProject = (await ks.ensureProject({ name: 'p-alice' })).id;
  });
  after(async () => {
    await env?.close();
  });

  const imageRows = async () =>
    (await env.cloud.glance.listImages({ projectId: 'x', roles: ['admin'] })).length;

  test('versions at /image (300) and /image/versions', async () => {
    const root = await env.app.inject({ method: 'GET', url: '/image' });
    assert.equal(root.statusCode, 300);
    const versions = (root.json() as { versions: Array<{ id: string; status: string }> }).versions;
    assert.equal(versions.find((v) => v.status === 'CURRENT')?.id, 'v2.16');
    assert.equal((await env.app.inject({ method: 'GET', url: '/image/versions' })).statusCode, 200);
  });

  test('create, upload, show, download: bytes and checksum equal; list, paginate; delete', async () => {
    const data = generateQcow2Image({ seed: 'api-image' });
    const md5 = createHash('md5').update(data).digest('hex');
    const created = await env.app.inject({
      method: 'POST',
      url: '/image/v2/images',
      headers: { ...json, 'x-auth-token': alice },
      payload: {
        name: 'img1',
        disk_format: 'qcow2',
        container_format: 'bare',
        'owner_specified.openstack.md5': md5,
      },
    });
    assert.equal(created.statusCode, 201, created.body);
    const image = created.json() as Record<string, unknown>;
    assert.equal(image.status, 'queued');
    assert.equal(image.visibility, 'shared');
    assert.equal(image['owner_specified.openstack.md5'], md5);
    assert.equal(image.file, `/v2/images/${String(image.id)}/file`);

    const upload = await env.app.inject({
      method: 'PUT',
      url: `/image/v2/images/${String(image.id)}/file`,
      headers: { 'x-auth-token': alice, 'content-type': 'application/octet-stream' },
      payload: data,
    });
    assert.equal(upload.statusCode, 204, upload.body);
    const shown = (
      await env.app.inject({
        method: 'GET',
        url: `/image/v2/images/${String(image.id)}`,
        headers: { 'x-auth-token': alice },
      })
    ).json() as Record<string, unknown>;
    assert.equal(shown.status, 'active');
    assert.equal(shown.checksum, md5);
    assert.equal(shown.size, data.length);
    assert.equal(shown.os_hash_value, createHash('sha512').update(data).digest('hex'));

    const download = await env.app.inject({
      method: 'GET',
      url: `/image/v2/images/${String(image.id)}/file`,
      headers: { 'x-auth-token': alice },
    });
    assert.equal(download.statusCode, 200);
    assert.equal(download.headers['content-md5'], md5);
    assert.equal(Number(download.headers['content-length']), data.length);
    assert.ok(download.rawPayload.equals(data));

    // Another project does not see a private/shared image of alice's: 404.
    const hidden = await env.app.inject({
      method: 'GET',
      url: `/image/v2/images/${String(image.id)}`,
      headers: { 'x-auth-token': bob },
    });
    assert.equal(hidden.statusCode, 404);
    assert.match(hidden.body, /^404 Not Found/);

    // Two more, then paginate by one.
    for (const name of ['img2', 'img3'])
      await env.app.inject({
        method: 'POST',
        url: '/image/v2/images',
        headers: { ...json, 'x-auth-token': alice },
        payload: { name, disk_format: 'raw', container_format: 'bare', visibility: 'private' },
      });
    const page1 = (
      await env.app.inject({
        method: 'GET',
        url: '/image/v2/images?limit=1',
        headers: { 'x-auth-token': alice },
      })
    ).json() as { images: Array<{ id: string; name: string }>; next?: string };
    assert.equal(page1.images.length, 1);
    assert.ok(page1.next?.startsWith('/v2/images?'));
    const names = [page1.images[0]!.name];
    let next = page1.next;
    while (next) {
      const page = (
        await env.app.inject({ method: 'GET', url: `/image${next}`, headers: { 'x-auth-token': alice } })
      ).json() as { images: Array<{ name: string }>; next?: string };
      names.push(...page.images.map((i) => i.name));
      next = page.next;
    }
    assert.deepEqual(names.sort(), ['img1', 'img2', 'img3']);
    const filtered = (
      await env.app.inject({
        method: 'GET',
        url: `/image/v2/images?status=active&id=in:${String(image.id)},nothing`,
        headers: { 'x-auth-token': alice },
      })
    ).json() as { images: Array<{ id: string }> };
    assert.deepEqual(
      filtered.images.map((i) => i.id),
      [image.id],
    );
    const byVisibility = (
      await env.app.inject({
        method: 'GET',
        url: '/image/v2/images?visibility=private',
        headers: { 'x-auth-token': alice },
      })
    ).json() as { images: Array<{ name: string }> };
    assert.deepEqual(byVisibility.images.map((i) => i.name).sort(), ['img2', 'img3']);

    // bob cannot delete it (404), alice can (204), then it is gone.
    const denied = await env.app.inject({
      method: 'DELETE',
      url: `/image/v2/images/${String(image.id)}`,
      headers: { 'x-auth-token': bob },
    });
    assert.equal(denied.statusCode, 404);
    const del = await env.app.inject({
      method: 'DELETE',
      url: `/image/v2/images/${String(image.id)}`,
      headers: { 'x-auth-token': alice },
    });
    assert.equal(del.statusCode, 204);
    const gone = await env.app.inject({
      method: 'GET',
      url: `/image/v2/images/${String(image.id)}`,
      headers: { 'x-auth-token': alice },
    });
    assert.equal(gone.statusCode, 404);
  });

  test('bad requests: 400/401/403/413 in Glance’s format, nothing stored', async () => {
    const before = await imageRows();
    const headers = { ...json, 'x-auth-token': alice };
    for (const payload of [
      '{"name": ',
      JSON.stringify({ name: 'x', disk_format: 'qcow2', container_format: 'bare', min_disk: 'big' }),
      JSON.stringify({ name: 'x', disk_format: 'floppy', container_format: 'bare' }),
      JSON.stringify({ name: 'x', disk_format: 'qcow2', container_format: 'bare', extra: 5 }),
    ]) {
      const res = await env.app.inject({ method: 'POST', url: '/image/v2/images', headers, payload });
      assert.equal(res.statusCode, 400, payload);
      assert.match(res.body, /^400 Bad Request\n\n/);
    }
    // A show without an id is Glance's 404, not the list.
    const noId = await env.app.inject({ method: 'GET', url: '/image/v2/images/', headers });
    assert.equal(noId.statusCode, 404);
    assert.match(noId.body, /^404 Not Found\n\n/);
    const readOnly = await env.app.inject({
      method: 'POST',
      url: '/image/v2/images',
      headers,
      payload: { name: 'x', disk_format: 'qcow2', container_format: 'bare', status: 'active' },
    });
    assert.equal(readOnly.statusCode, 403);
    const publicByMember = await env.app.inject({
      method: 'POST',
      url: '/image/v2/images',
      headers,
      payload: { name: 'x', disk_format: 'qcow2', container_format: 'bare', visibility: 'public' },
    });
    assert.equal(publicByMember.statusCode, 403);
    // Glance: only an admin creates an image owned by another project.
    const ownedByOther = await env.app.inject({
      method: 'POST',
      url: '/image/v2/images',
      headers,
      payload: { name: 'x', disk_format: 'raw', container_format: 'bare', owner: 'someone-else' },
    });
    assert.equal(ownedByOther.statusCode, 403);
    assert.match(ownedByOther.body, /You are not permitted to create images owned by 'someone-else'\./);
    for (const h of [{}, { 'x-auth-token': 'forged' }]) {
      const res = await env.app.inject({ method: 'GET', url: '/image/v2/images', headers: h });
      assert.equal(res.statusCode, 401);
      assert.match(String(res.headers['www-authenticate']), /^Keystone uri=/);
    }
    assert.equal(await imageRows(), before);

    // An upload of data that is not the declared format leaves the image queued with no data.
    const created = (
      await env.app.inject({
        method: 'POST',
        url: '/image/v2/images',
        headers,
        payload: { name: 'bad-data', disk_format: 'qcow2', container_format: 'bare' },
      })
    ).json() as { id: string };
    const bad = await env.app.inject({
      method: 'PUT',
      url: `/image/v2/images/${created.id}/file`,
      headers: { 'x-auth-token': alice, 'content-type': 'application/octet-stream' },
      payload: Buffer.from('not a qcow2 image at all'),
    });
    assert.ok(bad.statusCode >= 400 && bad.statusCode < 500, bad.body);
    const after = (
      await env.app.inject({
        method: 'GET',
        url: `/image/v2/images/${created.id}`,
        headers: { 'x-auth-token': alice },
      })
    ).json() as { status: string; size: number | null };
    assert.deepEqual([after.status, after.size], ['queued', null]);
  });

  // ---- helpers for the tests below ----------------------------------------------------------------------

  type Json = Record<string, unknown>;
  const call = (
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    url: string,
    tok: string,
    payload?: unknown,
    type?: string,
  ) =>
    env.app.inject({
      method,
      url: `/image/v2${url}`,
      headers: {
        'x-auth-token': tok,
        ...(payload !== undefined ? { 'content-type': type ?? 'application/json' } : {}),
      },
      ...(payload !== undefined
        ? { payload: typeof payload === 'string' ? payload : JSON.stringify(payload) }
        : {}),
    });
  const PATCH21 = 'application/openstack-images-v2.1-json-patch';
  const PATCH20 = 'application/openstack-images-v2.0-json-patch';
  const create = async (tok: string, body: Json): Promise<Json> => {
    const res = await call('POST', '/images', tok, body);
    assert.equal(res.statusCode, 201, res.body);
    return res.json() as Json;
  };
  const upload = async (tok: string, id: string, data: Buffer) =>
    env.app.inject({
      method: 'PUT',
      url: `/image/v2/images/${id}/file`,
      headers: { 'x-auth-token': tok, 'content-type': 'application/octet-stream' },
      payload: data,
    });
  /** Glance's own rows, read beside the service. */
  const dbRows = async <T>(fn: (db: Kysely<GlanceDb>) => Promise<T>): Promise<T> => {
    const store = await openServiceDb<GlanceDb>('glance', glanceMigrations, env.db);
    try {
      return await fn(store.db);
    } finally {
      await store.close();
    }
  };
  const imageRow = (id: string) =>
    dbRows((db) => db.selectFrom('images').selectAll().where('id', '=', id).executeTakeFirstOrThrow());
  const propRows = (id: string) =>
    dbRows(async (db) =>
      Object.fromEntries(
        (await db.selectFrom('image_properties').selectAll().where('image_id', '=', id).execute()).map(
          (r) => [r.name, r.value],
        ),
      ),
    );

  test('PATCH (2.1 and 2.0): core and custom properties, Glance’s 400/403/409/415, refused patches change nothing', async () => {
    const image = await create(alice, {
      name: 'patchme',
      disk_format: 'raw',
      container_format: 'bare',
      color: 'red',
      size_hint: '1',
    });
    const id = String(image.id);
    const ok = await call(
      'PATCH',
      `/images/${id}`,
      alice,
      [
        { op: 'replace', path: '/name', value: 'patched' },
        { op: 'add', path: '/hw_disk_bus', value: 'virtio' },
        { op: 'replace', path: '/color', value: 'blue' },
        { op: 'remove', path: '/size_hint' },
        { op: 'replace', path: '/min_disk', value: 3 },
        { op: 'replace', path: '/min_ram', value: 128 },
        { op: 'add', path: '/os_hidden', value: true },
        { op: 'replace', path: '/protected', value: true },
        { op: 'replace', path: '/visibility', value: 'private' },
        { op: 'add', path: '/tags', value: ['x', 'y'] },
      ],
      PATCH21,
    );
    assert.equal(ok.statusCode, 200, ok.body);
    const body = ok.json() as Json;
    assert.deepEqual(
      [
        body.name,
        body.hw_disk_bus,
        body.color,
        'size_hint' in body,
        body.min_disk,
        body.min_ram,
        body.os_hidden,
        body.protected,
        body.visibility,
        body.tags,
      ],
      ['patched', 'virtio', 'blue', false, 3, 128, true, true, 'private', ['x', 'y']],
    );
    const row = await imageRow(id);
    assert.deepEqual(
      [
        row.name,
        Number(row.min_disk),
        Number(row.min_ram),
        Number(row.os_hidden),
        Number(row.protected),
        row.visibility,
      ],
      ['patched', 3, 128, 1, 1, 'private'],
    );
    assert.deepEqual(await propRows(id), { color: 'blue', hw_disk_bus: 'virtio' });

    // 2.0's form: {"replace": "/name", "value": ...}; its add of a present property is 409.
    const v20 = await call('PATCH', `/images/${id}`, alice, [{ replace: '/name', value: 'twenty' }], PATCH20);
    assert.equal(v20.statusCode, 200, v20.body);
    const before = { row: await imageRow(id), props: await propRows(id) };
    const refused: Array<[unknown, number, RegExp, string?]> = [
      [[{ add: '/color', value: 'x' }], 409, /Property color already present\./, PATCH20],
      [[{ op: 'replace', path: '/nope', value: 'x' }], 409, /Property nope does not exist\./],
      [[{ op: 'remove', path: '/nope' }], 409, /Property nope does not exist\./],
      [[{ op: 'remove', path: '/name' }], 403, /Property name may not be removed\./],
      [[{ op: 'replace', path: '/status', value: 'active' }], 403, /Attribute 'status' is read-only\./],
      [[{ op: 'replace', path: '/checksum', value: 'x' }], 403, /Attribute 'checksum' is read-only\./],
      [[{ op: 'add', path: '/deleted', value: 'x' }], 403, /Attribute 'deleted' is reserved\./],
      [[{ op: 'add', path: '/os_glance_x', value: 'x' }], 403, /Attribute 'os_glance_x' is reserved\./],
      [[{ op: 'replace', path: '/visibility', value: 'public' }], 403, /publicize_image/],
      [[{ op: 'replace', path: '/owner', value: bobProject }], 403, /Owner can't be updated by non admin\./],
      [
        [{ op: 'replace', path: '/min_ram', value: -1 }],
        400,
        /Invalid value '-1' for parameter 'min_ram': Cannot be a negative value/,
      ],
      [[{ op: 'replace', path: '/min_disk', value: 'big' }], 400, /does not match schema/],
      [[{ op: 'add', path: '/custom', value: 5 }], 400, /does not match schema/],
      [[{ op: 'replace', path: '/visibility', value: 'everyone' }], 400, /does not match schema/],
      [[{ op: 'replace', path: '/name', value: 'n'.repeat(256) }], 400, /too long/],
      [[{ op: 'move', path: '/name', value: 'x' }], 400, /Invalid operation: `move`/],
      [[{ op: 'replace', path: 'name', value: 'x' }], 400, /does not start with "\/"/],
      [
        [{ op: 'replace', path: '/a/b', value: 'x' }],
        400,
        /Invalid JSON pointer for this resource: '\/a\/b'/,
      ],
      [[{ op: 'replace', path: '/name' }], 400, /requires a member named "value"/],
      [{ op: 'replace', path: '/name', value: 'x' }, 400, /must be a JSON array/],
      [['x'], 400, /Operations must be JSON objects\./],
      // A good change before a bad one is not saved either.
      [
        [
          { op: 'replace', path: '/name', value: 'half' },
          { op: 'remove', path: '/nope' },
        ],
        409,
        /does not exist/,
      ],
      [[{ op: 'replace', path: '/disk_format', value: 'qcow2' }], 200, /twenty/],
    ];
    for (const [patch, status, message, type] of refused) {
      const res = await call('PATCH', `/images/${id}`, alice, patch, type ?? PATCH21);
      assert.equal(res.statusCode, status, `${JSON.stringify(patch)}: ${res.body}`);
      assert.match(res.body, message);
      if (status !== 200) assert.match(res.body, new RegExp(`^${status} `));
    }
    // disk_format of a queued image may change (the last patch above); of an active one not (below).
    assert.equal((await imageRow(id)).disk_format, 'qcow2');
    assert.deepEqual(
      { ...(await imageRow(id)), disk_format: 'raw', updated_at: before.row.updated_at },
      before.row,
    );
    assert.deepEqual(await propRows(id), before.props);

    const wrongType = await call(
      'PATCH',
      `/images/${id}`,
      alice,
      [{ op: 'replace', path: '/name', value: 'x' }],
      'application/json',
    );
    assert.equal(wrongType.statusCode, 415);
    assert.equal(wrongType.headers['accept-patch'], `${PATCH20}, ${PATCH21}`);
    assert.match(wrongType.body, /Image PATCH expects Content-Type one of/);
    // bob does not see it (404); rita, a reader of alice's project, sees it but may not change it (403).
    assert.equal((await call('PATCH', `/images/${id}`, bob, [], PATCH21)).statusCode, 404);
    const reader = await call(
      'PATCH',
      `/images/${id}`,
      rita,
      [{ op: 'replace', path: '/name', value: 'r' }],
      PATCH21,
    );
    assert.equal(reader.statusCode, 403, reader.body);
    assert.equal((await imageRow(id)).name, 'twenty');
    // The admin may publicize and give the image away.
    const adminPatch = await call(
      'PATCH',
      `/images/${id}`,
      root,
      [
        { op: 'replace', path: '/visibility', value: 'public' },
        { op: 'replace', path: '/owner', value: bobProject },
      ],
      PATCH21,
    );
    assert.equal(adminPatch.statusCode, 200, adminPatch.body);
    assert.deepEqual([(await imageRow(id)).visibility, (await imageRow(id)).owner], ['public', bobProject]);
    // ... and create one owned by another project (tempest's test_create_image_owner_param).
    const given = await create(root, { disk_format: 'raw', container_format: 'bare', owner: bobProject });
    assert.equal(given.owner, bobProject);
    assert.equal((await imageRow(given.id as string)).owner, bobProject);
    assert.equal((await call('DELETE', `/images/${given.id as string}`, root)).statusCode, 204);
    // Protected: not even its owner deletes it (403) until protected is false again.
    const del = await call('DELETE', `/images/${id}`, bob);
    assert.equal(del.statusCode, 403);
    assert.match(del.body, new RegExp(`Image ${id} is protected and cannot be deleted\\.`));
    assert.equal((await imageRow(id)).status, 'queued');
    assert.equal(
      (
        await call(
          'PATCH',
          `/images/${id}`,
          bob,
          [{ op: 'replace', path: '/protected', value: false }],
          PATCH21,
        )
      ).statusCode,
      200,
    );
    assert.equal((await call('DELETE', `/images/${id}`, bob)).statusCode, 204);
    assert.equal((await imageRow(id)).status, 'deleted');
  });

  test('tags: on create, PUT and DELETE /tags/{tag}, the tag= filter (every tag), 404 for a tag not there', async () => {
    const a = await create(alice, {
      name: 'tagged-a',
      disk_format: 'raw',
      container_format: 'bare',
      tags: ['linux', 'x86', 'linux'],
    });
    const b = await create(alice, {
      name: 'tagged-b',
      disk_format: 'raw',
      container_format: 'bare',
      tags: ['linux'],
    });
    assert.deepEqual(a.tags, ['linux', 'x86']);
    assert.equal((await call('PUT', `/images/${String(b.id)}/tags/arm`, alice)).statusCode, 204);
    assert.equal((await call('PUT', `/images/${String(b.id)}/tags/arm`, alice)).statusCode, 204);
    const tagRows = await dbRows((db) =>
      db.selectFrom('image_tags').selectAll().where('image_id', '=', String(b.id)).orderBy('value').execute(),
    );
    assert.deepEqual(
      tagRows.map((r) => r.value),
      ['arm', 'linux'],
    );
    const listed = async (q: string) =>
      ((await call('GET', `/images?${q}`, alice)).json() as { images: Json[] }).images
        .map((i) => i.name)
        .sort();
    assert.deepEqual(await listed('tag=linux'), ['tagged-a', 'tagged-b']);
    assert.deepEqual(await listed('tag=linux&tag=x86'), ['tagged-a']);
    assert.deepEqual(await listed('tag=arm'), ['tagged-b']);
    assert.equal((await call('DELETE', `/images/${String(a.id)}/tags/x86`, alice)).statusCode, 204);
    const missing = await call('DELETE', `/images/${String(a.id)}/tags/x86`, alice);
    assert.equal(missing.statusCode, 404);
    assert.match(missing.body, /Tag x86 not found/);
    assert.equal((await call('PUT', `/images/${String(a.id)}/tags/x`, bob)).statusCode, 404);
    assert.equal((await call('PUT', `/images/${String(a.id)}/tags/x`, rita)).statusCode, 403);
    assert.equal(
      (await call('PUT', `/images/${String(a.id)}/tags/${'t'.repeat(256)}`, alice)).statusCode,
      400,
    );
    const shown = (await call('GET', `/images/${String(a.id)}`, alice)).json() as Json;
    assert.deepEqual(shown.tags, ['linux']);
    for (const img of [a, b])
      assert.equal((await call('DELETE', `/images/${String(img.id)}`, alice)).statusCode, 204);
  });

  test('members: only of shared images; pending, then accepted by the member alone; member_status in the list', async () => {
    const image = await create(alice, {
      name: 'shared-1',
      disk_format: 'raw',
      container_format: 'bare',
      visibility: 'shared',
    });
    const id = String(image.id);
    const added = await call('POST', `/images/${id}/members`, alice, { member: bobProject });
    assert.equal(added.statusCode, 200, added.body);
    const m = added.json() as Json;
    assert.deepEqual(
      [m.image_id, m.member_id, m.status, m.schema, typeof m.created_at, typeof m.updated_at],
      [id, bobProject, 'pending', '/v2/schemas/member', 'string', 'string'],
    );
    const dup = await call('POST', `/images/${id}/members`, alice, { member: bobProject });
    assert.equal(dup.statusCode, 409);
    assert.match(dup.body, new RegExp(`Member ${bobProject} is duplicated for image ${id}`));
    assert.equal((await call('POST', `/images/${id}/members`, alice, {})).statusCode, 400);
    assert.equal((await call('POST', `/images/${id}/members`, rita, { member: 'someone' })).statusCode, 403);
    // A pending member sees the image but does not list it, unless asking for pending ones.
    assert.equal((await call('GET', `/images/${id}`, bob)).statusCode, 200);
    const bobList = async (q = '') =>
      ((await call('GET', `/images${q}`, bob)).json() as { images: Json[] }).images.some((i) => i.id === id);
    assert.deepEqual(
      [await bobList(), await bobList('?member_status=pending'), await bobList('?member_status=all')],
      [false, true, true],
    );
    assert.equal((await call('GET', '/images?member_status=maybe', bob)).statusCode, 400);
    const byOwner = await call('PUT', `/images/${id}/members/${bobProject}`, alice, { status: 'accepted' });
    assert.equal(byOwner.statusCode, 403);
    const badStatus = await call('PUT', `/images/${id}/members/${bobProject}`, bob, { status: 'maybe' });
    assert.equal(badStatus.statusCode, 400);
    assert.match(badStatus.body, /Status must be "pending", "accepted" or "rejected"\./);
    const accepted = await call('PUT', `/images/${id}/members/${bobProject}`, bob, { status: 'accepted' });
    assert.equal(accepted.statusCode, 200, accepted.body);
    assert.equal((accepted.json() as Json).status, 'accepted');
    const memberRow = await dbRows((db) =>
      db.selectFrom('image_members').selectAll().where('image_id', '=', id).executeTakeFirstOrThrow(),
    );
    assert.deepEqual([memberRow.member, memberRow.status], [bobProject, 'accepted']);
    assert.deepEqual([await bobList(), await bobList('?visibility=shared')], [true, true]);
    const list = (await call('GET', `/images/${id}/members`, alice)).json() as {
      members: Json[];
      schema: string;
    };
    assert.deepEqual(
      [list.members.map((x) => x.member_id), list.schema],
      [[bobProject], '/v2/schemas/members'],
    );
    assert.equal(
      ((await call('GET', `/images/${id}/members/${bobProject}`, bob)).json() as Json).status,
      'accepted',
    );
    assert.equal((await call('GET', `/images/${id}/members/nobody`, alice)).statusCode, 404);
    // bob may not remove himself; alice may; then bob no longer sees the image.
    assert.equal((await call('DELETE', `/images/${id}/members/${bobProject}`, bob)).statusCode, 403);
    assert.equal((await call('DELETE', `/images/${id}/members/${bobProject}`, alice)).statusCode, 204);
    assert.equal((await call('GET', `/images/${id}`, bob)).statusCode, 404);
    assert.equal(
      (await dbRows((db) => db.selectFrom('image_members').selectAll().where('image_id', '=', id).execute()))
        .length,
      0,
    );
    // A private image has no members.
    const priv = await create(alice, {
      name: 'private-1',
      disk_format: 'raw',
      container_format: 'bare',
      visibility: 'private',
    });
    const refused = await call('POST', `/images/${String(priv.id)}/members`, alice, { member: bobProject });
    assert.equal(refused.statusCode, 403);
    assert.equal((await call('GET', `/images/${String(priv.id)}/members`, alice)).statusCode, 403);
    for (const img of [id, String(priv.id)])
      assert.equal((await call('DELETE', `/images/${img}`, alice)).statusCode, 204);
  });

  test('deactivate/reactivate, images without formats, a boot refuses a deactivated or queued image', async () => {
    const data = generateQcow2Image({ seed: 'api-image-deactivate' });
    // Created without formats: queued, no data until PATCH sets both.
    const image = await create(alice, { name: 'later-formats' });
    const id = String(image.id);
    assert.deepEqual([image.status, image.disk_format, image.container_format], ['queued', null, null]);
    const early = await upload(alice, id, data);
    assert.equal(early.statusCode, 400);
    assert.match(early.body, /Properties disk_format, container_format must be set prior to saving data\./);
    assert.equal((await imageRow(id)).status, 'queued');
    const set = await call(
      'PATCH',
      `/images/${id}`,
      alice,
      [
        { op: 'add', path: '/disk_format', value: 'qcow2' },
        { op: 'add', path: '/container_format', value: 'bare' },
      ],
      PATCH21,
    );
    assert.equal(set.statusCode, 200, set.body);
    // A boot of a queued image is refused before anything starts.
    await env.cloud.nova
      .createFlavor({
        id: 'img-test',
        name: 'img-test',
        vcpus: 1,
        memoryMb: 64,
        rootGb: 1,
        ephemeralGb: 0,
        swapMb: 0,
      })
      .catch(() => undefined);
    const boot = () =>
      env.app.inject({
        method: 'POST',
        url: '/compute/v2.1/servers',
        headers: {
          'x-auth-token': alice,
          'content-type': 'application/json',
          'openstack-api-version': 'compute 2.37',
        },
        payload: { server: { name: 'vm', imageRef: id, flavorRef: 'img-test', networks: 'none' } },
      });
    const queuedBoot = await boot();
    assert.equal(queuedBoot.statusCode, 400, queuedBoot.body);
    assert.match(queuedBoot.body, /is not active/);
    assert.equal((await upload(alice, id, data)).statusCode, 204);
    const deactivatedQueued = await call(
      'POST',
      `/images/${String((await create(alice, { name: 'q' })).id)}/actions/deactivate`,
      alice,
    );
    assert.equal(deactivatedQueued.statusCode, 403);
    assert.match(deactivatedQueued.body, /Not allowed to deactivate image in status 'queued'/);

    assert.equal((await call('POST', `/images/${id}/actions/deactivate`, rita)).statusCode, 403);
    assert.equal((await call('POST', `/images/${id}/actions/deactivate`, bob)).statusCode, 404);
    assert.equal((await call('POST', `/images/${id}/actions/deactivate`, alice)).statusCode, 204);
    assert.equal((await call('POST', `/images/${id}/actions/deactivate`, alice)).statusCode, 204);
    assert.equal((await imageRow(id)).status, 'deactivated');
    const denied = await call('GET', `/images/${id}/file`, alice);
    assert.equal(denied.statusCode, 403);
    assert.match(
      denied.body,
      /The requested image has been deactivated\. Image data download is forbidden\./,
    );
    const byAdmin = await call('GET', `/images/${id}/file`, root);
    assert.equal(byAdmin.statusCode, 200);
    assert.ok(byAdmin.rawPayload.equals(data));
    const deactivatedBoot = await boot();
    assert.equal(deactivatedBoot.statusCode, 400, deactivatedBoot.body);
    assert.equal((await env.cloud.nova.listInstances({ projectId: aliceProject })).length, 0);
    assert.equal((await call('POST', `/images/${id}/actions/reactivate`, alice)).statusCode, 204);
    assert.equal((await imageRow(id)).status, 'active');
    assert.equal((await call('GET', `/images/${id}/file`, alice)).statusCode, 200);
    const formatsLocked = await call(
      'PATCH',
      `/images/${id}`,
      alice,
      [{ op: 'replace', path: '/disk_format', value: 'raw' }],
      PATCH21,
    );
    assert.equal(formatsLocked.statusCode, 403);
    assert.match(formatsLocked.body, /Attribute disk_format can be only replaced for a queued image\./);
  });

  test('list: sort (both syntaxes), visibility, os_hidden, status, name, owner, size range, limit/marker; a reader may not write', async () => {
    const names = ['s-b', 's-a', 's-c'];
    const ids: string[] = [];
    for (const [i, name] of names.entries()) {
      const img = await create(bob, {
        name,
        disk_format: 'raw',
        container_format: 'bare',
        visibility: 'private',
      });
      ids.push(String(img.id));
      if (i < 2)
        assert.equal((await upload(bob, String(img.id), Buffer.alloc(1024 * (i + 1)))).statusCode, 204);
    }
    const names_ = async (q: string) =>
      ((await call('GET', `/images?${q}`, bob)).json() as { images: Json[] }).images
        .map((i) => i.name)
        .filter((n) => names.includes(String(n)));
    assert.deepEqual(await names_('sort=name:asc'), ['s-a', 's-b', 's-c']);
    assert.deepEqual(await names_('sort_key=name&sort_dir=desc'), ['s-c', 's-b', 's-a']);
    assert.deepEqual(await names_('sort=size:desc,name'), ['s-a', 's-b', 's-c']);
    assert.deepEqual(await names_(''), ['s-c', 's-a', 's-b']);
    assert.deepEqual(await names_('size_min=1500'), ['s-a']);
    assert.deepEqual(await names_('size_max=1500&sort=name:asc'), ['s-b']);
    assert.deepEqual(await names_('status=queued'), ['s-c']);
    assert.deepEqual(await names_('name=s-b'), ['s-b']);
    assert.deepEqual(await names_(`owner=${bobProject}&sort=name:asc`), ['s-a', 's-b', 's-c']);
    assert.deepEqual(await names_('visibility=private&sort=name:asc'), ['s-a', 's-b', 's-c']);
    assert.deepEqual(await names_('visibility=public'), []);
    const page = (await call('GET', '/images?sort=name:asc&limit=1&name=s-a', bob)).json() as {
      images: Json[];
      next?: string;
    };
    assert.equal(page.images.length, 1);
    const after = (
      await call('GET', `/images?sort=name:asc&marker=${ids[1]}&owner=${bobProject}`, bob)
    ).json() as { images: Json[] };
    assert.deepEqual(
      after.images.map((i) => i.name),
      ['s-b', 's-c'],
    );
    await call(
      'PATCH',
      `/images/${ids[2]}`,
      bob,
      [{ op: 'replace', path: '/os_hidden', value: true }],
      PATCH21,
    );
    assert.deepEqual(await names_('sort=name:asc'), ['s-a', 's-b']);
    assert.deepEqual(await names_('os_hidden=true'), ['s-c']);
    assert.deepEqual(await names_('disk_format=raw&container_format=bare&sort=name:asc'), ['s-a', 's-b']);
    assert.deepEqual(await names_('disk_format=qcow2'), []);
    assert.deepEqual(await names_('size=1024'), ['s-b']);
    await call(
      'PATCH',
      `/images/${ids[0]}`,
      bob,
      [{ op: 'add', path: '/hw_scsi_model', value: 'virtio-scsi' }],
      PATCH21,
    );
    assert.deepEqual(await names_('hw_scsi_model=virtio-scsi'), ['s-b']);
    assert.deepEqual(await names_('hw_scsi_model=other'), []);
    for (const [q, message] of [
      ['sort_key=color', /Invalid sort key: color/],
      ['sort_dir=up', /Invalid sort direction: up/],
      ['sort=name&sort_key=size', /Old and new sorting syntax cannot be combined/],
      [
        'sort_key=name&sort_key=size&sort_dir=asc&sort_dir=desc&sort_dir=asc',
        /Number of sort dirs does not match/,
      ],
      ['os_hidden=maybe', /Invalid value 'maybe' for 'os_hidden' filter/],
      ['size_min=big', /non-numeric/],
      ['visibility=everyone', /Invalid visibility value/],
    ] as const) {
      const res = await call('GET', `/images?${q}`, bob);
      assert.equal(res.statusCode, 400, q);
      assert.match(res.body, message);
    }
    // A reader lists and shows but creates, changes and deletes nothing.
    const before = await imageRows();
    const readerId = ids[0] as string;
    const ritaSees = await call('GET', '/images', rita);
    assert.equal(ritaSees.statusCode, 200);
    assert.equal(
      (await call('POST', '/images', rita, { name: 'r', disk_format: 'raw', container_format: 'bare' }))
        .statusCode,
      403,
    );
    assert.equal(await imageRows(), before);
    const aliceImage = await create(alice, {
      name: 'alice-owned',
      disk_format: 'raw',
      container_format: 'bare',
    });
    assert.equal((await call('DELETE', `/images/${String(aliceImage.id)}`, rita)).statusCode, 403);
    assert.equal((await upload(rita, String(aliceImage.id), Buffer.alloc(10))).statusCode, 403);
    assert.equal((await imageRow(String(aliceImage.id))).status, 'queued');
    assert.equal((await call('DELETE', `/images/${readerId}`, rita)).statusCode, 404);
  });
});
