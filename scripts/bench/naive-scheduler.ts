/**
 * The baseline the scheduler is measured against: what a scheduler without placement's indexed query does
 * (Nova before placement): load every provider with its inventories and every host state, keep the hosts
 * with room, run the same Nova filters and weighers in JavaScript, and claim the best host (the next one
 * when the claim loses a race). Same rules, same claim; only the selection differs.
 */
import { CloudError, isCloudError } from '../../cloud/errors';
import type { Nova } from '../../cloud/nova';
import {
  RESOURCE_CLASSES,
  type Allocation,
  type AllocationCandidate,
  type Placement,
  type ResourceProvider,
  type Resources,
} from '../../cloud/placement';
import {
  defaultWeighers,
  filterHosts,
  weighHosts,
  type CandidateHost,
  type FilterSpec,
} from '../../cloud/scheduler';

function fits(provider: ResourceProvider, resources: Resources): boolean {
  return RESOURCE_CLASSES.every((rc) => {
    const amount = resources[rc] ?? 0;
    if (amount <= 0) return true;
    const inv = provider.inventories[rc];
    return (
      !!inv &&
      inv.capacity - inv.used >= amount &&
      amount >= inv.minUnit &&
      amount <= inv.maxUnit &&
      amount % inv.stepSize === 0
    );
  });
}

function candidateOf(provider: ResourceProvider): AllocationCandidate {
  const resources: AllocationCandidate['resources'] = {};
  for (const rc of RESOURCE_CLASSES) {
    const inv = provider.inventories[rc];
    if (inv) resources[rc] = { capacity: inv.capacity, used: inv.used, free: inv.capacity - inv.used };
  }
  return { providerUuid: provider.uuid, name: provider.name, generation: provider.generation, resources };
}

export interface NaiveRequest {
  instanceUuid: string;
  projectId: string;
  userId: string;
  resources: Resources;
  spec: FilterSpec;
}

export async function naiveSelectAndClaim(
  services: { placement: Placement; nova: Nova },
  req: NaiveRequest,
): Promise<Allocation> {
  const [providers, states] = await Promise.all([
    services.placement.listResourceProviders(),
    services.nova.listHostStates(),
  ]);
  const byNode = new Map(states.map((s) => [s.nodeUuid, s]));
  const hosts: CandidateHost[] = [];
  for (const provider of providers) {
    const state = byNode.get(provider.uuid);
    if (state && fits(provider, req.resources)) hosts.push({ state, candidate: candidateOf(provider) });
  }
  const { passed } = filterHosts(hosts, req.spec);
  // Nova's weighing over every passing host: normalization needs them all, so nothing stops early.
  const weighed = weighHosts(passed, defaultWeighers());
  for (const { host } of weighed) {
    try {
      return await services.placement.claim({
        consumerUuid: req.instanceUuid,
        providerUuid: host.state.nodeUuid,
        resources: req.resources,
        projectId: req.projectId,
        userId: req.userId,
      });
    } catch (err) {
      if (!isCloudError(err, 'AllocationCapacityExceeded') && !isCloudError(err, 'Conflict')) throw err;
    }
  }
  throw new CloudError('NoValidHost', 'No valid host was found (naive baseline).');
}
