/** Neutron's public shapes, as the workflow sees them. */

export type PortStatus = 'DOWN' | 'BUILD' | 'ACTIVE';
/** 'unbound' until bindPort, 'ovs' once bound, 'binding_failed' when no mechanism driver could bind it. */
export type VifType = 'unbound' | 'ovs' | 'binding_failed';

export interface Network {
  id: string;
  name: string;
  description: string;
  projectId: string;
  shared: boolean;
  external: boolean;
  adminStateUp: boolean;
  status: 'ACTIVE';
  mtu: number;
  subnetIds: string[];
  createdAt: number;
  updatedAt: number;
}

export interface AllocationPool {
  start: string;
  end: string;
}

/** A static route the DHCP server hands out with the subnet. */
export interface HostRoute {
  destination: string;
  nexthop: string;
}

export interface Subnet {
  id: string;
  name: string;
  description: string;
  networkId: string;
  projectId: string;
  cidr: string;
  ipVersion: 4;
  gatewayIp: string | null;
  enableDhcp: boolean;
  allocationPools: AllocationPool[];
  dnsNameservers: string[];
  hostRoutes: HostRoute[];
  createdAt: number;
  updatedAt: number;
}

export type { DhcpDetails } from '../../common/dhcp';

export interface FixedIp {
  subnetId: string;
  ipAddress: string;
}

export interface VifDetails {
  port_filter: boolean;
  ovs_hybrid_plug: boolean;
  bridge_name: string;
  datapath_type: string;
  connectivity: string;
}

/** An allowed address pair: an address or CIDR, and the MAC it may come from. */
export interface AddressPair {
  ipAddress: string;
  macAddress: string;
}

export interface Port {
  id: string;
  name: string;
  description: string;
  networkId: string;
  projectId: string;
  macAddress: string;
  fixedIps: FixedIp[];
  status: PortStatus;
  adminStateUp: boolean;
  deviceId: string;
  deviceOwner: string;
  bindingHostId: string | null;
  bindingVifType: VifType;
  bindingVifDetails: VifDetails | Record<string, never>;
  bindingVnicType: 'normal';
  securityGroupIds: string[];
  /** Neutron's allowed_address_pairs (address-pairs.ts). */
  allowedAddressPairs: AddressPair[];
  requestKey: string | null;
  createdAt: number;
  updatedAt: number;
}

export interface SecurityGroupRule {
  id: string;
  direction: 'ingress' | 'egress';
  ethertype: 'IPv4' | 'IPv6';
  protocol: string | null;
  portRangeMin: number | null;
  portRangeMax: number | null;
  remoteIpPrefix: string | null;
  remoteGroupId: string | null;
  description: string;
}

export interface SecurityGroup {
  id: string;
  name: string;
  projectId: string;
  description: string;
  /** The project's default group (Neutron's default_security_group_bindings). */
  isDefault: boolean;
  rules: SecurityGroupRule[];
}

/** The part of Keystone's token context that network visibility needs (Keystone's Ctx fits it). */
export interface NetworkViewer {
  projectId: string;
  roles: readonly string[];
}

export interface IpAllocation {
  ipAddress: string;
  subnetId: string;
  networkId: string;
  portId: string;
}
