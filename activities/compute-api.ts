/**
 * nova-api on the controller: checks the request the way Nova's servers API does (policy, flavor, image
 * status and sizes, boot volume size or the existing boot volume, name), reserves quota, and answers the delete path's lookups. Network
 * visibility is neutron-server's call (activities/network.ts).
 */
import type { Cinder } from '../cloud/cinder';
import { CloudError } from '../cloud/errors';
import type { Glance } from '../cloud/glance';
import { enforce, enforceVisible, type Keystone } from '../cloud/keystone';
import {
  bootPlanRequestSchema,
  bootQuota,
  checkExistingBootVolume,
  checkImageFitsFlavor,
  flavorRefError,
  guestFlavor,
  operationRule,
  type BootPlanRequest,
  type Nova,
  type OperationName,
  type RebuildChanges,
} from '../cloud/nova';
import { parseRequest } from '../cloud/validation';
import type { BootPlan, InstanceSummary, QuotaAmounts, RebuildPlan } from '../workflows/types';
import { summaryOf } from './conductor';
import { adaptAll } from './failures';
import { contextForOngoingWork, contextOfGrant } from './identity';
import { activeImageFor } from './image';

export type { BootPlanRequest } from '../cloud/nova';

export interface ComputeApiServices {
  keystone: Keystone;
  nova: Nova;
  glance: Glance;
  cinder: Cinder;
}

export function createComputeApiActivities({ keystone, nova, glance, cinder }: ComputeApiServices) {
  return adaptAll({
    /** The servers API's checks; changes nothing. Returns what the later steps need, already resolved. */
    async validateBootRequest(input: { token: string; request: BootPlanRequest }): Promise<BootPlan> {
      const ctx = await contextOfGrant(keystone, input.token);
      enforce(ctx, 'compute:server:create', { projectId: ctx.projectId });
      const req = parseRequest(bootPlanRequestSchema, input.request, 'server create request');
      const viewer = { projectId: ctx.projectId, admin: ctx.roles.includes('admin') };
      const flavor = await nova.getFlavor(req.flavor, viewer).catch((err: unknown) => {
        throw flavorRefError(err);
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
      const existing = req.bootVolume?.volumeId;
      if (existing !== undefined) {
        // The same checks the compute API made before it answered: the volume may have changed since.
        const volume = await checkExistingBootVolume(existing, (id) =>
          cinder.getVolume(id, { projectId: ctx.projectId, roles: ctx.roles }),
        );
        if (volume.imageId !== image.id || volume.sizeGb !== req.bootVolume?.sizeGb) {
          throw new CloudError('BadRequest', `Volume ${existing} is not the volume the request describes.`, {
            volumeId: existing,
          });
        }
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
              ...(existing !== undefined ? { volumeId: existing } : {}),
            }
          : null,
        // An existing volume is already counted in Cinder's quota: only a volume the boot makes is claimed.
        quota: bootQuota(flavor, existing === undefined ? bootVolumeGb : null),
        availabilityZone: req.availabilityZone ?? null,
      };
    },

    /**
     * Quota for the whole boot, held by the instance uuid as consumer (idempotent per consumer), and whether
     * the claim is the boot's own to undo (not an instance's an earlier run of the boot recorded).
     */
    async reserveQuota(input: {
      token: string;
      instanceUuid: string;
      amounts: QuotaAmounts;
    }): Promise<{ ownClaim: boolean }> {
      const ctx = await contextForOngoingWork(keystone, input.token);
      return nova.claimBootQuota(ctx.projectId, input.instanceUuid, input.amounts);
    },

    async releaseQuota(input: { instanceUuid: string }): Promise<void> {
      await nova.releaseQuota(input.instanceUuid);
    },

    /** The delete path's lookup: NotFound for an unknown server or another project's, as Nova answers. */
    async getInstanceForDelete({
      token,
      instanceUuid,
    }: {
      token: string;
      instanceUuid: string;
    }): Promise<InstanceSummary> {
      const ctx = await contextOfGrant(keystone, token);
      const instance = await nova.getInstance(instanceUuid, { includeDeleted: true });
      enforceVisible(
        ctx,
        'compute:server:delete',
        { projectId: instance.projectId },
        `Instance ${instanceUuid} could not be found.`,
      );
      return summaryOf(instance);
    },

    /**
     * nova-api's begin of a day-two operation (stop, start, reboot, ...): the policy (another project's
     * server is NotFound), the state checks, the guarded task_state save and the instance action. The
     * servers API has done it already when it started the workflow: then this finds the action and returns.
     */
    async beginServerOperation(input: {
      token: string;
      instanceUuid: string;
      requestId: string;
      operation: OperationName;
      /** A rebuild's changes (the new image, name, metadata, access IPs). */
      rebuild?: RebuildChanges;
    }): Promise<InstanceSummary> {
      const ctx = await contextOfGrant(keystone, input.token);
      const instance = await nova.getInstance(input.instanceUuid);
      const rule = operationRule(input.operation);
      enforceVisible(
        ctx,
        `compute:server:${rule.action}` as 'compute:server:stop',
        { projectId: instance.projectId },
        `Instance ${input.instanceUuid} could not be found.`,
      );
      const begun = await nova.beginOperation({
        instanceUuid: input.instanceUuid,
        requestId: input.requestId,
        operation: input.operation,
        userId: ctx.userId,
        projectId: instance.projectId,
        ...(input.rebuild ? { rebuild: input.rebuild } : {}),
      });
      return summaryOf(begun);
    },

    /**
     * What the host's rebuild needs, read once begun: the instance's (new) image as the caller may see it,
     * active, with its location, and the name and flavor the guest is defined with.
     */
    async rebuildPlan(input: { token: string; instanceUuid: string }): Promise<RebuildPlan> {
      const ctx = await contextForOngoingWork(keystone, input.token);
      const instance = await nova.getInstance(input.instanceUuid);
      if (!instance.imageRef)
        throw new CloudError('BadRequest', `Instance ${instance.uuid} has no image to rebuild from`);
      const { spec } = await activeImageFor(glance, instance.imageRef, ctx);
      return {
        name: instance.name,
        flavor: guestFlavor(instance.flavor),
        image: spec,
      };
    },
  });
}

export type ComputeApiActivities = ReturnType<typeof createComputeApiActivities>;
