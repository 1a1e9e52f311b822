/**
 * The activities of each worker role, as factories closing over the services that role runs:
 *   controller      Keystone, nova-api, nova-conductor, nova-scheduler/placement, cinder-api (+ Glance metadata)
 *   network         neutron-server
 *   compute@<host>  nova-compute and the network agent of one host
 */
import type { Cinder } from '../cloud/cinder';
import type { Glance } from '../cloud/glance';
import type { Keystone } from '../cloud/keystone';
import type { Nova } from '../cloud/nova';
import type { Placement } from '../cloud/placement';
import type { Scheduler } from '../cloud/scheduler';
import { createComputeApiActivities } from './compute-api';
import { createConductorActivities } from './conductor';
import { createEvacuateActivities } from './evacuate';
import { createIdentityActivities } from './identity';
import { createReconcilerActivities } from './reconciler';
import { createSchedulerActivities } from './scheduler';
import { createServerVolumeActivities } from './server-volumes';
import { createSnapshotActivities } from './snapshot';
import { createVolumeActivities } from './volume';

export { createNetworkActivities, type NetworkActivities } from './network';
export { createComputeActivities, type ComputeActivities } from './compute-host';

export interface ControllerServices {
  keystone: Keystone;
  nova: Nova;
  placement: Placement;
  scheduler: Scheduler;
  glance: Glance;
  cinder: Cinder;
}

export function createControllerActivities(services: ControllerServices) {
  const { keystone, nova, placement, scheduler, glance, cinder } = services;
  return {
    ...createIdentityActivities(keystone),
    ...createComputeApiActivities({ keystone, nova, glance, cinder }),
    ...createConductorActivities(nova),
    ...createReconcilerActivities(nova),
    ...createSchedulerActivities({ scheduler, placement }),
    ...createVolumeActivities({ cinder, identity: keystone }),
    ...createServerVolumeActivities({ keystone, nova, cinder }),
    ...createEvacuateActivities({ keystone, nova, glance }),
    ...createSnapshotActivities({ glance }),
  };
}

export type ControllerActivities = ReturnType<typeof createControllerActivities>;
