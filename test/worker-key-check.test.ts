/**
 * Issue 15, finding 6: a worker of any role checks its payload-encryption keys at start. A compute worker given
 * the wrong key (here a stale BOOTFLOW_CODEC_KEYS) stops before it reaches Temporal, with a message that names
 * the problem, instead of running and leaving results only the controller fails to decrypt.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureCodecKeyFile, ensureKeyCheck, keyCheckPath, verifyKeyCheck, Keyring } from '../lib/codec';
import { cleanEnv, scriptArgs } from '../lib/processes';
import { PROJECT_ROOT } from '../lib/temporal-binaries';

function runWorker(dataDir: string, env: NodeJS.ProcessEnv) {
  return spawnSync(process.execPath, scriptArgs('worker.ts', ['--role', 'compute', '--host', 'compute1']), {
    cwd: PROJECT_ROOT,
    // Nothing listens on port 1: a worker that got past the key check would fail to reach Temporal instead.
    env: cleanEnv({ BOOTFLOW_DATA: dataDir, TEMPORAL_ADDRESS: '127.0.0.1:1', LOG_LEVEL: 'warn', ...env }),
    encoding: 'utf8',
    timeout: 60_000,
  });
}

describe('workers check their keys at start', () => {
  test('a compute worker with the wrong codec key exits 2 at start, naming the key check', () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'bootflow-keycheck-'));
    try {
      const { keyring } = ensureCodecKeyFile(dataDir);
      ensureKeyCheck(dataDir, keyring);
      assert.equal(statSync(keyCheckPath(dataDir)).mode & 0o777, 0o600);
      assert.equal(verifyKeyCheck(dataDir, keyring), true);
      const wrong = `${keyring.currentId}:${randomBytes(32).toString('base64')}`;
      assert.throws(() => verifyKeyCheck(dataDir, new Keyring([{ id: 'x', key: randomBytes(32) }])));

      const refused = runWorker(dataDir, { BOOTFLOW_CODEC_KEYS: wrong });
      assert.equal(refused.status, 2, refused.stderr);
      assert.match(refused.stderr, /cannot decrypt this deployment's key check .*wrong key/);
      assert.doesNotMatch(refused.stderr, /Cannot reach Temporal/);

      // The right key gets past the check (and then on to Temporal, which is not there: exit 3).
      const right = runWorker(dataDir, {});
      assert.equal(right.status, 3, right.stderr);
      assert.match(right.stderr, /Cannot reach Temporal/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
