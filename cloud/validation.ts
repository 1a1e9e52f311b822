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

export { nameSchema, serverMetadataSchema, serverTagsSchema, userDataSchema } from '../common/schemas';

export const uuidSchema = z.string().uuid();
export const idSchema = z.string().min(1).max(255);
