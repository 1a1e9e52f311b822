/**
 * Private flavors in the nova database (flavor-access.ts, migration 011): who sees them (Nova's
 * is_public filter and _flavor_get_query_from_db), the access list's rows, and refusals that change
 * nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../cloud/clock';
import { isCloudError, type CloudErrorType } from '../cloud/errors';
import { Nova } from '../cloud/nova';
import { testDbConfig, type TestDb } from './helpers/cloud-db';

const isType = (type: CloudErrorType, message?: string) => (err: unknown) =>
  isCloudError(err, type) && (message === undefined || err.message === message);

const size = { vcpus: 1, memoryMb: 64, rootGb: 1, ephemeralGb: 0, swapMb: 0 };

describe('nova: private flavors and their access list', () => {
  let testDb: TestDb;
  let nova: Nova;

  before(async () => {
    testDb = testDbConfig('nova-flavor-access');
    nova = await Nova.open({ db: testDb.config, clock: new ManualClock(Date.UTC(2026, 0, 1)) });
    await nova.ensureDefaultFlavors();
  });
  after(async () => {
    await nova?.close();
    await testDb?.cleanup();
  });

  const rows = async (flavorid: string) =>
    (
      await nova.store.db
        .selectFrom('flavor_projects')
        .select('project_id')
        .where('flavorid', '=', flavorid)
        .orderBy('project_id')
        .execute()
    ).map((r) => r.project_id);
  const ids = (list: Array<{ id: string }>) => list.map((f) => f.id).filter((id) => id.startsWith('p-'));

  test('a private flavor is stored with is_public 0 and seen only by an admin and the projects granted', async () => {
    await nova.createFlavor({ id: 'p-1', name: 'private-1', ...size, isPublic: false });
    await nova.createFlavor({ id: 'p-2', name: 'public-2', ...size });
    const stored = await nova.store.db
      .selectFrom('flavors')
      .select(['flavorid', 'is_public'])
      .where('flavorid', 'in', ['p-1', 'p-2'])
      .orderBy('flavorid')
      .execute();
    assert.deepEqual(stored, [
      { flavorid: 'p-1', is_public: 0 },
      { flavorid: 'p-2', is_public: 1 },
    ]);
    assert.deepEqual(await rows('p-1'), [], 'the creating project is not granted access (Nova bug 1209101)');
    assert.equal((await nova.listFlavorExtras(['p-1'])).get('p-1')?.isPublic, false);

    // Nova's is_public filter: true = public or shared with the project, false = private, absent = all.
    assert.deepEqual(ids(await nova.listFlavors()), ['p-1', 'p-2']);
    assert.deepEqual(ids(await nova.listFlavors({ isPublic: true, projectId: 'a' })), ['p-2']);
    assert.deepEqual(ids(await nova.listFlavors({ isPublic: false })), ['p-1']);
    assert.deepEqual(ids(await nova.listFlavors({ isPublic: null })), ['p-1', 'p-2']);
    await assert.rejects(nova.getFlavor('p-1', { projectId: 'a', admin: false }), isType('NotFound'));
    await assert.rejects(nova.getFlavor('private-1', { projectId: 'a', admin: false }), isType('NotFound'));
    assert.equal((await nova.getFlavor('p-1', { projectId: 'a', admin: true })).name, 'private-1');

    assert.deepEqual(await nova.addFlavorAccess({ flavorId: 'p-1', projectId: 'a', refusePublic: true }), [
      'a',
    ]);
    assert.deepEqual(ids(await nova.listFlavors({ isPublic: true, projectId: 'a' })), ['p-1', 'p-2']);
    assert.deepEqual(ids(await nova.listFlavors({ isPublic: true, projectId: 'b' })), ['p-2']);
    assert.equal((await nova.getFlavor('p-1', { projectId: 'a', admin: false })).id, 'p-1');
    await assert.rejects(nova.getFlavor('p-1', { projectId: 'b', admin: false }), isType('NotFound'));
  });

  test('add and remove: one row per project; duplicates, missing ones and public flavors refused, nothing changed', async () => {
    await nova.createFlavor({ id: 'p-3', name: 'private-3', ...size, isPublic: false });
    await nova.addFlavorAccess({ flavorId: 'p-3', projectId: 'b', refusePublic: true });
    assert.deepEqual(await nova.addFlavorAccess({ flavorId: 'p-3', projectId: 'a', refusePublic: true }), [
      'a',
      'b',
    ]);
    await assert.rejects(
      nova.addFlavorAccess({ flavorId: 'p-3', projectId: 'a', refusePublic: true }),
      isType('Conflict', 'Flavor access already exists for flavor p-3 and project a combination.'),
    );
    await assert.rejects(
      nova.addFlavorAccess({ flavorId: 'p-2', projectId: 'a', refusePublic: true }),
      isType('Conflict', 'Can not add access to a public flavor.'),
    );
    await assert.rejects(
      nova.addFlavorAccess({ flavorId: 'nope', projectId: 'a', refusePublic: true }),
      isType('NotFound', 'Flavor nope could not be found.'),
    );
    await assert.rejects(
      nova.removeFlavorAccess({ flavorId: 'p-3', projectId: 'c' }),
      isType('NotFound', 'Flavor access not found for p-3 / c combination.'),
    );
    await assert.rejects(
      nova.addFlavorAccess({ flavorId: 'p-3', projectId: '', refusePublic: true }),
      isType('BadRequest'),
    );
    assert.deepEqual(await rows('p-3'), ['a', 'b']);
    assert.deepEqual(await rows('p-2'), []);

    assert.deepEqual(await nova.listFlavorAccess('p-3'), ['a', 'b']);
    await assert.rejects(
      nova.listFlavorAccess('p-2'),
      isType('NotFound', 'Access list not available for public flavors.'),
    );
    assert.deepEqual(await nova.removeFlavorAccess({ flavorId: 'p-3', projectId: 'b' }), ['a']);
    assert.deepEqual(await rows('p-3'), ['a']);
    // Before 2.7 Nova records access to a public flavor too (it changes nothing there).
    assert.deepEqual(await nova.addFlavorAccess({ flavorId: 'p-2', projectId: 'a', refusePublic: false }), [
      'a',
    ]);
  });

  test('deleting a flavor deletes its access list', async () => {
    await nova.createFlavor({ id: 'p-4', name: 'private-4', ...size, isPublic: false });
    await nova.addFlavorAccess({ flavorId: 'p-4', projectId: 'a', refusePublic: true });
    await nova.deleteFlavor('p-4');
    assert.deepEqual(await rows('p-4'), []);
  });
});
