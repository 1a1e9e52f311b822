/** Request validation: zod schemas, strict (unknown fields rejected), failures as typed BadRequest errors. */
import { z } from 'zod';
import { CloudError } from './errors';

export function parseRequest<S extends z.ZodType>(schema: S, input: unknown, what: string): z.infer<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const problems = result.error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.length ? issue.path.join('.') : what}: ${issue.message}`)
    .join('; ');
  throw new CloudError('BadRequest', `Invalid ${what}: ${problems}`);
}

/** OpenStack names: 1 to 255 printable characters, no control characters, not only spaces. */
export const nameSchema = z
  .string()
  .min(1)
  .max(255)
  .refine((s) => !/[\p{Cc}]/u.test(s), 'must not contain control characters')
  .refine((s) => s.trim().length > 0, 'must not be blank');

export const uuidSchema = z.string().uuid();
export const idSchema = z.string().min(1).max(255);

/** Nova's server metadata: at most 128 items (the metadata_items quota), keys 1..255, values 0..255. */
export const serverMetadataSchema = z
  .record(z.string().min(1).max(255), z.string().max(255))
  .refine((m) => Object.keys(m).length <= 128, 'at most 128 metadata items');
