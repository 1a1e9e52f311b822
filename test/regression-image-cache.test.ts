/**
 * Regression (found by `npm run chaos`, seed 1): a cached image in a host's `_base/` damaged at the same
 * size (bit rot, a stray write) was taken as a cache hit, because a hit only compared sizes, and every
 * later root disk on that host silently started with the damaged bytes. Now a hit re-checks the digests
 * whenever the file changed since they last matched (a damaged copy is downloaded again), and a root disk
 * is not built on a copy damaged after the fetch (RescheduledException: the build moves to another host).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync, utimesSync, writeSync } from 'node:fs';
import path from 'node:path';
import { ComputeHost, type HostCapabilities } from '../cloud/compute';
import { isCloudError } from '../cloud/errors';
import { Glance, generateQcow2Image, type ImageLocation } from '../cloud/glance';
import { testDbConfig, type TestDb } from './helpers/cloud-db';

const capabilities: HostCapabilities = {
  vcpus: 8,
  memoryMb: 16384,
  diskGb: 100,
  cpuArch: 'x86_64',
  hypervisorType: 'fake',
  availabilityZone: 'nova',
};

/** Same size, different bytes: 4 KiB of the middle of the file overwritten. */
function scribble(file: string): void {
  const fd = openSync(file, 'r+');
  try {
    const size = readFileSync(file).length;
    writeSync(fd, Buffer.alloc(4096, 0xa5), 0, 4096, Math.floor(size / 2) - 4096);
  } finally {
    closeSync(fd);
  }
}

function prefix(file: string, length: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    return buf.subarray(0, readSync(fd, buf, 0, length, 0));
  } finally {
    closeSync(fd);
  }
}

describe('regression: a damaged cached image is never used for a root disk', () => {
  let testDb: TestDb;
  let glance: Glance;
  let host: ComputeHost;
  let hostDir: string;
  const data = generateQcow2Image({ seed: 'regression-cache' });

  async function publish(): Promise<ImageLocation> {
    const image = await glance.createImage({
      name: `img-${randomUUID().slice(0, 8)}`,
      diskFormat: 'qcow2',
      containerFormat: 'bare',
      visibility: 'public',
      ownerProjectId: 'admin-project',
    });
    await glance.uploadImageData(image.id, data);
    return glance.imageLocation(image.id);
  }

  before(async () => {
    testDb = testDbConfig('regression-cache');
    glance = await Glance.open({ db: testDb.config });
    hostDir = path.join(testDb.dataDir, 'hosts', 'compute1');
    host = await ComputeHost.open({ host: 'compute1', hostDir, capabilities });
  });
  after(async () => {
    await host?.close();
    await glance?.close();
    await testDb?.cleanup();
  });

  test('a cached copy damaged at the same size is downloaded again, not served as a hit', async () => {
    const location = await publish();
    const cached = await host.fetchImage(location);
    assert.equal(cached.cacheHit, false);
    scribble(cached.path);
    const again = await host.fetchImage(location);
    assert.equal(again.cacheHit, false, 'the damaged copy is replaced');
    assert.ok(readFileSync(again.path).equals(data));
    assert.equal((await host.fetchImage(location)).cacheHit, true);
  });

  test('a file that only changed its time is re-checked and still a hit', async () => {
    const location = await publish();
    const cached = await host.fetchImage(location);
    const later = new Date(Date.now() + 5_000);
    utimesSync(cached.path, later, later);
    assert.equal((await host.fetchImage(location)).cacheHit, true);
  });

  test('a copy damaged between the fetch and the spawn: RescheduledException, no disk; the next fetch heals it', async () => {
    const location = await publish();
    const cached = await host.fetchImage(location);
    scribble(cached.path);
    const uuid = randomUUID();
    await assert.rejects(host.createInstanceDir(uuid, { rootGb: 1, baseImagePath: cached.path }), (err) => {
      assert.ok(isCloudError(err, 'RescheduledException'), String(err));
      assert.match(err.message, /changed after it was verified/);
      return true;
    });
    assert.equal(existsSync(path.join(hostDir, 'instances', uuid, 'disk')), false);

    const healed = await host.fetchImage(location);
    assert.equal(healed.cacheHit, false);
    const dir = await host.createInstanceDir(uuid, { rootGb: 1, baseImagePath: healed.path });
    assert.ok(prefix(dir.diskPath, data.length).equals(data), 'the root disk starts with the image');
    await host.destroy(uuid);
  });
});
