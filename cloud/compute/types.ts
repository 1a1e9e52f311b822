/** The compute host's vocabulary: capabilities, domains and power states, VIFs, volume connections. */
import { z } from 'zod';

// nova-compute speaks Nova's power_state vocabulary; it has one home in nova/states.ts.
import { POWER_STATES as POWER_STATE, type PowerState } from '../nova/states';
export { POWER_STATE, type PowerState };

export const hostCapabilitiesSchema = z.strictObject({
  vcpus: z.number().int().min(1).max(4096),
  memoryMb: z
    .number()
    .int()
    .min(64)
    .max(64 * 1024 * 1024),
  diskGb: z
    .number()
    .int()
    .min(1)
    .max(1024 * 1024),
  cpuArch: z.enum(['x86_64', 'aarch64', 'ppc64le', 's390x']),
  hypervisorType: z.string().min(1).max(64),
  availabilityZone: z.string().min(1).max(255),
});
export type HostCapabilities = z.infer<typeof hostCapabilitiesSchema>;

export interface DomainInterface {
  portId: string;
  macAddress: string;
  bridge: string;
  tap: string;
}

export interface DomainVolume {
  device: string;
  path: string;
  volumeId: string | null;
}

/** What a virt driver needs to define and start a guest. */
export interface DomainSpec {
  uuid: string;
  name: string;
  vcpus: number;
  memoryMb: number;
  cpuArch: string;
  diskPath: string;
  diskFormat: 'raw' | 'qcow2';
  /** AMI-style boot: the cached kernel (aki) and ramdisk (ari) images; null boots from the disk. */
  kernelPath: string | null;
  ramdiskPath: string | null;
  /** The serial console's log file. */
  consoleLogPath: string;
  interfaces: DomainInterface[];
  volumes: DomainVolume[];
}

/** The domain definition file's content before spawn, when vCPUs and memory may not be known yet. */
export type DomainDefinition = Omit<DomainSpec, 'vcpus' | 'memoryMb'> & {
  vcpus: number | null;
  memoryMb: number | null;
};

export interface DomainInfo {
  uuid: string;
  name: string;
  powerState: PowerState;
  vcpus: number;
  memoryMb: number;
  driver: string;
  createdAt: number;
  updatedAt: number;
}

/**
 * A plugged port: its bridge (the fake agent's hybrid-plug `qbr…`, the Linux-bridge agent's network bridge
 * `brq…`) and the guest's tap device (`tap…`).
 */
export interface VifRecord {
  portId: string;
  macAddress: string;
  bridge: string;
  tap: string;
  instanceUuid: string | null;
  networkId: string | null;
  /** The fixed IP the DHCP server hands this MAC (null when the port had none). */
  ipAddress: string | null;
  vifType: string;
  pluggedAt: number;
}

export interface VolumeConnection {
  volumeId: string | null;
  instanceUuid: string | null;
  path: string;
  /** Guest device name, vdb onwards (vda is the root disk). */
  device: string;
  connectedAt: number;
}

export interface FetchProgress {
  bytesDone: number;
  bytesTotal: number;
}

export interface FetchImageResult {
  path: string;
  /** True when this call did not download (the image was cached, or another caller downloaded it). */
  cacheHit: boolean;
  bytes: number;
}

export interface InstanceDir {
  uuid: string;
  path: string;
  diskPath: string;
  domainDefinitionPath: string;
  /** Apparent size of the root disk. */
  diskSizeBytes: number;
  /** False when the directory already existed (a retry). */
  created: boolean;
}
