/**
 * A small JSON state file shared by every process working on one host directory: read fresh on every call
 * (no cache, so another process's changes are seen), changed under a lock, written atomically (temp file,
 * fsync, rename) so a crash leaves the old or the new state, never half of one.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { z } from 'zod';
import { CloudError } from '../errors';
import { withFileLock } from './file-lock';

export class JsonStateFile<S> {
  constructor(
    readonly file: string,
    private readonly schema: z.ZodType<S>,
    private readonly empty: () => S,
  ) {}

  async read(): Promise<S> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return this.empty();
      throw err;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new CloudError('BadRequest', `State file ${this.file} is not valid JSON`);
    }
    const result = this.schema.safeParse(parsed);
    if (!result.success)
      throw new CloudError(
        'BadRequest',
        `State file ${this.file} is invalid: ${result.error.issues[0]?.message}`,
      );
    return result.data;
  }

  /** Read-modify-write under the file's lock. `change` mutates the state and returns the call's result. */
  async update<T>(change: (state: S) => T | Promise<T>, options: { signal?: AbortSignal } = {}): Promise<T> {
    await mkdir(path.dirname(this.file), { recursive: true });
    const outcome = await withFileLock(
      `${this.file}.lock`,
      async () => {
        const state = await this.read();
        const result = await change(state);
        await this.write(state);
        return { result };
      },
      { staleMs: 5000, waitMs: 30_000, signal: options.signal },
    );
    return (outcome as { result: T }).result;
  }

  private async write(state: S): Promise<void> {
    await writeFileAtomic(this.file, `${JSON.stringify(state, null, 2)}\n`);
  }
}

/**
 * Writes a file so that readers see the old content or the new, never a part: temp file, fsync, rename.
 * `fsync: false` keeps the atomic rename but not the durability, for files rebuilt from durable records
 * after a crash (a machine crash may leave the old content or an empty file).
 */
export async function writeFileAtomic(
  file: string,
  content: string,
  options: { fsync?: boolean } = {},
): Promise<void> {
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(temp, 'wx', 0o644);
  try {
    await handle.writeFile(content);
    if (options.fsync !== false) await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}
