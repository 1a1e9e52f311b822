/**
 * Small secrets of the data directory next to the key file (the codec server's token, the key check value,
 * the compute hosts' service keys): created once, atomically, with mode 0600, and read only when the group
 * and others cannot read them and the file is the reader's own, as ssh treats a private key.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fstatSync,
  fsyncSync,
  linkSync,
  openSync,
  readFileSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { KeyringError } from './keyring';

/** Reads `file` through one descriptor, so the mode checked is that of the file read; undefined if absent. */
export function readPrivateFile(file: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new KeyringError(`${file} is not a regular file`);
    if (process.platform !== 'win32') {
      if ((stat.mode & 0o077) !== 0) {
        const mode = (stat.mode & 0o777).toString(8).padStart(4, '0');
        throw new KeyringError(
          `${file} has mode ${mode}: the group or others can read a secret. Run \`chmod 600 ${file}\`.`,
        );
      }
      if (typeof process.getuid === 'function' && stat.uid !== process.getuid()) {
        throw new KeyringError(`${file} belongs to another user (uid ${stat.uid}); refusing to use it`);
      }
    }
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * Creates `file` with `content` and mode 0600 unless it exists (then leaves it as it is); safe when several
 * processes start at once: the file appears complete or not at all. Returns whether it was created.
 */
export function createPrivateFile(file: string, content: string): boolean {
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(temp, 'wx', 0o600);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(temp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return false;
  } finally {
    rmSync(temp, { force: true });
  }
}
