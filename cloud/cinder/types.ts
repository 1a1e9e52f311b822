/** Cinder's public shapes, as the workflow sees them. */
import type { CloudErrorType } from '../errors';

export const VOLUME_STATUSES = [
  'creating',
  'available',
  'reserved',
  'attaching',
  'in-use',
  'detaching',
  'uploading',
  'deleting',
  'error',
  'error_deleting',
  'deleted',
] as const;
export type VolumeStatus = (typeof VOLUME_STATUSES)[number];

/** Cinder's snapshot statuses (fields.SnapshotStatus) that bootflow's snapshots pass through. */
export const SNAPSHOT_STATUSES = [
  'creating',
  'available',
  'deleting',
  'error',
  'error_deleting',
  'deleted',
] as const;
export type SnapshotStatus = (typeof SNAPSHOT_STATUSES)[number];

export const ATTACH_STATUSES = ['detached', 'reserved', 'attaching', 'attached'] as const;
export type AttachStatus = (typeof ATTACH_STATUSES)[number];

/** What the compute host needs to connect the volume: our file backend hands out the backing file. */
export interface ConnectionInfo {
  driverVolumeType: 'file';
  path: string;
}

export interface VolumeAttachment {
  id: string;
  volumeId: string;
  instanceUuid: string;
  attachedHost: string | null;
  mountpoint: string | null;
  attachStatus: AttachStatus;
  connectionInfo: ConnectionInfo | null;
  attachedAt: number | null;
  detachedAt: number | null;
  createdAt: number;
}

export interface Volume {
  id: string;
  name: string;
  description: string | null;
  /** Cinder's user metadata (volume_metadata), key → value. */
  metadata: Record<string, string>;
  /** Cinder's `readonly` admin metadata, null until set (recorded only: attachments stay read-write). */
  readonly: boolean | null;
  projectId: string;
  userId: string | null;
  sizeGb: number;
  status: VolumeStatus;
  attachStatus: AttachStatus;
  bootable: boolean;
  imageId: string | null;
  /** Digests of the image data copied in, as verified (null for blank volumes). */
  imageMetadata: { size: number; checksum: string; osHashAlgo: string; osHashValue: string } | null;
  backend: string;
  /** The backing file, once created. */
  providerLocation: string | null;
  /** Why creation or deletion failed (status error / error_deleting). */
  errorMessage: string | null;
  /** Live (not detached) attachments: at most one, volumes are not multi-attach. */
  attachments: VolumeAttachment[];
  requestKey: string;
  /** Deleted with the server it boots (Nova keeps this in block_device_mapping; see the README). */
  deleteOnTermination: boolean;
  /** The snapshot it was created from. */
  snapshotId: string | null;
  createdAt: number;
  updatedAt: number;
  deletedAt: number | null;
}

/** A volume snapshot (Cinder's snapshots table): a copy of the volume's data when it was taken. */
export interface Snapshot {
  id: string;
  volumeId: string;
  projectId: string;
  userId: string | null;
  name: string | null;
  description: string | null;
  metadata: Record<string, string>;
  /** The volume's size when taken, GB. */
  sizeGb: number;
  status: SnapshotStatus;
  /** `0%` while copying, `100%` once available. */
  progress: string;
  /** The snapshot's file, once copied. */
  providerLocation: string | null;
  errorMessage: string | null;
  createdAt: number;
  updatedAt: number;
  deletedAt: number | null;
}

/**
 * Cinder's quota, which bootflow keeps in Nova's quota tables (volumes, snapshots, gigabytes beside Nova's
 * own): a snapshot claims `snapshots` 1 and `gigabytes` its size under its own id, and releases them when
 * deleted. Given to Cinder.open by the cloud (without it, nothing is counted).
 */
export interface CinderQuota {
  /** QuotaExceeded (naming the resources over) when the project has no room; idempotent per consumer. */
  claim(
    projectId: string,
    consumerUuid: string,
    amounts: { snapshots?: number; gigabytes?: number },
  ): Promise<unknown>;
  release(consumerUuid: string): Promise<unknown>;
}

/**
 * Where the image data to copy into a new volume is and what it must hash to: Glance's ImageLocation
 * (imageLocation(image)) fits it.
 */
export interface ImageSource {
  imageId: string;
  url: string;
  size: number;
  checksum?: string;
  osHashAlgo?: 'sha512' | 'sha384' | 'sha256';
  osHashValue?: string;
  diskFormat?: string;
  virtualSize?: number | null;
}

/** The Cinder calls a test can make fail (attachment update and complete, os-begin_detaching, delete). */
export type CallFault = 'attachmentUpdate' | 'attachmentComplete' | 'beginDetaching' | 'volumeDelete';

/**
 * Test hooks: volume creation (cinder-volume being stuck, failing or slow), and the calls of CALL_FAULTS
 * failing (with errorType, default ServiceUnavailable, and the message).
 */
export interface CinderFaults extends Partial<
  Record<CallFault, { mode: 'fail'; errorType?: CloudErrorType; message?: string }>
> {
  create?: CreateFault;
  /** The same for a snapshot's creation (its copy of the volume's data). */
  createSnapshot?: CreateFault;
}

/** cinder-volume being stuck, failing or slow in a creation. */
export interface CreateFault {
  mode: 'hang' | 'fail' | 'slow';
  /** slow: how long creation takes (default 2000 ms); fail: delay before failing (default 0). */
  delayMs?: number;
  /** fail: the error message recorded on the volume or snapshot. */
  message?: string;
}

/**
 * The caller of a user-facing call (the token's project and roles). Calls made without one are the
 * operator's (the workflow's own volumes, audits) and see every project.
 */
export interface VolumeViewer {
  projectId: string;
  roles: readonly string[];
}
