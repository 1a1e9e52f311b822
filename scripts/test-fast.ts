/**
 * `npm run test:fast`: the edit loop's tier, every suite that needs no Temporal dev server, browser, chaos
 * run or benchmark. The suites here share nothing (each opens its own databases in a temp directory, data
 * directories and time-skipping test server on ports the OS picks), so two run at once.
 * `npm test` is `--all`: this tier two at a time, then the slow suites one at a time (they start dev
 * servers, the demo, QEMU guests, a browser or a benchmark, and want the machine to themselves); both tiers
 * always run, and it fails if either does.
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

/** The slow suites' paths, for `--all`. */
export function slowSuites(): string[] {
  return Object.keys(SLOW_SUITES)
    .sort()
    .map((name) => path.join('test', name));
}

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

/** Set once a signal is passed on: the run stops after the tier it interrupted. */
let interrupted = false;

/** One `node --test` run over `files`, `concurrency` at a time: its exit code. */
function runSuites(files: string[], concurrency: string): Promise<number> {
  const args = ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, ...files];
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: 'inherit' });
  const forward = (signal: NodeJS.Signals) => {
    interrupted = true;
    child.kill(signal);
  };
  process.on('SIGINT', forward).on('SIGTERM', forward);
  return new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      process.off('SIGINT', forward).off('SIGTERM', forward);
      resolve(code ?? (signal ? 1 : 0));
    }),
  );
}

if (require.main === module) {
  void (async () => {
    const fast = await runSuites(fastSuites(), process.env.BOOTFLOW_TEST_CONCURRENCY ?? '2');
    const slow = process.argv.includes('--all') && !interrupted ? await runSuites(slowSuites(), '1') : 0;
    process.exit(fast || slow);
  })();
}
