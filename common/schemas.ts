/** Request schemas shared by the cloud's validation and the workflows' own input checks. */
import { z } from 'zod';

/** OpenStack names: 1 to 255 printable characters, no control characters, not only spaces. */
export const nameSchema = z
  .string()
  .min(1)
  .max(255)
  .refine((s) => !/[\p{Cc}]/u.test(s), 'must not contain control characters')
  .refine((s) => s.trim().length > 0, 'must not be blank');

/** Nova's server metadata: at most 128 items (the metadata_items quota), keys 1..255, values 0..255. */
export const serverMetadataSchema = z
  .record(z.string().min(1).max(255), z.string().max(255))
  .refine((m) => Object.keys(m).length <= 128, 'at most 128 metadata items');
