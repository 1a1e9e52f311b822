/** Database rows → the public shapes in types.ts. */
import type {
  SnapshotMetadataTable,
  SnapshotsTable,
  VolumeAttachmentsTable,
  VolumeMetadataTable,
  VolumesTable,
} from './schema';
import {
  ATTACH_STATUSES,
  SNAPSHOT_STATUSES,
  VOLUME_STATUSES,
  type AttachStatus,
  type ConnectionInfo,
  type Snapshot,
  type SnapshotStatus,
  type Volume,
  type VolumeAttachment,
  type VolumeStatus,
} from './types';

function volumeStatus(text: string): VolumeStatus {
  return VOLUME_STATUSES.find((s) => s === text) ?? 'error';
}

function attachStatus(text: string): AttachStatus {
  return ATTACH_STATUSES.find((s) => s === text) ?? 'detached';
}

export function toAttachment(row: VolumeAttachmentsTable): VolumeAttachment {
  return {
    id: row.id,
    volumeId: row.volume_id,
    instanceUuid: row.instance_uuid,
    attachedHost: row.attached_host,
    mountpoint: row.mountpoint,
    attachStatus: attachStatus(row.attach_status),
    connectionInfo: row.connection_info === null ? null : (JSON.parse(row.connection_info) as ConnectionInfo),
    attachedAt: row.attach_time,
    detachedAt: row.detach_time,
    createdAt: row.created_at,
  };
}

export function toVolume(
  row: VolumesTable,
  liveAttachments: VolumeAttachmentsTable[],
  metadata: VolumeMetadataTable[],
): Volume {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    readonly: row.readonly === null ? null : row.readonly === 1,
    metadata: Object.fromEntries(metadata.map((m) => [m.key, m.value])),
    projectId: row.project_id,
    userId: row.user_id,
    sizeGb: row.size,
    status: volumeStatus(row.status),
    // 'detaching' only exists inside detachVolume's transaction.
    attachStatus: attachStatus(row.attach_status),
    bootable: row.bootable === 1,
    imageId: row.image_id,
    imageMetadata:
      row.image_metadata === null ? null : (JSON.parse(row.image_metadata) as Volume['imageMetadata']),
    backend: row.backend,
    providerLocation: row.provider_location,
    errorMessage: row.error_message,
    attachments: liveAttachments.map(toAttachment),
    requestKey: row.request_key,
    deleteOnTermination: row.delete_on_termination === 1,
    snapshotId: row.snapshot_id,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    deletedAt: row.deleted_at,
  };
}

function snapshotStatus(text: string): SnapshotStatus {
  return SNAPSHOT_STATUSES.find((s) => s === text) ?? 'error';
}

export function toSnapshot(row: SnapshotsTable, metadata: SnapshotMetadataTable[]): Snapshot {
  return {
    id: row.id,
    volumeId: row.volume_id,
    projectId: row.project_id,
    userId: row.user_id,
    name: row.name,
    description: row.description,
    metadata: Object.fromEntries(metadata.map((m) => [m.key, m.value])),
    sizeGb: row.size,
    status: snapshotStatus(row.status),
    progress: row.progress,
    providerLocation: row.provider_location,
    errorMessage: row.error_message,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    deletedAt: row.deleted_at,
  };
}
