/**
 * One pass over image data: counts bytes, computes MD5 (Glance's `checksum`) and SHA-512 (`os_hash_value`),
 * reports progress, enforces a size cap and lets the caller inspect the first bytes. Used by Glance on upload
 * and by compute hosts and Cinder on download.
 *
 * A download is verified as python-glanceclient verifies it: the size and the multihash (`os_hash_value`,
 * SHA-512) only; the legacy MD5 `checksum` is computed only when the digests are being made (upload). Hashing
 * is what bounds a verified fetch (one core hashes SHA-512 at about the speed of a plain streamed copy), so
 * not computing a second hash nobody checks halves its cost.
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
  /**
   * Verify the data against these at the end (and cap it at expected.size): ImageChecksumMismatch if not.
   * Only the size and osHashValue are checked; `digests()` is then unavailable (no MD5 is computed).
   */
  expected?: Pick<DataDigests, 'size' | 'osHashValue'>;
}

export interface DataDigests {
  size: number;
  checksum: string;
  osHashValue: string;
}

export class HashingMeter extends Transform {
  private bytes = 0;
  /** Null when verifying: nothing checks the MD5 of a download. */
  private readonly md5: Hash | null;
  private readonly sha512: Hash = createHash('sha512');
  private sha512Hex: string | undefined;
  private head: Buffer[] = [];
  private headLength = 0;
  private inspected: boolean;

  constructor(private readonly options: HashingMeterOptions = {}) {
    super();
    this.inspected = !options.inspectHead;
    this.md5 = options.expected ? null : createHash('md5');
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.bytes += chunk.length;
      const { maxBytes, expected } = this.options;
      if (expected && this.bytes > expected.size)
        throw this.mismatch(`more than the expected ${expected.size} bytes`);
      if (maxBytes !== undefined && this.bytes > maxBytes)
        throw new CloudError('BadRequest', `Image data exceeds the size limit of ${maxBytes} bytes`);
      this.md5?.update(chunk);
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
    if (this.bytes !== expected.size) throw this.mismatch(`${this.bytes} bytes, expected ${expected.size}`);
    if (this.osHashValue() !== expected.osHashValue) throw this.mismatch('SHA-512 hash differs');
  }

  private osHashValue(): string {
    this.sha512Hex ??= this.sha512.digest('hex');
    return this.sha512Hex;
  }

  private mismatch(what: string): CloudError {
    return new CloudError('ImageChecksumMismatch', `Image data is corrupt: ${what}`, {
      expectedSize: this.options.expected?.size,
      actualSize: this.bytes,
      expectedHash: this.options.expected?.osHashValue,
      actualHash: this.osHashValue(),
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

  /** The digests of what went through (upload); only meaningful after the stream finished. */
  digests(): DataDigests {
    if (!this.md5) throw new Error('HashingMeter: digests() is not computed while verifying a download');
    this.result ??= { size: this.bytes, checksum: this.md5.digest('hex'), osHashValue: this.osHashValue() };
    return this.result;
  }
}
