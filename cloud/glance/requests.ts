/** Validation of Glance requests: strict shapes, Glance's limits, reserved property names. */
import { z } from 'zod';
import { idSchema, nameSchema, uuidSchema } from '../validation';
import { CONTAINER_FORMATS, DISK_FORMATS, IMAGE_VISIBILITIES, MEMBER_STATUSES } from './types';

const INT32_MAX = 2 ** 31 - 1;
/** Glance's `image_property_quota`, `image_tag_quota` and `image_member_quota` defaults. */
export const MAX_IMAGE_PROPERTIES = 128;
export const MAX_IMAGE_TAGS = 128;
export const MAX_IMAGE_MEMBERS = 128;

/** Attributes Glance keeps as columns or computes; a user property may not shadow them. */
const RESERVED_PROPERTIES = new Set([
  'id',
  'name',
  'status',
  'visibility',
  'owner',
  'size',
  'virtual_size',
  'checksum',
  'os_hash_algo',
  'os_hash_value',
  'created_at',
  'updated_at',
  'deleted',
  'deleted_at',
  'locations',
  'direct_url',
  'min_disk',
  'min_ram',
  'protected',
  'disk_format',
  'container_format',
  'schema',
  'file',
  'self',
  'tags',
  'os_hidden',
]);

const propertyName = z
  .string()
  .min(1)
  .max(255)
  .refine((s) => !/[\p{Cc}]/u.test(s), 'must not contain control characters')
  .refine((s) => !RESERVED_PROPERTIES.has(s) && !s.startsWith('os_glance'), 'is a reserved attribute');
const propertyValue = z.string().max(65535);

const sizeField = z.number().int().min(0).max(INT32_MAX);
export const projectIdSchema = idSchema;
/** Glance's tag: a string of at most 255 characters. */
export const tagSchema = z.string().min(1).max(255);
const tagsField = z.array(tagSchema).transform((tags) => [...new Set(tags)].sort());

export const createImageSchema = z.strictObject({
  /** Glance lets the caller choose the id; a retry with the same id returns the first image. */
  id: uuidSchema.optional(),
  /** Glance's name is optional: '' when none is given. */
  name: z.union([z.literal(''), nameSchema]).default(''),
  /** Optional, as in Glance: the image stays queued and takes no data until both are set. */
  diskFormat: z.enum(DISK_FORMATS).nullable().default(null),
  containerFormat: z.enum(CONTAINER_FORMATS).nullable().default(null),
  /** Glance's default since Pike. */
  visibility: z.enum(IMAGE_VISIBILITIES).default('shared'),
  ownerProjectId: projectIdSchema,
  minDisk: sizeField.default(0),
  minRam: sizeField.default(0),
  protected: z.boolean().default(false),
  osHidden: z.boolean().default(false),
  tags: tagsField.default([]),
  properties: z
    .record(propertyName, propertyValue)
    .default({})
    .refine(
      (p) => Object.keys(p).length <= MAX_IMAGE_PROPERTIES,
      `at most ${MAX_IMAGE_PROPERTIES} properties`,
    ),
});
export type CreateImageInput = z.input<typeof createImageSchema>;

export const updateImageSchema = z.strictObject({
  name: nameSchema.optional(),
  visibility: z.enum(IMAGE_VISIBILITIES).optional(),
  minDisk: sizeField.optional(),
  minRam: sizeField.optional(),
  protected: z.boolean().optional(),
  osHidden: z.boolean().optional(),
  /** Only while the image is queued (Glance's domain rule). */
  diskFormat: z.enum(DISK_FORMATS).optional(),
  containerFormat: z.enum(CONTAINER_FORMATS).optional(),
  /** Admin only. */
  owner: projectIdSchema.optional(),
  /** Replaces every tag. */
  tags: tagsField.optional(),
  /** A null value removes the property. */
  properties: z.record(propertyName, propertyValue.nullable()).optional(),
});
export type UpdateImageInput = z.input<typeof updateImageSchema>;

export const imageIdSchema = uuidSchema;
export const imageRefSchema = idSchema;
export const memberStatusSchema = z.enum(MEMBER_STATUSES);

export const listImagesSchema = z.strictObject({
  name: nameSchema.optional(),
  status: z.enum(['queued', 'saving', 'active', 'deactivated']).optional(),
  visibility: z.enum(IMAGE_VISIBILITIES).optional(),
  owner: projectIdSchema.optional(),
  /** Every tag given must be on the image. */
  tags: z.array(tagSchema).optional(),
  /** Glance lists hidden images only when asked (`os_hidden=true`), and then only those. */
  osHidden: z.boolean().default(false),
  protected: z.boolean().optional(),
  diskFormat: z.string().max(32).optional(),
  containerFormat: z.string().max(32).optional(),
  size: z.number().int().min(0).optional(),
  minRam: z.number().int().min(0).optional(),
  minDisk: z.number().int().min(0).optional(),
  checksum: z.string().max(32).optional(),
  osHashValue: z.string().max(128).optional(),
  /** Any other attribute: an extra property that must have this value (Glance's property filter). */
  properties: z.record(z.string().max(255), z.string().max(65535)).optional(),
  sizeMin: z.number().int().min(0).optional(),
  sizeMax: z.number().int().min(0).optional(),
  /** Which shared images of other projects to list, by the caller's membership (Glance's default: accepted). */
  memberStatus: z.enum([...MEMBER_STATUSES, 'all']).default('accepted'),
});
export type ListImagesFilter = z.input<typeof listImagesSchema>;

export const requestContextSchema = z.object({
  projectId: projectIdSchema,
  roles: z.array(z.string()),
});
