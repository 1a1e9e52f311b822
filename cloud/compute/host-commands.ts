/**
 * The one way the compute host and the guest-image build run a system command (ip, dnsmasq, qemu, apt): execFile without a shell, with a
 * timeout, and a typed error carrying the command line and its stderr. `ip -j` answers are parsed here too.
 */
import { execFile } from 'node:child_process';

export interface RunOptions {
  /** The command is killed after this long (default 20 s: `ip` answers in milliseconds even when busy). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Working directory of the command (default: the process's). */
  cwd?: string;
  /** Written to the command's standard input, which is then closed. */
  input?: string;
}

export interface CommandResult {
  stdout: string;
  stderr: string;
}

/** A command that exited non-zero, timed out or could not start; `stderr` says why. Retryable. */
export class HostCommandError extends Error {
  override readonly name = 'HostCommandError';
  constructor(
    readonly argv: string[],
    readonly stderr: string,
    readonly exitCode: number | string | null,
  ) {
    super(`${argv.join(' ')} failed (${exitCode ?? 'killed'}): ${stderr.trim() || 'no output'}`);
  }
}

export function runCommand(file: string, args: string[], options: RunOptions = {}): Promise<CommandResult> {
  const argv = [file, ...args];
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      {
        timeout: options.timeoutMs ?? 20_000,
        killSignal: 'SIGKILL',
        maxBuffer: 16 * 1024 * 1024,
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.cwd ? { cwd: options.cwd } : {}),
      },
      (error, stdout, stderr) => {
        if (error) {
          const code = (error as NodeJS.ErrnoException & { code?: number | string }).code ?? null;
          reject(new HostCommandError(argv, stderr || error.message, code));
          return;
        }
        resolve({ stdout, stderr });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/**
 * `ip [-n <namespace>] -batch -`: several `ip` commands in one process (each a command line without `ip`),
 * run in order, stopping at the first that fails (a HostCommandError whose stderr names it). An argument
 * must not contain white space (batch lines are split on it).
 */
export async function ipBatch(commands: string[][], options: RunOptions & { namespace?: string } = {}) {
  const lines = commands.map((argv) => {
    for (const arg of argv)
      if (arg === '' || /\s|"/.test(arg))
        throw new Error(`ip -batch cannot take the argument ${JSON.stringify(arg)}`);
    return argv.join(' ');
  });
  if (lines.length === 0) return;
  const { namespace, ...run } = options;
  const prefix = ['ip', ...(namespace ? ['-n', namespace] : [])];
  try {
    await runCommand(prefix[0] as string, [...prefix.slice(1), '-batch', '-'], {
      ...run,
      input: `${lines.join('\n')}\n`,
    });
  } catch (err) {
    // "Command failed -:<line>": the error names that command, as if it had run alone.
    const line = err instanceof HostCommandError ? /Command failed -:(\d+)/.exec(err.stderr)?.[1] : undefined;
    const failed = line === undefined ? undefined : commands[Number(line) - 1];
    if (!(err instanceof HostCommandError) || !failed) throw err;
    throw new HostCommandError(
      [...prefix, ...failed],
      err.stderr.replace(/\s*Command failed -:\d+\s*$/, ''),
      err.exitCode,
    );
  }
}

/** `ip -j <args>`: iproute2's JSON output (an empty answer is an empty list). */
export async function ipJson<T>(args: string[], options: RunOptions = {}): Promise<T[]> {
  const { stdout } = await runCommand('ip', ['-j', ...args], options);
  const text = stdout.trim();
  return text === '' ? [] : (JSON.parse(text) as T[]);
}

/** True when the file can be run from PATH (a prerequisite check that names what is missing). */
export async function commandExists(file: string): Promise<boolean> {
  try {
    await runCommand('sh', ['-c', `command -v ${file}`], { timeoutMs: 5_000 });
    return true;
  } catch {
    return false;
  }
}
