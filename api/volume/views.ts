/**
 * Cinder v3's volume and snapshot bodies (api-ref/source/v3/volumes-v3-volumes.inc, volumes-v3-snapshots.inc),
 * per microversion.
 */
import type { Snapshot, Volume } from '../../cloud/cinder';
import type { Microversion } from './microversion';

/** Cinder's timestamps: ISO 8601 with microseconds and no zone (UTC). */
export const cinderTime = (ms: number): string => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000');

export function volumeLinks(base: string, v: Volume) {
  return [
    { href: `${base}/volumes/${v.id}`, rel: 'self' },
    { href: `${base}/volumes/${v.id}`, rel: 'bookmark' },
  ];
}

export function volumeSummary(base: string, v: Volume) {
  return { id: v.id, name: v.name, links: volumeLinks(base, v) };
}

/**
 * A volume as GET shows it; `created` is POST's answer, which Cinder builds without the show extensions
 * (os-vol-tenant-attr, os-vol-host-attr, os-vol-mig-status-attr, volume_image_metadata).
 */
export function volumeDetail(
  base: string,
  v: Volume,
  version: Microversion,
  admin: boolean,
  created = false,
) {
  const extended = !created;
  return {
    id: v.id,
    name: v.name,
    status: v.status,
    size: v.sizeGb,
    availability_zone: 'nova',
    created_at: cinderTime(v.createdAt),
    updated_at: cinderTime(v.updatedAt),
    attachments: v.attachments
      .filter((a) => a.attachStatus === 'attached')
      .map((a) => ({
        id: v.id,
        attachment_id: a.id,
        volume_id: v.id,
        server_id: a.instanceUuid,
        host_name: a.attachedHost,
        device: a.mountpoint,
        attached_at: a.attachedAt === null ? null : cinderTime(a.attachedAt),
      })),
    description: v.description,
    volume_type: '__DEFAULT__',
    snapshot_id: v.snapshotId,
    source_volid: null,
    // Cinder adds its visible admin metadata (`readonly`) to the user metadata it shows.
    metadata: { ...v.metadata, ...(v.readonly === null ? {} : { readonly: v.readonly ? 'True' : 'False' }) },
    links: volumeLinks(base, v),
    user_id: v.userId,
    // Cinder's bootable is a string.
    bootable: v.bootable ? 'true' : 'false',
    encrypted: false,
    replication_status: null,
    consistencygroup_id: null,
    multiattach: false,
    migration_status: null,
    ...(extended ? { 'os-vol-tenant-attr:tenant_id': v.projectId } : {}),
    ...(extended && v.imageId
      ? {
          volume_image_metadata: {
            image_id: v.imageId,
            ...(v.imageMetadata
              ? { checksum: v.imageMetadata.checksum, size: String(v.imageMetadata.size) }
              : {}),
          },
        }
      : {}),
    ...(extended && admin
      ? {
          'os-vol-host-attr:host': `bootflow@${v.backend}#${v.backend}`,
          'os-vol-mig-status-attr:migstat': null,
          'os-vol-mig-status-attr:name_id': null,
        }
      : {}),
    ...(version.minor >= 13 ? { group_id: null } : {}),
    ...(version.minor >= 21 && admin ? { provider_id: null } : {}),
    ...(version.minor >= 48 ? { shared_targets: false, service_uuid: null } : {}),
  };
}

/** cinder/api/views/snapshots.py summary: what every snapshot body has (the list's items). */
export function snapshotSummary(s: Snapshot) {
  return {
    id: s.id,
    created_at: cinderTime(s.createdAt),
    updated_at: cinderTime(s.updatedAt),
    name: s.name,
    description: s.description,
    volume_id: s.volumeId,
    status: s.status,
    size: s.sizeGb,
    metadata: s.metadata,
  };
}

/**
 * cinder/api/v3/views/snapshots.py detail (show, create, update, detail list): group_snapshot_id from 3.14,
 * user_id from 3.41, consumes_quota from 3.65; `extended` (show and detail list, not create or update) adds
 * the os-extended-snapshot-attributes extension's project_id and progress (policy: any reader who sees it).
 */
export function snapshotDetail(s: Snapshot, version: Microversion, extended: boolean) {
  return {
    ...snapshotSummary(s),
    ...(version.minor >= 14 ? { group_snapshot_id: null } : {}),
    ...(version.minor >= 41 ? { user_id: s.userId } : {}),
    ...(version.minor >= 65 ? { consumes_quota: true } : {}),
    ...(extended
      ? {
          'os-extended-snapshot-attributes:progress': s.progress,
          'os-extended-snapshot-attributes:project_id': s.projectId,
        }
      : {}),
  };
}
