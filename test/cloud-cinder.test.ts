import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Cinder } from '../cloud/cinder/cinder';
import { faultsFile } from '../cloud/cinder/faults';
import type { ImageSource, Volume } from '../cloud/cinder/types';
import { GIB } from '../cloud/cinder/volume-files';
import { openServiceDb } from '../cloud/db';
import { isCloudError, type CloudErrorType } from '../cloud/errors';
import { cinderMigrations } from '../cloud/cinder/migrations';
import type { CinderDb } from '../cloud/cinder/schema';
import { isUniqueViolation } from '../cloud/db';
import { testDbConfig, testDbDialect, type TestDb } from './helpers/cloud-db';
import { readHead, writeRawImage } from './helpers/raw-image';

const MIB = 1024 * 1024;
const project = 'demo-project';

function isType(type: CloudErrorType, message?: RegExp) {
  return (err: unknown) => isCloudError(err, type) && (!message || message.test(err.message));
}

/** A 3 MiB image: random data, a MiB of zeroes (stays a hole in the volume), random data again. */
function writeImage(dir: string): { source: ImageSource; data: Buffer } {
  const data = Buffer.concat([randomBytes(MIB), Buffer.alloc(MIB), randomBytes(MIB - 512)]);
  return { data, source: writeRawImage(path.join(dir, 'cirros.img'), data) };
}

describe(`Cinder on ${testDbDialect}`, () => {
  let testDb: TestDb;
  let cinder: Cinder;
  let image: { source: ImageSource; data: Buffer };
  let key = 0;
  const nextKey = () => `req-${++key}`;

  before(async () => {
    testDb = testDbConfig('cinder');
    cinder = await Cinder.open({ db: testDb.config });
    const imageDir = path.join(testDb.dataDir, 'glance-images');
    mkdirSync(imageDir, { recursive: true });
    image = writeImage(imageDir);
  });
  after(async () => {
    await cinder?.close();
    await testDb?.cleanup();
  });

  async function availableVolume(sizeGb = 1, imageSource?: ImageSource): Promise<Volume> {
    const volume = await cinder.createVolume({
      requestKey: nextKey(),
      projectId: project,
      sizeGb,
      imageSource,
    });
    return cinder.waitForVolume(volume.id, { timeoutMs: 10_000, pollMs: 10 });
  }

  test('a blank volume: creating, then available with a sparse file of its full size', async () => {
    const accepted = await cinder.createVolume({
      requestKey: nextKey(),
      projectId: project,
      sizeGb: 2,
      name: 'data',
    });
    assert.equal(accepted.status, 'creating');
    assert.equal(accepted.providerLocation, null);
    const volume = await cinder.waitForVolume(accepted.id, { timeoutMs: 10_000, pollMs: 10 });
    assert.equal(volume.status, 'available');
    assert.equal(volume.attachStatus, 'detached');
    assert.equal(volume.bootable, false);
    const file = volume.providerLocation ?? '';
    assert.equal(file, path.join(testDb.dataDir, 'volumes', 'file-1', `volume-${volume.id}`));
    const stat = statSync(file);
    assert.equal(stat.size, 2 * GIB);
    assert.ok(stat.blocks * 512 < MIB, `sparse: ${stat.blocks} blocks allocated`);
  });

  test('a volume from an image: bytes copied, hashes verified, zeroes left as holes, bootable', async () => {
    const volume = await availableVolume(1, image.source);
    assert.equal(volume.bootable, true);
    assert.equal(volume.imageId, image.source.imageId);
    assert.deepEqual(volume.imageMetadata, {
      size: image.data.length,
      checksum: image.source.checksum,
      osHashAlgo: 'sha512',
      osHashValue: image.source.osHashValue,
    });
    const file = volume.providerLocation ?? '';
    const head = await readHead(file, image.data.length + 4096);
    assert.ok(
      head.subarray(0, image.data.length).equals(image.data),
      'image bytes at the start of the volume',
    );
    assert.ok(head.subarray(image.data.length).equals(Buffer.alloc(4096)), 'zeroes after the image');
    const stat = statSync(file);
    assert.equal(stat.size, GIB);
    assert.ok(
      stat.blocks * 512 < image.data.length,
      `the zero MiB stayed a hole: ${stat.blocks * 512} bytes`,
    );
  });

  test('corrupt image data ends in error with the reason, no file, and VolumeNotCreated for waiters', async () => {
    const corrupt = { ...image.source, checksum: 'f'.repeat(32) };
    const accepted = await cinder.createVolume({
      requestKey: nextKey(),
      projectId: project,
      sizeGb: 1,
      imageSource: corrupt,
    });
    await assert.rejects(
      cinder.waitForVolume(accepted.id, { timeoutMs: 10_000, pollMs: 10 }),
      isType('VolumeNotCreated', /its status is error/),
    );
    const failed = await cinder.getVolume(accepted.id);
    assert.equal(failed.status, 'error');
    assert.match(failed.errorMessage ?? '', /checksum mismatch/);
    assert.ok(!existsSync(path.join(cinder.backendDir, `volume-${accepted.id}`)));

    const missing = { ...image.source, url: pathToFileURL(path.join(testDb.dataDir, 'nope.img')).href };
    const lost = await cinder.createVolume({
      requestKey: nextKey(),
      projectId: project,
      sizeGb: 1,
      imageSource: missing,
    });
    await assert.rejects(
      cinder.waitForVolume(lost.id, { timeoutMs: 10_000, pollMs: 10 }),
      isType('VolumeNotCreated'),
    );
    assert.match((await cinder.getVolume(lost.id)).errorMessage ?? '', /ENOENT/);

    assert.equal(await cinder.deleteVolume(accepted.id), true);
    assert.equal(await cinder.deleteVolume(lost.id), true);
  });

  test('bad input is refused and changes nothing', async () => {
    const before = (await cinder.listVolumes({ includeDeleted: true })).length;
    const base = { requestKey: 'bad-input', projectId: project };
    const bad: unknown[] = [
      { ...base, sizeGb: 0 },
      { ...base, sizeGb: -1 },
      { ...base, sizeGb: 10_001 },
      { ...base, sizeGb: 1.5 },
      { ...base, sizeGb: '1' },
      { ...base, sizeGb: 1, color: 'red' },
      { ...base, sizeGb: 1, name: 'n'.repeat(256) },
      { ...base, sizeGb: 1, imageSource: { ...image.source, url: 'http://example.com/x.img' } },
      { ...base, sizeGb: 1, imageSource: { ...image.source, size: 2 * GIB } },
      { ...base, sizeGb: 1, imageSource: { ...image.source, virtualSize: GIB + 1 } },
      { projectId: project, sizeGb: 1 },
    ];
    for (const input of bad) {
      await assert.rejects(
        cinder.createVolume(input as Parameters<Cinder['createVolume']>[0]),
        isType('BadRequest'),
        JSON.stringify(input),
      );
    }
    await assert.rejects(
      cinder.createVolume({ ...base, sizeGb: 1, imageSource: { ...image.source, size: 2 * GIB } }),
      /does not fit in a volume of 1 GB/,
    );
    await assert.rejects(cinder.getVolume('no-such-volume'), isType('NotFound'));
    assert.equal((await cinder.listVolumes({ includeDeleted: true })).length, before);
  });

  test('createVolume is idempotent by requestKey, also for concurrent retries: one row, one file', async () => {
    const request = { requestKey: `instance-x/bdm-0`, projectId: project, sizeGb: 1 };
    const results = await Promise.all(Array.from({ length: 8 }, () => cinder.createVolume(request)));
    assert.equal(new Set(results.map((v) => v.id)).size, 1);
    const [first] = results;
    const volume = await cinder.waitForVolume(first?.id ?? '', { timeoutMs: 10_000, pollMs: 10 });
    assert.equal((await cinder.createVolume(request)).id, volume.id);
    const rows = (await cinder.listVolumes({ projectId: project })).filter(
      (v) => v.requestKey === request.requestKey,
    );
    assert.equal(rows.length, 1);
    const files = readdirSync(cinder.backendDir).filter((f) => f.includes(volume.id));
    assert.deepEqual(files, [`volume-${volume.id}`]);
    await cinder.deleteVolume(volume.id);
  });

  test("a replacement attachment beside the live one (evacuate): the volume stays the instance's either way", async () => {
    const volume = await availableVolume(1, image.source);
    const instance = randomUUID();
    const attach = async (host: string, replacing?: string) => {
      const reserved = await cinder.reserveVolume(volume.id, instance, replacing ? { replacing } : {});
      await cinder.updateAttachment(reserved.id, host);
      await cinder.completeAttachment(reserved.id);
      return reserved.id;
    };
    const old = await attach('compute1');
    // Without `replacing` a reserve for the same instance is the live attachment; for another one, refused.
    assert.equal((await cinder.reserveVolume(volume.id, instance)).id, old);
    await assert.rejects(
      cinder.reserveVolume(volume.id, randomUUID(), { replacing: old }),
      isType('InvalidVolume', /not multi-attach/),
    );
    const replacement = await cinder.reserveVolume(volume.id, instance, { replacing: old });
    assert.notEqual(replacement.id, old);
    assert.equal(
      (await cinder.reserveVolume(volume.id, instance, { replacing: old })).id,
      replacement.id,
      'idempotent',
    );
    // The live one stays the volume's while the replacement is made.
    await cinder.updateAttachment(replacement.id, 'compute2');
    let shown = await cinder.getVolume(volume.id);
    assert.deepEqual(
      shown.attachments.map((a) => a.id),
      [old],
    );
    // Undone (a failed evacuation): the volume in-use through the old attachment again.
    await cinder.detachVolume(replacement.id);
    shown = await cinder.getVolume(volume.id);
    assert.deepEqual(
      [shown.status, shown.attachStatus, shown.attachments.map((a) => [a.id, a.attachedHost])],
      ['in-use', 'attached', [[old, 'compute1']]],
    );
    // Done (the guest runs on compute2): the old one deleted, the replacement the volume's.
    const moved = await attach('compute2', old);
    await cinder.detachVolume(old);
    shown = await cinder.getVolume(volume.id);
    assert.deepEqual(
      [shown.status, shown.attachStatus, shown.attachments.map((a) => [a.id, a.attachedHost])],
      ['in-use', 'attached', [[moved, 'compute2']]],
    );
    await cinder.detachVolume(moved);
    assert.equal((await cinder.getVolume(volume.id)).status, 'available');
    await cinder.deleteVolume(volume.id);
  });

  test('attach state machine: reserve → attaching → in-use → available; in-use delete refused', async () => {
    const volume = await availableVolume(1, image.source);
    const instance = randomUUID();
    const reserved = await cinder.reserveVolume(volume.id, instance);
    assert.equal(reserved.attachStatus, 'reserved');
    assert.equal(
      (await cinder.reserveVolume(volume.id, instance, { deleteOnTermination: true })).id,
      reserved.id,
      'idempotent reserve',
    );
    assert.equal((await cinder.getVolume(volume.id)).status, 'reserved');
    assert.equal((await cinder.getVolume(volume.id)).deleteOnTermination, true, "the server's to delete");
    await assert.rejects(
      cinder.reserveVolume(volume.id, randomUUID()),
      isType('InvalidVolume', /not multi-attach/),
    );
    await assert.rejects(
      cinder.completeAttachment(reserved.id),
      isType('InvalidVolume', /only an attaching/),
    );

    const attached = await cinder.createAttachment({
      volumeId: volume.id,
      instanceUuid: instance,
      host: 'compute1',
    });
    assert.equal(attached.attachmentId, reserved.id);
    assert.deepEqual(attached.connectionInfo, { driverVolumeType: 'file', path: volume.providerLocation });
    assert.ok(existsSync(attached.connectionInfo.path));
    assert.equal((await cinder.getVolume(volume.id)).status, 'attaching');
    const again = await cinder.createAttachment({
      volumeId: volume.id,
      instanceUuid: instance,
      host: 'compute1',
    });
    assert.equal(again.attachmentId, reserved.id);

    const inUse = await cinder.completeAttachment(attached.attachmentId);
    assert.equal(inUse.status, 'in-use');
    assert.equal(inUse.attachStatus, 'attached');
    assert.equal(inUse.attachments[0]?.instanceUuid, instance);
    assert.equal(inUse.attachments[0]?.attachedHost, 'compute1');
    assert.equal(
      (await cinder.completeAttachment(attached.attachmentId)).status,
      'in-use',
      'idempotent complete',
    );

    await assert.rejects(
      cinder.deleteVolume(volume.id),
      isType(
        'InvalidVolume',
        /^Invalid volume: Volume status must be available or error .* must not be migrating, attached/,
      ),
    );
    await assert.rejects(cinder.deleteVolume(volume.id, { force: true }), isType('InvalidVolume'));
    assert.equal((await cinder.getVolume(volume.id)).status, 'in-use');
    assert.ok(existsSync(volume.providerLocation ?? ''));

    const detached = await cinder.detachVolume(attached.attachmentId);
    assert.equal(detached.status, 'available');
    assert.equal(detached.attachStatus, 'detached');
    assert.deepEqual(detached.attachments, []);
    // Its last attachment gone, the volume is no server's: nobody's termination deletes it.
    assert.equal(detached.deleteOnTermination, false);
    assert.equal((await cinder.detachVolume(attached.attachmentId)).status, 'available', 'idempotent detach');
    assert.equal((await cinder.getAttachment(attached.attachmentId)).attachStatus, 'detached');
    // The data survived the attach cycle.
    assert.ok((await readHead(volume.providerLocation ?? '', 64)).equals(image.data.subarray(0, 64)));

    assert.equal(await cinder.deleteVolume(volume.id), true);
    assert.ok(!existsSync(volume.providerLocation ?? ''));
    await assert.rejects(cinder.getVolume(volume.id), isType('NotFound'));
    assert.equal(await cinder.deleteVolume(volume.id), false);
    assert.equal(await cinder.deleteVolume('never-existed'), false);
    const [gone] = (await cinder.listVolumes({ includeDeleted: true })).filter((v) => v.id === volume.id);
    assert.equal(gone?.status, 'deleted');
  });

  test("a server delete's detach keeps delete_on_termination; another instance's attachment starts without it", async () => {
    const volume = await availableVolume(1, image.source);
    const server = randomUUID();
    const first = await cinder.reserveVolume(volume.id, server, { deleteOnTermination: true });
    const detached = await cinder.detachVolume(first.id, { keepDeleteOnTermination: true });
    assert.deepEqual([detached.status, detached.deleteOnTermination], ['available', true]);
    assert.equal(
      (await cinder.detachVolume(first.id, { keepDeleteOnTermination: true })).deleteOnTermination,
      true,
      'idempotent',
    );
    await assert.rejects(
      cinder.detachVolume(first.id, { keep: true } as never),
      isType('BadRequest'),
      'unknown option',
    );
    // The same server attached again (nothing does this after a delete, but it stays the server's flag).
    const again = await cinder.reserveVolume(volume.id, server);
    assert.equal((await cinder.getVolume(volume.id)).deleteOnTermination, true);
    await cinder.detachVolume(again.id, { keepDeleteOnTermination: true });
    // Another instance's attach (a user's, no flag asked): not deleted with that instance.
    const other = await cinder.reserveVolume(volume.id, randomUUID());
    assert.equal((await cinder.getVolume(volume.id)).deleteOnTermination, false);
    await cinder.detachVolume(other.id);
    assert.equal(await cinder.deleteVolume(volume.id), true);
  });

  test('createAttachment reserves implicitly; detaching a reservation (clean-up) makes it available', async () => {
    const volume = await availableVolume();
    const instance = randomUUID();
    const { attachmentId } = await cinder.createAttachment({
      volumeId: volume.id,
      instanceUuid: instance,
      host: 'compute2',
    });
    assert.equal((await cinder.getVolume(volume.id)).status, 'attaching');
    assert.equal((await cinder.detachVolume(attachmentId)).status, 'available');
    assert.deepEqual(await cinder.listAttachments({ instanceUuid: instance }), []);
    assert.equal((await cinder.listAttachments({ instanceUuid: instance, includeDetached: true })).length, 1);

    const other = await cinder.reserveVolume(volume.id, randomUUID());
    assert.equal((await cinder.detachVolume(other.id)).status, 'available');
    await assert.rejects(cinder.detachVolume('no-such-attachment'), isType('NotFound'));
    await cinder.deleteVolume(volume.id);
  });

  test('parallel reservations of one volume by 20 instances: exactly one wins', async () => {
    const volume = await availableVolume();
    const second = testDbDialect === 'sqlite' ? cinder : await Cinder.open({ db: testDb.config });
    try {
      const outcomes = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) =>
          (i % 2 ? second : cinder).reserveVolume(volume.id, randomUUID()),
        ),
      );
      const won = outcomes.filter((o) => o.status === 'fulfilled');
      assert.equal(won.length, 1);
      assert.ok(outcomes.every((o) => o.status === 'fulfilled' || isCloudError(o.reason, 'InvalidVolume')));
      assert.equal((await cinder.listAttachments({ volumeId: volume.id })).length, 1);
      assert.equal((await cinder.getVolume(volume.id)).status, 'reserved');
    } finally {
      if (second !== cinder) await second.close();
    }
  });

  test('the database itself keeps a volume single-attach and request keys unique', async () => {
    const volume = await availableVolume();
    const attachment = await cinder.reserveVolume(volume.id, randomUUID());
    const raw = await openServiceDb<CinderDb>('cinder', cinderMigrations, testDb.config);
    try {
      const now = Date.now();
      await assert.rejects(
        raw.db
          .insertInto('volume_attachments')
          .values({
            id: randomUUID(),
            volume_id: volume.id,
            instance_uuid: randomUUID(),
            attached_host: null,
            mountpoint: null,
            attach_status: 'reserved',
            connection_info: null,
            active_volume_id: volume.id,
            attach_time: null,
            detach_time: null,
            created_at: now,
            updated_at: now,
          })
          .execute(),
        isUniqueViolation,
      );
      await assert.rejects(
        raw.db
          .insertInto('volumes')
          .values({
            id: randomUUID(),
            name: '',
            project_id: project,
            user_id: null,
            size: 1,
            status: 'creating',
            attach_status: 'detached',
            bootable: 0,
            image_id: null,
            image_metadata: null,
            backend: 'file-1',
            provider_location: null,
            error_message: null,
            request_key: volume.requestKey,
            delete_on_termination: 0,
            deleted: 0,
            created_at: now,
            updated_at: now,
            deleted_at: null,
          })
          .execute(),
        isUniqueViolation,
      );
    } finally {
      await raw.close();
    }
    await cinder.detachVolume(attachment.id);
    await cinder.deleteVolume(volume.id);
  });

  test('fault hooks: hang keeps it creating (force delete cleans up), fail from faults.json, slow', async () => {
    cinder.setFaults({ create: { mode: 'hang' } });
    const stuck = await cinder.createVolume({ requestKey: nextKey(), projectId: project, sizeGb: 1 });
    await assert.rejects(
      cinder.waitForVolume(stuck.id, { timeoutMs: 150, pollMs: 10 }),
      isType('VolumeNotCreated', /its status is creating/),
    );
    assert.equal((await cinder.getVolume(stuck.id)).status, 'creating');
    await assert.rejects(
      cinder.createAttachment({ volumeId: stuck.id, instanceUuid: randomUUID(), host: 'c1' }),
      isType('InvalidVolume'),
    );
    await assert.rejects(
      cinder.deleteVolume(stuck.id),
      isType('InvalidVolume', /^Invalid volume: Volume status must be available or error/),
    );
    assert.equal(await cinder.deleteVolume(stuck.id, { force: true }), true);
    assert.ok(!existsSync(path.join(cinder.backendDir, `volume-${stuck.id}`)));

    // The file steers creations of any process; code-set faults win over it, so clear those first.
    cinder.setFaults(undefined);
    writeFileSync(
      faultsFile(path.join(testDb.dataDir, 'volumes')),
      JSON.stringify({ create: { mode: 'fail', message: 'backend on fire' } }),
    );
    try {
      const failing = await cinder.createVolume({ requestKey: nextKey(), projectId: project, sizeGb: 1 });
      await assert.rejects(
        cinder.waitForVolume(failing.id, { timeoutMs: 5000, pollMs: 10 }),
        isType('VolumeNotCreated'),
      );
      const failed = await cinder.getVolume(failing.id);
      assert.equal(failed.status, 'error');
      assert.equal(failed.errorMessage, 'backend on fire');
      assert.equal(await cinder.deleteVolume(failing.id), true);
    } finally {
      rmSync(faultsFile(path.join(testDb.dataDir, 'volumes')));
    }

    // A slow backend: accepted in `creating` (the answer is read before the work can move on; "still
    // creating" without a timing is the hang case above), then available once it is done.
    cinder.setFaults({ create: { mode: 'slow', delayMs: 200 } });
    const slow = await cinder.createVolume({ requestKey: nextKey(), projectId: project, sizeGb: 1 });
    assert.equal(slow.status, 'creating');
    assert.equal((await cinder.waitForVolume(slow.id, { timeoutMs: 5000, pollMs: 10 })).status, 'available');
    cinder.setFaults(undefined);
    await cinder.deleteVolume(slow.id);
  });

  test('call fault hooks: attachment update, complete, begin_detaching and delete fail as set and change nothing', async () => {
    const volume = await cinder.createVolume({ requestKey: nextKey(), projectId: project, sizeGb: 1 });
    await cinder.waitForVolume(volume.id);
    const reserved = await cinder.reserveVolume(volume.id, randomUUID());
    cinder.setFaults({ attachmentUpdate: { mode: 'fail' } });
    await assert.rejects(
      cinder.updateAttachment(reserved.id, 'c1'),
      isType('ServiceUnavailable', /^Injected fault: attachmentUpdate failed$/),
    );
    assert.equal((await cinder.getVolume(volume.id)).status, 'reserved');
    assert.equal((await cinder.getAttachment(reserved.id)).connectionInfo, null);
    cinder.setFaults(undefined);
    await cinder.updateAttachment(reserved.id, 'c1');
    cinder.setFaults({ attachmentComplete: { mode: 'fail', errorType: 'Conflict', message: 'busy' } });
    await assert.rejects(cinder.completeAttachment(reserved.id, '/dev/vdb'), isType('Conflict', /^busy$/));
    assert.equal((await cinder.getVolume(volume.id)).status, 'attaching');
    cinder.setFaults(undefined);
    await cinder.completeAttachment(reserved.id, '/dev/vdb');
    cinder.setFaults({ beginDetaching: { mode: 'fail' } });
    await assert.rejects(cinder.beginDetaching(volume.id), isType('ServiceUnavailable'));
    assert.equal((await cinder.getVolume(volume.id)).status, 'in-use');
    // Only the named call fails: a hang or an unknown call is refused when set.
    assert.throws(
      () => cinder.setFaults({ beginDetaching: { mode: 'hang' } } as never),
      isType('BadRequest'),
    );
    cinder.setFaults(undefined);
    assert.equal((await cinder.beginDetaching(volume.id)).status, 'detaching');
    await cinder.detachVolume(reserved.id);
    cinder.setFaults({ volumeDelete: { mode: 'fail' } });
    await assert.rejects(cinder.deleteVolume(volume.id), isType('ServiceUnavailable', /volumeDelete/));
    assert.equal((await cinder.getVolume(volume.id)).status, 'available');
    cinder.setFaults(undefined);
    assert.equal(await cinder.deleteVolume(volume.id), true);
  });

  test('close() stops a hung creation promptly; the next Cinder to open takes the creation over', async () => {
    const other = testDbConfig('cinder-close');
    try {
      const first = await Cinder.open({ db: other.config, faults: { create: { mode: 'hang' } } });
      const stuck = await first.createVolume({ requestKey: 'hung', projectId: project, sizeGb: 1 });
      const started = Date.now();
      await first.close();
      assert.ok(Date.now() - started < 2000);
      const reopened = await Cinder.open({ db: other.config });
      try {
        const resumed = await reopened.waitForVolume(stuck.id, { timeoutMs: 10_000, pollMs: 10 });
        assert.equal(resumed.status, 'available');
        assert.equal(await reopened.deleteVolume(stuck.id), true);
      } finally {
        await reopened.close();
      }
    } finally {
      await other.cleanup();
    }
  });

  test('description and metadata: rows written at create, PUT update, merge / replace / item delete', async () => {
    const accepted = await cinder.createVolume({
      requestKey: nextKey(),
      projectId: project,
      sizeGb: 1,
      name: 'meta',
      description: 'first',
      metadata: { Type: 'work', 'a:b/c d.e-f_g': 'v' },
    });
    const raw = await openServiceDb<CinderDb>('cinder', cinderMigrations, testDb.config);
    after(() => raw.close());
    const rows = () =>
      raw.db
        .selectFrom('volume_metadata')
        .select(['key', 'value'])
        .where('volume_id', '=', accepted.id)
        .orderBy('key')
        .execute();
    assert.deepEqual(accepted.metadata, { Type: 'work', 'a:b/c d.e-f_g': 'v' });
    assert.equal(accepted.description, 'first');
    assert.deepEqual(await rows(), [
      { key: 'Type', value: 'work' },
      { key: 'a:b/c d.e-f_g', value: 'v' },
    ]);
    const viewer = { projectId: project, roles: ['member'] };
    const updated = await cinder.updateVolume(
      accepted.id,
      { name: 'renamed', description: null, metadata: { Type: 'play' } },
      viewer,
    );
    assert.deepEqual(
      [updated.name, updated.description, updated.metadata],
      ['renamed', null, { Type: 'play' }],
    );
    assert.deepEqual(await cinder.setVolumeMetadata(accepted.id, { k2: 'v2' }, 'merge', viewer), {
      Type: 'play',
      k2: 'v2',
    });
    assert.deepEqual(await cinder.setVolumeMetadata(accepted.id, { k2: 'v3', k3: '' }, 'replace'), {
      k2: 'v3',
      k3: '',
    });
    await cinder.deleteVolumeMetadataItem(accepted.id, 'k3', viewer);
    assert.deepEqual(await rows(), [{ key: 'k2', value: 'v3' }]);

    // Refused, changing nothing: bad keys and values, a missing key, another project's volume.
    for (const bad of [{ '': 'x' }, { 'semi;colon': 'x' }, { k: 'x'.repeat(256) }, { k: 1 }] as unknown[]) {
      await assert.rejects(
        cinder.setVolumeMetadata(accepted.id, bad as Record<string, string>, 'replace'),
        isType('BadRequest'),
      );
      await assert.rejects(
        cinder.updateVolume(accepted.id, { metadata: bad as Record<string, string> }),
        isType('BadRequest'),
      );
    }
    await assert.rejects(cinder.updateVolume(accepted.id, { size: 2 } as never), isType('BadRequest'));
    await assert.rejects(
      cinder.deleteVolumeMetadataItem(accepted.id, 'k3', viewer),
      isType('NotFound', /has no metadata with key k3/),
    );
    const stranger = { projectId: 'other-project', roles: ['member'] };
    await assert.rejects(
      cinder.setVolumeMetadata(accepted.id, { x: 'y' }, 'merge', stranger),
      isType('NotFound'),
    );
    await assert.rejects(cinder.updateVolume(accepted.id, { name: 'mine' }, stranger), isType('NotFound'));
    await assert.rejects(cinder.deleteVolumeMetadataItem(accepted.id, 'k2', stranger), isType('NotFound'));
    assert.deepEqual(await rows(), [{ key: 'k2', value: 'v3' }]);
    assert.equal((await cinder.getVolume(accepted.id)).name, 'renamed');
    await cinder.waitForVolume(accepted.id, { timeoutMs: 10_000, pollMs: 10 });
    await cinder.deleteVolume(accepted.id);
  });

  test('extendVolume grows file and row (available only, larger only); setReadonly records the flag', async () => {
    const volume = await availableVolume(1);
    assert.equal(volume.readonly, null);
    const grown = await cinder.extendVolume(volume.id, 3);
    assert.equal(grown.sizeGb, 3);
    assert.equal(statSync(volume.providerLocation!).size, 3 * GIB);
    await assert.rejects(
      cinder.extendVolume(volume.id, 3),
      isType('BadRequest', /greater than current size/),
    );
    await assert.rejects(
      cinder.extendVolume(volume.id, 4, { projectId: 'other', roles: ['member'] }),
      isType('NotFound'),
    );
    assert.equal((await cinder.setReadonly(volume.id, true)).readonly, true);
    await cinder.reserveVolume(volume.id, randomUUID());
    await assert.rejects(cinder.extendVolume(volume.id, 5), isType('InvalidVolume', /must be 'available'/));
    const after = await cinder.getVolume(volume.id);
    assert.deepEqual([after.sizeGb, after.readonly], [3, true]);
    assert.equal(statSync(volume.providerLocation!).size, 3 * GIB);
  });

  test('no volume file without a live volume row (nothing leaked by the tests above)', async () => {
    const live = new Set((await cinder.listVolumes()).map((v) => `volume-${v.id}`));
    const files = readdirSync(cinder.backendDir);
    assert.deepEqual(
      files.filter((f) => !live.has(f)),
      [],
    );
  });
});
