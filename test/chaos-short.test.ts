/**
 * The short chaos run in CI: `npm run chaos -- --short` as a process (its own dev server on a free port,
 * worker processes, a temporary data directory), about 30 boots with kills of the controller and network
 * workers, a compute host lost for good, a dev server restart, injected faults, and boots reset and one
 * terminated through Temporal (the reconciler Schedule finishing its server). It must end with exit
 * code 0: every request with exactly one outcome, nothing over-committed, nothing leaked. The seed is fixed
 * so that a failure replays (CHAOS_SEED picks another).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { PROJECT_ROOT } from '../lib/temporal-binaries';

const SEED = process.env.CHAOS_SEED ?? '2';

test(`chaos --short --seed ${SEED}: one outcome per request, no leaks`, { timeout: 600_000 }, async (t) => {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(PROJECT_ROOT, 'scripts/chaos/index.ts'), '--short', '--seed', SEED],
    { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  // A test timeout must not leave the run's dev server and workers behind: SIGTERM makes it stop them.
  t.signal.addEventListener('abort', () => child.kill('SIGTERM'));
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.equal(code, 0, out);
  assert.match(out, /no violations: every request has one outcome, nothing leaked/);
  assert.match(out, /│ leaks\s+│ 0 /);
  assert.match(out, /LOST 0/);
  // Temporal's own hands: boots reset mid-flight and one terminated, finished by the reconciler.
  assert.match(out, /│ resets\s+│ [1-9]\d* \(/);
  assert.match(out, /│ terminations\s+│ 1 \((ACTIVE|ERROR) 1\)/);
});
