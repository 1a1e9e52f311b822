/**
 * Glance v2 over HTTP (inject): versions, create (queued), upload streamed and hashed, download with
 * Content-MD5, list filters and pagination, Glance's visibility rules, delete; bad requests change nothing.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { generateQcow2Image } from '../cloud/glance';
import { openApiTestEnv, type ApiTestEnv } from './helpers/api';

const json = { 'content-type': 'application/json' };

describe('Glance v2 API', () => {
  let env: ApiTestEnv;
  let alice: string;
  let bob: string;

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
    env = await openApiTestEnv({ services: ['identity', 'image'], label: 'api-image' });
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
});
