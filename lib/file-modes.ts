/**
 * Everything bootflow writes under its data directory is private to the user that runs it: keys, openrc
 * files, the services' databases (Keystone's holds password hashes), temporal.db, instance disks and logs.
 * Every program (worker, client, demo, bootstrap, codec server) calls usePrivateUmask() first, so files it
 * creates (and those of the programs it starts: the Temporal dev server, qemu-img, QEMU) are 0600 and
 * directories 0700, as DevStack's service users keep theirs.
 */
import { chmodSync, mkdirSync } from 'node:fs';

/** Group and others get nothing: new files 0600, new directories 0700. */
export const PRIVATE_UMASK = 0o077;

/** Sets the process's umask (children inherit it); call at the start of every program. */
export function usePrivateUmask(): void {
  if (process.platform !== 'win32') process.umask(PRIVATE_UMASK);
}

/**
 * Creates `dir` (and its parents) as 0700 and brings an existing one to 0700, so a data directory made by an
 * older bootflow (0755) stops letting other users reach the files inside.
 */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (process.platform !== 'win32') chmodSync(dir, 0o700);
}
