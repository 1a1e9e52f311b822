/**
 * Glance's file store (`filesystem_store_datadir`): one file per image under `<dataDir>/images/`. Data is
 * received into a temporary file next to its final name and renamed into place only when complete, so a
 * reader never sees half an image.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { HashingMeter, type DataDigests } from './hashing';
import { INSPECT_HEAD_BYTES, inspectDiskHead } from './qcow2';
import type { ProgressCallback } from './types';

export interface ReceivedData extends DataDigests {
  tempPath: string;
  virtualSize: number | null;
}

const PARTIAL_SUFFIX = '.partial';

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class ImageFileStore {
  private constructor(readonly dir: string) {}

  static async open(dataDir: string): Promise<ImageFileStore> {
    const store = new ImageFileStore(path.join(dataDir, 'images'));
    await mkdir(store.dir, { recursive: true });
    await store.removeAbandonedPartials();
    return store;
  }

  pathOf(imageId: string): string {
    return path.join(this.dir, imageId);
  }

  urlOf(imageId: string): string {
    return pathToFileURL(this.pathOf(imageId)).href;
  }

  /** Streams `source` into a temporary file, hashing and inspecting it on the way. */
  async receive(
    imageId: string,
    source: Readable,
    options: { diskFormat: string; maxBytes: number; onProgress?: ProgressCallback },
  ): Promise<ReceivedData> {
    const tempPath = path.join(
      this.dir,
      `.${imageId}.${process.pid}.${randomBytes(4).toString('hex')}${PARTIAL_SUFFIX}`,
    );
    let virtualSize: number | null = null;
    const meter = new HashingMeter({
      maxBytes: options.maxBytes,
      onProgress: options.onProgress,
      headBytes: INSPECT_HEAD_BYTES,
      inspectHead: (head) => {
        virtualSize = inspectDiskHead(options.diskFormat, head).virtualSize;
      },
    });
    const sink = createWriteStream(tempPath, { flags: 'wx' });
    try {
      await pipeline(source, meter, sink);
      await fsyncFile(tempPath);
    } catch (err) {
      await removeAfterClose(sink, tempPath);
      throw err;
    }
    const digests = meter.digests();
    return {
      ...digests,
      tempPath,
      virtualSize: virtualSize ?? (options.diskFormat === 'raw' ? digests.size : null),
    };
  }

  /** Moves received data to the image's name, atomically. */
  async commit(received: ReceivedData, imageId: string): Promise<void> {
    await rename(received.tempPath, this.pathOf(imageId));
    await fsyncFile(this.dir);
  }

  async discard(received: ReceivedData): Promise<void> {
    await rm(received.tempPath, { force: true });
  }

  async remove(imageId: string): Promise<void> {
    await rm(this.pathOf(imageId), { force: true });
  }

  openRead(imageId: string): Readable {
    return createReadStream(this.pathOf(imageId));
  }

  /** Partial files of uploads whose process is gone (a crash mid-upload). */
  private async removeAbandonedPartials(): Promise<void> {
    for (const name of await readdir(this.dir)) {
      if (!name.endsWith(PARTIAL_SUFFIX)) continue;
      const pid = Number(name.split('.').at(-3));
      if (Number.isInteger(pid) && pid > 0 && !processAlive(pid))
        await rm(path.join(this.dir, name), { force: true });
    }
  }
}

/**
 * Removes a temporary file written by `stream` after a failed pipeline. The stream may still be opening its
 * file when the pipeline fails (the open runs in the thread pool): removing the file before the stream has
 * closed would let that open create it again afterwards, leaving a stray partial file.
 */
export async function removeAfterClose(stream: WriteStream, file: string): Promise<void> {
  if (!stream.closed) await new Promise<void>((resolve) => stream.once('close', () => resolve()));
  await rm(file, { force: true });
}

export async function fsyncFile(file: string): Promise<void> {
  const handle = await open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
