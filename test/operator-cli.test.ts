/**
 * The command-line pieces on their own: credentials as the OpenStack client finds them, the progress display
 * (plain lines and a redrawn terminal block), failure messages, and the worker's role flags.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { ActivityFailure, ApplicationFailure, RetryState } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import { parseOpenrc, resolveAuth } from '../lib/command-line/credentials';
import { tokensUrl } from '../lib/command-line/keystone';
import { freePorts } from '../lib/dev-server';
import { deploymentEnv, runClient } from './helpers/deployment';
import { describeFailure, EXIT, failureInfo, UserError } from '../lib/command-line/errors';
import { BootProgress } from '../lib/command-line/progress';
import { webUiLink } from '../lib/command-line/temporal';
import { parseWorkerArgs } from '../worker';
import type { BootStatus } from '../workflows/types';

function withDataDir<T>(files: Record<string, string>, work: (dir: string) => T): T {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bootflow-cli-'));
  try {
    for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
    return work(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const OPENRC = [
  '# bootflow credentials',
  "export OS_AUTH_URL='http://127.0.0.1:8770/identity'",
  "export OS_USERNAME='demo'",
  "export OS_PASSWORD='s3cr3t-pw'",
  "export OS_PROJECT_NAME='demo'",
  "export OS_USER_DOMAIN_NAME='Default'",
  "export OS_PROJECT_DOMAIN_NAME='Default'",
  '',
].join('\n');

describe('credentials', () => {
  test('openrc lines in the usual quotings', () => {
    assert.deepEqual(
      parseOpenrc(`${OPENRC}export OS_REGION_NAME="RegionOne"\nOS_TOKEN=abc\n# export OS_X='no'\n`),
      {
        OS_AUTH_URL: 'http://127.0.0.1:8770/identity',
        OS_USERNAME: 'demo',
        OS_PASSWORD: 's3cr3t-pw',
        OS_PROJECT_NAME: 'demo',
        OS_USER_DOMAIN_NAME: 'Default',
        OS_PROJECT_DOMAIN_NAME: 'Default',
        OS_REGION_NAME: 'RegionOne',
        OS_TOKEN: 'abc',
      },
    );
  });

  test('flags over OS_* variables; domains default to Default', () => {
    const auth = resolveAuth(
      { osProjectName: 'other' },
      {
        env: {
          OS_USERNAME: 'alice',
          OS_PASSWORD: 'pw',
          OS_PROJECT_NAME: 'demo',
          OS_AUTH_URL: 'http://keystone.test/identity',
        },
        dataDir: '/nonexistent',
        fallbackUser: 'demo',
      },
    );
    assert.deepEqual(auth, {
      authUrl: 'http://keystone.test/identity',
      password: {
        username: 'alice',
        password: 'pw',
        projectName: 'other',
        userDomainName: 'Default',
        projectDomainName: 'Default',
      },
    });
  });

  test('a password without OS_AUTH_URL (and no openrc file to take it from) is a usage error', () => {
    assert.throws(
      () =>
        resolveAuth(
          {},
          {
            env: { OS_USERNAME: 'alice', OS_PASSWORD: 'hunter2', OS_PROJECT_NAME: 'demo' },
            dataDir: '/nonexistent',
            fallbackUser: 'demo',
          },
        ),
      (err: unknown) =>
        err instanceof UserError &&
        err.exitCode === EXIT.USAGE &&
        /OS_AUTH_URL \(--os-auth-url\)/.test(err.message) &&
        !err.message.includes('hunter2'),
    );
  });

  test('a token wins over a password', () => {
    const auth = resolveAuth(
      {},
      { env: { OS_TOKEN: 'tok', OS_PASSWORD: 'pw' }, dataDir: '/x', fallbackUser: 'demo' },
    );
    // Without OS_AUTH_URL here (no openrc in /x): the token alone, whose grants need OS_AUTH_URL later.
    assert.deepEqual(auth, { token: 'tok' });
    assert.deepEqual(resolveAuth({ osToken: 'flag-tok' }, { env: {}, dataDir: '/x', fallbackUser: 'demo' }), {
      token: 'flag-tok',
    });
  });

  test('incomplete credentials name what is missing, never the password', () => {
    assert.throws(
      () => resolveAuth({}, { env: { OS_PASSWORD: 'hunter2' }, dataDir: '/x', fallbackUser: 'demo' }),
      (err: unknown) =>
        err instanceof UserError &&
        err.exitCode === EXIT.USAGE &&
        /OS_USERNAME \(--os-username\), OS_PROJECT_NAME \(--os-project-name\)/.test(err.message) &&
        !err.message.includes('hunter2'),
    );
  });

  test("with nothing given, the bootstrap's openrc file, said on stderr", () => {
    withDataDir({ 'demo-openrc.sh': OPENRC }, (dir) => {
      const notes: string[] = [];
      const auth = resolveAuth(
        {},
        { env: {}, dataDir: dir, fallbackUser: 'demo', note: (l) => notes.push(l) },
      );
      assert.equal('password' in auth && auth.password.password, 's3cr3t-pw');
      assert.equal('authUrl' in auth && auth.authUrl, 'http://127.0.0.1:8770/identity');
      assert.equal(notes.length, 1);
      assert.match(notes[0] ?? '', /Using the demo credentials of .*demo-openrc\.sh/);
      assert.doesNotMatch(notes[0] ?? '', /s3cr3t/);
      // Admin-only commands fall back to admin-openrc.sh, which is missing here.
      assert.throws(
        () => resolveAuth({}, { env: {}, dataDir: dir, fallbackUser: 'admin', note: () => undefined }),
        /admin-openrc\.sh does not exist \(run `npm start`/,
      );
    });
  });
});

function status(patch: Partial<BootStatus>): BootStatus {
  return {
    requestId: 'req-1',
    instanceUuid: null,
    name: 'vm1',
    step: 'authenticating',
    vmState: null,
    taskState: null,
    powerState: 0,
    host: null,
    attempt: 0,
    maxAttempts: 3,
    triedHosts: [],
    timings: [],
    lastError: null,
    compensations: [],
    done: false,
    ...patch,
  };
}

describe('Keystone from the client', () => {
  test('OS_AUTH_URL names the identity root or its /v3', () => {
    assert.equal(tokensUrl('http://h:1/identity'), 'http://h:1/identity/v3/auth/tokens');
    assert.equal(tokensUrl('http://h:1/identity/v3/'), 'http://h:1/identity/v3/auth/tokens');
  });

  test('Keystone unreachable: one line naming OS_AUTH_URL, exit 3, before Temporal is tried', async () => {
    // Nothing listens on either port: the client must stop at Keystone, naming it, not at Temporal.
    const [keystonePort, temporalPort] = (await freePorts(2)) as [number, number];
    const authUrl = `http://127.0.0.1:${keystonePort}/identity`;
    const run = await runClient(
      ['server', 'list'],
      deploymentEnv({
        BOOTFLOW_DATA: '/nonexistent-bootflow-data',
        TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}`,
        OS_AUTH_URL: authUrl,
        OS_USERNAME: 'demo',
        OS_PASSWORD: 'pw-never-shown',
        OS_PROJECT_NAME: 'demo',
      }),
    );
    assert.equal(run.code, EXIT.UNAVAILABLE, run.stderr);
    const lines = run.stderr.trim().split('\n');
    assert.equal(lines.length, 1, run.stderr);
    assert.match(
      lines[0] ?? '',
      new RegExp(`Keystone is unreachable at OS_AUTH_URL=${authUrl} \\(ECONNREFUSED\\)`),
    );
    assert.doesNotMatch(run.stderr, /pw-never-shown|Temporal/);
  });
});

describe('progress', () => {
  test('plain lines: one per change, nothing repeated', () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (c: Buffer) => (text += c.toString()));
    let now = 1_000;
    const progress = new BootProgress({ out, tty: false, title: 'Creating server vm1', now: () => now });
    const auth = { step: 'authenticate', startedAt: 1_000 };
    progress.update(status({ timings: [auth] }));
    progress.update(status({ timings: [auth] }));
    now = 1_400;
    const done = { ...auth, endedAt: 1_300, ms: 300, outcome: 'ok' as const };
    const spawn = {
      step: 'spawn',
      host: 'compute2',
      startedAt: 1_350,
      endedAt: 1_390,
      ms: 40,
      outcome: 'failed' as const,
    };
    progress.update(
      status({
        step: 'cleaning up compute2',
        host: 'compute2',
        attempt: 1,
        timings: [done, spawn],
        compensations: ['neutron: delete ports of x'],
        lastError: { type: 'RescheduledException', message: 'boom', host: 'compute2', rescheduled: true },
      }),
    );
    assert.deepEqual(text.trimEnd().split('\n'), [
      'Creating server vm1',
      '[  0.0s] authenticating',
      '[  0.0s]   started authenticate',
      '[  0.4s] cleaning up compute2',
      '[  0.4s]   done authenticate (300 ms)',
      '[  0.4s]   failed spawn on compute2 (40 ms)',
      '[  0.4s]   undo: neutron: delete ports of x',
      '[  0.4s]   error on compute2: RescheduledException: boom (rescheduling)',
    ]);
  });

  test('a terminal: the block is redrawn in place', () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (c: Buffer) => (text += c.toString()));
    const progress = new BootProgress({ out, tty: true, title: 'Creating server vm1', now: () => 2_000 });
    progress.update(status({ timings: [{ step: 'authenticate', startedAt: 1_000 }] }));
    progress.update(
      status({
        step: 'active',
        host: 'compute1',
        timings: [{ step: 'authenticate', startedAt: 1_000, ms: 20, outcome: 'ok' }],
      }),
    );
    progress.finish();
    // Three lines drawn, then the cursor goes up three lines to redraw them.
    assert.ok(text.includes('\x1b[3A\r\x1b[0J'), JSON.stringify(text));
    assert.match(text, /… authenticate\s+1\.0 s/);
    assert.match(text, /✓ authenticate\s+20 ms/);
    assert.match(text, /active on compute1/);
  });
});

describe('failure messages', () => {
  test('the cloud error inside the activity and workflow wrappers, OpenStack style', () => {
    const cause = ApplicationFailure.create({
      type: 'Forbidden',
      message: "Policy doesn't allow bootflow:audit to be performed.",
      nonRetryable: true,
      details: [{ code: 403 }],
    });
    const activity = new ActivityFailure(
      'Activity task failed',
      'runLeakAudit',
      '1',
      RetryState.NON_RETRYABLE_FAILURE,
      'w',
      cause,
    );
    const err = new WorkflowFailedError(
      'Workflow execution failed',
      activity,
      RetryState.NON_RETRYABLE_FAILURE,
    );
    const info = failureInfo(err);
    assert.deepEqual([info.type, info.code], ['Forbidden', 403]);
    assert.equal(
      describeFailure(info),
      "Forbidden: Policy doesn't allow bootflow:audit to be performed. (HTTP 403)",
    );
  });

  test('Web UI links', () => {
    assert.equal(
      webUiLink('boot-req-1', 'default', { TEMPORAL_UI_PORT: '18233' }),
      'http://localhost:18233/namespaces/default/workflows/boot-req-1',
    );
    assert.equal(
      webUiLink('a b', 'ns', { BOOTFLOW_UI_URL: 'https://temporal.example/' }),
      'https://temporal.example/namespaces/ns/workflows/a%20b',
    );
  });
});

describe('worker roles', () => {
  const argv = (...args: string[]) => ['node', 'worker.ts', ...args];

  test('all by default: controller, network, compute1..3 and the API on 127.0.0.1:8770', () => {
    const config = parseWorkerArgs(argv(), {});
    assert.deepEqual(config.roles, ['controller', 'network', 'compute', 'api']);
    assert.deepEqual(config.api, {
      host: '127.0.0.1',
      port: 8770,
      publicUrl: 'http://127.0.0.1:8770',
      concurrentCreates: 4,
    });
    assert.deepEqual(config.hosts, ['compute1', 'compute2', 'compute3']);
    assert.equal(config.maxConcurrentActivities, 20);
    assert.equal(config.maxCachedWorkflows, 250);
  });

  test('the API’s create admission limit: flag over BOOTFLOW_API_CONCURRENT_CREATES over 4', () => {
    const env = { BOOTFLOW_API_CONCURRENT_CREATES: '12' };
    assert.equal(parseWorkerArgs(argv(), env).api.concurrentCreates, 12);
    assert.equal(parseWorkerArgs(argv('--api-concurrent-creates', '2'), env).api.concurrentCreates, 2);
    for (const bad of ['0', '-1', '1e3', 'many']) {
      assert.throws(
        () => parseWorkerArgs(argv(), { BOOTFLOW_API_CONCURRENT_CREATES: bad }),
        (err: Error) =>
          err instanceof UserError &&
          err.message === `BOOTFLOW_API_CONCURRENT_CREATES must be a positive whole number (got '${bad}')`,
      );
    }
    assert.throws(
      () => parseWorkerArgs(argv('--api-concurrent-creates', '0'), {}),
      /--api-concurrent-creates must be a positive whole number/,
    );
  });

  test('one compute host, or several, with tuning flags', () => {
    const one = parseWorkerArgs(argv('--role', 'compute', '--host', 'compute2'), {});
    assert.deepEqual([one.roles, one.hosts], [['compute'], ['compute2']]);
    const many = parseWorkerArgs(
      argv(
        '--role',
        'compute',
        '--host',
        'a,b',
        '--host',
        'c',
        '--max-concurrent-activities',
        '4',
        '--max-cached-workflows',
        '10',
      ),
      {},
    );
    assert.deepEqual(many.hosts, ['a', 'b', 'c']);
    assert.deepEqual([many.maxConcurrentActivities, many.maxCachedWorkflows], [4, 10]);
    const controller = parseWorkerArgs(argv('--role', 'controller,network'), {
      BOOTFLOW_SHUTDOWN_GRACE: '3',
    });
    assert.deepEqual(
      [controller.roles, controller.hosts, controller.shutdownGraceSeconds],
      [['controller', 'network'], [], 3],
    );
  });

  test('the api role: flags over BOOTFLOW_API_PORT and BOOTFLOW_PUBLIC_URL', () => {
    const fromEnv = parseWorkerArgs(argv('--role', 'api'), {
      BOOTFLOW_API_PORT: '9001',
      BOOTFLOW_PUBLIC_URL: 'https://cloud.example/',
    });
    assert.deepEqual(fromEnv.roles, ['api']);
    assert.deepEqual(fromEnv.api, {
      host: '127.0.0.1',
      port: 9001,
      publicUrl: 'https://cloud.example',
      concurrentCreates: 4,
    });
    const flags = parseWorkerArgs(
      argv(
        '--role',
        'api',
        '--api-host',
        '0.0.0.0',
        '--api-port',
        '9002',
        '--tls-cert',
        'c.pem',
        '--tls-key',
        'k.pem',
      ),
      { BOOTFLOW_API_PORT: '9001' },
    );
    assert.deepEqual(flags.api, {
      host: '0.0.0.0',
      port: 9002,
      publicUrl: 'https://127.0.0.1:9002',
      concurrentCreates: 4,
      tls: { certFile: 'c.pem', keyFile: 'k.pem' },
    });
    assert.throws(() => parseWorkerArgs(argv('--role', 'api', '--api-port', 'x'), {}), /--api-port/);
    assert.throws(() => parseWorkerArgs(argv('--role', 'api', '--tls-cert', 'c.pem'), {}), /go together/);
    assert.throws(() => parseWorkerArgs(argv('--public-url', 'ftp://x'), {}), /http\(s\) URL/);
  });

  test('bad roles and misplaced hosts are usage errors', () => {
    assert.throws(() => parseWorkerArgs(argv('--role', 'scheduler'), {}), /unknown role 'scheduler'/);
    assert.throws(
      () => parseWorkerArgs(argv('--role', 'network', '--host', 'compute1'), {}),
      /--host is for the compute role/,
    );
    assert.throws(() => parseWorkerArgs(argv('--max-cached-workflows', '0'), {}), /positive whole number/);
    // An environment fallback goes through the same check: a bad value is named, never a NaN setting.
    assert.throws(
      () => parseWorkerArgs(argv(), { BOOTFLOW_MAX_ACTIVITIES: 'twenty' }),
      (err: Error) =>
        err instanceof UserError &&
        /BOOTFLOW_MAX_ACTIVITIES must be a positive whole number/.test(err.message),
    );
    assert.throws(
      () => parseWorkerArgs(argv(), { BOOTFLOW_HEARTBEAT_SECONDS: '' }),
      /BOOTFLOW_HEARTBEAT_SECONDS/,
    );
    assert.equal(parseWorkerArgs(argv(), { BOOTFLOW_STICKY_CACHE: '40' }).maxCachedWorkflows, 40);
    assert.equal(
      parseWorkerArgs(argv(), { BOOTFLOW_MAX_LOCAL_ACTIVITIES: '3' }).maxConcurrentLocalActivities,
      3,
    );
    assert.equal(
      parseWorkerArgs(argv('--max-concurrent-local-activities', '5'), { BOOTFLOW_MAX_LOCAL_ACTIVITIES: '3' })
        .maxConcurrentLocalActivities,
      5,
    );
    assert.throws(
      () => parseWorkerArgs(argv(), { BOOTFLOW_MAX_LOCAL_ACTIVITIES: '0' }),
      /BOOTFLOW_MAX_LOCAL_ACTIVITIES/,
    );
    // The flag wins over the variable.
    assert.equal(
      parseWorkerArgs(argv('--max-cached-workflows', '7'), { BOOTFLOW_STICKY_CACHE: '40' })
        .maxCachedWorkflows,
      7,
    );
  });

  test('the network agent: fake by default, linux-bridge by flag or environment, nothing else', () => {
    assert.equal(parseWorkerArgs(argv(), {}).networkAgent, 'fake');
    assert.equal(parseWorkerArgs(argv('--network-agent', 'linux-bridge'), {}).networkAgent, 'linux-bridge');
    assert.equal(
      parseWorkerArgs(argv(), { BOOTFLOW_NETWORK_AGENT: 'linux-bridge' }).networkAgent,
      'linux-bridge',
    );
    assert.throws(
      () => parseWorkerArgs(argv('--network-agent', 'ovs'), {}),
      /Allowed choices are fake, linux-bridge/,
    );
    assert.throws(
      () => parseWorkerArgs(argv(), { BOOTFLOW_NETWORK_AGENT: 'ovs' }),
      /unknown network agent 'ovs'/,
    );
  });
});
