/**
 * The file backend: one sparse file per volume of exactly the volume's size. Image data is copied in the
 * way `qemu-img convert -S` does it: all-zero chunks are skipped so they stay holes, and the data is
 * hashed on the way and checked against the image's size, MD5 checksum and os_hash_value.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { ImageSource } from './types';

export const GIB = 1024 ** 3;

const execFileAsync = promisify(execFile);

export function volumeFile(volumesDir: string, backend: string, volumeId: string): string {
  return path.join(volumesDir, backend, `volume-${volumeId}`);
}

/** A snapshot's file: a copy of its volume's data when it was taken, beside the volume files. */
export function snapshotFile(volumesDir: string, backend: string, snapshotId: string): string {
  return path.join(volumesDir, backend, `snapshot-${snapshotId}`);
}

/** Creates (or resets) the file at its full size without writing a byte of it. */
export async function createSparseFile(file: string, bytes: number): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const handle = await open(file, 'w', 0o600);
  try {
    await handle.truncate(bytes);
  } finally {
    await handle.close();
  }
}

/** Grows an existing file to bytes (the new part sparse); never shrinks it. */
export async function growFile(file: string, bytes: number): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    if ((await handle.stat()).size < bytes) await handle.truncate(bytes);
  } finally {
    await handle.close();
  }
}

export async function removeFile(file: string): Promise<void> {
  await rm(file, { force: true });
}

export interface CopiedImage {
  size: number;
  checksum: string;
  osHashAlgo: string;
  osHashValue: string;
}

const CHUNK = 1024 * 1024;
const ZEROES = Buffer.alloc(CHUNK);

function isAllZero(chunk: Buffer): boolean {
  return chunk.length <= CHUNK && chunk.equals(ZEROES.subarray(0, chunk.length));
}

/** Copies the image into the start of the volume file and verifies it; throws (with why) on any mismatch. */
export async function copyImageInto(
  file: string,
  source: ImageSource,
  signal: AbortSignal,
): Promise<CopiedImage> {
  const url = new URL(source.url);
  if (url.protocol !== 'file:')
    throw new Error(`Unsupported image location ${url.protocol}; only file:// URLs`);
  const algo = source.osHashAlgo ?? 'sha512';
  const md5 = createHash('md5');
  const osHash = createHash(algo);
  const handle = await open(file, 'r+');
  let position = 0;
  try {
    for await (const chunk of createReadStream(fileURLToPath(url), { signal, highWaterMark: CHUNK })) {
      const data = chunk as Buffer;
      md5.update(data);
      osHash.update(data);
      if (position + data.length > source.size) {
        throw new Error(`Image ${source.imageId} has more data than its recorded size ${source.size}`);
      }
      if (!isAllZero(data)) await handle.write(data, 0, data.length, position);
      position += data.length;
    }
    await handle.datasync();
  } finally {
    await handle.close();
  }
  const copied = {
    size: position,
    checksum: md5.digest('hex'),
    osHashAlgo: algo,
    osHashValue: osHash.digest('hex'),
  };
  if (copied.size !== source.size) {
    throw new Error(`Image ${source.imageId} data is ${copied.size} bytes, expected ${source.size}`);
  }
  if (source.checksum !== undefined && copied.checksum !== source.checksum) {
    throw new Error(`Image ${source.imageId} failed verification: checksum mismatch`);
  }
  if (source.osHashValue !== undefined && copied.osHashValue !== source.osHashValue) {
    throw new Error(`Image ${source.imageId} failed verification: ${algo} hash mismatch`);
  }
  return copied;
}

/**
 * Copies a volume's (or snapshot's) data into a new sparse file of `bytes` (at least the source's size), as
 * `cp --sparse=always` does it: the source's holes (found with SEEK_HOLE, so a mostly empty volume copies at
 * once) and all-zero blocks stay holes. What a snapshot of a volume, and a volume from a snapshot, are made of.
 */
export async function copySparse(
  source: string,
  target: string,
  bytes: number,
  signal: AbortSignal,
): Promise<void> {
  await mkdir(path.dirname(target), { recursive: true });
  await execFileAsync('cp', ['--sparse=always', '--no-preserve=all', '--', source, target], { signal });
  const handle = await open(target, 'r+');
  try {
    const { size } = await handle.stat();
    if (size > bytes) throw new Error(`${source} holds ${size} bytes, more than the ${bytes} of its copy`);
    await handle.chmod(0o600);
    await handle.truncate(bytes);
    await handle.datasync();
  } finally {
    await handle.close();
  }
}
