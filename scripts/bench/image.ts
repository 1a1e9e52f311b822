/**
 * Image path benchmark: a compute host's verified fetch into its cache (`_base/`, MD5 + SHA-512 checked,
 * fsynced, renamed into place) against plain copies of the same file in the same run: fs.copyFile (the
 * kernel's copy) and a streamed copy (read stream → write stream), both fsynced too, so all three are
 * equally durable. Trials are interleaved. Also the cache hit, and the hashes alone (the CPU floor of
 * verification), to say what bounds the fetch.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ComputeHost } from '../../cloud/compute';
import { HashingMeter } from '../../cloud/glance/hashing';
import type { ImageLocation } from '../../cloud/glance/types';
import { ratio, rounded, summarize, type Summary } from './stats';

export interface ImageBenchOptions {
  sizeMb: number;
  trials: number;
  /** Where the source and the host cache live (default: the OS temp dir, on the same disk as the project here). */
  dir?: string;
  log(line: string): void;
}

export interface ImageBenchResult {
  sizeMb: number;
  trials: number;
  /** MB/s per trial. */
  copyFile: Summary;
  streamCopy: Summary;
  verifiedFetch: Summary;
  /** Reading the file through MD5 + SHA-512 with nothing written: the verification's own limit. */
  hashOnly: Summary;
  /** Reading it through SHA-512 alone (what python-glanceclient checks when os_hash_value is set). */
  sha512Only: Summary;
  /** ms of a fetch that finds the image cached. */
  cacheHit: Summary;
  fetchVsCopyFile: number;
  fetchVsStreamCopy: number;
}

async function fsyncPath(file: string): Promise<void> {
  const handle = await open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Consumes a stream without keeping anything. */
function sink(): Writable {
  return new Writable({ write: (_chunk, _enc, done) => done() });
}

function mbPerSecond(bytes: number, ms: number): number {
  return bytes / 2 ** 20 / (ms / 1000);
}

async function timedMs(work: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await work();
  return performance.now() - start;
}

export async function runImageBench(options: ImageBenchOptions): Promise<ImageBenchResult> {
  const root = await mkdtemp(path.join(options.dir ?? os.tmpdir(), 'bootflow-bench-image-'));
  try {
    const source = path.join(root, 'image.raw');
    const bytes = options.sizeMb * 2 ** 20;
    const data = randomBytes(bytes);
    await writeFile(source, data);
    await fsyncPath(source);
    const location: ImageLocation = {
      imageId: 'bench-image',
      url: pathToFileURL(source).href,
      size: bytes,
      checksum: createHash('md5').update(data).digest('hex'),
      osHashAlgo: 'sha512',
      osHashValue: createHash('sha512').update(data).digest('hex'),
      diskFormat: 'raw',
      virtualSize: bytes,
    };
    const host = await ComputeHost.open({
      host: 'bench-image-host',
      hostDir: path.join(root, 'host'),
      capabilities: {
        vcpus: 4,
        memoryMb: 4096,
        diskGb: 100,
        cpuArch: 'x86_64',
        hypervisorType: 'QEMU',
        availabilityZone: 'nova',
      },
    });
    const cached = path.join(root, 'host', '_base', location.imageId);
    const copyTarget = path.join(root, 'copy.raw');

    const copyFileMbs: number[] = [];
    const streamMbs: number[] = [];
    const fetchMbs: number[] = [];
    const hashMbs: number[] = [];
    const sha512Mbs: number[] = [];
    for (let t = 0; t < options.trials; t++) {
      copyFileMbs.push(
        mbPerSecond(
          bytes,
          await timedMs(async () => {
            await copyFile(source, copyTarget);
            await fsyncPath(copyTarget);
          }),
        ),
      );
      await rm(copyTarget, { force: true });
      streamMbs.push(
        mbPerSecond(
          bytes,
          await timedMs(async () => {
            await pipeline(createReadStream(source), createWriteStream(copyTarget));
            await fsyncPath(copyTarget);
          }),
        ),
      );
      await rm(copyTarget, { force: true });
      fetchMbs.push(
        mbPerSecond(
          bytes,
          await timedMs(async () => {
            const result = await host.fetchImage(location);
            if (result.cacheHit) throw new Error('image bench: expected a cold cache');
          }),
        ),
      );
      hashMbs.push(
        mbPerSecond(
          bytes,
          await timedMs(async () => {
            const meter = new HashingMeter({ expected: location });
            await pipeline(createReadStream(source), meter, sink());
          }),
        ),
      );
      sha512Mbs.push(
        mbPerSecond(
          bytes,
          await timedMs(async () => {
            const hash = createHash('sha512');
            for await (const chunk of createReadStream(source)) hash.update(chunk as Buffer);
            hash.digest('hex');
          }),
        ),
      );
      if (t < options.trials - 1) await rm(cached, { force: true });
    }
    const hits: number[] = [];
    for (let i = 0; i < 50; i++) {
      hits.push(
        await timedMs(async () => {
          const result = await host.fetchImage(location);
          if (!result.cacheHit) throw new Error('image bench: expected a cache hit');
        }),
      );
    }
    const copy = summarize(copyFileMbs);
    const stream = summarize(streamMbs);
    const fetch = summarize(fetchMbs);
    options.log(
      `image: fetch ${fetch.p50.toFixed(0)} MB/s, copyFile ${copy.p50.toFixed(0)} MB/s, stream ${stream.p50.toFixed(0)} MB/s`,
    );
    return {
      sizeMb: options.sizeMb,
      trials: options.trials,
      copyFile: rounded(copy, 1),
      streamCopy: rounded(stream, 1),
      verifiedFetch: rounded(fetch, 1),
      hashOnly: rounded(summarize(hashMbs), 1),
      sha512Only: rounded(summarize(sha512Mbs), 1),
      cacheHit: rounded(summarize(hits)),
      fetchVsCopyFile: ratio(fetch.p50, copy.p50),
      fetchVsStreamCopy: ratio(fetch.p50, stream.p50),
    };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
