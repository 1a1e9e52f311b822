/** Cinder v3's volume bodies (api-ref/source/v3/volumes-v3-volumes.inc), per microversion. */
import type { Volume } from '../../cloud/cinder';
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
    snapshot_id: null,
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
