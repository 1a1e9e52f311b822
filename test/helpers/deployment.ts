/**
 * The real entry points as processes, for the end-to-end and browser tests: client.ts runs, worker.ts and
 * scripts/demo.ts children, each with its own environment (ports, data directory) so a test never clashes
 * with a demo running on the standard ports. Processes start through lib/processes.ts, as the demo's and
 * the chaos run's do.
 */
import { spawn } from 'node:child_process';
import {
  cleanEnv,
  scriptArgs,
  startScript as start,
  stopScript,
  whenReady,
  type ExitStatus,
  type ScriptProcess,
} from '../../lib/processes';
import { pollUntil } from '../../lib/poll';
import { PROJECT_ROOT } from '../../lib/temporal-binaries';

export interface ClientRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export type ChildHandle = ScriptProcess;

/** The environment a deployment's processes share, without anything of the developer's own OS_* session. */
export function deploymentEnv(overrides: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return cleanEnv({ LOG_FORMAT: 'json', ...overrides });
}

/** Runs client.ts to its end. */
export function runClient(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 90_000): Promise<ClientRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, scriptArgs('client.ts', args), { cwd: PROJECT_ROOT, env });
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

/** Starts a long-running script (worker.ts, scripts/demo.ts) with its output in a log file. */
export function startScript(
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  log: string,
  options: { ipc?: boolean } = {},
): ChildHandle {
  return start({ name: script, script, args, env, log, ipc: options.ipc === true });
}

/** Waits for worker.ts's IPC "ready" message. */
export function workerReady(handle: ChildHandle, timeoutMs = 180_000): Promise<void> {
  return whenReady(handle, timeoutMs);
}

/** Waits until `pattern` appears in the process's output; fails at once if it exits first. */
export async function waitForOutput(
  handle: ChildHandle,
  pattern: RegExp,
  timeoutMs: number,
): Promise<string> {
  return pollUntil(
    () => {
      const text = handle.output();
      if (pattern.test(text)) return text;
      if (!handle.running()) throw new Error(`process exited before printing ${pattern}:\n${text}`);
      return undefined;
    },
    { timeoutMs, what: () => `${pattern} in the output:\n${handle.output()}` },
  );
}

/** Stops a child with a signal, escalating to SIGKILL after `graceMs`. */
export function stopChild(
  handle: ChildHandle,
  signal: NodeJS.Signals = 'SIGTERM',
  graceMs = 30_000,
): Promise<ExitStatus> {
  return stopScript(handle, signal, graceMs);
}

export function parseJson<T>(run: ClientRun, what: string): T {
  try {
    return JSON.parse(run.stdout) as T;
  } catch {
    throw new Error(`${what}: stdout is not JSON (exit ${run.code}):\n${run.stdout}\n${run.stderr}`);
  }
}
