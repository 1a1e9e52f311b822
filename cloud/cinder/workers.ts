/**
 * Who runs a background job (a volume's or a snapshot's creation, a snapshot's deletion): a Cinder, named
 * `<pid>@<host>/<instance id>`, recorded on the row so that the next Cinder to open takes over the jobs of one
 * that died.
 */
import os from 'node:os';

/** The Cinders open in this process, by worker id. */
export const OPEN_HERE = new Set<string>();

/**
 * Whether the Cinder that runs a creation still lives: one of this process's that is still open, or another
 * process on this machine that still runs. A worker on another machine is not ours to judge: alive.
 */
export function workerAlive(worker: string): boolean {
  const match = /^(\d+)@(.*)\/[0-9a-f-]+$/.exec(worker);
  if (!match) return false;
  const pid = Number(match[1]);
  if (match[2] !== os.hostname()) return true;
  if (pid === process.pid) return OPEN_HERE.has(worker);
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
