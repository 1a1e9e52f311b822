/** Row types of the cinder database (see migrations.ts). Booleans are 0/1, timestamps epoch ms. */

export interface VolumesTable {
  id: string;
  name: string;
  project_id: string;
  user_id: string | null;
  size: number;
  status: string;
  attach_status: string;
  bootable: number;
  image_id: string | null;
  /** JSON: the image's checksum, hash and size as verified when its data was copied in. */
  image_metadata: string | null;
  backend: string;
  provider_location: string | null;
  error_message: string | null;
  request_key: string;
  deleted: number;
  created_at: number;
  updated_at: number;
  deleted_at: number | null;
  /** While `creating`: the Cinder running the creation, `<pid>@<host>/<instance id>`. */
  creation_worker: string | null;
  /** JSON ImageSource of a volume created from an image (what a resumed creation copies in again). */
  image_source: string | null;
  /** 1: deleted with the server it boots (Nova's delete_on_termination). */
  delete_on_termination: number;
  description: string | null;
  /** Cinder's admin metadata `readonly`: 1 / 0 once set by os-update_readonly_flag, NULL before. */
  readonly: number | null;
  /** The snapshot the volume was created from (its data copied in). */
  snapshot_id: string | null;
}

export interface SnapshotsTable {
  id: string;
  volume_id: string;
  project_id: string;
  user_id: string | null;
  name: string | null;
  description: string | null;
  /** The volume's size when the snapshot was taken (Cinder's volume_size), GB. */
  size: number;
  status: string;
  /** Cinder's progress string: `0%` until the copy is done, then `100%`. */
  progress: string;
  /** The snapshot's file, once copied. */
  provider_location: string | null;
  error_message: string | null;
  /** While `creating` or `deleting`: the Cinder doing it, `<pid>@<host>/<instance id>`. */
  worker: string | null;
  deleted: number;
  created_at: number;
  updated_at: number;
  deleted_at: number | null;
}

/** User metadata of a snapshot, one row per key. */
export interface SnapshotMetadataTable {
  snapshot_id: string;
  key: string;
  value: string;
}

/** User metadata of a volume, one row per key. */
export interface VolumeMetadataTable {
  volume_id: string;
  key: string;
  value: string;
}

export interface VolumeAttachmentsTable {
  id: string;
  volume_id: string;
  instance_uuid: string;
  attached_host: string | null;
  mountpoint: string | null;
  attach_status: string;
  /** JSON ConnectionInfo once the connector is known (attaching). */
  connection_info: string | null;
  /** = volume_id while the attachment is live, NULL once detached: one live attachment per volume. */
  active_volume_id: string | null;
  attach_time: number | null;
  detach_time: number | null;
  created_at: number;
  updated_at: number;
}

export interface CinderDb {
  volumes: VolumesTable;
  volume_attachments: VolumeAttachmentsTable;
  volume_metadata: VolumeMetadataTable;
  snapshots: SnapshotsTable;
  snapshot_metadata: SnapshotMetadataTable;
}
