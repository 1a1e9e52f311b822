/** Neutron v2.0's resource bodies (api-ref/source/v2): networks, subnets, ports, security groups and rules. */
import type { Network, Port, SecurityGroup, SecurityGroupRule, Subnet } from '../../cloud/neutron';

/** Neutron's timestamps: ISO 8601 to the second, with a `Z`. */
export const neutronTime = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

const project = (id: string) => ({ tenant_id: id, project_id: id });

export function networkView(n: Network) {
  return {
    id: n.id,
    name: n.name,
    ...project(n.projectId),
    admin_state_up: n.adminStateUp,
    mtu: n.mtu,
    status: n.status,
    subnets: n.subnetIds,
    shared: n.shared,
    'router:external': n.external,
    availability_zone_hints: [] as string[],
    availability_zones: ['nova'],
    ipv4_address_scope: null,
    ipv6_address_scope: null,
    description: n.description,
    port_security_enabled: true,
    l2_adjacency: true,
    tags: [] as string[],
    created_at: neutronTime(n.createdAt),
    updated_at: neutronTime(n.updatedAt),
    revision_number: 1,
  };
}

export function subnetView(s: Subnet) {
  return {
    id: s.id,
    name: s.name,
    network_id: s.networkId,
    ...project(s.projectId),
    ip_version: s.ipVersion,
    cidr: s.cidr,
    gateway_ip: s.gatewayIp,
    enable_dhcp: s.enableDhcp,
    allocation_pools: s.allocationPools.map((p) => ({ start: p.start, end: p.end })),
    dns_nameservers: s.dnsNameservers,
    host_routes: s.hostRoutes.map((r) => ({ destination: r.destination, nexthop: r.nexthop })),
    ipv6_ra_mode: null,
    ipv6_address_mode: null,
    subnetpool_id: null,
    service_types: [] as string[],
    description: s.description,
    tags: [] as string[],
    created_at: neutronTime(s.createdAt),
    updated_at: neutronTime(s.updatedAt),
    revision_number: 1,
  };
}

/** Port binding attributes other than the vNIC type are admin only (Neutron's default policy). */
export function portView(p: Port, admin: boolean) {
  return {
    id: p.id,
    name: p.name,
    network_id: p.networkId,
    ...project(p.projectId),
    mac_address: p.macAddress,
    admin_state_up: p.adminStateUp,
    status: p.status,
    device_id: p.deviceId,
    device_owner: p.deviceOwner,
    fixed_ips: p.fixedIps.map((ip) => ({ subnet_id: ip.subnetId, ip_address: ip.ipAddress })),
    security_groups: p.securityGroupIds,
    allowed_address_pairs: p.allowedAddressPairs.map((a) => ({
      ip_address: a.ipAddress,
      mac_address: a.macAddress,
    })),
    extra_dhcp_opts: [] as unknown[],
    port_security_enabled: true,
    'binding:vnic_type': p.bindingVnicType,
    ...(admin
      ? {
          'binding:host_id': p.bindingHostId ?? '',
          'binding:vif_type': p.bindingVifType,
          'binding:vif_details': p.bindingVifDetails,
          'binding:profile': {},
        }
      : {}),
    description: p.description,
    tags: [] as string[],
    created_at: neutronTime(p.createdAt),
    updated_at: neutronTime(p.updatedAt),
    revision_number: 1,
  };
}

export function ruleView(r: SecurityGroupRule, group: SecurityGroup) {
  return {
    id: r.id,
    security_group_id: group.id,
    ...project(group.projectId),
    direction: r.direction,
    ethertype: r.ethertype,
    protocol: r.protocol,
    port_range_min: r.portRangeMin,
    port_range_max: r.portRangeMax,
    remote_ip_prefix: r.remoteIpPrefix,
    remote_group_id: r.remoteGroupId,
    remote_address_group_id: null,
    normalized_cidr: r.remoteIpPrefix,
    description: r.description,
    revision_number: 0,
  };
}

export function securityGroupView(g: SecurityGroup) {
  return {
    id: g.id,
    name: g.name,
    description: g.description,
    ...project(g.projectId),
    security_group_rules: g.rules.map((r) => ruleView(r, g)),
    stateful: true,
    shared: false,
    tags: [] as string[],
    revision_number: 1,
  };
}
