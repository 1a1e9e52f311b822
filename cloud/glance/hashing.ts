/**
 * One pass over image data: counts bytes, computes MD5 (Glance's `checksum`) and SHA-512 (`os_hash_value`),
 * reports progress, enforces a size cap and lets the caller inspect the first bytes. Used by Glance on upload
 * and by compute hosts and Cinder on download.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { CloudError } from '../errors';
import type { ProgressCallback } from './types';

export interface HashingMeterOptions {
  /** Fail once more than this many bytes went through. */
  maxBytes?: number;
  /** Known total for progress reports. */
  bytesTotal?: number | null;
  onProgress?: ProgressCallback;
  /** Called once with the first `headBytes` bytes (or all of them, if fewer); may throw to stop the stream. */
  inspectHead?: (head: Buffer) => void;
  headBytes?: number;
  /** Verify the data against these at the end (and cap it at expected.size): ImageChecksumMismatch if not. */
  expected?: DataDigests;
}

export interface DataDigests {
  size: number;
  checksum: string;
  osHashValue: string;
}

export class HashingMeter extends Transform {
  private bytes = 0;
  private readonly md5: Hash = createHash('md5');
  private readonly sha512: Hash = createHash('sha512');
  private head: Buffer[] = [];
  private headLength = 0;
  private inspected: boolean;

  constructor(private readonly options: HashingMeterOptions = {}) {
    super();
    this.inspected = !options.inspectHead;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.bytes += chunk.length;
      const { maxBytes, expected } = this.options;
      if (expected && this.bytes > expected.size)
        throw this.mismatch(`more than the expected ${expected.size} bytes`);
      if (maxBytes !== undefined && this.bytes > maxBytes)
        throw new CloudError('BadRequest', `Image data exceeds the size limit of ${maxBytes} bytes`);
      this.md5.update(chunk);
      this.sha512.update(chunk);
      this.collectHead(chunk);
      this.options.onProgress?.({ bytesDone: this.bytes, bytesTotal: this.options.bytesTotal ?? null });
      callback(null, chunk);
    } catch (err) {
      callback(err as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.inspectNow();
      this.verify();
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  private verify(): void {
    const { expected } = this.options;
    if (!expected) return;
    const got = this.digests();
    if (got.size !== expected.size) throw this.mismatch(`${got.size} bytes, expected ${expected.size}`);
    if (got.checksum !== expected.checksum) throw this.mismatch('MD5 checksum differs');
    if (got.osHashValue !== expected.osHashValue) throw this.mismatch('SHA-512 hash differs');
  }

  private mismatch(what: string): CloudError {
    const got = this.digests();
    return new CloudError('ImageChecksumMismatch', `Image data is corrupt: ${what}`, {
      expectedSize: this.options.expected?.size,
      actualSize: got.size,
      expectedChecksum: this.options.expected?.checksum,
      actualChecksum: got.checksum,
    });
  }

  private collectHead(chunk: Buffer): void {
    if (this.inspected) return;
    const want = this.options.headBytes ?? 512;
    this.head.push(chunk.subarray(0, want - this.headLength));
    this.headLength += Math.min(chunk.length, want - this.headLength);
    if (this.headLength >= want) this.inspectNow();
  }

  private inspectNow(): void {
    if (this.inspected) return;
    this.inspected = true;
    const head = Buffer.concat(this.head);
    this.head = [];
    this.options.inspectHead?.(head);
  }

  private result: DataDigests | undefined;

  /** Only meaningful after the stream finished. */
  digests(): DataDigests {
    this.result ??= {
      size: this.bytes,
      checksum: this.md5.digest('hex'),
      osHashValue: this.sha512.digest('hex'),
    };
    return this.result;
  }
}
