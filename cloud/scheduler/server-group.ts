/**
 * The server group of the instance being placed (Nova's RequestSpec.instance_group, filled in by the
 * conductor's setup_instance_group): Nova implements ServerGroupSource; the scheduler turns the other
 * members into the hosts they run on (their placement allocation, else the host Nova recorded) and places
 * the members of one group one at a time, so that two members booting at once see each other's claim
 * (Nova checks the same race late, on the compute host, and reschedules).
 */
import type { Placement } from '../placement';
import type { HostStateSource } from './host-state';
import type { GroupSpec, ServerGroupPolicyName } from './request';

export interface SchedulingGroupInfo {
  uuid: string;
  policy: ServerGroupPolicyName;
  rules: { max_server_per_host?: number };
  /** The group's other live members and the host Nova has recorded for each (null while unplaced). */
  members: ReadonlyArray<{ uuid: string; host: string | null }>;
}

export interface ServerGroupSource {
  schedulingGroupOf(instanceUuid: string): Promise<SchedulingGroupInfo | null>;
}

/**
 * The same_host / different_host hints of the instance being placed (Nova's RequestSpec.scheduler_hints),
 * each named instance with the host Nova has recorded for it; a hint not given is absent.
 */
export interface SchedulingHints {
  sameHost?: ReadonlyArray<{ uuid: string; host: string | null }>;
  differentHost?: ReadonlyArray<{ uuid: string; host: string | null }>;
}

export interface SchedulerHintSource {
  schedulingHintsOf(instanceUuid: string): Promise<SchedulingHints | null>;
}

/**
 * One host name per placed member (a host with two members appears twice): its placement allocation's
 * provider, else the host Nova recorded. Also the hosts of the instances a scheduler hint names.
 */
export async function memberHosts(
  placement: Placement,
  hosts: HostStateSource,
  group: Pick<SchedulingGroupInfo, 'members'>,
): Promise<string[]> {
  const out: string[] = [];
  const byProvider = new Map<string, number>();
  for (const member of group.members) {
    const allocation = await placement.getAllocations(member.uuid);
    if (allocation) {
      byProvider.set(allocation.providerUuid, (byProvider.get(allocation.providerUuid) ?? 0) + 1);
    } else if (member.host) {
      out.push(member.host);
    }
  }
  if (byProvider.size > 0) {
    const states = await hosts.listHostStates({ nodeUuids: [...byProvider.keys()] });
    for (const state of states) {
      const n = byProvider.get(state.nodeUuid) ?? 0;
      for (let i = 0; i < n; i++) out.push(state.host);
    }
  }
  return out;
}

/** The scheduling request's view of the group. */
export function groupSpec(group: SchedulingGroupInfo, hosts: string[]): GroupSpec {
  return {
    policy: group.policy,
    hosts,
    ...(group.rules.max_server_per_host !== undefined
      ? { maxServerPerHost: group.rules.max_server_per_host }
      : {}),
  };
}

/** Runs the work of one key after the work queued before it for that key (a per-group lock, in-process). */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const before = this.tails.get(key) ?? Promise.resolve();
    let done!: () => void;
    const mine = new Promise<void>((resolve) => (done = resolve));
    const tail = before.then(() => mine);
    this.tails.set(key, tail);
    try {
      await before;
      return await work();
    } finally {
      done();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
