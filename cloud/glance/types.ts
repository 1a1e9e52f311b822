/** Glance's vocabulary: image records as the API shows them, and what a compute host needs to fetch one. */

export const IMAGE_STATUSES = ['queued', 'saving', 'active', 'deactivated', 'deleted'] as const;
export type ImageStatus = (typeof IMAGE_STATUSES)[number];

export const IMAGE_VISIBILITIES = ['public', 'private', 'shared', 'community'] as const;
export type ImageVisibility = (typeof IMAGE_VISIBILITIES)[number];

/** Glance's default `disk_formats` and `container_formats`. */
export const DISK_FORMATS = [
  'ami',
  'ari',
  'aki',
  'vhd',
  'vhdx',
  'vmdk',
  'raw',
  'qcow2',
  'vdi',
  'iso',
  'ploop',
] as const;
export type DiskFormat = (typeof DISK_FORMATS)[number];
export const CONTAINER_FORMATS = ['ami', 'ari', 'aki', 'bare', 'ovf', 'ova', 'docker', 'compressed'] as const;
export type ContainerFormat = (typeof CONTAINER_FORMATS)[number];

export const MEMBER_STATUSES = ['pending', 'accepted', 'rejected'] as const;
export type MemberStatus = (typeof MEMBER_STATUSES)[number];

export const OS_HASH_ALGO = 'sha512';

export interface Image {
  id: string;
  name: string;
  status: ImageStatus;
  /** Null until set (Glance creates images without formats; data can be uploaded only once both are set). */
  diskFormat: DiskFormat | null;
  containerFormat: ContainerFormat | null;
  /** Bytes of image data; null until uploaded. */
  size: number | null;
  /** The disk's size as a guest sees it (from the qcow2 header, or the size for raw); null if unknown. */
  virtualSize: number | null;
  /** MD5 of the data, hex, as Glance's legacy `checksum`. */
  checksum: string | null;
  osHashAlgo: string | null;
  osHashValue: string | null;
  visibility: ImageVisibility;
  owner: string | null;
  minDisk: number;
  minRam: number;
  protected: boolean;
  /** Hidden from the default image list (Glance's os_hidden). */
  osHidden: boolean;
  /** Sorted. */
  tags: string[];
  properties: Record<string, string>;
  createdAt: number;
  updatedAt: number;
}

export interface ImageMember {
  imageId: string;
  memberId: string;
  status: MemberStatus;
  createdAt: number;
  updatedAt: number;
}

/**
 * What a compute host (or Cinder, creating a volume from an image) needs to download and verify an image
 * without reading Glance's database.
 */
export interface ImageLocation {
  imageId: string;
  /** file:// URL of the image data in Glance's file store. */
  url: string;
  size: number;
  checksum: string;
  osHashAlgo: typeof OS_HASH_ALGO;
  osHashValue: string;
  diskFormat: DiskFormat;
  virtualSize: number | null;
}

/** The part of a Keystone token context Glance's rules look at (Keystone's `Ctx` fits it). */
export interface ImageRequestContext {
  projectId: string;
  roles: readonly string[];
}

export interface TransferProgress {
  bytesDone: number;
  /** Total bytes when known in advance (downloads); null for uploads of unknown length. */
  bytesTotal: number | null;
}
export type ProgressCallback = (progress: TransferProgress) => void;
