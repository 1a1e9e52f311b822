/**
 * nova-api and nova-conductor on the controller for evacuate: the API's checks and the `evacuate` action
 * (task_state rebuilding), what the rebuild on another host needs (flavor, image, scheduler hints), the
 * conductor's writes as it goes (rebuild_spawning, the new host, or ERROR with a fault), the servers of a
 * host for `bootflow host evacuate`, and the answer to a restarted host's init_host: which of its guests
 * were evacuated away.
 */
import { CloudError, isCloudError } from '../cloud/errors';
import type { Glance } from '../cloud/glance';
import { enforce, enforceVisible, type Keystone } from '../cloud/keystone';
import { guestFlavor, type FaultRecord, type Nova } from '../cloud/nova';
import type { FlavorSpec, ImageSpec } from '../workflows/types';
import { adaptAll } from './failures';
import { contextForOngoingWork, contextOfGrant } from './identity';
import { activeImageFor } from './image';

export interface EvacuateServices {
  keystone: Keystone;
  nova: Nova;
  glance: Glance;
}

/** What the rebuild on the destination needs, resolved once by nova-api. */
export interface EvacuationPlan {
  sourceHost: string;
  excludedHosts: string[];
  projectId: string;
  userId: string;
  name: string;
  flavor: FlavorSpec;
  /** null for a server booted from a volume (its root disk is the volume, reattached on the new host). */
  image: ImageSpec | null;
  availabilityZone: string | null;
}

export function createEvacuateActivities({ keystone, nova, glance }: EvacuateServices) {
  return adaptAll({
    /** os-evacuate's checks (admin), then task_state rebuilding and the `evacuate` action. */
    async beginEvacuate(input: {
      token: string;
      requestId: string;
      instanceUuid: string;
      targetHost?: string;
    }): Promise<EvacuationPlan> {
      const ctx = await contextForOngoingWork(keystone, input.token);
      const instance = await nova.getInstance(input.instanceUuid).catch((err: unknown) => {
        if (isCloudError(err, 'BadRequest'))
          throw new CloudError('NotFound', `Instance ${input.instanceUuid} could not be found.`);
        throw err;
      });
      enforceVisible(
        ctx,
        'os_compute_api:os-evacuate',
        { projectId: instance.projectId },
        `Instance ${instance.uuid} could not be found.`,
      );
      const start = await nova.evacuations.begin({
        instanceUuid: instance.uuid,
        requestId: input.requestId,
        userId: ctx.userId,
        ...(input.targetHost === undefined ? {} : { targetHost: input.targetHost }),
      });
      const image =
        instance.bootFromVolume || !instance.imageRef
          ? null
          : (await activeImageFor(glance, instance.imageRef, ctx)).spec;
      return {
        sourceHost: start.sourceHost,
        excludedHosts: start.excludedHosts,
        projectId: instance.projectId,
        userId: instance.userId,
        name: instance.name,
        flavor: guestFlavor(instance.flavor),
        image,
        availabilityZone: instance.availabilityZone,
      };
    },

    async evacuateSpawning(input: { instanceUuid: string; requestId: string; host: string }): Promise<void> {
      await nova.evacuations.spawning(input);
    },

    async finishEvacuate(input: {
      instanceUuid: string;
      requestId: string;
      host: string;
      node: string;
    }): Promise<void> {
      await nova.evacuations.finish(input);
    },

    async failEvacuate(input: {
      instanceUuid: string;
      requestId: string;
      fault: FaultRecord;
    }): Promise<void> {
      await nova.evacuations.fail({
        instanceUuid: input.instanceUuid,
        requestId: input.requestId,
        fault: {
          code: input.fault.code,
          message: input.fault.message,
          ...(input.fault.details ? { details: input.fault.details } : {}),
          ...(input.fault.host ? { host: input.fault.host } : {}),
        },
      });
    },

    /** `bootflow host evacuate`: the live servers whose host is `host` (admin). */
    async listHostServers(input: { token: string; host: string }): Promise<string[]> {
      enforce(await contextOfGrant(keystone, input.token), 'os_compute_api:os-evacuate');
      const all = await nova.listInstances({ allProjects: true });
      return all.filter((i) => i.host === input.host && !i.deleted).map((i) => i.uuid);
    },

    /** A restarted host's init_host asks which of its local guests were evacuated elsewhere. */
    async evacuatedInstances(input: { host: string; localInstanceUuids: string[] }): Promise<string[]> {
      return nova.evacuations.evacuatedFrom(input);
    },
  });
}

export type EvacuateActivities = ReturnType<typeof createEvacuateActivities>;
