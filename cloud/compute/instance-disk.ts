/**
 * The root disk of an instance: a sparse file of the flavor's size whose first bytes are the cached base
 * image. Zero blocks of the base image are skipped rather than written, as `cp --sparse` does, so the disk
 * takes only the space of the image's real data.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { CloudError } from '../errors';
import { parseQcow2Header } from '../glance/qcow2';

const CHUNK = 1024 * 1024;
const BLOCK = 4096;

function isZero(buf: Buffer): boolean {
  for (let i = 0; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

export interface BaseImageInfo {
  bytes: number;
  /** From a qcow2 header; null for other formats. */
  virtualSize: number | null;
}

export async function inspectBaseImage(file: string): Promise<BaseImageInfo> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const head = Buffer.alloc(Math.min(size, 512));
    await handle.read(head, 0, head.length, 0);
    return { bytes: size, virtualSize: parseQcow2Header(head)?.virtualSize ?? null };
  } finally {
    await handle.close();
  }
}

/**
 * Writes `<dir>/disk` (atomically: a temp file renamed into place) with `sizeBytes` apparent size and the
 * base image's bytes at its start.
 */
export async function createSparseDisk(
  diskPath: string,
  sizeBytes: number,
  basePath?: string,
): Promise<void> {
  const temp = path.join(
    path.dirname(diskPath),
    `.disk.${process.pid}.${randomBytes(4).toString('hex')}.part`,
  );
  const out = await open(temp, 'wx', 0o644);
  try {
    if (basePath) await copySparse(basePath, out, sizeBytes);
    await out.truncate(sizeBytes);
    await out.sync();
    await out.close();
    await rename(temp, diskPath);
  } catch (err) {
    await out.close().catch(() => undefined);
    await rm(temp, { force: true });
    throw err;
  }
}

async function copySparse(
  basePath: string,
  out: Awaited<ReturnType<typeof open>>,
  limit: number,
): Promise<void> {
  const input = await open(basePath, 'r');
  try {
    const buf = Buffer.alloc(CHUNK);
    let position = 0;
    for (;;) {
      const { bytesRead } = await input.read(buf, 0, CHUNK, position);
      if (bytesRead === 0) break;
      if (position + bytesRead > limit)
        throw new CloudError('FlavorDiskTooSmall', 'The base image is larger than the root disk');
      // Write each run of non-zero blocks with one call; leave zero blocks as holes.
      let runStart = -1;
      for (let off = 0; off < bytesRead; off += BLOCK) {
        const zero = isZero(buf.subarray(off, Math.min(off + BLOCK, bytesRead)));
        if (!zero && runStart < 0) runStart = off;
        if (zero && runStart >= 0) {
          await out.write(buf, runStart, off - runStart, position + runStart);
          runStart = -1;
        }
      }
      if (runStart >= 0) await out.write(buf, runStart, bytesRead - runStart, position + runStart);
      position += bytesRead;
    }
  } finally {
    await input.close();
  }
}
