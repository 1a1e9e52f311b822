import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { isCloudError, type CloudErrorType } from '../cloud/errors';
import { Glance, generateQcow2Image, parseQcow2Header, type ImageRequestContext } from '../cloud/glance';
import { openServiceDb } from '../cloud/db';
import { glanceMigrations } from '../cloud/glance/migrations';
import type { GlanceDb } from '../cloud/glance/schema';
import { testDbConfig, type TestDb } from './helpers/cloud-db';

const projectA: ImageRequestContext = { projectId: 'project-a', roles: ['member', 'reader'] };
const projectB: ImageRequestContext = { projectId: 'project-b', roles: ['member', 'reader'] };
const admin: ImageRequestContext = { projectId: 'admin-project', roles: ['admin', 'member', 'reader'] };

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const sha512 = (b: Buffer) => createHash('sha512').update(b).digest('hex');

async function rejectsWith(promise: Promise<unknown>, type: CloudErrorType, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isCloudError(err, type), `expected ${type}, got ${String(err)}`);
    if (message) assert.match(err.message, message);
    return true;
  });
}

function hasQemuImg(): boolean {
  try {
    execFileSync('qemu-img', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('Glance', () => {
  let testDb: TestDb;
  let glance: Glance;
  let imagesDir: string;
  const cirros = generateQcow2Image({ seed: 'cirros' });

  before(async () => {
    testDb = testDbConfig('glance');
    glance = await Glance.open({ db: testDb.config });
    imagesDir = path.join(testDb.dataDir, 'images');
  });
  after(async () => {
    await glance?.close();
    await testDb?.cleanup();
  });

  const newImage = (over: Record<string, unknown> = {}) =>
    glance.createImage({
      name: `img-${randomUUID().slice(0, 8)}`,
      diskFormat: 'qcow2',
      containerFormat: 'bare',
      visibility: 'private',
      ownerProjectId: projectA.projectId,
      ...over,
    });
  const activeImage = async (over: Record<string, unknown> = {}) => {
    const image = await newImage(over);
    return glance.uploadImageData(image.id, cirros);
  };
  const partials = () => readdirSync(imagesDir).filter((n) => n.endsWith('.partial'));

  describe('generated qcow2 image', () => {
    test('is deterministic from its seed, a few MB, with a valid v3 header', () => {
      assert.deepEqual(generateQcow2Image({ seed: 'cirros' }), cirros);
      assert.notDeepEqual(generateQcow2Image({ seed: 'other' }), cirros);
      assert.equal(cirros.subarray(0, 4).toString('latin1'), 'QFI\xfb');
      assert.ok(cirros.length > 2 * 1024 * 1024 && cirros.length < 8 * 1024 * 1024);
      const header = parseQcow2Header(cirros);
      assert.ok(header);
      assert.equal(header.version, 3);
      assert.equal(header.clusterBits, 16);
      assert.equal(header.virtualSize, 112 * 1024 * 1024);
      assert.equal(header.backingFileOffset, 0);
    });

    test(
      'passes qemu-img check when qemu-img is installed',
      { skip: !hasQemuImg() && !process.env.CI && 'no qemu-img (CI installs qemu-utils)' },
      () => {
        const file = path.join(testDb.dataDir, 'check.qcow2');
        writeFileSync(
          file,
          generateQcow2Image({ seed: 's', clusterBits: 9, virtualSizeBytes: 2 ** 30, dataBytes: 2 ** 20 }),
        );
        execFileSync('qemu-img', ['check', file], { stdio: 'pipe' });
        const info = JSON.parse(
          execFileSync('qemu-img', ['info', '--output=json', file], { encoding: 'utf8' }),
        ) as {
          format: string;
          'virtual-size': number;
        };
        assert.equal(info.format, 'qcow2');
        assert.equal(info['virtual-size'], 2 ** 30);
      },
    );
  });

  describe('create and upload', () => {
    test('upload moves queued → active with size, MD5, SHA-512 and virtual size; data is in the file store', async () => {
      const image = await newImage({ properties: { hw_architecture: 'x86_64', os_distro: 'cirros' } });
      assert.equal(image.status, 'queued');
      assert.equal(image.size, null);
      const active = await glance.uploadImageData(image.id, cirros);
      assert.equal(active.status, 'active');
      assert.equal(active.size, cirros.length);
      assert.equal(active.checksum, md5(cirros));
      assert.equal(active.osHashAlgo, 'sha512');
      assert.equal(active.osHashValue, sha512(cirros));
      assert.equal(active.virtualSize, 112 * 1024 * 1024);
      assert.deepEqual(active.properties, { hw_architecture: 'x86_64', os_distro: 'cirros' });
      assert.deepEqual(readFileSync(path.join(imagesDir, image.id)), cirros);
    });

    test('a streamed upload computes the same hashes and reports progress', async () => {
      const image = await newImage();
      const chunks = [];
      for (let i = 0; i < cirros.length; i += 100_000) chunks.push(cirros.subarray(i, i + 100_000));
      const progress: number[] = [];
      const active = await glance.uploadImageData(image.id, Readable.from(chunks), {
        onProgress: (p) => progress.push(p.bytesDone),
      });
      assert.equal(active.checksum, md5(cirros));
      assert.equal(active.osHashValue, sha512(cirros));
      assert.ok(progress.length >= chunks.length);
      assert.deepEqual(
        progress,
        [...progress].sort((a, b) => a - b),
      );
      assert.equal(progress.at(-1), cirros.length);
    });

    test('a raw image gets its size as virtual size', async () => {
      const data = randomBytes(4096);
      const image = await newImage({ diskFormat: 'raw' });
      const active = await glance.uploadImageData(image.id, data);
      assert.equal(active.virtualSize, 4096);
    });

    test('an explicit id makes create idempotent; reusing it for something else is a Conflict', async () => {
      const id = randomUUID();
      const first = await newImage({ id, name: 'retry-me' });
      const again = await newImage({ id, name: 'retry-me' });
      assert.deepEqual(again, first);
      await rejectsWith(newImage({ id, name: 'something-else' }), 'Conflict');
      assert.equal((await glance.listImages(admin, { name: 'retry-me' })).length, 1);
    });

    test('data that does not match the disk format is refused and nothing is kept', async () => {
      const notQcow = await newImage();
      await rejectsWith(
        glance.uploadImageData(notQcow.id, randomBytes(200_000)),
        'BadRequest',
        /not a qcow2/,
      );
      const raw = await newImage({ diskFormat: 'raw' });
      await rejectsWith(glance.uploadImageData(raw.id, cirros), 'BadRequest', /disk_format is raw/);
      const withBacking = Buffer.from(cirros);
      withBacking.writeBigUInt64BE(512n, 8);
      await rejectsWith(glance.uploadImageData(notQcow.id, withBacking), 'BadRequest', /backing file/);
      for (const id of [notQcow.id, raw.id]) {
        assert.equal((await glance.getImage(id, projectA)).status, 'queued');
        assert.equal(existsSync(path.join(imagesDir, id)), false);
      }
      assert.deepEqual(partials(), []);
      // After a refused upload the image takes good data.
      assert.equal((await glance.uploadImageData(notQcow.id, cirros)).status, 'active');
    });

    test('a source stream that fails midway leaves the image queued and no partial file', async () => {
      const image = await newImage();
      const source = new PassThrough();
      const upload = glance.uploadImageData(image.id, source);
      source.write(cirros.subarray(0, 200_000));
      setTimeout(() => source.destroy(new Error('client went away')), 20);
      await rejectsWith(upload, 'ServiceUnavailable', /client went away/);
      assert.equal((await glance.getImage(image.id, projectA)).status, 'queued');
      assert.deepEqual(partials(), []);
    });

    test('two concurrent uploads to one image: one wins, the other is a Conflict', async () => {
      const image = await newImage();
      const results = await Promise.allSettled([
        glance.uploadImageData(image.id, cirros),
        glance.uploadImageData(image.id, cirros),
      ]);
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      const failed = results.find((r) => r.status === 'rejected');
      assert.ok(failed && isCloudError(failed.reason, 'Conflict'));
      await rejectsWith(glance.uploadImageData(image.id, cirros), 'Conflict', /active/);
    });

    test('an image deleted during its upload keeps no data', async () => {
      const image = await newImage();
      const source = new PassThrough();
      const upload = glance.uploadImageData(image.id, source);
      source.write(cirros.subarray(0, 100_000));
      await new Promise((r) => setTimeout(r, 20));
      await glance.deleteImage(image.id);
      source.end(cirros.subarray(100_000));
      await rejectsWith(upload, 'Conflict', /deleted/);
      assert.equal(existsSync(path.join(imagesDir, image.id)), false);
      assert.deepEqual(partials(), []);
    });

    test('the size cap stops an oversized upload', async () => {
      const capped = testDbConfig('glance-cap');
      const small = await Glance.open({ db: capped.config, imageSizeCapBytes: 1000 });
      try {
        const image = await small.createImage({
          name: 'big',
          diskFormat: 'raw',
          containerFormat: 'bare',
          ownerProjectId: 'p',
        });
        await rejectsWith(small.uploadImageData(image.id, randomBytes(5000)), 'BadRequest', /size limit/);
        assert.equal((await small.getImage(image.id, admin)).status, 'queued');
        assert.deepEqual(readdirSync(path.join(capped.dataDir, 'images')), []);
      } finally {
        await small.close();
        await capped.cleanup();
      }
    });
  });

  describe('bad input changes nothing', () => {
    test('invalid create requests are BadRequest and add no image', async () => {
      const before = (await glance.listImages(admin)).length;
      const bad: Array<Record<string, unknown>> = [
        { unknownField: 1 },
        { diskFormat: 'exe' },
        { containerFormat: 'zip' },
        { visibility: 'everyone' },
        { minDisk: -1 },
        { minRam: 2 ** 40 },
        { name: 'x'.repeat(256) },
        { name: 'bad\u0000name' },
        { properties: { id: 'mine' } },
        { properties: { os_glance_import: 'x' } },
        { id: 'not-a-uuid' },
        { ownerProjectId: '' },
      ];
      for (const over of bad) await rejectsWith(newImage(over), 'BadRequest');
      await rejectsWith(glance.uploadImageData(randomUUID(), 'text' as unknown as Buffer), 'BadRequest');
      await rejectsWith(glance.getImage('', projectA), 'BadRequest');
      await rejectsWith(
        glance.getImage(randomUUID(), { roles: [] } as unknown as ImageRequestContext),
        'BadRequest',
      );
      await rejectsWith(glance.listImages(projectA, { color: 'red' } as never), 'BadRequest');
      assert.equal((await glance.listImages(admin)).length, before);
    });

    test('unknown ids are NotFound', async () => {
      await rejectsWith(glance.getImage(randomUUID(), admin), 'NotFound');
      await rejectsWith(glance.uploadImageData(randomUUID(), cirros), 'NotFound');
      await rejectsWith(glance.imageLocation(randomUUID()), 'NotFound');
      await rejectsWith(glance.deleteImage(randomUUID()), 'NotFound');
    });

    test('a bad update is refused whole', async () => {
      const image = await newImage({ properties: { a: '1' } });
      await rejectsWith(glance.updateImage(image.id, { name: 'ok', minDisk: -5 }), 'BadRequest');
      await rejectsWith(glance.updateImage(image.id, { properties: { status: 'active' } }), 'BadRequest');
      const many = Object.fromEntries(Array.from({ length: 128 }, (_, i) => [`p${i}`, 'v']));
      await rejectsWith(
        glance.updateImage(image.id, { name: 'renamed', properties: many }),
        'ImageLimitExceeded',
        /image properties\. Attempted: 129, Maximum: 128/,
      );
      const after = await glance.getImage(image.id, projectA);
      assert.equal(after.name, image.name);
      assert.deepEqual(after.properties, { a: '1' });
      const updated = await glance.updateImage(image.id, {
        name: 'renamed',
        properties: { a: null, b: '2' },
      });
      assert.equal(updated.name, 'renamed');
      assert.deepEqual(updated.properties, { b: '2' });
    });
  });

  describe('visibility', () => {
    test("another project's private image is NotFound, by id and by name, and not listed", async () => {
      const image = await activeImage({ name: `private-${randomUUID()}` });
      assert.equal((await glance.getImage(image.id, projectA)).id, image.id);
      assert.equal((await glance.getImage(image.name, projectA)).id, image.id);
      assert.equal((await glance.getImage(image.id, admin)).id, image.id);
      await rejectsWith(glance.getImage(image.id, projectB), 'NotFound');
      await rejectsWith(glance.getImage(image.name, projectB), 'NotFound');
      assert.ok(!(await glance.listImages(projectB)).some((i) => i.id === image.id));
      assert.ok((await glance.listImages(projectA)).some((i) => i.id === image.id));
      // Not visible: NotFound, never Forbidden (no hint that it exists).
      await rejectsWith(glance.deleteImage(image.id, projectB), 'NotFound');
      await rejectsWith(glance.deactivateImage(image.id, projectB), 'NotFound');
    });

    test('public images are visible and listed for all; only admins publicize; others cannot change them', async () => {
      await rejectsWith(
        glance.createImage(
          {
            name: 'pub',
            diskFormat: 'qcow2',
            containerFormat: 'bare',
            visibility: 'public',
            ownerProjectId: 'project-a',
          },
          projectA,
        ),
        'Forbidden',
      );
      await rejectsWith(
        glance.createImage(
          { name: 'theirs', diskFormat: 'qcow2', containerFormat: 'bare', ownerProjectId: 'project-b' },
          projectA,
        ),
        'Forbidden',
      );
      const pub = await glance.createImage(
        {
          name: 'pub',
          diskFormat: 'qcow2',
          containerFormat: 'bare',
          visibility: 'public',
          ownerProjectId: 'admin-project',
        },
        admin,
      );
      assert.equal((await glance.getImage(pub.id, projectB)).id, pub.id);
      assert.ok((await glance.listImages(projectB)).some((i) => i.id === pub.id));
      await rejectsWith(glance.deleteImage(pub.id, projectB), 'Forbidden');
      await rejectsWith(glance.updateImage(pub.id, { name: 'mine' }, projectB), 'Forbidden');
      const own = await newImage();
      await rejectsWith(glance.updateImage(own.id, { visibility: 'public' }, projectA), 'Forbidden');
    });

    test('community images are visible to all but listed only when asked for', async () => {
      const image = await newImage({ visibility: 'community' });
      assert.equal((await glance.getImage(image.id, projectB)).id, image.id);
      assert.ok(!(await glance.listImages(projectB)).some((i) => i.id === image.id));
      assert.ok(
        (await glance.listImages(projectB, { visibility: 'community' })).some((i) => i.id === image.id),
      );
    });

    test('shared images: visible to members, listed once accepted; only the member accepts', async () => {
      const image = await newImage({ visibility: 'shared' });
      await rejectsWith(glance.getImage(image.id, projectB), 'NotFound');
      const member = await glance.addImageMember(image.id, projectB.projectId, projectA);
      assert.equal(member.status, 'pending');
      await rejectsWith(
        glance.addImageMember(image.id, projectB.projectId, projectA),
        'Conflict',
        /Member project-b is duplicated/,
      );
      assert.equal((await glance.getImage(image.id, projectB)).id, image.id);
      assert.ok(!(await glance.listImages(projectB)).some((i) => i.id === image.id));
      await rejectsWith(
        glance.updateImageMember(image.id, projectB.projectId, 'accepted', projectA),
        'Forbidden',
      );
      await glance.updateImageMember(image.id, projectB.projectId, 'accepted', projectB);
      assert.ok((await glance.listImages(projectB)).some((i) => i.id === image.id));
      assert.deepEqual(
        (await glance.listImageMembers(image.id, projectB)).map((m) => [m.memberId, m.status]),
        [['project-b', 'accepted']],
      );
      await glance.removeImageMember(image.id, projectB.projectId, projectA);
      await rejectsWith(glance.getImage(image.id, projectB), 'NotFound');
      const priv = await newImage({ visibility: 'private' });
      await rejectsWith(glance.addImageMember(priv.id, projectB.projectId, projectA), 'Forbidden', /shared/);
    });

    test('a name shared by two visible images is ambiguous', async () => {
      const name = `dup-${randomUUID()}`;
      await newImage({ name });
      await newImage({ name });
      await rejectsWith(glance.getImage(name, projectA), 'BadRequest', /More than one/);
    });
  });

  describe('status rules, download and location', () => {
    test('imageLocation gives what a compute host needs; queued images have none', async () => {
      const queued = await newImage();
      await rejectsWith(glance.imageLocation(queued), 'ImageNotActive');
      const image = await activeImage();
      const location = await glance.imageLocation(image);
      assert.equal(location.imageId, image.id);
      assert.equal(location.size, cirros.length);
      assert.equal(location.checksum, md5(cirros));
      assert.equal(location.osHashAlgo, 'sha512');
      assert.equal(location.osHashValue, sha512(cirros));
      assert.equal(location.diskFormat, 'qcow2');
      assert.deepEqual(readFileSync(fileURLToPath(location.url)), cirros);
    });

    test('deactivated images cannot be downloaded; reactivation brings them back; both repeat safely', async () => {
      const image = await activeImage();
      assert.equal((await glance.deactivateImage(image.id, projectA)).status, 'deactivated');
      assert.equal((await glance.deactivateImage(image.id, projectA)).status, 'deactivated');
      await rejectsWith(glance.imageLocation(image.id), 'ImageNotActive', /deactivated/);
      await rejectsWith(glance.openImageData(image.id, projectA), 'Forbidden', /deactivated/);
      // An admin still downloads it (Glance's rule); compute hosts do not (imageLocation above).
      const chunks: Buffer[] = [];
      for await (const chunk of await glance.openImageData(image.id, admin)) chunks.push(chunk as Buffer);
      assert.deepEqual(Buffer.concat(chunks), cirros);
      await rejectsWith(glance.uploadImageData(image.id, cirros), 'Conflict');
      assert.equal((await glance.reactivateImage(image.id)).status, 'active');
      assert.equal((await glance.imageLocation(image.id)).size, cirros.length);
      await rejectsWith(
        glance.deactivateImage((await newImage()).id),
        'Forbidden',
        /Not allowed to deactivate image in status 'queued'/,
      );
    });

    test('a download streams with progress and the hash verified; a corrupt file is an error', async () => {
      const image = await activeImage();
      const progress: number[] = [];
      const chunks: Buffer[] = [];
      for await (const chunk of await glance.openImageData(image.id, projectA, {
        onProgress: (p) => progress.push(p.bytesDone),
      }))
        chunks.push(chunk as Buffer);
      assert.deepEqual(Buffer.concat(chunks), cirros);
      assert.equal(progress.at(-1), cirros.length);

      const file = path.join(imagesDir, image.id);
      const corrupt = Buffer.from(cirros);
      corrupt.writeUInt8(corrupt.readUInt8(corrupt.length - 1) ^ 0xff, corrupt.length - 1);
      writeFileSync(file, corrupt);
      await rejectsWith(
        (async () => {
          for await (const _chunk of await glance.openImageData(image.id, projectA));
        })(),
        'ImageChecksumMismatch',
      );
    });

    test('protected images cannot be deleted; delete removes the data and repeats as a no-op', async () => {
      const image = await activeImage({ protected: true });
      await rejectsWith(glance.deleteImage(image.id, projectA), 'Forbidden', /protected/);
      assert.equal((await glance.getImage(image.id, projectA)).status, 'active');
      await glance.updateImage(image.id, { protected: false }, projectA);
      await glance.deleteImage(image.id, projectA);
      await glance.deleteImage(image.id, projectA);
      assert.equal(existsSync(path.join(imagesDir, image.id)), false);
      await rejectsWith(glance.getImage(image.id, admin), 'NotFound');
      await rejectsWith(glance.imageLocation(image.id), 'NotFound');
      assert.ok(!(await glance.listImages(admin)).some((i) => i.id === image.id));
    });
  });

  describe('PATCH-style updates, tags, members, formats set later (migration 002)', () => {
    /** Glance's own rows, read beside the service (a second connection to its database). */
    const rows = async <T>(fn: (db: import('kysely').Kysely<GlanceDb>) => Promise<T>): Promise<T> => {
      const store = await openServiceDb<GlanceDb>('glance', glanceMigrations, testDb.config);
      try {
        return await fn(store.db);
      } finally {
        await store.close();
      }
    };

    test('an image without formats stays queued, takes no data, then gets them while queued only', async () => {
      const image = await glance.createImage(
        { name: 'no-formats', ownerProjectId: projectA.projectId },
        projectA,
      );
      assert.deepEqual([image.status, image.diskFormat, image.containerFormat], ['queued', null, null]);
      const row = await rows((db) =>
        db.selectFrom('images').selectAll().where('id', '=', image.id).executeTakeFirstOrThrow(),
      );
      assert.deepEqual([row.disk_format, row.container_format, Number(row.os_hidden)], [null, null, 0]);
      await rejectsWith(
        glance.uploadImageData(image.id, cirros, { ctx: projectA }),
        'BadRequest',
        /Properties disk_format, container_format must be set prior to saving data\./,
      );
      assert.equal((await glance.getImage(image.id, projectA)).status, 'queued');
      await glance.updateImage(image.id, { diskFormat: 'qcow2' }, projectA);
      await rejectsWith(
        glance.uploadImageData(image.id, cirros, { ctx: projectA }),
        'BadRequest',
        /^Property container_format must be set/,
      );
      await glance.updateImage(image.id, { containerFormat: 'bare' }, projectA);
      const active = await glance.uploadImageData(image.id, cirros, { ctx: projectA });
      assert.deepEqual(
        [active.status, active.diskFormat, active.containerFormat],
        ['active', 'qcow2', 'bare'],
      );
      await rejectsWith(
        glance.updateImage(image.id, { diskFormat: 'raw' }, projectA),
        'Forbidden',
        /Attribute disk_format can be only replaced for a queued image\./,
      );
      const after = await rows((db) =>
        db.selectFrom('images').selectAll().where('id', '=', image.id).executeTakeFirstOrThrow(),
      );
      assert.equal(after.disk_format, 'qcow2');
    });

    test('updates: os_hidden hides from the default list, owner and publicize are admin only, a reader changes nothing', async () => {
      const image = await activeImage({ visibility: 'shared' });
      const reader: ImageRequestContext = { projectId: projectA.projectId, roles: ['reader'] };
      await rejectsWith(glance.updateImage(image.id, { name: 'r' }, reader), 'Forbidden', /modify_image/);
      await rejectsWith(glance.deleteImage(image.id, reader), 'Forbidden', /delete_image/);
      await rejectsWith(glance.addImageTag(image.id, 't', reader), 'Forbidden');
      await rejectsWith(glance.deactivateImage(image.id, reader), 'Forbidden', /deactivate/);
      await rejectsWith(
        glance.updateImage(image.id, { visibility: 'public' }, projectA),
        'Forbidden',
        /publicize_image/,
      );
      await rejectsWith(
        glance.updateImage(image.id, { owner: projectB.projectId }, projectA),
        'Forbidden',
        /Owner/,
      );
      assert.equal(
        (await glance.updateImage(image.id, { visibility: 'community' }, projectA)).visibility,
        'community',
      );
      const hidden = await glance.updateImage(
        image.id,
        { osHidden: true, protected: true, minDisk: 2, minRam: 64 },
        projectA,
      );
      assert.deepEqual(
        [hidden.osHidden, hidden.protected, hidden.minDisk, hidden.minRam],
        [true, true, 2, 64],
      );
      assert.ok(!(await glance.listImages(projectA)).some((i) => i.id === image.id));
      assert.ok((await glance.listImages(projectA, { osHidden: true })).some((i) => i.id === image.id));
      await rejectsWith(
        glance.deleteImage(image.id, projectA),
        'Forbidden',
        /is protected and cannot be deleted\./,
      );
      const row = await rows((db) =>
        db.selectFrom('images').selectAll().where('id', '=', image.id).executeTakeFirstOrThrow(),
      );
      assert.deepEqual(
        [row.status, Number(row.os_hidden), Number(row.protected), row.visibility, row.owner],
        ['active', 1, 1, 'community', projectA.projectId],
      );
      const moved = await glance.updateImage(
        image.id,
        { owner: projectB.projectId, visibility: 'public' },
        admin,
      );
      assert.deepEqual([moved.owner, moved.visibility], [projectB.projectId, 'public']);
    });

    test('tags: added once, removed, NotFound when absent, filtered on, within the quota', async () => {
      const image = await newImage({ tags: ['b', 'a', 'a'] });
      assert.deepEqual(image.tags, ['a', 'b']);
      await glance.addImageTag(image.id, 'c', projectA);
      await glance.addImageTag(image.id, 'c', projectA);
      assert.deepEqual((await glance.removeImageTag(image.id, 'a', projectA)).tags, ['b', 'c']);
      await rejectsWith(glance.removeImageTag(image.id, 'a', projectA), 'NotFound', /Tag a not found/);
      const stored = await rows((db) =>
        db
          .selectFrom('image_tags')
          .select('value')
          .where('image_id', '=', image.id)
          .orderBy('value')
          .execute(),
      );
      assert.deepEqual(
        stored.map((r) => r.value),
        ['b', 'c'],
      );
      const other = await newImage({ tags: ['b'] });
      const listed = async (tags: string[]) =>
        (await glance.listImages(projectA, { tags }))
          .map((i) => i.id)
          .filter((id) => [image.id, other.id].includes(id));
      assert.deepEqual((await listed(['b'])).sort(), [image.id, other.id].sort());
      assert.deepEqual(await listed(['b', 'c']), [image.id]);
      await rejectsWith(
        glance.updateImage(image.id, { tags: Array.from({ length: 129 }, (_, i) => `t${i}`) }, projectA),
        'ImageLimitExceeded',
        /image tags\. Attempted: 129, Maximum: 128/,
      );
      assert.deepEqual((await glance.getImage(image.id, projectA)).tags, ['b', 'c']);
      await glance.deleteImage(image.id, projectA);
    });

    test('members: only of shared images, duplicated is a Conflict, the member alone sets its status, member_status lists', async () => {
      const image = await newImage({ visibility: 'shared' });
      await glance.addImageMember(image.id, projectB.projectId, projectA);
      const listIds = async (memberStatus: 'pending' | 'accepted' | 'rejected' | 'all') =>
        (await glance.listImages(projectB, { memberStatus })).map((i) => i.id).includes(image.id);
      assert.deepEqual(
        [await listIds('pending'), await listIds('accepted'), await listIds('all')],
        [true, false, true],
      );
      await rejectsWith(
        glance.updateImageMember(image.id, projectB.projectId, 'accepted', {
          ...projectB,
          roles: ['reader'],
        }),
        'Forbidden',
      );
      await glance.updateImageMember(image.id, projectB.projectId, 'rejected', projectB);
      assert.deepEqual([await listIds('rejected'), await listIds('accepted')], [true, false]);
      const member = await rows((db) =>
        db.selectFrom('image_members').selectAll().where('image_id', '=', image.id).executeTakeFirstOrThrow(),
      );
      assert.deepEqual([member.member, member.status], [projectB.projectId, 'rejected']);
      assert.equal((await glance.getImageMember(image.id, projectB.projectId, projectB)).status, 'rejected');
      await rejectsWith(
        glance.removeImageMember(image.id, 'nobody', projectA),
        'NotFound',
        /not found in the member list/,
      );
      await glance.updateImage(image.id, { visibility: 'private' }, projectA);
      await rejectsWith(
        glance.listImageMembers(image.id, projectA),
        'Forbidden',
        /Only shared images have members\./,
      );
    });

    test('migration 002 keeps the rows of a database made by 001', async () => {
      const old = testDbConfig('glance-001');
      try {
        const v1 = await openServiceDb<GlanceDb>(
          'glance',
          { '001_images': glanceMigrations['001_images']! },
          old.config,
        );
        const id = randomUUID();
        await v1.db
          .insertInto('images')
          .values({
            id,
            name: 'old',
            status: 'active',
            disk_format: 'qcow2',
            container_format: 'bare',
            size: 1,
            virtual_size: 1,
            checksum: null,
            os_hash_algo: null,
            os_hash_value: null,
            visibility: 'shared',
            owner: 'p',
            min_disk: 0,
            min_ram: 0,
            protected: 0,
            created_at: 1,
            updated_at: 1,
            deleted_at: null,
          } as never)
          .execute();
        await v1.db.insertInto('image_properties').values({ image_id: id, name: 'k', value: 'v' }).execute();
        await v1.db
          .insertInto('image_members')
          .values({ image_id: id, member: 'q', status: 'accepted', created_at: 1, updated_at: 1 })
          .execute();
        await v1.close();
        const upgraded = await Glance.open({ db: old.config });
        try {
          const image = await upgraded.getImage(id, admin);
          assert.deepEqual(
            [image.name, image.diskFormat, image.osHidden, image.tags, image.properties],
            ['old', 'qcow2', false, [], { k: 'v' }],
          );
          assert.deepEqual(
            (await upgraded.listImageMembers(id, admin)).map((m) => m.memberId),
            ['q'],
          );
          // A new image without formats fits the altered table.
          const q = await upgraded.createImage({ name: 'q', ownerProjectId: 'p' });
          assert.equal(q.diskFormat, null);
        } finally {
          await upgraded.close();
        }
      } finally {
        await old.cleanup();
      }
    });
  });
});
