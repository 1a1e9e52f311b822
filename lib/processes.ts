/**
 * The one way bootflow starts its own programs as child processes (the demo's workers, the end-to-end
 * tests' deployments, the chaos run's cluster): the script run by Node with its output in a log file, an
 * IPC channel for worker.ts's "ready" message, and how it ended (exit code or signal) as a promise.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from './temporal-binaries';

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** "code 3" or "SIGKILL": how a child ended, as a person reads it. */
export function describeExit(exit: ExitStatus): string {
  return exit.signal ? exit.signal : `code ${exit.code}`;
}

/** The environment a started program inherits: ours without any Temporal, bootflow or OpenStack settings. */
export function cleanEnv(overrides: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key.startsWith('OS_') || key.startsWith('TEMPORAL_') || key.startsWith('BOOTFLOW_')) continue;
    env[key] = value;
  }
  return { ...env, ...overrides };
}

/** Whether this code runs from the compiled build (dist/) rather than through tsx. */
const COMPILED = __filename.endsWith('.js');

/**
 * Node's arguments to run one of the project's scripts (`worker.ts`, `client.ts`, `scripts/demo.ts`): its
 * compiled form under dist/ when this runs compiled (`npm start`), else the source through tsx (tests,
 * development).
 */
export function scriptArgs(script: string, args: string[] = []): string[] {
  if (COMPILED) return [path.join(PROJECT_ROOT, 'dist', script.replace(/\.ts$/, '.js')), ...args];
  return ['--import', 'tsx', path.join(PROJECT_ROOT, script), ...args];
}

/** The last lines of a log file, for an error message. */
export function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export interface ScriptProcess {
  name: string;
  child: ChildProcess;
  log: string;
  exited: Promise<ExitStatus>;
  /** The whole log so far. */
  output(): string;
  running(): boolean;
}

/** Starts a long-running script with its stdout and stderr appended to `log` (and an IPC channel). */
export function startScript(options: {
  name: string;
  script: string;
  args?: string[];
  env: NodeJS.ProcessEnv;
  log: string;
  /** The IPC channel worker.ts reports "ready" on (default true). */
  ipc?: boolean;
}): ScriptProcess {
  const fd = openSync(options.log, 'a');
  const child = spawn(process.execPath, scriptArgs(options.script, options.args), {
    cwd: PROJECT_ROOT,
    env: options.env,
    stdio: options.ipc === false ? ['ignore', fd, fd] : ['ignore', fd, fd, 'ipc'],
  });
  closeSync(fd);
  const exited = new Promise<ExitStatus>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    name: options.name,
    child,
    log: options.log,
    exited,
    output: () => readFileSync(options.log, 'utf8'),
    running: () => child.exitCode === null && child.signalCode === null,
  };
}

/** How a start ended: worker.ts said "ready", the process exited first, or neither happened in time. */
export type ReadyOutcome = { ready: true } | { ready: false; exit: ExitStatus | 'timeout' };

export function readyOutcome(proc: ScriptProcess, timeoutMs: number): Promise<ReadyOutcome> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ ready: false, exit: 'timeout' }), timeoutMs);
    const onMessage = (message: { type?: string } | null) => {
      if (message?.type !== 'ready') return;
      clearTimeout(timer);
      resolve({ ready: true });
    };
    proc.child.on('message', onMessage);
    void proc.exited.then((exit) => {
      clearTimeout(timer);
      proc.child.off('message', onMessage);
      resolve({ ready: false, exit });
    });
  });
}

/** Resolves once worker.ts reports ready; fails with its log's tail if it exits first or takes too long. */
export async function whenReady(proc: ScriptProcess, timeoutMs: number): Promise<void> {
  const outcome = await readyOutcome(proc, timeoutMs);
  if (outcome.ready) return;
  const why =
    outcome.exit === 'timeout'
      ? `not ready after ${Math.round(timeoutMs / 1000)} s`
      : `exited (${describeExit(outcome.exit)}) before it was ready`;
  throw new Error(`${proc.name} ${why}; ${proc.log}:\n${tail(proc.log)}`);
}

/** Stops a child with `signal`, escalating to SIGKILL after `graceMs`; resolves with how it ended. */
export async function stopScript(
  proc: ScriptProcess,
  signal: NodeJS.Signals = 'SIGTERM',
  graceMs = 30_000,
): Promise<ExitStatus> {
  if (proc.running()) proc.child.kill(signal);
  const killer = setTimeout(() => proc.child.kill('SIGKILL'), graceMs);
  const result = await proc.exited;
  clearTimeout(killer);
  return result;
}
