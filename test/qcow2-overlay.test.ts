/**
 * The instance disk written directly (cloud/compute/qcow2-overlay.ts) is what `qemu-img create` writes, byte
 * for byte, for a raw and a qcow2 backing file, without one, for a size that is not whole sectors and for one
 * whose L1 table spans two clusters; `qemu-img check` finds it clean and `qemu-img info` reads its backing
 * file back. Needs qemu-img (CI installs qemu-utils).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isCloudError } from '../cloud/errors';
import { generateQcow2Image } from '../cloud/glance';
import { createQcow2Overlay } from '../cloud/compute';
import type { BackingFile } from '../cloud/compute/qcow2-overlay';

const GiB = 1024 ** 3;

describe('qcow2 overlay written directly', () => {
  let dir: string;
  let rawBase: string;
  let qcowBase: string;

  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bootflow-qcow2-overlay-'));
    rawBase = path.join(dir, 'base.raw');
    writeFileSync(rawBase, Buffer.alloc(1024 * 1024, 7));
    qcowBase = path.join(dir, 'base.qcow2');
    writeFileSync(qcowBase, generateQcow2Image({ seed: 'overlay-test' }));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const cases: Array<{ name: string; size: number; base?: () => BackingFile }> = [
    { name: 'raw backing file, 1 GiB', size: GiB, base: () => ({ path: rawBase, format: 'raw' }) },
    { name: 'qcow2 backing file, 20 GiB', size: 20 * GiB, base: () => ({ path: qcowBase, format: 'qcow2' }) },
    { name: 'no backing file, 1000 bytes (rounded up to sectors)', size: 1000 },
    {
      name: 'raw backing file, 5 TiB (L1 of two clusters)',
      size: 5 * 1024 * GiB,
      base: () => ({ path: rawBase, format: 'raw' }),
    },
  ];
  for (const c of cases)
    test(c.name, async () => {
      const base = c.base?.();
      const ours = path.join(dir, `ours-${c.size}`);
      const theirs = path.join(dir, `theirs-${c.size}`);
      await createQcow2Overlay(ours, c.size, base);
      execFileSync('qemu-img', [
        'create',
        '-q',
        '-f',
        'qcow2',
        ...(base ? ['-b', base.path, '-F', base.format] : []),
        theirs,
        String(c.size),
      ]);
      assert.ok(readFileSync(ours).equals(readFileSync(theirs)), 'the same bytes as qemu-img create');
      execFileSync('qemu-img', ['check', ours], { stdio: 'pipe' });
      const info = JSON.parse(
        execFileSync('qemu-img', ['info', '--output=json', ours], { encoding: 'utf8' }),
      ) as {
        'virtual-size': number;
        'backing-filename'?: string;
        'backing-filename-format'?: string;
      };
      assert.equal(info['virtual-size'], Math.ceil(c.size / 512) * 512);
      assert.equal(info['backing-filename'], base?.path);
      assert.equal(info['backing-filename-format'], base?.format);
      assert.ok(!readdirSync(dir).some((f) => f.endsWith('.part')), 'no temp file left');
    });

  test('a size that is not a positive integer is refused, and nothing is left behind', async () => {
    const target = path.join(dir, 'refused');
    await assert.rejects(createQcow2Overlay(target, 0), (err: unknown) => {
      assert.ok(isCloudError(err, 'RescheduledException'), String(err));
      return true;
    });
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.startsWith('refused')),
      [],
    );
  });
});
