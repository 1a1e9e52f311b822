/** Request schemas shared by the cloud's validation and the workflows' own input checks. */
import { z } from 'zod';

/** OpenStack names: 1 to 255 printable characters, no control characters, not only spaces. */
export const nameSchema = z
  .string()
  .min(1)
  .max(255)
  .refine((s) => !/[\p{Cc}]/u.test(s), 'must not contain control characters')
  .refine((s) => s.trim().length > 0, 'must not be blank');
