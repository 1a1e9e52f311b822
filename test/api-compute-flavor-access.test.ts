/**
 * Private flavors through the compute API (flavors.py, flavor_access.py): create with
 * `os-flavor-access:is_public` false, who lists, shows and boots them, the is_public filter for an admin,
 * the access list and its actions with Nova's codes and bodies, and refusals that change nothing (the
 * Temporal client here throws when touched, so a refused boot started no workflow).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { assertFault, openComputeTestEnv, type ComputeTestEnv } from './helpers/compute-calls';

type Json = Record<string, unknown>;
let t: ComputeTestEnv;
const call: ComputeTestEnv['call'] = (...args) => t.call(...args);

before(async () => {
  t = await openComputeTestEnv('api-flavor-access');
});

after(async () => {
  await t?.close();
});

const accessRows = async (flavorid: string) =>
  (
    await t.env.cloud.nova.store.db
      .selectFrom('flavor_projects')
      .select('project_id')
      .where('flavorid', '=', flavorid)
      .execute()
  ).map((r) => r.project_id);

async function listedIds(as: keyof ComputeTestEnv['tokens'], query = ''): Promise<string[]> {
  const res = await call('GET', `/flavors/detail${query}`, { as });
  assert.equal(res.statusCode, 200, res.body);
  return (res.json() as { flavors: Json[] }).flavors.map((f) => String(f.id));
}

async function createFlavor(id: string, isPublic: string | boolean): Promise<Json> {
  const res = await call('POST', '/flavors', {
    as: 'admin',
    body: {
      flavor: {
        id,
        name: `flavor-${id}`,
        ram: 64,
        vcpus: 1,
        disk: 1,
        'os-flavor-access:is_public': isPublic,
      },
    },
  });
  assert.equal(res.statusCode, 200, res.body);
  return (res.json() as { flavor: Json }).flavor;
}

describe('private flavors', () => {
  test('created private, seen by an admin only until shared; is_public filters for an admin', async () => {
    const created = await createFlavor('priv', 'False');
    assert.equal(created['os-flavor-access:is_public'], false);
    await createFlavor('pub', true);
    const stored = await t.env.cloud.nova.store.db
      .selectFrom('flavors')
      .select('is_public')
      .where('flavorid', '=', 'priv')
      .executeTakeFirstOrThrow();
    assert.equal(stored.is_public, 0);
    assert.deepEqual(await accessRows('priv'), []);

    for (const who of ['member', 'reader', 'other'] as const) {
      assert.ok(!(await listedIds(who)).includes('priv'), who);
      // A non-admin's is_public is ignored (Nova's _get_flavors): still only what it may see.
      assert.ok(!(await listedIds(who, '?is_public=false')).includes('priv'), who);
      assertFault(
        await call('GET', '/flavors/priv', { as: who }),
        404,
        'itemNotFound',
        'Flavor priv could not be found.',
      );
      assertFault(await call('GET', '/flavors/priv/os-extra_specs', { as: who }), 404, 'itemNotFound');
    }
    // An admin: public (and its project's) by default, private with false, all with none.
    assert.ok(!(await listedIds('admin')).includes('priv'));
    for (const value of ['f', 'false', 'no', '0', 'False']) {
      const ids = await listedIds('admin', `?is_public=${value}`);
      assert.ok(ids.includes('priv') && !ids.includes('pub') && !ids.includes('1'), value);
    }
    for (const value of ['t', 'true', 'yes', '1']) {
      const ids = await listedIds('admin', `?is_public=${value}`);
      assert.ok(!ids.includes('priv') && ids.includes('pub'), value);
    }
    const all = await listedIds('admin', '?is_public=None');
    assert.ok(all.includes('priv') && all.includes('pub') && all.includes('1'));
    assertFault(
      await call('GET', '/flavors?is_public=maybe', { as: 'admin' }),
      400,
      'badRequest',
      'Invalid is_public filter [maybe]',
    );
    const shown = await call('GET', '/flavors/priv', { as: 'admin' });
    assert.equal((shown.json() as { flavor: Json }).flavor['os-flavor-access:is_public'], false);
  });

  test('a project without access cannot boot a private flavor: 400 before anything is written', async () => {
    const before = await t.env.cloud.nova.listInstances({ allProjects: true, includeDeleted: true });
    assertFault(
      await call('POST', '/servers', {
        as: 'member',
        body: { server: { name: 'vm', imageRef: t.boot.imageId, flavorRef: 'priv', networks: 'none' } },
        version: '2.37',
      }),
      400,
      'badRequest',
      'Flavor priv could not be found.',
    );
    assert.equal(
      (await t.env.cloud.nova.listInstances({ allProjects: true, includeDeleted: true })).length,
      before.length,
    );
  });
});

describe('os-flavor-access', () => {
  test('list, add and remove for an admin, with Nova bodies; the project granted sees the flavor', async () => {
    const empty = await call('GET', '/flavors/priv/os-flavor-access', { as: 'admin' });
    assert.equal(empty.statusCode, 200, empty.body);
    assert.deepEqual(empty.json(), { flavor_access: [] });

    const added = await call('POST', '/flavors/priv/action', {
      as: 'admin',
      body: { addTenantAccess: { tenant: t.demoProjectId } },
    });
    assert.equal(added.statusCode, 200, added.body);
    assert.deepEqual(added.json(), { flavor_access: [{ flavor_id: 'priv', tenant_id: t.demoProjectId }] });
    assert.deepEqual(await accessRows('priv'), [t.demoProjectId]);
    assert.ok((await listedIds('reader')).includes('priv'));
    assert.ok((await listedIds('member')).includes('priv'));
    assert.ok(!(await listedIds('other')).includes('priv'));
    assert.equal((await call('GET', '/flavors/priv', { as: 'reader' })).statusCode, 200);
    assertFault(await call('GET', '/flavors/priv', { as: 'other' }), 404, 'itemNotFound');
    const listed = await call('GET', '/flavors/priv/os-flavor-access', { as: 'admin' });
    assert.deepEqual(listed.json(), { flavor_access: [{ flavor_id: 'priv', tenant_id: t.demoProjectId }] });

    const removed = await call('POST', '/flavors/priv/action', {
      as: 'admin',
      body: { removeTenantAccess: { tenant: t.demoProjectId } },
    });
    assert.equal(removed.statusCode, 200, removed.body);
    assert.deepEqual(removed.json(), { flavor_access: [] });
    assert.deepEqual(await accessRows('priv'), []);
    assert.ok(!(await listedIds('member')).includes('priv'));
  });

  test("refusals with Nova's codes and messages change nothing", async () => {
    await call('POST', '/flavors/priv/action', {
      as: 'admin',
      body: { addTenantAccess: { tenant: t.otherProjectId } },
    });
    const add = (tenant: string, as: keyof ComputeTestEnv['tokens'] = 'admin', version?: string) =>
      call('POST', `/flavors/${tenant === 'public' ? 'pub' : 'priv'}/action`, {
        as,
        body: { addTenantAccess: { tenant: tenant === 'public' ? t.demoProjectId : tenant } },
        ...(version ? { version } : {}),
      });
    assertFault(
      await add(t.otherProjectId),
      409,
      'conflictingRequest',
      `Flavor access already exists for flavor priv and project ${t.otherProjectId} combination.`,
    );
    assertFault(
      await add(t.demoProjectId, 'member'),
      403,
      'forbidden',
      "Policy doesn't allow os_compute_api:os-flavor-access:add_tenant_access to be performed.",
    );
    assertFault(
      await call('POST', '/flavors/priv/action', {
        as: 'member',
        body: { removeTenantAccess: { tenant: t.otherProjectId } },
      }),
      403,
      'forbidden',
      "Policy doesn't allow os_compute_api:os-flavor-access:remove_tenant_access to be performed.",
    );
    assertFault(
      await call('GET', '/flavors/priv/os-flavor-access', { as: 'member' }),
      403,
      'forbidden',
      "Policy doesn't allow os_compute_api:os-flavor-access to be performed.",
    );
    assertFault(
      await add('no-such-project'),
      400,
      'badRequest',
      'Project ID no-such-project is not a valid project.',
    );
    assertFault(
      await add('public', 'admin', '2.7'),
      409,
      'conflictingRequest',
      'Can not add access to a public flavor.',
    );
    assertFault(
      await call('POST', '/flavors/priv/action', {
        as: 'admin',
        body: { removeTenantAccess: { tenant: t.demoProjectId } },
      }),
      404,
      'itemNotFound',
      `Flavor access not found for priv / ${t.demoProjectId} combination.`,
    );
    assertFault(
      await call('POST', '/flavors/nope/action', {
        as: 'admin',
        body: { addTenantAccess: { tenant: t.demoProjectId } },
      }),
      404,
      'itemNotFound',
      'Flavor nope could not be found.',
    );
    assertFault(
      await call('GET', '/flavors/pub/os-flavor-access', { as: 'admin' }),
      404,
      'itemNotFound',
      'Access list not available for public flavors.',
    );
    assertFault(
      await call('POST', '/flavors/priv/action', { as: 'admin', body: { addTenantAccess: {} } }),
      400,
      'badRequest',
      /'tenant' is a required property/,
    );
    assertFault(
      await call('POST', '/flavors/priv/action', { as: 'admin', body: { shareWith: { tenant: 'x' } } }),
      400,
      'badRequest',
      'There is no such action: shareWith',
    );
    assert.deepEqual(await accessRows('priv'), [t.otherProjectId]);
    assert.deepEqual(await accessRows('pub'), []);
  });

  test('deleting the flavor deletes its access list; extra spec delete is 200 as in Nova', async () => {
    await call('POST', '/flavors/priv/os-extra_specs', { as: 'admin', body: { extra_specs: { a: '1' } } });
    const unset = await call('DELETE', '/flavors/priv/os-extra_specs/a', { as: 'admin' });
    assert.equal(unset.statusCode, 200);
    assert.equal(unset.body, '');
    assert.equal((await call('DELETE', '/flavors/priv', { as: 'admin' })).statusCode, 202);
    assert.deepEqual(await accessRows('priv'), []);
  });
});
