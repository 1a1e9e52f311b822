/** Glance v2's image body (api-ref/source/v2/images-images-v2.inc): core fields, then the extra properties. */
import type { Image, ImageMember } from '../../cloud/glance';

/** Glance's timestamps: ISO 8601 to the second, with a `Z`. */
export const glanceTime = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

export function imageView(image: Image): Record<string, unknown> {
  return {
    ...image.properties,
    id: image.id,
    name: image.name,
    status: image.status,
    visibility: image.visibility,
    protected: image.protected,
    os_hidden: image.osHidden,
    checksum: image.checksum,
    os_hash_algo: image.osHashAlgo,
    os_hash_value: image.osHashValue,
    owner: image.owner,
    size: image.size,
    virtual_size: image.virtualSize,
    min_ram: image.minRam,
    min_disk: image.minDisk,
    disk_format: image.diskFormat,
    container_format: image.containerFormat,
    created_at: glanceTime(image.createdAt),
    updated_at: glanceTime(image.updatedAt),
    tags: image.tags,
    self: `/v2/images/${image.id}`,
    file: `/v2/images/${image.id}/file`,
    schema: '/v2/schemas/image',
  };
}

/** The core attributes: everything else in a create body is an extra property (a string). */
export const CORE_ATTRIBUTES = new Set([
  'id',
  'name',
  'status',
  'visibility',
  'protected',
  'os_hidden',
  'checksum',
  'os_hash_algo',
  'os_hash_value',
  'owner',
  'size',
  'virtual_size',
  'min_ram',
  'min_disk',
  'disk_format',
  'container_format',
  'created_at',
  'updated_at',
  'tags',
  'self',
  'file',
  'schema',
  'locations',
  'direct_url',
]);

/** GET /v2/schemas/image, reduced to the attributes bootflow keeps (clients validate bodies with it). */
export function imageSchema(): Record<string, unknown> {
  const str = { type: 'string' };
  const nullableStr = { type: ['null', 'string'] };
  return {
    name: 'image',
    additionalProperties: { type: 'string' },
    properties: {
      id: {
        ...str,
        pattern: '^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$',
      },
      name: { type: ['null', 'string'], maxLength: 255 },
      status: {
        ...str,
        readOnly: true,
        enum: [
          'queued',
          'saving',
          'active',
          'killed',
          'deleted',
          'uploading',
          'importing',
          'pending_delete',
          'deactivated',
        ],
      },
      visibility: { ...str, enum: ['community', 'public', 'private', 'shared'] },
      protected: { type: 'boolean' },
      os_hidden: { type: 'boolean' },
      checksum: { ...nullableStr, readOnly: true, maxLength: 32 },
      os_hash_algo: { ...nullableStr, readOnly: true, maxLength: 64 },
      os_hash_value: { ...nullableStr, readOnly: true, maxLength: 128 },
      owner: { ...nullableStr, maxLength: 255 },
      size: { type: ['null', 'integer'], readOnly: true },
      virtual_size: { type: ['null', 'integer'], readOnly: true },
      container_format: {
        type: ['null', 'string'],
        enum: [null, 'ami', 'ari', 'aki', 'bare', 'ovf', 'ova', 'docker', 'compressed'],
      },
      disk_format: {
        type: ['null', 'string'],
        enum: [null, 'ami', 'ari', 'aki', 'vhd', 'vhdx', 'vmdk', 'raw', 'qcow2', 'vdi', 'iso', 'ploop'],
      },
      created_at: { ...str, readOnly: true },
      updated_at: { ...str, readOnly: true },
      tags: { type: 'array', items: { type: 'string', maxLength: 255 } },
      direct_url: { ...str, readOnly: true },
      min_ram: { type: 'integer' },
      min_disk: { type: 'integer' },
      self: { ...str, readOnly: true },
      file: { ...str, readOnly: true },
      schema: { ...str, readOnly: true },
      locations: { type: 'array', items: { type: 'object' } },
    },
    links: [
      { rel: 'self', href: '{self}' },
      { rel: 'enclosure', href: '{file}' },
      { rel: 'describedby', href: '{schema}' },
    ],
  };
}

/** Glance's image member body (image_members.py ResponseSerializer._format_image_member). */
export function memberView(member: ImageMember): Record<string, unknown> {
  return {
    created_at: glanceTime(member.createdAt),
    image_id: member.imageId,
    member_id: member.memberId,
    schema: '/v2/schemas/member',
    status: member.status,
    updated_at: glanceTime(member.updatedAt),
  };
}

/** GET /v2/schemas/member (image_members.py get_schema). */
export function memberSchema(): Record<string, unknown> {
  return {
    name: 'member',
    properties: {
      member_id: { type: 'string', description: 'An identifier for the image member (tenantId)' },
      image_id: {
        type: 'string',
        description: 'An identifier for the image',
        pattern: '^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$',
      },
      created_at: { type: 'string', description: 'Date and time of image member creation' },
      updated_at: { type: 'string', description: 'Date and time of last modification of image member' },
      status: {
        type: 'string',
        description: 'The status of this image member',
        enum: ['pending', 'accepted', 'rejected'],
      },
      schema: { readOnly: true, type: 'string' },
    },
  };
}
