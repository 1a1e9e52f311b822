/**
 * nova-api on the controller: checks the request the way Nova's servers API does (policy, flavor, image
 * status and sizes, boot volume size, name), reserves quota, and answers the delete path's lookups. Network
 * visibility is neutron-server's call (activities/network.ts).
 */
import { z } from 'zod';
import { CloudError } from '../cloud/errors';
import type { Glance } from '../cloud/glance';
import { enforce, enforceVisible, type Keystone } from '../cloud/keystone';
import type { Nova } from '../cloud/nova';
import { nameSchema, parseRequest } from '../cloud/validation';
import type { BootPlan, FlavorSpec, InstanceSummary, QuotaAmounts } from '../workflows/types';
import { adaptAll } from './failures';
import { contextForOngoingWork } from './identity';
import { activeImageFor } from './image';

const GIB = 1024 ** 3;

export interface BootPlanRequest {
  name: string;
  flavor: string;
  image: string;
  bootVolume?: { sizeGb: number; deleteOnTermination?: boolean };
  availabilityZone?: string;
  keyName?: string;
}

const planRequestSchema = z.strictObject({
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

export interface ComputeApiServices {
  keystone: Keystone;
  nova: Nova;
  glance: Glance;
}

function checkImageFitsFlavor(
  image: { id: string; minDisk: number; minRam: number; size: number | null; virtualSize: number | null },
  flavor: FlavorSpec,
  bootVolumeGb: number | null,
): void {
  if (image.minRam > flavor.memoryMb) {
    throw new CloudError(
      'FlavorMemoryTooSmall',
      `Flavor's memory is too small for requested image (flavor ${flavor.memoryMb} MB, image min_ram ${image.minRam} MB).`,
      { flavor: flavor.name, imageId: image.id },
    );
  }
  const bytes = Math.max(image.size ?? 0, image.virtualSize ?? 0);
  if (bootVolumeGb !== null) {
    // The root disk is the volume: the volume, not the flavor, must hold the image (Nova's BDM checks).
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

function quotaFor(flavor: FlavorSpec, bootVolumeGb: number | null): QuotaAmounts {
  const amounts: QuotaAmounts = { instances: 1, cores: flavor.vcpus, ram: flavor.memoryMb };
  if (bootVolumeGb !== null) Object.assign(amounts, { volumes: 1, gigabytes: bootVolumeGb });
  return amounts;
}

export function createComputeApiActivities({ keystone, nova, glance }: ComputeApiServices) {
  return adaptAll({
    /** The servers API's checks; changes nothing. Returns what the later steps need, already resolved. */
    async validateBootRequest(token: string, input: BootPlanRequest): Promise<BootPlan> {
      const ctx = await keystone.validateToken(token);
      enforce(ctx, 'compute:server:create', { projectId: ctx.projectId });
      const req = parseRequest(planRequestSchema, input, 'server create request');
      const flavor = await nova.getFlavor(req.flavor).catch((err: unknown) => {
        // Nova answers an unknown flavorRef with 400 (the request is wrong), not 404.
        if (err instanceof CloudError && err.type === 'NotFound')
          throw new CloudError('BadRequest', err.message);
        throw err;
      });
      const { image, spec: imageSpec } = await activeImageFor(glance, req.image, ctx);
      if (req.availabilityZone !== undefined) {
        const zones = new Set((await nova.listComputeHosts()).map((h) => h.availabilityZone));
        if (!zones.has(req.availabilityZone)) {
          // Nova's API refuses it up front (InvalidRequest), before any instance exists.
          throw new CloudError('BadRequest', 'The requested availability zone is not available', {
            availabilityZone: req.availabilityZone,
          });
        }
      }
      if (req.keyName !== undefined) {
        // Nova's servers API: a key pair the user does not have is 400 "Invalid key_name provided."
        await nova.getKeyPair(ctx.userId, req.keyName).catch((err: unknown) => {
          if (err instanceof CloudError && err.type === 'NotFound')
            throw new CloudError('BadRequest', 'Invalid key_name provided.', { keyName: req.keyName });
          throw err;
        });
      }
      const bootVolumeGb = req.bootVolume?.sizeGb ?? null;
      checkImageFitsFlavor(image, flavor, bootVolumeGb);
      return {
        projectId: ctx.projectId,
        userId: ctx.userId,
        name: req.name,
        flavor,
        image: imageSpec,
        bootVolume: req.bootVolume
          ? // Nova's block_device_mapping_v2 default: the volume outlives the server unless asked otherwise.
            {
              sizeGb: req.bootVolume.sizeGb,
              deleteOnTermination: req.bootVolume.deleteOnTermination ?? false,
            }
          : null,
        quota: quotaFor(flavor, bootVolumeGb),
        availabilityZone: req.availabilityZone ?? null,
      };
    },

    /** Quota for the whole boot, held by the instance uuid as consumer (idempotent per consumer). */
    async reserveQuota(token: string, instanceUuid: string, amounts: QuotaAmounts): Promise<void> {
      const ctx = await contextForOngoingWork(keystone, token);
      await nova.claimQuota(ctx.projectId, instanceUuid, amounts);
    },

    async releaseQuota(instanceUuid: string): Promise<void> {
      await nova.releaseQuota(instanceUuid);
    },

    /** The delete path's lookup: NotFound for an unknown server or another project's, as Nova answers. */
    async getInstanceForDelete(token: string, instanceUuid: string): Promise<InstanceSummary> {
      const ctx = await keystone.validateToken(token);
      const instance = await nova.getInstance(instanceUuid, { includeDeleted: true });
      enforceVisible(
        ctx,
        'compute:server:delete',
        { projectId: instance.projectId },
        `Instance ${instanceUuid} could not be found.`,
      );
      return {
        uuid: instance.uuid,
        requestId: instance.requestId,
        projectId: instance.projectId,
        host: instance.host,
        vmState: instance.vmState,
        taskState: instance.taskState,
        deleted: instance.deleted,
      };
    },
  });
}

export type ComputeApiActivities = ReturnType<typeof createComputeApiActivities>;
