/**
 * QCOW2 headers: reading one (Glance inspects uploads, a compute host checks a base image against the
 * flavor's disk) and writing a small but complete image (bootstrap seeds "cirros" with it). The generated
 * file has a version 3 header, a refcount table and block, an L1 and L2 table and data clusters mapped at
 * the start of the virtual disk, so `qemu-img check` finds nothing wrong with it.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { CloudError } from '../errors';

export const QCOW2_MAGIC = 0x514649fb; // 'QFI\xfb'
const V2_HEADER_LENGTH = 72;
const V3_HEADER_LENGTH = 104;
/** Incompatible feature bit 2: the guest data lives in an external file, which Glance refuses. */
const INCOMPAT_EXTERNAL_DATA_FILE = 1n << 2n;
const OFLAG_COPIED = 1n << 63n;

export interface Qcow2Header {
  version: number;
  backingFileOffset: number;
  clusterBits: number;
  virtualSize: number;
  cryptMethod: number;
  incompatibleFeatures: bigint;
  headerLength: number;
}

export function hasQcow2Magic(head: Uint8Array): boolean {
  return head.length >= 4 && Buffer.from(head.buffer, head.byteOffset, 4).readUInt32BE(0) === QCOW2_MAGIC;
}

/** Parses a QCOW2 header; undefined when the bytes do not start with the magic or are too short. */
export function parseQcow2Header(head: Buffer): Qcow2Header | undefined {
  if (head.length < V2_HEADER_LENGTH || head.readUInt32BE(0) !== QCOW2_MAGIC) return undefined;
  const version = head.readUInt32BE(4);
  const v3 = version >= 3;
  if (v3 && head.length < V3_HEADER_LENGTH) return undefined;
  return {
    version,
    backingFileOffset: Number(head.readBigUInt64BE(8)),
    clusterBits: head.readUInt32BE(20),
    virtualSize: Number(head.readBigUInt64BE(24)),
    cryptMethod: head.readUInt32BE(32),
    incompatibleFeatures: v3 ? head.readBigUInt64BE(72) : 0n,
    headerLength: v3 ? head.readUInt32BE(100) : V2_HEADER_LENGTH,
  };
}

/** Bytes of an upload's start that suffice to inspect it. */
export const INSPECT_HEAD_BYTES = V3_HEADER_LENGTH;

/**
 * Checks that data claimed to be `diskFormat` looks like it, as Glance's format inspector does: a qcow2 must
 * have a sane header without a backing or external data file (those let a guest read host files); raw data
 * must not be a qcow2 in disguise. Returns the virtual size when the header gives it.
 */
export function inspectDiskHead(diskFormat: string, head: Buffer): { virtualSize: number | null } {
  if (diskFormat === 'qcow2') {
    const header = parseQcow2Header(head);
    if (!header)
      throw new CloudError('BadRequest', 'Image data is not a qcow2 image (bad or missing header)');
    if (header.version !== 2 && header.version !== 3)
      throw new CloudError('BadRequest', `Unsupported qcow2 version ${header.version}`);
    if (header.clusterBits < 9 || header.clusterBits > 21)
      throw new CloudError('BadRequest', `Invalid qcow2 cluster size (cluster_bits ${header.clusterBits})`);
    if (header.backingFileOffset !== 0)
      throw new CloudError('BadRequest', 'qcow2 images with a backing file are not allowed');
    if (header.incompatibleFeatures & INCOMPAT_EXTERNAL_DATA_FILE)
      throw new CloudError('BadRequest', 'qcow2 images with an external data file are not allowed');
    if (header.virtualSize <= 0) throw new CloudError('BadRequest', 'qcow2 image has no virtual size');
    return { virtualSize: header.virtualSize };
  }
  if (diskFormat === 'raw' && hasQcow2Magic(head))
    throw new CloudError('BadRequest', 'Image data is a qcow2 image but disk_format is raw');
  return { virtualSize: null };
}

export interface Qcow2ImageOptions {
  /** Same seed, same bytes. */
  seed: string;
  /** The disk size the guest sees (default 112 MiB, like CirrOS 0.6). */
  virtualSizeBytes?: number;
  /** Bytes of (pseudo-random) guest data written at the start of the disk (default 3 MiB). */
  dataBytes?: number;
  /** log2 of the cluster size (default 16: 64 KiB, qemu-img's default). */
  clusterBits?: number;
}

const MiB = 1024 * 1024;

/** Deterministic bytes from a seed: AES-256-CTR keystream keyed by SHA-256(seed). */
function seededBytes(seed: string, length: number): Buffer {
  const key = createHash('sha256').update(`bootflow-image:${seed}`).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(length)), cipher.final()]);
}

/** A complete, consistent QCOW2 v3 image whose first `dataBytes` of guest disk hold seeded data. */
export function generateQcow2Image(options: Qcow2ImageOptions): Buffer {
  const clusterBits = options.clusterBits ?? 16;
  const virtualSize = options.virtualSizeBytes ?? 112 * MiB;
  const dataBytes = options.dataBytes ?? 3 * MiB;
  if (!Number.isInteger(clusterBits) || clusterBits < 9 || clusterBits > 21)
    throw new CloudError('BadRequest', 'clusterBits must be an integer from 9 to 21');
  if (!Number.isSafeInteger(virtualSize) || virtualSize <= 0 || virtualSize % 512 !== 0)
    throw new CloudError('BadRequest', 'virtualSizeBytes must be a positive multiple of 512');
  if (!Number.isSafeInteger(dataBytes) || dataBytes <= 0 || dataBytes > virtualSize || dataBytes > 256 * MiB)
    throw new CloudError('BadRequest', 'dataBytes must be positive, at most the virtual size and 256 MiB');

  const cluster = 2 ** clusterBits;
  const l2Entries = cluster / 8;
  const dataClusters = Math.ceil(dataBytes / cluster);
  const l2Tables = Math.ceil(dataClusters / l2Entries);
  const l1Size = Math.ceil(virtualSize / (cluster * l2Entries));
  const l1Clusters = Math.ceil((l1Size * 8) / cluster);
  const refcountsPerBlock = cluster / 2; // refcount_order 4: 16-bit refcounts
  // The refcount structures count themselves: grow them until they cover every cluster.
  let refcountBlocks = 1;
  let refcountTableClusters = 1;
  const totalClusters = () =>
    1 + refcountTableClusters + refcountBlocks + l1Clusters + l2Tables + dataClusters;
  for (;;) {
    const needBlocks = Math.ceil(totalClusters() / refcountsPerBlock);
    const needTable = Math.ceil((needBlocks * 8) / cluster);
    if (needBlocks <= refcountBlocks && needTable <= refcountTableClusters) break;
    refcountBlocks = Math.max(refcountBlocks, needBlocks);
    refcountTableClusters = Math.max(refcountTableClusters, needTable);
  }

  const refcountTableAt = 1;
  const refcountBlocksAt = refcountTableAt + refcountTableClusters;
  const l1At = refcountBlocksAt + refcountBlocks;
  const l2At = l1At + l1Clusters;
  const dataAt = l2At + l2Tables;
  const total = totalClusters();
  const image = Buffer.alloc(total * cluster);

  // Header (big-endian), version 3, no backing file, no encryption, no snapshots.
  image.writeUInt32BE(QCOW2_MAGIC, 0);
  image.writeUInt32BE(3, 4);
  image.writeBigUInt64BE(0n, 8); // backing_file_offset
  image.writeUInt32BE(0, 16); // backing_file_size
  image.writeUInt32BE(clusterBits, 20);
  image.writeBigUInt64BE(BigInt(virtualSize), 24);
  image.writeUInt32BE(0, 32); // crypt_method
  image.writeUInt32BE(l1Size, 36);
  image.writeBigUInt64BE(BigInt(l1At * cluster), 40);
  image.writeBigUInt64BE(BigInt(refcountTableAt * cluster), 48);
  image.writeUInt32BE(refcountTableClusters, 56);
  image.writeUInt32BE(0, 60); // nb_snapshots
  image.writeBigUInt64BE(0n, 64); // snapshots_offset
  image.writeBigUInt64BE(0n, 72); // incompatible_features
  image.writeBigUInt64BE(0n, 80); // compatible_features
  image.writeBigUInt64BE(0n, 88); // autoclear_features
  image.writeUInt32BE(4, 96); // refcount_order
  image.writeUInt32BE(V3_HEADER_LENGTH, 100); // header_length; the extension area after it is all zero (end)

  for (let b = 0; b < refcountBlocks; b++)
    image.writeBigUInt64BE(BigInt((refcountBlocksAt + b) * cluster), refcountTableAt * cluster + b * 8);
  for (let c = 0; c < total; c++) image.writeUInt16BE(1, refcountBlocksAt * cluster + c * 2);
  for (let t = 0; t < l2Tables; t++)
    image.writeBigUInt64BE(BigInt((l2At + t) * cluster) | OFLAG_COPIED, l1At * cluster + t * 8);
  for (let d = 0; d < dataClusters; d++)
    image.writeBigUInt64BE(BigInt((dataAt + d) * cluster) | OFLAG_COPIED, l2At * cluster + d * 8);

  const guest = seededBytes(options.seed, dataBytes);
  if (dataBytes >= 512) guest.writeUInt16BE(0x55aa, 510); // an MBR boot signature, as a real disk has
  guest.copy(image, dataAt * cluster);
  return image;
}
