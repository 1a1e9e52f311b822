/**
 * Nova's weighers and weighing (nova/weights.py): each weigher's raw values are normalized to 0..1 over the
 * hosts being weighed, multiplied by the weigher's multiplier and summed; the highest total wins. Positive
 * RAM/CPU/disk multipliers spread instances, negative ones stack them.
 */
import type { CandidateHost, FilterSpec } from './filters';

export interface WeightMultipliers {
  /** ram_weight_multiplier, default 1.0 */
  ram?: number;
  /** cpu_weight_multiplier, default 1.0 */
  cpu?: number;
  /** disk_weight_multiplier, default 1.0 */
  disk?: number;
  /** build_failure_weight_multiplier, default 1000000.0 (applied negated: failures push a host down). */
  buildFailure?: number;
  /** soft_affinity_weight_multiplier, default 1.0 */
  softAffinity?: number;
  /** soft_anti_affinity_weight_multiplier, default 1.0 */
  softAntiAffinity?: number;
}

export const DEFAULT_WEIGHT_MULTIPLIERS: Required<WeightMultipliers> = {
  ram: 1.0,
  cpu: 1.0,
  disk: 1.0,
  buildFailure: 1_000_000.0,
  softAffinity: 1.0,
  softAntiAffinity: 1.0,
};

export interface HostWeigher {
  readonly name: string;
  readonly multiplier: number;
  /** The request's spec is there for the weighers that need it (the server group ones). */
  weigh(host: CandidateHost, spec?: FilterSpec): number;
}

/** _SoftAffinityWeigherBase: the group's members on the host, for the weigher's own policy only. */
const membersOn = (host: CandidateHost, spec: FilterSpec | undefined, policy: string): number =>
  spec?.serverGroup?.policy === policy ? (spec.serverGroup.members.get(host.state.host) ?? 0) : 0;

/** nova.weights.normalize: min..max onto 0..1; all equal → all 0. */
export function normalize(values: readonly number[]): number[] {
  if (values.length === 0) return [];
  let min = values[0] ?? 0;
  let max = min;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (min === max) return values.map(() => 0);
  const range = max - min;
  return values.map((v) => (v - min) / range);
}

const free = (host: CandidateHost, rc: 'VCPU' | 'MEMORY_MB' | 'DISK_GB'): number =>
  host.candidate.resources[rc]?.free ?? 0;

export function defaultWeighers(multipliers: WeightMultipliers = {}): HostWeigher[] {
  const m = { ...DEFAULT_WEIGHT_MULTIPLIERS, ...multipliers };
  return [
    // RAMWeigher: free_ram_mb.
    { name: 'RAMWeigher', multiplier: m.ram, weigh: (h) => free(h, 'MEMORY_MB') },
    // CPUWeigher: free vCPUs (total × cpu_allocation_ratio − used).
    { name: 'CPUWeigher', multiplier: m.cpu, weigh: (h) => free(h, 'VCPU') },
    // DiskWeigher: free_disk_mb.
    { name: 'DiskWeigher', multiplier: m.disk, weigh: (h) => free(h, 'DISK_GB') * 1024 },
    // BuildFailureWeigher: failed_builds with a negated multiplier.
    { name: 'BuildFailureWeigher', multiplier: -m.buildFailure, weigh: (h) => h.state.failedBuilds },
    // ServerGroupSoftAffinityWeigher: more members of the group on the host weigh more.
    {
      name: 'ServerGroupSoftAffinityWeigher',
      multiplier: m.softAffinity,
      weigh: (h, spec) => membersOn(h, spec, 'soft-affinity'),
    },
    // ServerGroupSoftAntiAffinityWeigher: the same count, negated.
    {
      name: 'ServerGroupSoftAntiAffinityWeigher',
      multiplier: m.softAntiAffinity,
      weigh: (h, spec) => -membersOn(h, spec, 'soft-anti-affinity'),
    },
  ];
}

export interface WeighedHost {
  host: CandidateHost;
  weight: number;
}

/**
 * BaseWeightHandler.get_weighed_objects: sum of multiplier × normalized weight, highest first. The sort is
 * stable, so equal weights keep placement's order (most free memory first).
 */
export function weighHosts(
  hosts: readonly CandidateHost[],
  weighers: readonly HostWeigher[],
  spec?: FilterSpec,
): WeighedHost[] {
  const weighed = hosts.map((host) => ({ host, weight: 0 }));
  if (weighed.length <= 1) return weighed;
  for (const weigher of weighers) {
    const normalized = normalize(hosts.map((h) => weigher.weigh(h, spec)));
    normalized.forEach((w, i) => {
      const entry = weighed[i];
      if (entry) entry.weight += weigher.multiplier * w;
    });
  }
  return weighed.sort((a, b) => b.weight - a.weight);
}
