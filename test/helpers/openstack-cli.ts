/**
 * The real OpenStack clients, as a user runs them: python-openstackclient's `openstack` and openstacksdk from
 * the project's venv (scripts/setup-openstack-clients.sh), with the environment of an openrc file. A missing
 * venv fails the test and names the set-up script; it never skips.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseOpenrc } from '../../lib/command-line/credentials';
import { PROJECT_ROOT } from '../../lib/temporal-binaries';
import { startApiDeployment, type ApiDeployment } from './api-deployment';
import { deploymentEnv } from './deployment';

export const OPENSTACK_VENV = path.join(PROJECT_ROOT, '.openstack', 'venv');
const OPENSTACK_BIN = path.join(OPENSTACK_VENV, 'bin', 'openstack');
const PYTHON_BIN = path.join(OPENSTACK_VENV, 'bin', 'python');

/** Throws (the test fails) when the clients are not installed, saying how to install them. */
export function requireOpenstackClients(): void {
  if (!existsSync(OPENSTACK_BIN) || !existsSync(PYTHON_BIN)) {
    throw new Error(
      `python-openstackclient and openstacksdk are not installed in ${OPENSTACK_VENV}: ` +
        'run scripts/setup-openstack-clients.sh (CI runs it in .ci/run)',
    );
  }
}

// One empty HOME for every run: no clouds.yaml or cache of the developer's leaks in.
let home: string | undefined;

/** The environment `source <openrc>` gives, without anything of the developer's own OS_* session. */
export function openrcEnv(file: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  home ??= mkdtempSync(path.join(os.tmpdir(), 'bootflow-osc-home-'));
  return deploymentEnv({ ...parseOpenrc(readFileSync(file, 'utf8')), HOME: home, ...extra });
}

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(bin: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<CliRun> {
  requireOpenstackClients();
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { cwd: PROJECT_ROOT, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(`${path.basename(bin)} ${args.join(' ')} did not finish in ${timeoutMs} ms:\n${stderr}`),
      );
    }, timeoutMs);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs `openstack <args>` to its end. */
export function openstack(env: NodeJS.ProcessEnv, args: string[], timeoutMs = 120_000): Promise<CliRun> {
  return run(OPENSTACK_BIN, args, env, timeoutMs);
}

/** Runs `openstack <args> -f json` and parses its output; a non-zero exit fails with the CLI's stderr. */
export async function openstackJson<T>(
  env: NodeJS.ProcessEnv,
  args: string[],
  timeoutMs?: number,
): Promise<T> {
  const result = await openstack(env, [...args, '-f', 'json'], timeoutMs);
  if (result.code !== 0)
    throw new Error(`openstack ${args.join(' ')} exited ${result.code}:\n${result.stderr}${result.stdout}`);
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    throw new Error(`openstack ${args.join(' ')}: stdout is not JSON:\n${result.stdout}\n${result.stderr}`);
  }
}

/**
 * Runs a Python script against openstacksdk's API with `conn = openstack.connect()` (from the OS_* of `env`)
 * already made; whatever it passes to `emit(value)` comes back parsed from JSON.
 */
export async function openstacksdkScript<T>(
  env: NodeJS.ProcessEnv,
  body: string,
  timeoutMs = 120_000,
): Promise<T> {
  const script = [
    'import json, sys',
    'import openstack',
    'def emit(value):',
    '    sys.stdout.write(json.dumps(value, default=str))',
    'conn = openstack.connect()',
    body,
  ].join('\n');
  const result = await run(PYTHON_BIN, ['-c', script], env, timeoutMs);
  if (result.code !== 0) throw new Error(`openstacksdk script exited ${result.code}:\n${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

/**
 * `openstack [globals] server create --flavor m1.tiny --image cirros [options] --wait <name>`: the created
 * server, which must be ACTIVE (else the test fails with what the CLI answered). `options` default to
 * `--network private`; `globals` go before the command (`--os-compute-api-version 2.37`).
 */
export async function createActiveServer(
  env: NodeJS.ProcessEnv,
  name: string,
  { options = ['--network', 'private'], globals = [] }: { options?: string[]; globals?: string[] } = {},
): Promise<Record<string, unknown>> {
  const created = await openstackJson<Record<string, unknown>>(
    env,
    [...globals, 'server', 'create', '--flavor', 'm1.tiny', '--image', 'cirros', ...options, '--wait', name],
    300_000,
  );
  assert.equal(created.status, 'ACTIVE', JSON.stringify(created));
  return created;
}

/** A test file's deployment for the real clients: they must be installed (else it fails, naming the script). */
export async function startCliDeployment(
  label: string,
  options?: Parameters<typeof startApiDeployment>[1],
): Promise<ApiDeployment> {
  requireOpenstackClients();
  return startApiDeployment(label, options);
}
