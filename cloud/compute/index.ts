export {
  ComputeHost,
  type ComputeHostOptions,
  type DestroyResult,
  type OperationOptions,
  VIRT_DRIVER_TYPES,
  type VirtDriverType,
} from './compute-host';
export { FAULT_OPERATIONS, type FaultOperation, type FaultSpec } from './faults';
export type { FetchOptions } from './image-cache';
export type { HostLeakFinding, HostLeakKind } from './host-audit';
export { removeCloudFromMachine } from './machine-cleanup';
export {
  deviceNames,
  NETWORK_AGENTS,
  type DhcpNetwork,
  type NetworkAgentKind,
  type PlugPort,
} from './network-agent';
export type { CreateInstanceDirInput, SpawnInput } from './requests';
export {
  FakeDriver,
  FAKE_CONSOLE_OUTPUT,
  REBOOT_TYPES,
  type RebootType,
  type VirtDriver,
} from './virt-driver';
export {
  createQcow2Overlay,
  listQemuProcesses,
  QEMU_BINARY,
  QemuDriver,
  type QemuDriverOptions,
  type QemuProcess,
} from './qemu-driver';
export type { ConnectionInfo, ConnectTarget } from './volume-connector';
export * from './types';
