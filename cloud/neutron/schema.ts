/** Row types of the neutron database (see migrations.ts). Booleans are 0/1, timestamps epoch ms. */

export interface NetworksTable {
  id: string;
  name: string;
  description: string;
  project_id: string;
  shared: number;
  router_external: number;
  admin_state_up: number;
  status: string;
  mtu: number;
  request_key: string | null;
  created_at: number;
  updated_at: number;
}

export interface SubnetsTable {
  id: string;
  name: string;
  description: string;
  network_id: string;
  project_id: string;
  cidr: string;
  ip_version: number;
  gateway_ip: string | null;
  enable_dhcp: number;
  request_key: string | null;
  created_at: number;
  updated_at: number;
}

export interface IpAllocationPoolsTable {
  id: string;
  subnet_id: string;
  first_ip: string;
  last_ip: string;
}

export interface IpAllocationsTable {
  ip_address: string;
  subnet_id: string;
  network_id: string;
  port_id: string;
}

export interface PortsTable {
  id: string;
  name: string;
  description: string;
  network_id: string;
  project_id: string;
  mac_address: string;
  admin_state_up: number;
  status: string;
  device_id: string;
  device_owner: string;
  binding_host_id: string | null;
  binding_vif_type: string;
  binding_vif_details: string;
  binding_vnic_type: string;
  request_key: string | null;
  created_at: number;
  updated_at: number;
}

export interface SecurityGroupsTable {
  id: string;
  name: string;
  project_id: string;
  description: string;
  created_at: number;
}

export interface DefaultSecurityGroupsTable {
  project_id: string;
  security_group_id: string;
}

export interface SecurityGroupRulesTable {
  id: string;
  security_group_id: string;
  project_id: string;
  direction: string;
  ethertype: string;
  protocol: string | null;
  port_range_min: number | null;
  port_range_max: number | null;
  remote_ip_prefix: string | null;
  remote_group_id: string | null;
  description: string;
}

export interface SecurityGroupPortBindingsTable {
  port_id: string;
  security_group_id: string;
}

export interface DnsNameserversTable {
  address: string;
  subnet_id: string;
  /** The order the user gave: resolvers are tried in it. */
  order: number;
}

export interface SubnetRoutesTable {
  destination: string;
  nexthop: string;
  subnet_id: string;
}

export interface NeutronDb {
  dnsnameservers: DnsNameserversTable;
  subnetroutes: SubnetRoutesTable;
  networks: NetworksTable;
  subnets: SubnetsTable;
  ip_allocation_pools: IpAllocationPoolsTable;
  ipallocations: IpAllocationsTable;
  ports: PortsTable;
  security_groups: SecurityGroupsTable;
  default_security_groups: DefaultSecurityGroupsTable;
  security_group_rules: SecurityGroupRulesTable;
  securitygroupportbindings: SecurityGroupPortBindingsTable;
  allowedaddresspairs: AllowedAddressPairsTable;
  network_tags: ResourceTagsTable;
  subnet_tags: ResourceTagsTable;
  port_tags: ResourceTagsTable;
  security_group_tags: ResourceTagsTable;
  routers: RoutersTable;
  routerports: RouterPortsTable;
  routerroutes: RouterRoutesTable;
  floatingips: FloatingIpsTable;
  router_tags: ResourceTagsTable;
  floatingip_tags: ResourceTagsTable;
}

export interface RoutersTable {
  id: string;
  name: string;
  description: string;
  project_id: string;
  status: string;
  admin_state_up: number;
  gw_port_id: string | null;
  enable_snat: number;
  created_at: number;
  updated_at: number;
}

/** port_type: network:router_gateway or network:router_interface. */
export interface RouterPortsTable {
  port_id: string;
  router_id: string;
  port_type: string;
}

export interface RouterRoutesTable {
  destination: string;
  nexthop: string;
  router_id: string;
}

export interface FloatingIpsTable {
  id: string;
  description: string;
  project_id: string;
  floating_ip_address: string;
  floating_network_id: string;
  floating_port_id: string;
  fixed_port_id: string | null;
  fixed_ip_address: string | null;
  router_id: string | null;
  status: string;
  created_at: number;
  updated_at: number;
}

export interface AllowedAddressPairsTable {
  port_id: string;
  mac_address: string;
  /** An address or a CIDR. */
  ip_address: string;
}

export interface ResourceTagsTable {
  resource_id: string;
  tag: string;
}
