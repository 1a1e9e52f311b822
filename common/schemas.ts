/** Request schemas shared by the cloud's validation and the workflows' own input checks. */
import { z } from 'zod';

/** OpenStack names: 1 to 255 printable characters, no control characters, not only spaces. */
export const nameSchema = z
  .string()
  .min(1)
  .max(255)
  .refine((s) => !/[\p{Cc}]/u.test(s), 'must not contain control characters')
  .refine((s) => s.trim().length > 0, 'must not be blank');

/** Nova's user_data: base64 text of at most 65535 characters (schemas/servers.py, format 'base64'). */
export const userDataSchema = z
  .string()
  .max(65_535)
  .refine(
    (s) => /^[A-Za-z0-9+/\r\n]*={0,2}[\r\n]*$/.test(s) && s.replace(/[\r\n]/g, '').length % 4 === 0,
    "is not a 'base64'",
  );

/** Nova's server tags (2.26+): at most 50, each 1..60 characters without '/' or ','. */
export const serverTagsSchema = z
  .array(
    z
      .string()
      .min(1)
      .max(60)
      .refine((t) => !/[/,]/.test(t), "must not contain '/' or ','"),
  )
  .max(50);

/** Nova's server metadata: at most 128 items (the metadata_items quota), keys 1..255, values 0..255. */
export const serverMetadataSchema = z
  .record(z.string().min(1).max(255), z.string().max(255))
  .refine((m) => Object.keys(m).length <= 128, 'at most 128 metadata items');
