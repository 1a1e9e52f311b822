/**
 * Issue 15, finding 6 (the smaller ones), against a real deployment (dev server and a worker with every
 * role, processes on free ports) whose data directory bootflow creates itself inside a world-readable parent:
 * - another local user (`nobody`) reads nothing of it: not Keystone's database (password hashes), not
 *   temporal.db, the codec keys, an instance disk or a log; every file is 0600 and every directory 0700;
 * - the client checks its input at the edge with the workflow's own schema: `1e3` and `0x10` are no numbers,
 *   a 100 KB name is refused before anything is stored in Temporal;
 * - control characters from others (here a server name in an error) are shown escaped, never written raw;
 * - a member does not see OS-EXT-SRV-ATTR:host (Nova's default policy), an admin does;
 * - a database failure names the service (`nova database: attempt to write a readonly database`).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { sql } from 'kysely';
import { CloudError } from '../cloud/errors';
import { openServiceDb } from '../cloud/db';
import { escapeControls, renderJson } from '../lib/command-line/output';
import { startApiDeployment, type ApiDeployment } from './helpers/api-deployment';
import { parseJson, runClient } from './helpers/deployment';
import type { ServerView } from '../workflows/operator-types';

/** Every path under `dir` (itself included), with its type. */
function walk(dir: string): Array<{ file: string; isDir: boolean; mode: number }> {
  const stat = lstatSync(dir);
  const here = { file: dir, isDir: stat.isDirectory(), mode: stat.mode & 0o777 };
  if (!here.isDir) return [here];
  return [here, ...readdirSync(dir).flatMap((name) => walk(path.join(dir, name)))];
}

/** Runs `command` as the unprivileged user nobody (util-linux setpriv). */
function asNobody(command: string[]): { status: number | null; stderr: string } {
  const run = spawnSync(
    'setpriv',
    ['--reuid=nobody', '--regid=nogroup', '--clear-groups', '--inh-caps=-all', ...command],
    { encoding: 'utf8' },
  );
  if (run.error) throw new Error(`setpriv (util-linux) is needed for this test: ${run.error.message}`);
  return { status: run.status, stderr: run.stderr };
}

describe('finding 6: data directory, edge checks, extended attributes', () => {
  let base: string;
  let deployment: ApiDeployment;
  let dataDir: string;
  let server: ServerView;

  before(async () => {
    if (process.getuid?.() !== 0) throw new Error('this test switches to user nobody: run it as root');
    base = mkdtempSync(path.join(os.tmpdir(), 'bootflow-modes-'));
    chmodSync(base, 0o755); // as a home directory or /srv would be: others may traverse it
    dataDir = path.join(base, 'data');
    deployment = await startApiDeployment('modes', { dataDir });
    const booted = await runClient(
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
      ].concat(['--wait', 'modes-vm']),
      deployment.env,
    );
    assert.equal(booted.code, 0, booted.stderr);
    server = parseJson<ServerView>(booted, 'create');
  });

  after(async () => {
    await deployment?.close();
    rmSync(base, { recursive: true, force: true });
  });

  test('every file is 0600 and every directory 0700; nobody reads none of them', () => {
    const entries = walk(dataDir);
    const names = entries.map((e) => path.relative(dataDir, e.file));
    for (const expected of ['keystone.sqlite', 'temporal.db', 'codec-keys.json', 'worker.log']) {
      assert.ok(names.includes(expected), `${expected} in ${dataDir}`);
    }
    const disk = entries.find((e) => e.file.includes(server.id) && !e.isDir);
    assert.ok(disk, `an instance file of ${server.id} under hosts/`);
    const open = entries.filter((e) => (e.mode & 0o077) !== 0);
    assert.deepEqual(
      open.map((e) => `${path.relative(dataDir, e.file) || '.'} ${e.mode.toString(8)}`),
      [],
      'no file or directory readable by the group or others',
    );
    assert.equal(lstatSync(dataDir).mode & 0o777, 0o700);
    for (const file of ['keystone.sqlite', 'temporal.db', 'codec-keys.json', 'worker.log', disk.file]) {
      const read = asNobody(['cat', path.resolve(dataDir, file)]);
      assert.notEqual(read.status, 0, `nobody read ${file}`);
      assert.match(read.stderr, /Permission denied/);
    }
    assert.notEqual(asNobody(['ls', dataDir]).status, 0, 'nobody lists the data directory');
  });

  test('the client refuses numbers that are not plain digits and names too long, before Temporal', async () => {
    for (const size of ['1e3', '0x10', ' 7', '1.0']) {
      const run = await runClient(
        ['server', 'create', '--flavor', 'm1.tiny', '--image', 'cirros', '--network', 'private'].concat([
          '--boot-from-volume',
          size,
          'vm-size',
        ]),
        deployment.env,
      );
      assert.equal(run.code, 2, `--boot-from-volume '${size}': ${run.stderr}`);
      assert.match(run.stderr, /--boot-from-volume must be a positive whole number/);
    }
    const requestId = 'req-long-name';
    const run = await runClient(
      ['server', 'create', '--flavor', 'm1.tiny', '--image', 'cirros', '--network', 'private'].concat([
        '--request-id',
        requestId,
        'n'.repeat(100_000),
      ]),
      deployment.env,
    );
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /Invalid server create request: name: .*255/);
    const connection = await Connection.connect({ address: deployment.temporalAddress });
    try {
      const client = new Client({ connection });
      await assert.rejects(client.workflow.getHandle(`boot-${requestId}`).describe(), /not found/i);
    } finally {
      await connection.close();
    }
  });

  test('control characters in what others wrote are shown escaped', async () => {
    const evil = 'vm\x1b]0;owned\x07\x1b[2J\x9b31m';
    const run = await runClient(['server', 'show', evil], deployment.env);
    assert.equal(run.code, 1, run.stderr);
    // eslint-disable-next-line no-control-regex -- no raw control character may reach the terminal
    assert.doesNotMatch(run.stderr + run.stdout, /[\x00-\x08\x0b-\x1f\x7f-\x9f]/);
    assert.match(run.stderr, /vm\\x1b\]0;owned\\x07\\x1b\[2J\\x9b31m/);
    assert.equal(escapeControls('a\tb\nc\x1bd'), 'a\tb\nc\\x1bd');
    assert.equal(JSON.parse(renderJson({ name: evil })).name, evil, 'JSON stays JSON and loses nothing');
    // eslint-disable-next-line no-control-regex -- nor into JSON output
    assert.doesNotMatch(renderJson({ name: evil }), /[\x00-\x09\x0b-\x1f\x7f-\x9f]/);
  });

  test('OS-EXT-SRV-ATTR:host is for admins only (Nova default policy)', async () => {
    assert.equal(server.host, null, 'the member who created it does not see the host');
    const asMember = parseJson<ServerView>(
      await runClient(['-f', 'json', 'server', 'show', server.id], deployment.env),
      'show',
    );
    assert.equal(asMember.host, null);
    const asAdmin = parseJson<ServerView>(
      await runClient(['-f', 'json', 'server', 'show', '--all-projects', server.id], deployment.env),
      'show --all-projects',
    );
    assert.match(asAdmin.host ?? '', /^compute[123]$/);
  });
});

describe('finding 6: a failing database names its service', () => {
  test('a read-only nova database is "nova database: attempt to write a readonly database"', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bootflow-readonly-'));
    const nova = await openServiceDb<{ t: { x: number } }>('nova', {}, { dataDir: dir });
    try {
      await sql`create table t (x integer)`.execute(nova.db);
      await sql`pragma query_only = on`.execute(nova.db);
      const write = nova.transaction((trx) => trx.insertInto('t').values({ x: 1 }).execute());
      await assert.rejects(write, (err: unknown) => {
        assert.ok(err instanceof CloudError, `a CloudError, not ${String(err)}`);
        assert.equal(err.type, 'ServiceUnavailable');
        assert.equal(err.message, 'nova database: attempt to write a readonly database');
        return true;
      });
    } finally {
      await nova.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
