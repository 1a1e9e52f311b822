export {
  ComputeHost,
  type ComputeHostOptions,
  type DestroyResult,
  type OperationOptions,
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
export { FakeDriver, type VirtDriver } from './virt-driver';
export type { ConnectionInfo, ConnectTarget } from './volume-connector';
export * from './types';
