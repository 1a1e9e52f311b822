/**
 * The real entry points as processes, for the end-to-end and browser tests: client.ts runs, worker.ts and
 * scripts/demo.ts children, each with its own environment (ports, data directory) so a test never clashes
 * with a demo running on the standard ports.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../../lib/temporal-binaries';

export interface ClientRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment a deployment's processes share, without anything of the developer's own OS_* session. */
export function deploymentEnv(overrides: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key.startsWith('OS_') || key.startsWith('TEMPORAL_') || key.startsWith('BOOTFLOW_')) continue;
    env[key] = value;
  }
  return { ...env, LOG_FORMAT: 'json', ...overrides };
}

export function tsxArgs(script: string, args: string[]): string[] {
  return ['--import', 'tsx', path.join(PROJECT_ROOT, script), ...args];
}

/** Runs client.ts to its end. */
export function runClient(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 90_000): Promise<ClientRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, tsxArgs('client.ts', args), { cwd: PROJECT_ROOT, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`client ${args.join(' ')} did not finish in ${timeoutMs} ms:\n${stderr}`));
    }, timeoutMs);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface ChildHandle {
  child: ChildProcess;
  log: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
}

/** Starts a long-running script (worker.ts, scripts/demo.ts) with its output in a log file. */
export function startScript(
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  log: string,
  options: { ipc?: boolean } = {},
): ChildHandle {
  const fd = openSync(log, 'a');
  const child = spawn(process.execPath, tsxArgs(script, args), {
    cwd: PROJECT_ROOT,
    env,
    stdio: options.ipc ? ['ignore', fd, fd, 'ipc'] : ['ignore', fd, fd],
  });
  closeSync(fd);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, log, exited, output: () => readFileSync(log, 'utf8') };
}

/** Waits for worker.ts's IPC "ready" message. */
export function workerReady(handle: ChildHandle, timeoutMs = 180_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker not ready:\n${handle.output()}`)), timeoutMs);
    handle.child.on('message', (m: { type?: string }) => {
      if (m?.type === 'ready') {
        clearTimeout(timer);
        resolve();
      }
    });
    void handle.exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`worker exited (${code}) before it was ready:\n${handle.output()}`));
    });
  });
}

/** Polls a file until `pattern` appears in it. */
export async function waitForOutput(
  handle: ChildHandle,
  pattern: RegExp,
  timeoutMs: number,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void handle.exited.then(() => (exited = true));
  for (;;) {
    const text = handle.output();
    if (pattern.test(text)) return text;
    if (exited) throw new Error(`process exited before printing ${pattern}:\n${text}`);
    if (Date.now() > deadline) throw new Error(`no ${pattern} within ${timeoutMs} ms:\n${text}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Stops a child with a signal, escalating to SIGKILL after `graceMs`. */
export async function stopChild(
  handle: ChildHandle,
  signal: NodeJS.Signals = 'SIGTERM',
  graceMs = 30_000,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (handle.child.exitCode === null && handle.child.signalCode === null) handle.child.kill(signal);
  const killer = setTimeout(() => handle.child.kill('SIGKILL'), graceMs);
  const result = await handle.exited;
  clearTimeout(killer);
  return result;
}

export function parseJson<T>(run: ClientRun, what: string): T {
  try {
    return JSON.parse(run.stdout) as T;
  } catch {
    throw new Error(`${what}: stdout is not JSON (exit ${run.code}):\n${run.stdout}\n${run.stderr}`);
  }
}
