/**
 * Regression (found by `npm run chaos`: kill -9 of the controller while a boot volume was being created):
 * the creation ran only in the memory of the Cinder that accepted it, so a killed or restarted controller
 * left the volume `creating` for ever, and the boot waited out Nova's 180 s before failing. Now the next
 * Cinder to open takes over creations whose worker is gone (its process dead, or closed in this process)
 * and runs them again from the recorded image source; a creation whose worker still runs is left to it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cinder } from '../cloud/cinder/cinder';
import type { ImageSource, Volume } from '../cloud/cinder/types';
import { testDbConfig, testDbDialect, type TestDb } from './helpers/cloud-db';
import { readHead, writeRawImage } from './helpers/raw-image';

const repoRoot = path.resolve(__dirname, '..');
const project = 'demo-project';

/** A second OS process that accepts a volume with creation hanging, prints its id, and waits to be killed. */
const CHILD_SOURCE = `
import { Cinder } from ${JSON.stringify(path.join(repoRoot, 'cloud/cinder/cinder.ts'))};
const job = JSON.parse(process.argv[2]);
const cinder = await Cinder.open({ db: job.db, faults: { create: { mode: 'hang' } } });
const volume = await cinder.createVolume({ requestKey: job.requestKey, projectId: 'demo-project', sizeGb: 1, imageSource: job.source });
process.stdout.write(volume.id + '\\n');
setInterval(() => undefined, 60_000);
`;

describe(`regression: a volume creation outlives the Cinder that started it (${testDbDialect})`, () => {
  let testDb: TestDb;
  let data: Buffer;
  let source: ImageSource;
  let childScript: string;

  before(() => {
    testDb = testDbConfig('cinder-resume');
    const dir = path.join(testDb.dataDir, 'glance-images');
    mkdirSync(dir, { recursive: true });
    data = Buffer.concat([randomBytes(1024 * 1024), Buffer.alloc(4096, 7)]);
    source = writeRawImage(path.join(dir, 'image.raw'), data);
    childScript = path.join(testDb.dataDir, 'cinder-child.mts');
    writeFileSync(childScript, CHILD_SOURCE);
  });
  after(async () => {
    await testDb?.cleanup();
  });

  async function assertHoldsImage(cinder: Cinder, volume: Volume): Promise<void> {
    const done = await cinder.waitForVolume(volume.id, { timeoutMs: 20_000, pollMs: 20 });
    assert.equal(done.status, 'available');
    assert.equal(done.imageMetadata?.checksum, source.checksum);
    assert.ok(
      (await readHead(done.providerLocation ?? '', data.length)).equals(data),
      'the image was copied in',
    );
  }

  test('closed mid-creation (a graceful stop): the next Cinder to open finishes it', async () => {
    const first = await Cinder.open({ db: testDb.config, faults: { create: { mode: 'hang' } } });
    const volume = await first.createVolume({
      requestKey: 'closed',
      projectId: project,
      sizeGb: 1,
      imageSource: source,
    });
    await first.close();
    const next = await Cinder.open({ db: testDb.config });
    try {
      await assertHoldsImage(next, volume);
    } finally {
      await next.close();
    }
  });

  test('killed mid-creation (kill -9): left alone while its process lives, taken over once it is gone', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', childScript, JSON.stringify({ db: testDb.config, requestKey: 'killed', source })],
      { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const id = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('\n')) resolve(out.trim());
      });
      child.once('exit', (code) => reject(new Error(`child exited ${code} before creating`)));
    });
    try {
      const bystander = await Cinder.open({ db: testDb.config });
      try {
        await sleep(300);
        assert.equal((await bystander.getVolume(id)).status, 'creating', 'its creator still runs: not taken');
      } finally {
        await bystander.close();
      }
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    const next = await Cinder.open({ db: testDb.config });
    try {
      await assertHoldsImage(next, await next.getVolume(id));
    } finally {
      await next.close();
    }
  });
});
