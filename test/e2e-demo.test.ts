/**
 * End to end, as a person runs it from the README: `npm start` (scripts/demo.ts: a dev server, the cloud's
 * bootstrap, controller/network/compute1..3 worker processes, one boot through client.ts), then the client
 * from a "second terminal": create --wait, list shows both servers, delete --wait, audit -f json is []; a
 * kill -9 of its dev server, which it says and restarts on the same data (issue 15, finding 5).
 * Real processes against the real dev server (not time-skipping), on free ports and a temporary data
 * directory, so a demo running on 7233/8233 is not disturbed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCommand } from '../cloud/compute/host-commands';
import { freePorts, portInUse } from '../lib/dev-server';
import type { HypervisorView, LeakFinding, ServerView } from '../workflows/operator-types';
import {
  deploymentEnv,
  parseJson,
  runClient,
  startScript,
  stopChild,
  waitForOutput,
  type ChildHandle,
} from './helpers/deployment';

const HOSTS = ['compute1', 'compute2', 'compute3'];

describe('npm start, then the client from a second terminal', () => {
  let dataDir: string;
  let demo: ChildHandle;
  let port: number;
  let uiPort: number;
  let apiPort: number;
  let clientEnv: NodeJS.ProcessEnv;
  let demoServer: string;

  before(async () => {
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'bootflow-e2e-'));
    // The demo holds them while its codec server starts.
    [port, uiPort, apiPort] = (await freePorts(3)) as [number, number, number];
    const env = deploymentEnv({
      BOOTFLOW_DATA: dataDir,
      TEMPORAL_PORT: String(port),
      TEMPORAL_UI_PORT: String(uiPort),
      BOOTFLOW_API_PORT: String(apiPort),
      // The control plane's demo: real guests are test/guest-qemu.test.ts's (npm start picks qemu on root).
      BOOTFLOW_VIRT_DRIVER: 'fake',
    });
    demo = startScript(
      'scripts/demo.ts',
      [],
      env,
      path.join(os.tmpdir(), `${path.basename(dataDir)}-demo.log`),
    );
    const out = await waitForOutput(demo, /Ctrl-C stops everything/, 240_000);
    demoServer = /• booting (demo-\d+)/.exec(out)?.[1] ?? '';
    assert.ok(demoServer, `the demo named its boot:\n${out}`);
    clientEnv = deploymentEnv({
      BOOTFLOW_DATA: dataDir,
      TEMPORAL_ADDRESS: `127.0.0.1:${port}`,
      TEMPORAL_UI_PORT: String(uiPort),
    });
  });

  after(async () => {
    if (demo) await stopChild(demo, 'SIGINT', 40_000);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test('the demo booted its server through client.ts and printed the Web UI link', () => {
    const out = demo.output();
    assert.match(out, /status\s+│ ACTIVE/);
    assert.match(
      out,
      new RegExp(`This boot\\s+http://localhost:${uiPort}/namespaces/default/workflows/boot-req-`),
    );
    assert.match(out, new RegExp(`Web UI\\s+http://localhost:${uiPort}/`));
    // Worker processes of the three-node layout, each with its log.
    for (const name of ['controller', 'network', ...HOSTS]) {
      assert.ok(existsSync(path.join(dataDir, 'logs', `${name}.log`)), `${name} log`);
    }
  });

  test('the demo serves the OpenStack APIs where its openrc files point', async () => {
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    assert.match(demo.output(), new RegExp(`OpenStack API ${apiUrl}`));
    const openrc = readFileSync(path.join(dataDir, 'admin-openrc.sh'), 'utf8');
    assert.match(openrc, new RegExp(`^export OS_AUTH_URL='${apiUrl}/identity'$`, 'm'));
    const res = await fetch(`${apiUrl}/identity/v3`);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { version: { id: string } }).version.id, 'v3.14');
  });

  test('the compute workers registered their hosts through Temporal: all three up', async () => {
    const run = await runClient(['-f', 'json', 'hypervisor', 'list'], clientEnv);
    assert.equal(run.code, 0, run.stderr);
    const hypervisors = parseJson<HypervisorView[]>(run, 'hypervisor list');
    assert.deepEqual(
      hypervisors.map((h) => [h.host, h.state, h.status]),
      HOSTS.map((h) => [h, 'up', 'enabled']),
    );
    assert.equal(
      hypervisors.reduce((n, h) => n + h.runningVms, 0),
      1,
      'the demo server holds one allocation',
    );
    assert.match(run.stderr, /Using the admin credentials of .*admin-openrc\.sh/);
  });

  test('create --wait, list shows both, delete --wait, audit is empty', async () => {
    const created = await runClient(
      [
        '-f',
        'json',
        'server',
        'create',
        '--flavor',
        'm1.tiny',
        '--image',
        'cirros',
        '--network',
        'private',
        '--wait',
        'e2e-vm',
      ],
      clientEnv,
    );
    assert.equal(created.code, 0, created.stderr);
    const server = parseJson<ServerView & { workflowId: string; webUi: string }>(created, 'create');
    assert.equal(server.status, 'ACTIVE');
    assert.equal(server.name, 'e2e-vm');
    // OS-EXT-SRV-ATTR:host is admin-only (Nova's default policy): the demo user who booted it sees none.
    assert.equal(server.host, null);
    assert.equal(server.addresses.private?.length, 1);
    assert.match(server.addresses.private?.[0]?.addr ?? '', /^10\.0\.0\.\d+$/);
    assert.deepEqual(server.volumes, []);
    assert.equal(
      server.webUi,
      `http://localhost:${uiPort}/namespaces/default/workflows/${server.workflowId}`,
    );
    // Plain progress lines on a pipe (no terminal): one per change.
    assert.match(created.stderr, /Using the demo credentials of .*demo-openrc\.sh/);
    assert.match(created.stderr, /done authenticate/);
    assert.match(created.stderr, /done spawn on compute\d/);

    const listed = await runClient(['-f', 'json', 'server', 'list'], clientEnv);
    assert.equal(listed.code, 0, listed.stderr);
    const servers = parseJson<ServerView[]>(listed, 'list');
    assert.deepEqual(servers.map((s) => s.name).sort(), [demoServer, 'e2e-vm'].sort());
    assert.ok(servers.every((s) => s.status === 'ACTIVE'));

    const table = await runClient(['server', 'list'], clientEnv);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /│ e2e-vm\s+│ ACTIVE │ private=10\.0\.0\.\d+/);

    const deleted = await runClient(['server', 'delete', '--wait', 'e2e-vm'], clientEnv);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.match(deleted.stdout, new RegExp(`Server e2e-vm \\(${server.id}\\) deleted`));

    const after = parseJson<ServerView[]>(
      await runClient(['-f', 'json', 'server', 'list'], clientEnv),
      'list',
    );
    assert.deepEqual(
      after.map((s) => s.name),
      [demoServer],
    );

    const audit = await runClient(['-f', 'json', 'audit'], clientEnv);
    assert.equal(audit.code, 0, audit.stderr);
    assert.deepEqual(parseJson<LeakFinding[]>(audit, 'audit'), []);
  });

  test('user errors: one clear line and an exit code, no stack trace', async () => {
    const missing = await runClient(['server', 'show', 'no-such-server'], clientEnv);
    assert.equal(missing.code, 1);
    assert.match(
      missing.stderr,
      /NotFound: No server with a name or ID of 'no-such-server' exists\. \(HTTP 404\)/,
    );
    assert.doesNotMatch(missing.stderr, /\n\s+at /);

    const openrc = readFileSync(path.join(dataDir, 'demo-openrc.sh'), 'utf8');
    const password = /OS_PASSWORD='([^']*)'/.exec(openrc)?.[1] ?? '';
    const asDemo = { ...clientEnv, OS_USERNAME: 'demo', OS_PASSWORD: password, OS_PROJECT_NAME: 'demo' };
    const forbidden = await runClient(['audit'], asDemo);
    assert.equal(forbidden.code, 1);
    assert.match(
      forbidden.stderr,
      /Forbidden: Policy doesn't allow bootflow:audit to be performed\. \(HTTP 403\)/,
    );

    const wrong = await runClient(['server', 'list'], { ...asDemo, OS_PASSWORD: 'not-the-password' });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /Unauthorized/);
    assert.doesNotMatch(wrong.stderr, /not-the-password/);

    const badFlavor = await runClient(
      [
        'server',
        'create',
        '--flavor',
        'm1.enormous',
        '--image',
        'cirros',
        '--network',
        'private',
        '--wait',
        'x',
      ],
      clientEnv,
    );
    assert.equal(badFlavor.code, 1);
    assert.match(badFlavor.stderr, /Error: server x was not created: BadRequest: .*m1\.enormous/);

    const usage = await runClient(['server', 'create', 'x'], clientEnv);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /required option '--flavor <flavor>' not specified/);
  });

  test('kill -9 of its dev server: npm start says so at once and starts it again on the same data', async () => {
    // The dev server this demo started: the process listening on its port.
    const listening = await runCommand('ss', ['-ltnpH', `sport = :${port}`]);
    const pid = Number(/pid=(\d+)/.exec(listening.stdout)?.[1]);
    assert.ok(pid > 0, `a process listens on ${port}: ${listening.stdout}`);
    process.kill(pid, 'SIGKILL');
    const out = await waitForOutput(demo, /the Temporal dev server is back/, 120_000);
    assert.match(out, /! the Temporal dev server died \(killed by SIGKILL\)/);
    assert.match(out, /restarting it on 127\.0\.0\.1:\d+ with the same data \(temporal\.db\)/);
    // Same temporal.db: the demo's server and its finished boot are still there, and the workers serve.
    const list = await runClient(['-f', 'json', 'server', 'list'], clientEnv, 120_000);
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(
      parseJson<ServerView[]>(list, 'list').map((s) => [s.name, s.status]),
      [[demoServer, 'ACTIVE']],
    );
  });

  test('Ctrl-C stops the workers gracefully and then the dev server', async () => {
    const { code } = await stopChild(demo, 'SIGINT', 60_000);
    assert.equal(code, 0, demo.output());
    assert.match(demo.output(), /stopped\.\s*$/);
    for (const name of ['controller', 'network', ...HOSTS]) {
      assert.match(
        readFileSync(path.join(dataDir, 'logs', `${name}.log`), 'utf8'),
        /"msg":"workers stopped"/,
      );
    }
    assert.equal(await portInUse('127.0.0.1', port), false);
    assert.equal(await portInUse('127.0.0.1', uiPort), false);
  });
});
