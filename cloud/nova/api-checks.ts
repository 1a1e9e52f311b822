/**
 * nova-api's checks on a server create request that need no database: the request's shape, the image
 * against the flavor (or the boot volume), and the quota the whole boot holds. Nova's servers API does
 * these in compute/api.py (_check_requested_image, _validate_flavor_image, quota counting).
 */
import { z } from 'zod';
import { CloudError } from '../errors';
import { nameSchema } from '../validation';
import type { Flavor } from './flavors';
import type { QuotaAmounts } from './quota';

const GIB = 1024 ** 3;

export const bootPlanRequestSchema = z.strictObject({
  name: nameSchema,
  flavor: z.string().min(1).max(255),
  image: z.string().min(1).max(255),
  bootVolume: z
    .strictObject({
      sizeGb: z.number().int().min(1).max(10_000),
      deleteOnTermination: z.boolean().optional(),
    })
    .optional(),
  availabilityZone: nameSchema.optional(),
  keyName: nameSchema.optional(),
});
export type BootPlanRequest = z.input<typeof bootPlanRequestSchema>;

/** The image's fields the checks read (Glance's min_disk, min_ram, size, virtual_size). */
export interface ImageSizes {
  id: string;
  minDisk: number;
  minRam: number;
  size: number | null;
  virtualSize: number | null;
}

/**
 * FlavorMemoryTooSmall / FlavorDiskTooSmall as Nova raises them; booting from a volume, the volume (not
 * the flavor's root disk) must hold the image.
 */
export function checkImageFitsFlavor(image: ImageSizes, flavor: Flavor, bootVolumeGb: number | null): void {
  if (image.minRam > flavor.memoryMb) {
    throw new CloudError(
      'FlavorMemoryTooSmall',
      `Flavor's memory is too small for requested image (flavor ${flavor.memoryMb} MB, image min_ram ${image.minRam} MB).`,
      { flavor: flavor.name, imageId: image.id },
    );
  }
  const bytes = Math.max(image.size ?? 0, image.virtualSize ?? 0);
  if (bootVolumeGb !== null) {
    if (bootVolumeGb < image.minDisk || bootVolumeGb * GIB < bytes) {
      throw new CloudError(
        'BadRequest',
        `Volume size ${bootVolumeGb} GB is smaller than the image needs (min_disk ${image.minDisk} GB, ${bytes} bytes).`,
        { imageId: image.id, sizeGb: bootVolumeGb },
      );
    }
    return;
  }
  if (image.minDisk > flavor.rootGb) {
    throw new CloudError(
      'FlavorDiskTooSmall',
      `Flavor's disk is too small for requested image. Flavor disk is ${flavor.rootGb} GB, minimum disk is ${image.minDisk} GB.`,
      { flavor: flavor.name, imageId: image.id },
    );
  }
  if (flavor.rootGb > 0 && bytes > flavor.rootGb * GIB) {
    throw new CloudError(
      'FlavorDiskTooSmall',
      `Flavor's disk is too small for requested image. Flavor disk is ${flavor.rootGb * GIB} bytes, image is ${bytes} bytes.`,
      { flavor: flavor.name, imageId: image.id },
    );
  }
}

/** What one server holds against its project's quota: the instance, its cores and RAM, its boot volume. */
export function bootQuota(flavor: Flavor, bootVolumeGb: number | null): QuotaAmounts {
  const amounts: QuotaAmounts = { instances: 1, cores: flavor.vcpus, ram: flavor.memoryMb };
  if (bootVolumeGb !== null) Object.assign(amounts, { volumes: 1, gigabytes: bootVolumeGb });
  return amounts;
}

/** An unknown flavorRef is a bad request (400), not a missing resource: the request names it. */
export function flavorRefError(err: unknown): unknown {
  return err instanceof CloudError && err.type === 'NotFound'
    ? new CloudError('BadRequest', err.message)
    : err;
}
