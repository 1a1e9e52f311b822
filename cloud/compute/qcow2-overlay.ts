/**
 * An empty qcow2 overlay on a backing file (or a blank qcow2 without one), written directly: the same bytes
 * `qemu-img create -f qcow2 [-b <base> -F <fmt>] <disk> <size>` writes (QEMU 7.2, 64 KiB clusters, 16-bit refcounts), without starting a
 * process for it (on a loaded host a process start costs tens of milliseconds of every boot). Layout:
 * cluster 0 the v3 header, its extensions (backing format, feature names) and the backing file's name;
 * cluster 1 the refcount table; cluster 2 its one refcount block; from cluster 3 the L1 table (all zero:
 * every guest read goes to the backing file). The test compares it with qemu-img's output byte for byte.
 */
import { open } from 'node:fs/promises';
import { QCOW2_MAGIC } from '../glance/qcow2';

const CLUSTER_BITS = 16;
const CLUSTER = 2 ** CLUSTER_BITS;
const HEADER_LENGTH = 112; // the v3 fields and the compression type, padded to 8
const EXT_BACKING_FORMAT = 0xe2792aca;
const EXT_FEATURE_NAMES = 0x6803f857;
/** What qemu-img names in the feature-name table: (type 0 incompatible, 1 compatible, 2 autoclear; bit). */
const FEATURE_NAMES: ReadonlyArray<[number, number, string]> = [
  [0, 0, 'dirty bit'],
  [0, 1, 'corrupt bit'],
  [0, 2, 'external data file'],
  [0, 3, 'compression type'],
  [0, 4, 'extended L2 entries'],
  [1, 0, 'lazy refcounts'],
  [2, 0, 'bitmaps'],
  [2, 1, 'raw external data'],
];
const FEATURE_NAME_BYTES = 48;

function pad8(n: number): number {
  return Math.ceil(n / 8) * 8;
}

export interface BackingFile {
  path: string;
  format: 'raw' | 'qcow2';
}

/** The overlay's bytes up to its L1 table, and the file's length (the all-zero L1 table ends it). */
export function qcow2OverlayLayout(
  requestedBytes: number,
  backing?: BackingFile,
): { head: Buffer; fileBytes: number } {
  if (!Number.isSafeInteger(requestedBytes) || requestedBytes <= 0)
    throw new Error(`a qcow2 overlay's size must be a positive integer, not ${requestedBytes}`);
  // qemu-img rounds the size up to whole sectors.
  const sizeBytes = Math.ceil(requestedBytes / 512) * 512;
  const l1Size = Math.ceil(sizeBytes / (CLUSTER * (CLUSTER / 8)));
  const l1Clusters = Math.ceil((l1Size * 8) / CLUSTER);
  // Header, refcount table and block, L1: all counted by the one refcount block.
  const usedClusters = 3 + l1Clusters;
  if (usedClusters > CLUSTER / 2) throw new Error(`a qcow2 overlay of ${sizeBytes} bytes is too large`);
  const name = Buffer.from(backing?.path ?? '');
  const format = backing ? Buffer.from(backing.format) : undefined;
  const backingAt =
    HEADER_LENGTH +
    (format ? 8 + pad8(format.length) : 0) +
    8 +
    FEATURE_NAMES.length * FEATURE_NAME_BYTES +
    8;
  if (backingAt + name.length > CLUSTER) throw new Error(`backing file name too long: ${backing?.path}`);

  const head = Buffer.alloc(3 * CLUSTER);
  head.writeUInt32BE(QCOW2_MAGIC, 0);
  head.writeUInt32BE(3, 4);
  if (backing) head.writeBigUInt64BE(BigInt(backingAt), 8);
  head.writeUInt32BE(name.length, 16);
  head.writeUInt32BE(CLUSTER_BITS, 20);
  head.writeBigUInt64BE(BigInt(sizeBytes), 24);
  head.writeUInt32BE(l1Size, 36);
  head.writeBigUInt64BE(BigInt(3 * CLUSTER), 40); // l1_table_offset
  head.writeBigUInt64BE(BigInt(CLUSTER), 48); // refcount_table_offset
  head.writeUInt32BE(1, 56); // refcount_table_clusters
  head.writeUInt32BE(4, 96); // refcount_order: 16-bit refcounts
  head.writeUInt32BE(HEADER_LENGTH, 100);
  let at = HEADER_LENGTH;
  if (format) {
    head.writeUInt32BE(EXT_BACKING_FORMAT, at);
    head.writeUInt32BE(format.length, at + 4);
    format.copy(head, at + 8);
    at += 8 + pad8(format.length);
  }
  head.writeUInt32BE(EXT_FEATURE_NAMES, at);
  head.writeUInt32BE(FEATURE_NAMES.length * FEATURE_NAME_BYTES, at + 4);
  at += 8;
  for (const [type, bit, feature] of FEATURE_NAMES) {
    head.writeUInt8(type, at);
    head.writeUInt8(bit, at + 1);
    head.write(feature, at + 2, 'latin1');
    at += FEATURE_NAME_BYTES;
  }
  at += 8; // the end-of-extensions marker: type 0, length 0
  name.copy(head, at);
  head.writeBigUInt64BE(BigInt(2 * CLUSTER), CLUSTER); // the refcount table's one block
  for (let c = 0; c < usedClusters; c++) head.writeUInt16BE(1, 2 * CLUSTER + c * 2);
  return { head, fileBytes: 3 * CLUSTER + l1Size * 8 };
}

/** Writes the overlay to `file` (replacing what is there) and flushes it to disk. */
export async function writeQcow2Overlay(
  file: string,
  sizeBytes: number,
  backing?: BackingFile,
): Promise<void> {
  const { head, fileBytes } = qcow2OverlayLayout(sizeBytes, backing);
  const handle = await open(file, 'w', 0o644);
  try {
    await handle.write(head, 0, head.length, 0);
    await handle.truncate(fileBytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
}
