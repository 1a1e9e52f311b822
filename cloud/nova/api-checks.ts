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
      volumeId: z.uuid().optional(),
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

/** The fields of a Cinder volume nova-api's checks of a boot volume read. */
export interface BootVolumeFacts {
  id: string;
  sizeGb: number;
  status: string;
  bootable: boolean;
  /** The image the volume was made from (Cinder's volume_image_metadata image_id). */
  imageId: string | null;
}

/**
 * An existing volume as the root disk (source_type volume, boot_index 0), as nova-api checks it before it
 * answers: block_device.get_bdm_image_metadata (a volume the caller cannot get is InvalidBDMVolume, one not
 * bootable InvalidBDMVolumeNotBootable) and _validate_bdm's attachment_create (only an available volume can
 * be reserved: InvalidVolume). All are 400. Bootflow also needs the image the volume was made from.
 */
export async function checkExistingBootVolume(
  volumeId: string,
  lookup: (volumeId: string) => Promise<BootVolumeFacts>,
): Promise<BootVolumeFacts & { imageId: string }> {
  const volume = await lookup(volumeId).catch((err: unknown) => {
    if (err instanceof CloudError && (err.type === 'NotFound' || err.type === 'BadRequest')) {
      throw new CloudError(
        'BadRequest',
        `Block Device Mapping is Invalid: failed to get volume ${volumeId}.`,
        {
          volumeId,
        },
      );
    }
    throw err;
  });
  if (!volume.bootable) {
    throw new CloudError('BadRequest', `Block Device ${volume.id} is not bootable.`, { volumeId: volume.id });
  }
  if (volume.status !== 'available') {
    throw new CloudError(
      'BadRequest',
      `Invalid volume: Volume ${volume.id} status must be available to reserve, but the current status is ${volume.status}.`,
      { volumeId: volume.id, status: volume.status },
    );
  }
  if (volume.imageId === null) {
    throw new CloudError(
      'BadRequest',
      `Booting from volume ${volume.id}, which was not made from an image, is not supported by bootflow's compute API.`,
      { volumeId: volume.id },
    );
  }
  return { ...volume, imageId: volume.imageId };
}
