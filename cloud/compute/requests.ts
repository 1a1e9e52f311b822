/** Validation of compute host requests. */
import { z } from 'zod';
import { nameSchema, uuidSchema } from '../validation';

export const hostNameSchema = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/,
    'must be a host name (letters, digits, dot, dash, underscore)',
  );

export const instanceUuidSchema = uuidSchema;
export const portIdSchema = uuidSchema;

export function createInstanceDirSchema(maxDiskGb: number) {
  return z.strictObject({
    /** The flavor's root disk; 0 means "the image's size", as in Nova. */
    rootGb: z.number().int().min(0).max(maxDiskGb, `must fit the host's ${maxDiskGb} GB disk`),
    /** A file in this host's image cache (what fetchImage returned). */
    baseImagePath: z.string().min(1).max(4096).optional(),
    name: nameSchema.optional(),
    vcpus: z.number().int().min(1).max(4096).optional(),
    memoryMb: z
      .number()
      .int()
      .min(1)
      .max(64 * 1024 * 1024)
      .optional(),
  });
}
export type CreateInstanceDirInput = z.input<ReturnType<typeof createInstanceDirSchema>>;

export const spawnSchema = z.strictObject({
  name: nameSchema.optional(),
  vcpus: z.number().int().min(1).max(4096),
  memoryMb: z
    .number()
    .int()
    .min(1)
    .max(64 * 1024 * 1024),
  /** The ports the guest gets, in order; each must be plugged here. Default: every port plugged for it. */
  portIds: z.array(portIdSchema).max(64).optional(),
  /** AMI-style boot: the kernel (aki) and ramdisk (ari) images, files in this host's image cache. */
  kernelPath: z.string().min(1).max(4096).optional(),
  ramdiskPath: z.string().min(1).max(4096).optional(),
});
export type SpawnInput = z.input<typeof spawnSchema>;

/** Nova's os-getConsoleOutput `length`: a number of lines (none: the whole log the driver gives). */
export const consoleLengthSchema = z.number().int().min(0).max(100_000).optional();
