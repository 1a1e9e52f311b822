export {
  Cinder,
  type CinderOptions,
  type CreateVolumeRequest,
  type CreateAttachmentRequest,
  type UpdateVolumeRequest,
} from './cinder';
export { volumeMetadataSchema, type VolumeMetadata } from './volume-metadata';
export {
  RESETTABLE_SNAPSHOT_STATUSES,
  Snapshots,
  type CreateSnapshotRequest,
  type UpdateSnapshotRequest,
} from './snapshots';
export type { AttachmentResult } from './cinder';
export type * from './types';
export { GIB, volumeFile } from './volume-files';
export { faultsFile } from './faults';
