import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TemporalBinaryNotFound, ephemeralExecutable, resolveTemporalBinary } from '../lib/temporal-binaries';

function fakeExecutable(dir: string, name: string): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, name);
  writeFileSync(file, '#!/bin/sh\nexit 0\n');
  chmodSync(file, 0o755);
  return file;
}

const root = mkdtempSync(path.join(os.tmpdir(), 'bootflow-resolver-'));
const venvDir = path.join(root, 'venv');
const venvCli = fakeExecutable(path.join(venvDir, 'bin'), 'temporal');
const pathDir = path.join(root, 'pathdir');
const pathTestServer = fakeExecutable(pathDir, 'temporal-test-server');
const explicitCli = fakeExecutable(path.join(root, 'explicit'), 'my-temporal');
const emptyVenv = path.join(root, 'no-venv');

test('the environment variable wins over the virtualenv and the PATH', () => {
  const resolved = resolveTemporalBinary('cli', {
    env: { TEMPORAL_CLI_PATH: explicitCli, PATH: pathDir },
    venvDir,
  });
  assert.deepEqual(resolved, { source: 'env', path: explicitCli });
});

test('an environment variable that points nowhere is a clear error, not a silent download', () => {
  assert.throws(
    () => resolveTemporalBinary('test-server', { env: { TEMPORAL_TEST_SERVER_PATH: '/nope/x' }, venvDir }),
    (err: unknown) =>
      err instanceof TemporalBinaryNotFound && /TEMPORAL_TEST_SERVER_PATH=\/nope\/x/.test(err.message),
  );
});

test('the project virtualenv comes before the PATH', () => {
  fakeExecutable(pathDir, 'temporal');
  assert.deepEqual(resolveTemporalBinary('cli', { env: { PATH: pathDir }, venvDir }), {
    source: 'venv',
    path: venvCli,
  });
});

test('the PATH is used when there is no virtualenv binary', () => {
  assert.deepEqual(resolveTemporalBinary('test-server', { env: { PATH: pathDir }, venvDir }), {
    source: 'path',
    path: pathTestServer,
  });
});

test('a missing binary falls back to the SDK download with one clear line', () => {
  const warnings: string[] = [];
  const executable = ephemeralExecutable('test-server', {
    env: { PATH: '' },
    venvDir: emptyVenv,
    warn: (m) => warnings.push(m),
  });
  assert.deepEqual(executable, { type: 'cached-download' });
  assert.equal(warnings.length, 1);
  assert.match(warnings[0] ?? '', /temporal-test-server not found/);
  assert.match(warnings[0] ?? '', /TEMPORAL_TEST_SERVER_PATH/);
  assert.match(warnings[0] ?? '', /setup-temporal\.sh/);
});

test('a found binary becomes an existing-path executable', () => {
  assert.deepEqual(ephemeralExecutable('cli', { env: { PATH: '' }, venvDir }), {
    type: 'existing-path',
    path: venvCli,
  });
});
