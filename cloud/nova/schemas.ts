/** Input schemas shared by the nova modules (identifiers as Keystone and Nova spell them). */
import { z } from 'zod';

/** Keystone project and user ids (32 hex characters there; anything printable without spaces here). */
export const keystoneIdSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9_.-]+$/, 'must be letters, digits, "_", "." or "-"');

export const instanceUuidSchema = z.uuid();

/** Compute host names, as Nova's `host` option: a DNS-like name. */
export const hostSchema = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be a host name (letters, digits, ".", "_", "-")');

/** Nova's database integers are 32-bit signed. */
export const MAX_INT = 2147483647;
