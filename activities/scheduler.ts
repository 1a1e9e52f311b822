/**
 * nova-scheduler (and the conductor's part of rescheduling) on the controller: select a destination and
 * claim it in placement, claim an alternate after a failed build, release the instance's allocation.
 */
import { isCloudError } from '../cloud/errors';
import type { Placement } from '../cloud/placement';
import type { Scheduler } from '../cloud/scheduler';
import type { FlavorSpec, HostTarget, Selection } from '../workflows/types';
import { adaptAll } from './failures';

export interface SchedulerServices {
  scheduler: Scheduler;
  placement: Placement;
}

export interface ScheduleInput {
  instanceUuid: string;
  projectId: string;
  userId: string;
  flavor: FlavorSpec;
  imageProperties: Record<string, string>;
  bootFromVolume: boolean;
  availabilityZone: string | null;
  excludedHosts: string[];
  maxAttempts: number;
}

/** The conductor's claim on an alternate host after a failed build. */
export interface ClaimAlternateInput {
  instanceUuid: string;
  alternate: HostTarget;
  flavor: FlavorSpec;
  projectId: string;
  userId: string;
  bootFromVolume: boolean;
}

export function createSchedulerActivities({ scheduler, placement }: SchedulerServices) {
  return adaptAll({
    /** Filters, weighers and a placement claim on the best host; NoValidHost when none fits. */
    async selectDestinations(input: ScheduleInput): Promise<Selection> {
      const selection = await scheduler.selectDestinations({
        instanceUuid: input.instanceUuid,
        projectId: input.projectId,
        userId: input.userId,
        flavor: input.flavor,
        image: { properties: input.imageProperties },
        bootFromVolume: input.bootFromVolume,
        ...(input.availabilityZone ? { availabilityZone: input.availabilityZone } : {}),
        excludedHosts: input.excludedHosts,
        maxAttempts: input.maxAttempts,
      });
      return { selected: selection.selected, alternates: selection.alternates };
    },

    /** The conductor claims an alternate for a reschedule; false when it has no room any more. */
    async claimAlternate(input: ClaimAlternateInput): Promise<boolean> {
      const { instanceUuid, alternate, flavor, projectId, userId, bootFromVolume } = input;
      try {
        await scheduler.claimAlternate(instanceUuid, alternate, flavor, projectId, userId, {
          bootFromVolume,
        });
        return true;
      } catch (err) {
        if (isCloudError(err, 'AllocationCapacityExceeded') || isCloudError(err, 'Conflict')) return false;
        throw err;
      }
    },

    /** Idempotent: releasing an instance without allocations does nothing. */
    async releaseAllocation(input: { instanceUuid: string }): Promise<void> {
      await placement.releaseAllocations(input.instanceUuid);
    },
  });
}

export type SchedulerActivities = ReturnType<typeof createSchedulerActivities>;
