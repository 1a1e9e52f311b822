/**
 * Compute hosts as the controller sees them: what a host reports when it starts (its capabilities), turned
 * into a Nova service record + compute node and a Placement resource provider with its inventory.
 */
import type { HostCapabilities } from './compute';
import type { Nova } from './nova';
import type { Placement } from './placement';

export interface HostSpec extends HostCapabilities {
  host: string;
}

/** What the host itself knows of its hardware (its ComputeHost capabilities). */
export function capabilitiesOf(spec: HostSpec): HostCapabilities {
  const { host: _host, ...capabilities } = spec;
  return capabilities;
}

/** The demo's three compute nodes, of different sizes so the weighers have something to weigh. */
export const DEFAULT_HOSTS: readonly HostSpec[] = [
  {
    host: 'compute1',
    availabilityZone: 'nova',
    vcpus: 8,
    memoryMb: 16384,
    diskGb: 160,
    cpuArch: 'x86_64',
    hypervisorType: 'QEMU',
  },
  {
    host: 'compute2',
    availabilityZone: 'nova',
    vcpus: 16,
    memoryMb: 32768,
    diskGb: 320,
    cpuArch: 'x86_64',
    hypervisorType: 'QEMU',
  },
  {
    host: 'compute3',
    availabilityZone: 'nova',
    vcpus: 4,
    memoryMb: 8192,
    diskGb: 80,
    cpuArch: 'x86_64',
    hypervisorType: 'QEMU',
  },
];

export function defaultHostSpec(host: string): HostSpec {
  const known = DEFAULT_HOSTS.find((spec) => spec.host === host);
  return known ?? { ...DEFAULT_HOSTS[0]!, host };
}

/**
 * Registers (or re-registers) a compute host: Nova's service record and compute node (which count as a
 * heartbeat) and the resource provider whose uuid is the node's uuid, as nova-compute's resource tracker does.
 */
export async function registerComputeHost(
  services: { nova: Nova; placement: Placement },
  spec: HostSpec,
): Promise<{ host: string; nodeUuid: string }> {
  const node = await services.nova.registerComputeHost(spec);
  await services.placement.ensureResourceProvider({
    uuid: node.nodeUuid,
    name: spec.host,
    inventories: {
      VCPU: { total: spec.vcpus },
      MEMORY_MB: { total: spec.memoryMb },
      DISK_GB: { total: spec.diskGb },
    },
  });
  return { host: spec.host, nodeUuid: node.nodeUuid };
}
