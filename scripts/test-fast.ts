/**
 * `npm run test:fast`: the edit loop's tier, every suite that needs no Temporal dev server, browser, chaos
 * run or benchmark (those stay in `npm test`, which CI runs whole). The suites here share nothing (each
 * opens its own databases, data directories and time-skipping test server), so two run at once.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..');

/** The suites left to `npm test`, each with what it needs. */
export const SLOW_SUITES: Record<string, string> = {
  'api-openstack-cli.test.ts': 'the dev server, the api role and the real openstack CLI',
  'api-openstack-nova.test.ts': 'the dev server, the api role and the real openstack CLI',
  'bench-quick.test.ts': 'the benchmark',
  'browser-web-ui.test.ts': 'a browser and the dev server',
  'chaos-short.test.ts': 'a chaos run',
  'dev-server-store.test.ts': 'the dev server',
  'e2e-demo.test.ts': 'the demo (dev server, workers)',
  'guest-qemu.test.ts': 'the dev server and real QEMU guests',
  'security-secrets.test.ts': 'the dev server and the api role (the client against its own Keystone)',
  'worker-shutdown.test.ts': 'the dev server',
};

export function fastSuites(testDir = path.join(ROOT, 'test')): string[] {
  for (const name of Object.keys(SLOW_SUITES)) {
    if (!existsSync(path.join(testDir, name)))
      throw new Error(`test/${name} is listed as slow but does not exist`);
  }
  return readdirSync(testDir)
    .filter((name) => name.endsWith('.test.ts') && !(name in SLOW_SUITES))
    .sort()
    .map((name) => path.join('test', name));
}

if (require.main === module) {
  const concurrency = process.env.BOOTFLOW_TEST_CONCURRENCY ?? '2';
  const args = ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, ...fastSuites()];
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: 'inherit' });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
  child.once('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}
