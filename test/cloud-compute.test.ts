import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn as spawnProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isCloudError, type CloudErrorType } from '../cloud/errors';
import {
  ComputeHost,
  FAKE_CONSOLE_OUTPUT,
  POWER_STATE,
  type FaultOperation,
  type FetchImageResult,
  type HostCapabilities,
} from '../cloud/compute';
import { Glance, generateQcow2Image, type ImageLocation } from '../cloud/glance';
import { pollUntil } from '../lib/poll';
import { testDbConfig, type TestDb } from './helpers/cloud-db';

const repoRoot = path.resolve(__dirname, '..');
const capabilities: HostCapabilities = {
  vcpus: 8,
  memoryMb: 16384,
  diskGb: 200,
  cpuArch: 'x86_64',
  hypervisorType: 'fake',
  availabilityZone: 'nova',
};
const GiB = 1024 ** 3;

async function rejectsWith(promise: Promise<unknown>, type: CloudErrorType, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isCloudError(err, type), `expected ${type}, got ${String(err)}`);
    if (message) assert.match(err.message, message);
    return true;
  });
}

/** The first `length` bytes of a (possibly huge, sparse) file. */
/** Resolves once `count` calls have met the operation's fault (a `hang` then holds them). */
function faultHeld(host: ComputeHost, operation: FaultOperation, count = 1): Promise<true> {
  return pollUntil(
    async () => (((await host.listFaults())[operation]?.hits ?? 0) >= count ? true : undefined),
    { timeoutMs: 30_000, intervalMs: 20, what: `${count} call(s) held by the ${operation} fault` },
  );
}

function readPrefix(file: string, length: number, position = 0): Buffer {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    const n = readSync(fd, buf, 0, length, position);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

const mac = () =>
  `fa:16:3e:${[0, 0, 0]
    .map(() =>
      Math.floor(Math.random() * 256)
        .toString(16)
        .padStart(2, '0'),
    )
    .join(':')}`;
const port = (deviceId?: string) => ({ id: randomUUID(), macAddress: mac(), deviceId, networkId: 'net-1' });

/** A second OS process working on the same host directory (the real cross-process case). */
const CHILD_SOURCE = `
import { ComputeHost } from ${JSON.stringify(path.join(repoRoot, 'cloud/compute/index.ts'))};
const job = JSON.parse(process.argv[2]);
const host = await ComputeHost.open({ host: job.host, hostDir: job.hostDir, capabilities: job.capabilities });
process.stdout.write('ready\\n');
let results;
if (job.mode === 'fetch') results = await Promise.all(job.locations.map((l) => host.fetchImage(l)));
else results = await Promise.all(job.ports.map((p) => host.plugVif(p)));
process.stdout.write(JSON.stringify(results) + '\\n');
`;

function runChild(scriptPath: string, job: Record<string, unknown>, onReady: () => void): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const child = spawnProcess(process.execPath, ['--import', 'tsx', scriptPath, JSON.stringify(job)], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.startsWith('ready\n') && !out.includes('\n', 6) && out.length === 6) onReady();
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`child exited ${code}: ${err}`));
      resolve(JSON.parse(out.split('\n')[1] ?? '[]') as unknown[]);
    });
  });
}

describe('compute host', () => {
  let testDb: TestDb;
  let glance: Glance;
  let hostDir: string;
  let host: ComputeHost;
  let childScript: string;
  const cirros = generateQcow2Image({ seed: 'cirros' });

  async function publishImage(data: Buffer = cirros): Promise<ImageLocation> {
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
  const baseDir = () => path.join(hostDir, '_base');
  const strays = () => readdirSync(baseDir()).filter((n) => n.startsWith('.') || n.endsWith('.lock'));

  before(async () => {
    testDb = testDbConfig('compute');
    glance = await Glance.open({ db: testDb.config });
    hostDir = path.join(testDb.dataDir, 'hosts', 'compute1');
    host = await ComputeHost.open({ host: 'compute1', hostDir, capabilities });
    childScript = path.join(testDb.dataDir, 'compute-child.mts');
    writeFileSync(childScript, CHILD_SOURCE);
  });
  after(async () => {
    await host?.close();
    await glance?.close();
    await testDb?.cleanup();
  });

  describe('image cache', () => {
    test('downloads once into _base with progress and verified hashes; later fetches are cache hits', async () => {
      const location = await publishImage();
      const progress: Array<[number, number]> = [];
      const first = await host.fetchImage(location, {
        onProgress: (p) => progress.push([p.bytesDone, p.bytesTotal]),
      });
      assert.deepEqual(first, {
        path: path.join(baseDir(), location.imageId),
        cacheHit: false,
        bytes: cirros.length,
      });
      assert.deepEqual(readFileSync(first.path), cirros);
      assert.ok(progress.length > 1);
      assert.ok(progress.every(([, total]) => total === cirros.length));
      assert.deepEqual(
        progress.map(([done]) => done),
        progress.map(([done]) => done).sort((a, b) => a - b),
      );
      assert.equal(progress.at(-1)?.[0], cirros.length);
      assert.equal((await host.fetchImage(location)).cacheHit, true);
      const other = await ComputeHost.open({ host: 'compute1', hostDir, capabilities });
      assert.equal((await other.fetchImage(location)).cacheHit, true);
      assert.deepEqual(
        (await host.listCachedImages()).map((c) => c.imageId),
        [location.imageId],
      );
      assert.deepEqual(strays(), []);
    });

    test('a corrupt or truncated source is ImageChecksumMismatch and leaves no file behind', async () => {
      const location = await publishImage(generateQcow2Image({ seed: 'corrupt-me' }));
      const source = fileURLToPath(location.url);
      const data = readFileSync(source);
      data.writeUInt8(data.readUInt8(data.length - 10) ^ 0x01, data.length - 10);
      writeFileSync(source, data);
      await rejectsWith(host.fetchImage(location), 'ImageChecksumMismatch', /SHA-512/);
      writeFileSync(source, data.subarray(0, data.length - 4096));
      await rejectsWith(host.fetchImage(location), 'ImageChecksumMismatch', /bytes/);
      assert.equal(existsSync(path.join(baseDir(), location.imageId)), false);
      assert.deepEqual(strays(), []);
      // A location whose hashes lie about good data is refused the same way.
      const good = await publishImage(generateQcow2Image({ seed: 'lying-location' }));
      await rejectsWith(
        host.fetchImage({ ...good, osHashValue: 'a'.repeat(128) }),
        'ImageChecksumMismatch',
        /SHA-512/,
      );
      assert.equal(existsSync(path.join(baseDir(), good.imageId)), false);
      // As python-glanceclient: with a multihash the legacy MD5 checksum is not what decides.
      const fetched = await host.fetchImage({ ...good, checksum: 'f'.repeat(32) });
      assert.equal(fetched.cacheHit, false);
      assert.equal(statSync(path.join(baseDir(), good.imageId)).size, good.size);
    });

    test('a deleted image cannot be fetched; bad locations are BadRequest', async () => {
      const location = await publishImage(generateQcow2Image({ seed: 'deleted' }));
      await glance.deleteImage(location.imageId);
      await rejectsWith(host.fetchImage(location), 'NotFound', /missing/);
      await rejectsWith(host.fetchImage({ ...location, imageId: '../../etc' }), 'BadRequest');
      await rejectsWith(host.fetchImage({ ...location, url: 'http://glance/x' }), 'BadRequest');
      await rejectsWith(host.fetchImage({ ...location, size: -1 }), 'BadRequest');
      await rejectsWith(host.fetchImage({ ...location, extra: 1 } as ImageLocation), 'BadRequest');
      assert.deepEqual(strays(), []);
    });

    test('concurrent fetches from this process, another ComputeHost and another OS process download once', async () => {
      const location = await publishImage(generateQcow2Image({ seed: 'popular' }));
      // The first downloader hangs while holding the lock, until every other caller is waiting.
      await host.setFault('fetchImage', { mode: 'hang', times: 1 });
      const other = await ComputeHost.open({ host: 'compute1', hostDir, capabilities });
      let childReady!: () => void;
      const ready = new Promise<void>((r) => (childReady = r));
      const child = runChild(
        childScript,
        { mode: 'fetch', host: 'compute1', hostDir, capabilities, locations: [location, location, location] },
        childReady,
      );
      const local = [
        ...Array.from({ length: 4 }, () => host.fetchImage(location)),
        ...Array.from({ length: 2 }, () => other.fetchImage(location)),
      ];
      await ready;
      // Held by the hang, the first download has written nothing yet.
      await faultHeld(host, 'fetchImage');
      assert.equal(existsSync(path.join(baseDir(), location.imageId)), false);
      await host.clearFaults();
      const results = [...(await Promise.all(local)), ...((await child) as FetchImageResult[])];
      assert.equal(results.length, 9);
      assert.equal(results.filter((r) => !r.cacheHit).length, 1, 'exactly one download');
      assert.ok(results.every((r) => r.path === path.join(baseDir(), location.imageId)));
      assert.deepEqual(strays(), []);
      // Several instances share the one cached base image.
      const uuids = [randomUUID(), randomUUID(), randomUUID()];
      for (const uuid of uuids)
        await host.createInstanceDir(uuid, { rootGb: 1, baseImagePath: results[0]?.path });
      const base = readFileSync(path.join(baseDir(), location.imageId));
      for (const uuid of uuids) {
        const disk = readPrefix(path.join(hostDir, 'instances', uuid, 'disk'), base.length);
        assert.ok(disk.equals(base));
      }
      for (const uuid of uuids) await host.destroy(uuid);
    });

    test('a stale lock of a dead process is taken over; a live one makes a waiter time out', async () => {
      const location = await publishImage(generateQcow2Image({ seed: 'stale-lock' }));
      const lockDir = path.join(baseDir(), `${location.imageId}.lock`);
      mkdirSync(lockDir);
      const impatient = await ComputeHost.open({
        host: 'compute1',
        hostDir,
        capabilities,
        imageLockWaitMs: 300,
      });
      await rejectsWith(impatient.fetchImage(location), 'ServiceUnavailable', /Timed out/);
      // A download held up in this process makes a waiter time out too, without leaving anything behind.
      const other = await publishImage(generateQcow2Image({ seed: 'held-up' }));
      await host.setFault('fetchImage', { mode: 'hang' });
      const held = host.fetchImage(other);
      await faultHeld(host, 'fetchImage');
      await rejectsWith(impatient.fetchImage(other), 'ServiceUnavailable', /Timed out/);
      await host.clearFaults();
      assert.equal((await held).cacheHit, false);
      const old = new Date(Date.now() - 60_000);
      utimesSync(lockDir, old, old);
      assert.equal((await host.fetchImage(location)).cacheHit, false);
      assert.deepEqual(strays(), []);
    });
  });

  describe('instance directories', () => {
    let basePath: string;
    before(async () => {
      basePath = (await host.fetchImage(await publishImage())).path;
    });

    test('the root disk is sparse, sized to the flavor, and starts with the base image', async () => {
      const uuid = randomUUID();
      const dir = await host.createInstanceDir(uuid, {
        rootGb: 2,
        baseImagePath: basePath,
        vcpus: 1,
        memoryMb: 512,
      });
      assert.equal(dir.created, true);
      assert.equal(dir.diskSizeBytes, 2 * GiB);
      const info = statSync(dir.diskPath);
      assert.equal(info.size, 2 * GiB);
      assert.ok(info.blocks * 512 <= cirros.length + 1024 * 1024, `allocated ${info.blocks * 512} bytes`);
      assert.ok(info.blocks * 512 < info.size / 100);
      assert.ok(readPrefix(dir.diskPath, cirros.length).equals(cirros));
      assert.ok(readPrefix(dir.diskPath, 65536, cirros.length).every((b) => b === 0));
      assert.ok(readPrefix(dir.diskPath, 4096, 2 * GiB - 4096).every((b) => b === 0));
      const xml = readFileSync(dir.domainDefinitionPath, 'utf8');
      assert.match(xml, new RegExp(`<uuid>${uuid}</uuid>`));
      assert.match(xml, new RegExp(`<source file="${dir.diskPath}"/>`));
      assert.match(xml, /<memory unit="MiB">512<\/memory>/);
      const again = await host.createInstanceDir(uuid, { rootGb: 2, baseImagePath: basePath });
      assert.equal(again.created, false);
      assert.ok((await host.listInstanceDirs()).includes(uuid));
      await host.destroy(uuid);
    });

    test('root disk 0 takes the image size; an image bigger than the flavor disk is refused', async () => {
      const uuid = randomUUID();
      const dir = await host.createInstanceDir(uuid, { rootGb: 0, baseImagePath: basePath });
      assert.equal(dir.diskSizeBytes, 112 * 1024 * 1024);
      await host.destroy(uuid);
      const big = await publishImage(
        generateQcow2Image({ seed: 'big', virtualSizeBytes: 3 * GiB, dataBytes: 64 * 1024 }),
      );
      const bigBase = (await host.fetchImage(big)).path;
      const tooSmall = randomUUID();
      await rejectsWith(
        host.createInstanceDir(tooSmall, { rootGb: 1, baseImagePath: bigBase }),
        'FlavorDiskTooSmall',
      );
      assert.ok(!(await host.listInstanceDirs()).includes(tooSmall));
    });

    test('bad requests are refused and create nothing', async () => {
      const before = await host.listInstanceDirs();
      const uuid = randomUUID();
      await rejectsWith(host.createInstanceDir(uuid, { rootGb: -1 }), 'BadRequest');
      await rejectsWith(host.createInstanceDir(uuid, { rootGb: 201 }), 'BadRequest', /200 GB/);
      await rejectsWith(host.createInstanceDir(uuid, { rootGb: 1.5 }), 'BadRequest');
      await rejectsWith(host.createInstanceDir(uuid, { rootGb: 1, color: 'red' } as never), 'BadRequest');
      await rejectsWith(host.createInstanceDir('../escape', { rootGb: 1 }), 'BadRequest');
      await rejectsWith(
        host.createInstanceDir(uuid, { rootGb: 1, baseImagePath: '/etc/passwd' }),
        'BadRequest',
      );
      await rejectsWith(
        host.createInstanceDir(uuid, { rootGb: 1, baseImagePath: path.join(baseDir(), 'nope') }),
        'NotFound',
      );
      await rejectsWith(host.createInstanceDir(uuid, { rootGb: 0 }), 'BadRequest');
      assert.deepEqual(await host.listInstanceDirs(), before);
    });
  });

  describe('network agent and volumes', () => {
    test('plugVif creates qbr/tap records, idempotently; another instance of the host sees them', async () => {
      const p = port(randomUUID());
      const vif = await host.plugVif(p);
      assert.equal(vif.bridge, `qbr${p.id.slice(0, 11)}`);
      assert.equal(vif.tap, `tap${p.id.slice(0, 11)}`);
      assert.equal(vif.tap.length, 14);
      assert.deepEqual(await host.plugVif(p), vif);
      const other = await ComputeHost.open({ host: 'compute1', hostDir, capabilities });
      assert.equal((await other.listVifs()).filter((v) => v.portId === p.id).length, 1);
      assert.equal(await other.unplugVif(p.id), true);
      assert.equal(await host.unplugVif(p.id), false);
      assert.ok(!(await host.listVifs()).some((v) => v.portId === p.id));
    });

    test('parallel plugs from two processes lose no update', async () => {
      const mine = Array.from({ length: 8 }, () => port());
      const theirs = Array.from({ length: 8 }, () => port());
      const child = runChild(
        childScript,
        { mode: 'plug', host: 'compute1', hostDir, capabilities, ports: theirs },
        () => {},
      );
      await Promise.all(mine.map((p) => host.plugVif(p)));
      await child;
      const plugged = new Set((await host.listVifs()).map((v) => v.portId));
      for (const p of [...mine, ...theirs]) assert.ok(plugged.has(p.id));
      for (const p of [...mine, ...theirs]) await host.unplugVif(p.id);
    });

    test('a port bound elsewhere or failed to bind is PortBindingFailed; bad ports are BadRequest', async () => {
      await rejectsWith(host.plugVif({ ...port(), bindingHostId: 'compute2' }), 'PortBindingFailed');
      await rejectsWith(host.plugVif({ ...port(), bindingVifType: 'binding_failed' }), 'PortBindingFailed');
      await rejectsWith(host.plugVif({ ...port(), macAddress: 'nonsense' }), 'BadRequest');
      await rejectsWith(host.plugVif({ ...port(), id: 'short' }), 'BadRequest');
      assert.deepEqual(await host.listVifs(), []);
    });

    test('connectVolume checks the file and gives devices vdb, vdc…; repeats are idempotent', async () => {
      const instance = randomUUID();
      const files = ['v1', 'v2'].map((n) => path.join(testDb.dataDir, `${n}.img`));
      for (const f of files) writeFileSync(f, Buffer.alloc(4096));
      const a = await host.connectVolume(
        { driverVolumeType: 'file', path: files[0] as string },
        { instanceUuid: instance, volumeId: 'vol-a' },
      );
      const b = await host.connectVolume(
        { path: files[1] as string },
        { instanceUuid: instance, volumeId: 'vol-b' },
      );
      assert.equal(a.device, 'vdb');
      assert.equal(b.device, 'vdc');
      assert.deepEqual(
        await host.connectVolume({ path: files[0] as string }, { instanceUuid: instance, volumeId: 'vol-a' }),
        a,
      );
      await rejectsWith(
        host.connectVolume({ path: path.join(testDb.dataDir, 'missing.img') }, { instanceUuid: instance }),
        'NotFound',
      );
      await rejectsWith(host.connectVolume({ path: 'relative.img' }), 'BadRequest');
      assert.equal((await host.listVolumeConnections()).length, 2);
      assert.equal(
        await host.disconnectVolume(
          { path: files[0] as string },
          { instanceUuid: instance, volumeId: 'vol-a' },
        ),
        true,
      );
      assert.equal(
        await host.disconnectVolume(
          { path: files[0] as string },
          { instanceUuid: instance, volumeId: 'vol-a' },
        ),
        false,
      );
      assert.equal(
        await host.disconnectVolume(
          { path: files[1] as string },
          { instanceUuid: instance, volumeId: 'vol-b' },
        ),
        true,
      );
      assert.deepEqual(await host.listVolumeConnections(), []);
    });
  });

  describe('fake virt driver', () => {
    let basePath: string;
    before(async () => {
      basePath = (await host.fetchImage(await publishImage())).path;
    });

    test('spawn runs the guest with its ports and volumes; power state is shared; destroy leaves nothing', async () => {
      const uuid = randomUUID();
      await host.createInstanceDir(uuid, { rootGb: 1, baseImagePath: basePath });
      const p = port(uuid);
      const vif = await host.plugVif(p);
      const volumeFile = path.join(testDb.dataDir, `${uuid}.vol`);
      writeFileSync(volumeFile, Buffer.alloc(4096));
      await host.connectVolume({ path: volumeFile }, { instanceUuid: uuid, volumeId: 'vol-1' });
      const domain = await host.spawn(uuid, { vcpus: 2, memoryMb: 2048, portIds: [p.id] });
      assert.equal(domain.powerState, POWER_STATE.RUNNING);
      const xml = await host.readDomainDefinition(uuid);
      assert.match(xml, /<vcpu>2<\/vcpu>/);
      assert.match(xml, new RegExp(`<source bridge="${vif.bridge}"/>`));
      assert.match(xml, new RegExp(`<target dev="${vif.tap}"/>`));
      assert.match(xml, new RegExp(`<source file="${volumeFile}"/>\\s*<target dev="vdb"`));

      const other = await ComputeHost.open({ host: 'compute1', hostDir, capabilities });
      assert.equal(await other.getPowerState(uuid), POWER_STATE.RUNNING);
      await other.powerOff(uuid);
      assert.equal(await host.getPowerState(uuid), POWER_STATE.SHUTDOWN);
      assert.equal((await host.spawn(uuid, { vcpus: 2, memoryMb: 2048 })).powerState, POWER_STATE.RUNNING);
      assert.equal((await host.listDomains()).filter((d) => d.uuid === uuid).length, 1);

      const gone = await other.destroy(uuid);
      assert.deepEqual(gone.unpluggedPorts, [p.id]);
      assert.equal(gone.disconnectedVolumes.length, 1);
      assert.equal(gone.domainRemoved && gone.instanceDirRemoved, true);
      assert.equal(await host.getPowerState(uuid), POWER_STATE.NOSTATE);
      assert.ok(!(await host.listInstanceDirs()).includes(uuid));
      assert.deepEqual(await host.listVifs(), []);
      assert.deepEqual(await host.listVolumeConnections(), []);
      assert.deepEqual(await host.destroy(uuid), {
        domainRemoved: false,
        instanceDirRemoved: false,
        unpluggedPorts: [],
        disconnectedVolumes: [],
      });
    });

    test('reboot keeps the guest running; the console is the fake lines, tailed; bad input is BadRequest', async () => {
      const uuid = randomUUID();
      await rejectsWith(host.reboot(uuid, 'SOFT'), 'NotFound');
      await rejectsWith(host.getConsoleOutput(uuid), 'NotFound');
      await host.createInstanceDir(uuid, { rootGb: 1, baseImagePath: basePath });
      await host.spawn(uuid, { vcpus: 1, memoryMb: 512 });
      await host.powerOff(uuid);
      assert.equal((await host.reboot(uuid, 'HARD')).powerState, POWER_STATE.RUNNING);
      assert.equal((await host.reboot(uuid, 'SOFT')).powerState, POWER_STATE.RUNNING);
      await rejectsWith(host.reboot(uuid, 'WARM' as 'SOFT'), 'BadRequest');
      assert.equal(await host.getConsoleOutput(uuid), FAKE_CONSOLE_OUTPUT);
      // Nova's _tail_log: the text after the last newline is the last of the 2 pieces.
      assert.equal(await host.getConsoleOutput(uuid, 2), 'LAST LINE\n');
      assert.equal(await host.getConsoleOutput(uuid, 3), 'ANOTHER\nLAST LINE\n');
      assert.equal(await host.getConsoleOutput(uuid, 0), '');
      assert.equal(await host.getConsoleOutput(uuid, 100), FAKE_CONSOLE_OUTPUT);
      await rejectsWith(host.getConsoleOutput(uuid, -1), 'BadRequest');
      await rejectsWith(host.getConsoleOutput(uuid, 1.5), 'BadRequest');
      await host.destroy(uuid);
    });

    test('spawn needs the instance directory and plugged ports', async () => {
      const uuid = randomUUID();
      await rejectsWith(host.spawn(uuid, { vcpus: 1, memoryMb: 512 }), 'NotFound');
      await host.createInstanceDir(uuid, { rootGb: 1, baseImagePath: basePath });
      await rejectsWith(
        host.spawn(uuid, { vcpus: 1, memoryMb: 512, portIds: [randomUUID()] }),
        'VirtualInterfaceCreateException',
      );
      await rejectsWith(host.spawn(uuid, { vcpus: 0, memoryMb: 512 }), 'BadRequest');
      assert.equal(await host.getDomain(uuid), undefined);
      await host.destroy(uuid);
    });
  });

  describe('fault injection', () => {
    let basePath: string;
    before(async () => {
      basePath = (await host.fetchImage(await publishImage())).path;
    });

    test('fail: typed errors per operation, set from another instance of the host, limited by times', async () => {
      const uuid = randomUUID();
      await host.createInstanceDir(uuid, { rootGb: 1, baseImagePath: basePath });
      const chaos = await ComputeHost.open({ host: 'compute1', hostDir, capabilities });
      await chaos.setFault('spawn', { mode: 'fail', times: 2 });
      await chaos.setFault('plugVif', { mode: 'fail' });
      await chaos.setFault('connectVolume', {
        mode: 'fail',
        errorType: 'InvalidVolume',
        message: 'no such LUN',
      });
      assert.ok(JSON.parse(readFileSync(path.join(hostDir, 'faults.json'), 'utf8')).spawn);
      for (let i = 0; i < 2; i++) {
        await assert.rejects(host.spawn(uuid, { vcpus: 1, memoryMb: 512 }), (err: unknown) => {
          assert.ok(isCloudError(err, 'RescheduledException'));
          assert.equal(err.details.injected, true);
          return true;
        });
      }
      assert.equal(await host.getDomain(uuid), undefined);
      assert.equal((await host.spawn(uuid, { vcpus: 1, memoryMb: 512 })).powerState, POWER_STATE.RUNNING);
      await rejectsWith(host.plugVif(port(uuid)), 'VirtualInterfaceCreateException', /Injected/);
      await rejectsWith(host.connectVolume({ path: basePath }), 'InvalidVolume', /no such LUN/);
      assert.deepEqual(await host.listVifs(), []);
      await chaos.clearFaults();
      assert.deepEqual(await host.listFaults(), {});
      await host.destroy(uuid);
    });

    test('fetchImage fail leaves no cached file; slow delays by ms', async () => {
      const location = await publishImage(generateQcow2Image({ seed: 'fault-fetch' }));
      await host.setFault('fetchImage', { mode: 'fail' });
      await rejectsWith(host.fetchImage(location), 'RescheduledException');
      assert.equal(existsSync(path.join(baseDir(), location.imageId)), false);
      await host.setFault('fetchImage', { mode: 'slow', ms: 250 });
      const started = Date.now();
      assert.equal((await host.fetchImage(location)).cacheHit, false);
      assert.ok(Date.now() - started >= 240);
      await host.clearFaults('fetchImage');
      assert.deepEqual(strays(), []);
    });

    test('hang: the call waits until the fault is cleared, or until it is aborted', async () => {
      const uuid = randomUUID();
      await host.createInstanceDir(uuid, { rootGb: 1, baseImagePath: basePath });
      await host.setFault('spawn', { mode: 'hang' });
      let settled = false;
      const hanging = host.spawn(uuid, { vcpus: 1, memoryMb: 512 }).finally(() => (settled = true));
      await faultHeld(host, 'spawn');
      assert.equal(settled, false);
      assert.equal(await host.getDomain(uuid), undefined);
      await host.clearFaults('spawn');
      assert.equal((await hanging).powerState, POWER_STATE.RUNNING);

      await host.setFault('powerOff', { mode: 'hang' });
      const controller = new AbortController();
      const stopping = host.powerOff(uuid, { signal: controller.signal });
      await faultHeld(host, 'powerOff');
      controller.abort(new Error('activity cancelled'));
      await assert.rejects(stopping, /activity cancelled/);
      assert.equal(await host.getPowerState(uuid), POWER_STATE.RUNNING);
      await host.clearFaults();
      await host.destroy(uuid);
    });

    test('invalid fault specs and a corrupt faults.json are BadRequest', async () => {
      await rejectsWith(host.setFault('spawn', { mode: 'explode' } as never), 'BadRequest');
      await rejectsWith(host.setFault('rebuild' as never, { mode: 'fail' }), 'BadRequest');
      await rejectsWith(host.setFault('spawn', { mode: 'slow', ms: -1 }), 'BadRequest');
      assert.deepEqual(await host.listFaults(), {});
      writeFileSync(path.join(hostDir, 'faults.json'), '{ nope');
      await rejectsWith(host.unplugVif(randomUUID()), 'BadRequest', /faults.json/);
      writeFileSync(path.join(hostDir, 'faults.json'), '{}');
    });
  });

  describe('host directory', () => {
    test('belongs to one host; bad capabilities are refused', async () => {
      await rejectsWith(
        ComputeHost.open({ host: 'compute2', hostDir, capabilities }),
        'BadRequest',
        /belongs to host compute1/,
      );
      await rejectsWith(
        ComputeHost.open({
          host: 'compute9',
          hostDir: path.join(testDb.dataDir, 'hosts', 'c9'),
          capabilities: { ...capabilities, vcpus: -1 },
        }),
        'BadRequest',
      );
      await rejectsWith(
        ComputeHost.open({ host: '../x', hostDir: path.join(testDb.dataDir, 'hosts', 'x'), capabilities }),
        'BadRequest',
      );
      const identity = JSON.parse(readFileSync(path.join(hostDir, 'host.json'), 'utf8')) as { host: string };
      assert.equal(identity.host, 'compute1');
    });
  });
});
