/**
 * Cinder's volume snapshots in the embedded cloud: the copy of the volume's data taken in the background,
 * Cinder's rules (force for an in-use volume, no snapshot of a volume in error, delete only `available` or
 * `error` without force), the `snapshots` and `gigabytes` quota claimed in Nova's quota tables and released,
 * the volume delete refused while snapshots exist unless cascade, volumes from a snapshot, and every bad
 * input refused with nothing changed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { closeSync, existsSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { openCloud, type Cloud } from '../cloud';
import type { Snapshot, Volume } from '../cloud/cinder';
import { GIB } from '../cloud/cinder';
import { isCloudError, type CloudErrorType } from '../cloud/errors';
import { testDbConfig, testDbDialect, type TestDb } from './helpers/cloud-db';

const MIB = 1024 * 1024;

function isType(type: CloudErrorType, message?: RegExp) {
  return (err: unknown) => isCloudError(err, type) && (!message || message.test(err.message));
}

function readAt(file: string, position: number, length: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, position);
    return buffer;
  } finally {
    closeSync(fd);
  }
}

describe(`Cinder snapshots on ${testDbDialect}`, () => {
  let testDb: TestDb;
  let cloud: Cloud;
  let key = 0;
  const project = randomUUID().replaceAll('-', '');
  const member = { projectId: project, roles: ['member', 'reader'] };

  before(async () => {
    testDb = testDbConfig('cinder-snapshots');
    cloud = await openCloud({ db: testDb.config });
  });
  after(async () => {
    await cloud?.close();
    await testDb?.cleanup();
  });

  async function availableVolume(sizeGb = 1, projectId = project): Promise<Volume> {
    const volume = await cloud.cinder.createVolume({ requestKey: `snap-${++key}`, projectId, sizeGb });
    return cloud.cinder.waitForVolume(volume.id, { timeoutMs: 10_000, pollMs: 10 });
  }

  async function settled(id: string): Promise<Snapshot> {
    for (let i = 0; i < 500; i++) {
      const snapshot = await cloud.cinder.snapshots.get(id);
      if (snapshot.status !== 'creating') return snapshot;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`snapshot ${id} still creating`);
  }

  const held = async () =>
    Object.fromEntries(Object.entries(await cloud.nova.getQuotaUsage(project)).map(([r, u]) => [r, u.inUse]));
  const rows = async () => ({
    snapshots: await cloud.cinder.snapshots.list({ includeDeleted: true }),
    volumes: await cloud.cinder.listVolumes({ includeDeleted: true }),
    claims: await cloud.nova.listQuotaClaims(),
  });

  test("a snapshot copies the volume's data (holes stay holes), claims its quota, and is deleted with it released", async () => {
    const volume = await availableVolume(1);
    const data = randomBytes(MIB);
    const fd = openSync(volume.providerLocation!, 'r+');
    writeSync(fd, data, 0, data.length, 5 * MIB);
    closeSync(fd);
    const before = await held();

    const accepted = await cloud.cinder.snapshots.create(
      { volumeId: volume.id, projectId: project, name: 'snap-1', metadata: { k: 'v' } },
      member,
    );
    assert.equal(accepted.status, 'creating');
    assert.equal(accepted.progress, '0%');
    assert.equal(accepted.sizeGb, 1);
    assert.deepEqual(accepted.metadata, { k: 'v' });
    const snapshot = await settled(accepted.id);
    assert.equal(snapshot.status, 'available');
    assert.equal(snapshot.progress, '100%');
    const file = snapshot.providerLocation!;
    assert.equal(statSync(file).size, GIB);
    assert.ok(statSync(file).blocks * 512 < 4 * MIB, 'the snapshot file is sparse');
    assert.deepEqual(readAt(file, 5 * MIB, MIB), data);
    assert.equal(
      readAt(file, 0, MIB).every((b) => b === 0),
      true,
    );

    const claimed = await held();
    assert.equal(claimed.snapshots, before.snapshots! + 1);
    assert.equal(claimed.gigabytes, before.gigabytes! + 1);
    const claim = (await cloud.nova.listQuotaClaims(project)).find((c) => c.consumerUuid === snapshot.id);
    assert.deepEqual(claim?.resources, { snapshots: 1, gigabytes: 1 });

    assert.equal(await cloud.cinder.snapshots.delete(snapshot.id, {}, member), true);
    assert.equal(existsSync(file), false);
    assert.deepEqual(await held(), before);
    await assert.rejects(
      cloud.cinder.snapshots.get(snapshot.id),
      isType('NotFound', /Snapshot .* could not be found/),
    );
    // The operator's delete of a deleted snapshot is a no-op; a user's is NotFound.
    assert.equal(await cloud.cinder.snapshots.delete(snapshot.id), false);
    await assert.rejects(cloud.cinder.snapshots.delete(snapshot.id, {}, member), isType('NotFound'));
  });

  test("Cinder's refusals change nothing: in-use without force, error volume, unknown, other project, reader, bad input", async () => {
    const volume = await availableVolume(1);
    const attachment = await cloud.cinder.reserveVolume(volume.id, randomUUID());
    const attached = await cloud.cinder.createAttachment({
      volumeId: volume.id,
      instanceUuid: attachment.instanceUuid,
      host: 'compute-1',
    });
    await cloud.cinder.completeAttachment(attached.attachmentId);
    cloud.cinder.setFaults({ create: { mode: 'fail' } });
    const errored = await cloud.cinder.createVolume({
      requestKey: `snap-${++key}`,
      projectId: project,
      sizeGb: 1,
    });
    await assert.rejects(cloud.cinder.waitForVolume(errored.id, { timeoutMs: 10_000, pollMs: 10 }));
    cloud.cinder.setFaults(undefined);
    await cloud.cinder.snapshots.delete(randomUUID()); // nothing to delete: no change
    const before = await rows();

    const create = (volumeId: string, extra: Record<string, unknown> = {}, who = member) =>
      cloud.cinder.snapshots.create({ volumeId, projectId: project, ...extra }, who);
    await assert.rejects(
      create(volume.id),
      isType(
        'InvalidVolume',
        /^Invalid volume: Volume \S+ status must be available, but current status is: in-use\.$/,
      ),
    );
    await assert.rejects(
      create(errored.id),
      isType('InvalidVolume', /The snapshot cannot be created when the volume is in error status/),
    );
    await assert.rejects(create(randomUUID()), isType('NotFound', /Volume .* could not be found/));
    const other = await availableVolume(1, 'another-project');
    await assert.rejects(create(other.id), isType('NotFound'));
    await assert.rejects(
      create(volume.id, { force: true }, { projectId: project, roles: ['reader'] }),
      isType('Forbidden', /volume:create_snapshot/),
    );
    await assert.rejects(
      create(volume.id, { force: true, metadata: { 'bad key!': 'x' } }),
      isType('BadRequest'),
    );
    await assert.rejects(create(volume.id, { force: true, name: 'x'.repeat(256) }), isType('BadRequest'));
    await assert.rejects(create('not-a-uuid'), isType('NotFound'));
    await assert.rejects(create(volume.id, { force: true, colour: 'red' }), isType('BadRequest'));
    const after = await rows();
    assert.deepEqual(after.snapshots, before.snapshots, 'no snapshot row written by a refused create');
    assert.deepEqual(
      after.claims.filter((c) => c.projectId === project),
      before.claims.filter((c) => c.projectId === project),
    );

    // With force, an in-use volume is snapshotted (Cinder's create_snapshot_force).
    const forced = await settled((await create(volume.id, { force: true })).id);
    assert.equal(forced.status, 'available');
    await cloud.cinder.snapshots.delete(forced.id, {}, member);
    await cloud.cinder.detachVolume(attached.attachmentId);
  });

  test('quota: snapshots and gigabytes limits refuse with QuotaExceeded, writing nothing', async () => {
    const volume = await availableVolume(2);
    const usage = await cloud.nova.getQuotaUsage(project);
    await cloud.nova.setQuotaLimits(project, { snapshots: usage.snapshots.inUse });
    const before = await rows();
    await assert.rejects(
      cloud.cinder.snapshots.create({ volumeId: volume.id, projectId: project }, member),
      (err: unknown) =>
        isCloudError(err, 'QuotaExceeded') && (err.details.overs as string[]).includes('snapshots'),
    );
    await cloud.nova.setQuotaLimits(project, { snapshots: -1, gigabytes: usage.gigabytes.inUse + 1 });
    await assert.rejects(
      cloud.cinder.snapshots.create({ volumeId: volume.id, projectId: project }, member),
      (err: unknown) =>
        isCloudError(err, 'QuotaExceeded') && (err.details.overs as string[]).includes('gigabytes'),
    );
    assert.deepEqual(await rows(), before);
    await cloud.nova.setQuotaLimits(project, { snapshots: 10, gigabytes: 1000 });
  });

  test('a volume with snapshots is not deleted (nothing changes) unless cascade, which takes its snapshots first', async () => {
    const volume = await availableVolume(1);
    const quotaBefore = await held();
    const one = await settled(
      (await cloud.cinder.snapshots.create({ volumeId: volume.id, projectId: project })).id,
    );
    const two = await settled(
      (await cloud.cinder.snapshots.create({ volumeId: volume.id, projectId: project })).id,
    );
    const before = await rows();
    await assert.rejects(
      cloud.cinder.deleteVolume(volume.id, {}, member),
      (err: unknown) =>
        isCloudError(err, 'InvalidVolume') &&
        /have snapshots/.test(err.message) &&
        (err.details.snapshots as string[]).length === 2,
    );
    // Even the operator's forced delete (a server's delete_on_termination) leaves a volume with snapshots.
    await assert.rejects(cloud.cinder.deleteVolume(volume.id, { force: true }), isType('InvalidVolume'));
    assert.deepEqual(await rows(), before);
    assert.ok(existsSync(volume.providerLocation!));

    assert.equal(await cloud.cinder.deleteVolume(volume.id, { cascade: true }, member), true);
    for (const snapshot of [one, two]) {
      await assert.rejects(cloud.cinder.snapshots.get(snapshot.id), isType('NotFound'));
      assert.equal(existsSync(snapshot.providerLocation!), false);
    }
    assert.equal(existsSync(volume.providerLocation!), false);
    assert.deepEqual(await held(), quotaBefore);
  });

  test("cascade is refused (nothing changes) for a snapshot still creating, or another project's, unless forced or admin", async () => {
    const volume = await availableVolume(1);
    cloud.cinder.setFaults({ createSnapshot: { mode: 'hang' } });
    const hung = await cloud.cinder.snapshots.create({ volumeId: volume.id, projectId: project });
    cloud.cinder.setFaults(undefined);
    // An admin of another project snapshots it: the snapshot is the admin's project's (Cinder's context).
    const admins = await cloud.cinder.snapshots.create({ volumeId: volume.id, projectId: 'admin-project' });
    await settled(admins.id);
    const before = await rows();
    await assert.rejects(
      cloud.cinder.deleteVolume(volume.id, { cascade: true }, member),
      isType('InvalidVolume'),
    );
    await cloud.cinder.snapshots.delete(hung.id, { force: true });
    // Only the other project's snapshot is left: a member may not cascade into it, an admin may.
    await assert.rejects(
      cloud.cinder.deleteVolume(volume.id, { cascade: true }, member),
      isType('InvalidVolume'),
    );
    assert.deepEqual(
      (await rows()).volumes.find((v) => v.id === volume.id),
      before.volumes.find((v) => v.id === volume.id),
    );
    assert.equal(
      await cloud.cinder.deleteVolume(
        volume.id,
        { cascade: true },
        { projectId: 'admin-project', roles: ['admin'] },
      ),
      true,
    );
    await assert.rejects(cloud.cinder.snapshots.get(admins.id), isType('NotFound'));
    assert.equal(
      (await cloud.nova.listQuotaClaims()).some(
        (c) => c.consumerUuid === admins.id || c.consumerUuid === hung.id,
      ),
      false,
    );
  });

  test('a volume from a snapshot: its data, at least its size, snapshot_id recorded; refusals write nothing', async () => {
    const volume = await availableVolume(2);
    const data = randomBytes(64 * 1024);
    const fd = openSync(volume.providerLocation!, 'r+');
    writeSync(fd, data, 0, data.length, GIB + 3 * MIB);
    closeSync(fd);
    const snapshot = await settled(
      (await cloud.cinder.snapshots.create({ volumeId: volume.id, projectId: project })).id,
    );
    const before = await rows();
    await assert.rejects(
      cloud.cinder.createVolume({
        requestKey: `snap-${++key}`,
        projectId: project,
        sizeGb: 1,
        snapshotId: snapshot.id,
      }),
      isType('BadRequest', /Volume size '1'GB cannot be smaller than the snapshot size 2GB/),
    );
    await assert.rejects(
      cloud.cinder.createVolume({
        requestKey: `snap-${++key}`,
        projectId: project,
        sizeGb: 2,
        snapshotId: randomUUID(),
      }),
      isType('NotFound', /Snapshot/),
    );
    assert.deepEqual(await rows(), before);

    const made = await cloud.cinder.createVolume({
      requestKey: `snap-${++key}`,
      projectId: project,
      sizeGb: 3,
      snapshotId: snapshot.id,
    });
    assert.equal(made.snapshotId, snapshot.id);
    const ready = await cloud.cinder.waitForVolume(made.id, { timeoutMs: 10_000, pollMs: 10 });
    assert.equal(statSync(ready.providerLocation!).size, 3 * GIB);
    assert.deepEqual(readAt(ready.providerLocation!, GIB + 3 * MIB, data.length), data);
    // The new volume is a copy: the snapshot (and then its volume) can go while it stays.
    await cloud.cinder.snapshots.delete(snapshot.id);
    await cloud.cinder.deleteVolume(volume.id);
    assert.equal((await cloud.cinder.getVolume(ready.id)).status, 'available');
    await cloud.cinder.deleteVolume(ready.id);
  });

  test('a hung creation is not deleted without force; force stops it; update, metadata and reset status', async () => {
    const volume = await availableVolume(1);
    cloud.cinder.setFaults({ createSnapshot: { mode: 'hang' } });
    try {
      const hung = await cloud.cinder.snapshots.create({ volumeId: volume.id, projectId: project }, member);
      await assert.rejects(
        cloud.cinder.snapshots.delete(hung.id, {}, member),
        isType(
          'BadRequest',
          /^Invalid snapshot: Snapshot status must be available or error and must not be part of a group\.$/,
        ),
      );
      await assert.rejects(
        cloud.cinder.snapshots.delete(hung.id, { force: true }, member),
        isType('Forbidden'),
      );
      assert.equal((await cloud.cinder.snapshots.get(hung.id)).status, 'creating');
      assert.equal(
        await cloud.cinder.snapshots.delete(hung.id, { force: true }, { projectId: 'x', roles: ['admin'] }),
        true,
      );
      await assert.rejects(cloud.cinder.snapshots.get(hung.id), isType('NotFound'));
      assert.equal(
        (await cloud.nova.listQuotaClaims()).some((c) => c.consumerUuid === hung.id),
        false,
      );
    } finally {
      cloud.cinder.setFaults(undefined);
    }

    cloud.cinder.setFaults({ createSnapshot: { mode: 'fail', message: 'disk on fire' } });
    const failed = await settled(
      (await cloud.cinder.snapshots.create({ volumeId: volume.id, projectId: project })).id,
    );
    cloud.cinder.setFaults(undefined);
    assert.equal(failed.status, 'error');
    assert.equal(failed.errorMessage, 'disk on fire');

    const updated = await cloud.cinder.snapshots.update(failed.id, { name: 'n', description: 'd' }, member);
    assert.equal(updated.name, 'n');
    assert.equal(updated.description, 'd');
    assert.deepEqual(
      await cloud.cinder.snapshots.setMetadata(failed.id, { a: '1', b: '2' }, 'merge', member),
      { a: '1', b: '2' },
    );
    assert.deepEqual(await cloud.cinder.snapshots.setMetadata(failed.id, { c: '3' }, 'replace', member), {
      c: '3',
    });
    await cloud.cinder.snapshots.deleteMetadataItem(failed.id, 'c', member);
    await assert.rejects(
      cloud.cinder.snapshots.deleteMetadataItem(failed.id, 'c', member),
      isType('NotFound', /has no metadata with key c/),
    );
    await assert.rejects(
      cloud.cinder.snapshots.resetStatus(failed.id, 'available', member),
      isType('Forbidden', /reset_status/),
    );
    await assert.rejects(
      cloud.cinder.snapshots.resetStatus(failed.id, 'bogus' as 'available', {
        projectId: 'x',
        roles: ['admin'],
      }),
      isType('BadRequest'),
    );
    const reset = await cloud.cinder.snapshots.resetStatus(failed.id, 'available', {
      projectId: 'x',
      roles: ['admin'],
    });
    assert.equal(reset.status, 'available');
    await cloud.cinder.deleteVolume(volume.id, { cascade: true });
  });

  test('close() leaves a hung creation creating; the next Cinder to open takes it over and finishes it', async () => {
    const volume = await availableVolume(1);
    cloud.cinder.setFaults({ createSnapshot: { mode: 'hang' } });
    const hung = await cloud.cinder.snapshots.create({ volumeId: volume.id, projectId: project });
    await cloud.close();
    cloud = await openCloud({ db: testDb.config });
    const snapshot = await settled(hung.id);
    assert.equal(snapshot.status, 'available');
    assert.ok(existsSync(snapshot.providerLocation!));
    await cloud.cinder.deleteVolume(volume.id, { cascade: true });
    assert.equal(existsSync(snapshot.providerLocation!), false);
  });
});
