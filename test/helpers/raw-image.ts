/**
 * Raw image files for the Cinder suites: the file written, with the image source Glance would hand over for
 * it (size, MD5 checksum, SHA-512 multihash), and a way to read back the start of a volume file.
 */
import { createHash, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import type { ImageSource } from '../../cloud/cinder/types';

export function writeRawImage(file: string, data: Buffer): ImageSource {
  writeFileSync(file, data);
  return {
    imageId: randomUUID(),
    url: pathToFileURL(file).href,
    size: data.length,
    checksum: createHash('md5').update(data).digest('hex'),
    osHashAlgo: 'sha512',
    osHashValue: createHash('sha512').update(data).digest('hex'),
    diskFormat: 'raw',
    virtualSize: data.length,
  };
}

/** The first `bytes` bytes of a file. */
export async function readHead(file: string, bytes: number): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.alloc(bytes);
    await handle.read(buffer, 0, bytes, 0);
    return buffer;
  } finally {
    await handle.close();
  }
}
