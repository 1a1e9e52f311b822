/**
 * Nova's host filters, each a yes/no on one host for one request. Placement already removed the hosts
 * without room; these check what placement does not know (service state, image needs, zone, groups).
 */
import type { AllocationCandidate } from '../placement';
import type { HostState } from './host-state';
import {
  canonicalArch,
  canonicalHvType,
  type ImageRequirements,
  type ServerGroupPolicyName,
} from './request';

/** A candidate host: Nova's view of it joined with placement's numbers. */
export interface CandidateHost {
  state: HostState;
  candidate: AllocationCandidate;
}

export interface FilterSpec {
  image: ImageRequirements;
  availabilityZone?: string;
  serverGroup?: ServerGroupFilterSpec;
  /** The same_host hint: the hosts running the instances it names (given and not empty). */
  sameHost?: ReadonlySet<string>;
  /** The different_host hint: the hosts running the instances it names. */
  differentHost?: ReadonlySet<string>;
  ignoreHosts: ReadonlySet<string>;
}

/** The group as the filters and weighers see it: members per host, and anti-affinity's limit per host. */
export interface ServerGroupFilterSpec {
  policy: ServerGroupPolicyName;
  /** The hosts of the other members. */
  hosts: ReadonlySet<string>;
  /** How many other members each host runs. */
  members: ReadonlyMap<string, number>;
  /** max_server_per_host (1 without the rule). */
  maxServerPerHost: number;
}

export function serverGroupFilterSpec(group: {
  policy: ServerGroupPolicyName;
  hosts: readonly string[];
  maxServerPerHost?: number | undefined;
}): ServerGroupFilterSpec {
  const members = new Map<string, number>();
  for (const host of group.hosts) members.set(host, (members.get(host) ?? 0) + 1);
  return {
    policy: group.policy,
    hosts: new Set(members.keys()),
    members,
    maxServerPerHost: group.maxServerPerHost ?? 1,
  };
}

/** The hosts anti-affinity rules out: those already running max_server_per_host members. */
export function antiAffinityFull(group: ServerGroupFilterSpec): string[] {
  return [...group.members].filter(([, n]) => n >= group.maxServerPerHost).map(([host]) => host);
}

export interface HostFilter {
  readonly name: string;
  passes(host: CandidateHost, spec: FilterSpec): boolean;
}

/** Nova's host manager strips the request's ignore_hosts (the hosts already tried) before filtering. */
export const ignoreHostsFilter: HostFilter = {
  name: 'IgnoreHosts',
  passes: ({ state }, spec) => !spec.ignoreHosts.has(state.host),
};

/** ComputeFilter: the nova-compute service is up and enabled. */
export const computeFilter: HostFilter = {
  name: 'ComputeFilter',
  passes: ({ state }) => state.up && !state.disabled,
};

/** AvailabilityZoneFilter: when the request names a zone, the host is in it. */
export const availabilityZoneFilter: HostFilter = {
  name: 'AvailabilityZoneFilter',
  passes: ({ state }, spec) => !spec.availabilityZone || state.availabilityZone === spec.availabilityZone,
};

/**
 * The (architecture, hypervisor type) pairs a host can run. A KVM host also runs plain QEMU guests, as
 * libvirt reports both domain types for it.
 */
function supportedInstances(state: HostState): Array<[string, string]> {
  const arch = canonicalArch(state.cpuArch);
  const hv = canonicalHvType(state.hypervisorType);
  return hv === 'kvm'
    ? [
        [arch, 'kvm'],
        [arch, 'qemu'],
      ]
    : [[arch, hv]];
}

/** ImagePropertiesFilter: hw_architecture and img_hv_type of the image are among the host's supported ones. */
export const imagePropertiesFilter: HostFilter = {
  name: 'ImagePropertiesFilter',
  passes: ({ state }, { image }) => {
    if (!image.arch && !image.hvType) return true;
    return supportedInstances(state).some(
      ([arch, hv]) => (!image.arch || image.arch === arch) && (!image.hvType || image.hvType === hv),
    );
  },
};

/**
 * ServerGroupAntiAffinityFilter: not on a host that already runs max_server_per_host members of the group
 * (one without the rule).
 */
export const serverGroupAntiAffinityFilter: HostFilter = {
  name: 'ServerGroupAntiAffinityFilter',
  passes: ({ state }, { serverGroup }) =>
    serverGroup?.policy !== 'anti-affinity' ||
    (serverGroup.members.get(state.host) ?? 0) < serverGroup.maxServerPerHost,
};

/** ServerGroupAffinityFilter: on the members' host; the group's first member may go anywhere. */
export const serverGroupAffinityFilter: HostFilter = {
  name: 'ServerGroupAffinityFilter',
  passes: ({ state }, { serverGroup }) =>
    serverGroup?.policy !== 'affinity' || serverGroup.hosts.size === 0 || serverGroup.hosts.has(state.host),
};

/**
 * SameHostFilter (nova/scheduler/filters/affinity_filter.py): with the same_host hint, only a host running
 * one of the instances it names; an instance named that runs nowhere (or does not exist) leaves no host.
 */
export const sameHostFilter: HostFilter = {
  name: 'SameHostFilter',
  passes: ({ state }, { sameHost }) => sameHost === undefined || sameHost.has(state.host),
};

/** DifferentHostFilter: with the different_host hint, no host running one of the instances it names. */
export const differentHostFilter: HostFilter = {
  name: 'DifferentHostFilter',
  passes: ({ state }, { differentHost }) => differentHost === undefined || !differentHost.has(state.host),
};

/**
 * Nova's default enabled_filters order, with the ignore-hosts step of its host manager first, and
 * SameHostFilter and DifferentHostFilter as DevStack enables them (both pass every host without their hint).
 */
export const DEFAULT_FILTERS: readonly HostFilter[] = [
  ignoreHostsFilter,
  availabilityZoneFilter,
  computeFilter,
  imagePropertiesFilter,
  serverGroupAntiAffinityFilter,
  serverGroupAffinityFilter,
  sameHostFilter,
  differentHostFilter,
];

export interface FilterResult {
  passed: CandidateHost[];
  /** How many hosts each filter removed (Nova logs the same per filter). */
  rejectedBy: Record<string, number>;
}

export function filterHosts(
  hosts: readonly CandidateHost[],
  spec: FilterSpec,
  filters = DEFAULT_FILTERS,
): FilterResult {
  const rejectedBy: Record<string, number> = {};
  const passed: CandidateHost[] = [];
  for (const host of hosts) {
    const failed = filters.find((f) => !f.passes(host, spec));
    if (failed) rejectedBy[failed.name] = (rejectedBy[failed.name] ?? 0) + 1;
    else passed.push(host);
  }
  return { passed, rejectedBy };
}
