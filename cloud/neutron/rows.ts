/** Database rows → the public shapes in types.ts. */
import type { Kysely } from 'kysely';
import { parseIpv4 } from './ipv4';
import type { NeutronDb, NetworksTable, PortsTable, SubnetsTable } from './schema';
import type { Network, Port, PortStatus, Subnet, VifDetails, VifType } from './types';

/** What Neutron's OVS mechanism driver reports for a port bound on a host with the hybrid iptables firewall. */
export const OVS_VIF_DETAILS: VifDetails = {
  port_filter: true,
  ovs_hybrid_plug: true,
  bridge_name: 'br-int',
  datapath_type: 'system',
  connectivity: 'l2',
};

const PORT_STATUSES: readonly PortStatus[] = ['DOWN', 'BUILD', 'ACTIVE'];
const VIF_TYPES: readonly VifType[] = ['unbound', 'ovs', 'binding_failed'];

export function toNetwork(row: NetworksTable, subnetIds: string[]): Network {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    projectId: row.project_id,
    shared: row.shared === 1,
    external: row.router_external === 1,
    adminStateUp: row.admin_state_up === 1,
    status: 'ACTIVE',
    mtu: row.mtu,
    subnetIds,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export async function toSubnet(db: Kysely<NeutronDb>, row: SubnetsTable): Promise<Subnet> {
  const pools = await db
    .selectFrom('ip_allocation_pools')
    .select(['first_ip', 'last_ip'])
    .where('subnet_id', '=', row.id)
    .execute();
  const dns = await db
    .selectFrom('dnsnameservers')
    .select('address')
    .where('subnet_id', '=', row.id)
    .orderBy('order')
    .execute();
  const routes = await db
    .selectFrom('subnetroutes')
    .select(['destination', 'nexthop'])
    .where('subnet_id', '=', row.id)
    .orderBy('destination')
    .orderBy('nexthop')
    .execute();
  const byStart = (a: { first_ip: string }, b: { first_ip: string }) =>
    (parseIpv4(a.first_ip) ?? 0) - (parseIpv4(b.first_ip) ?? 0);
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    networkId: row.network_id,
    projectId: row.project_id,
    cidr: row.cidr,
    ipVersion: 4,
    gatewayIp: row.gateway_ip,
    enableDhcp: row.enable_dhcp === 1,
    allocationPools: pools.sort(byStart).map((p) => ({ start: p.first_ip, end: p.last_ip })),
    dnsNameservers: dns.map((d) => d.address),
    hostRoutes: routes.map((r) => ({ destination: r.destination, nexthop: r.nexthop })),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** Fixed IPs, security groups and allowed address pairs of many ports, a few queries per 500 ports. */
export async function toPorts(db: Kysely<NeutronDb>, rows: PortsTable[]): Promise<Port[]> {
  const fixedIps = new Map<string, Port['fixedIps']>();
  const groups = new Map<string, string[]>();
  const pairs = new Map<string, Port['allowedAddressPairs']>();
  for (let i = 0; i < rows.length; i += 500) {
    const ids = rows.slice(i, i + 500).map((r) => r.id);
    const allocations = await db
      .selectFrom('ipallocations')
      .select(['port_id', 'subnet_id', 'ip_address'])
      .where('port_id', 'in', ids)
      .execute();
    for (const a of allocations) {
      const list = fixedIps.get(a.port_id) ?? [];
      list.push({ subnetId: a.subnet_id, ipAddress: a.ip_address });
      fixedIps.set(a.port_id, list);
    }
    const bindings = await db
      .selectFrom('securitygroupportbindings')
      .select(['port_id', 'security_group_id'])
      .where('port_id', 'in', ids)
      .execute();
    for (const b of bindings) groups.set(b.port_id, [...(groups.get(b.port_id) ?? []), b.security_group_id]);
    const pairRows = await db
      .selectFrom('allowedaddresspairs')
      .select(['port_id', 'mac_address', 'ip_address'])
      .where('port_id', 'in', ids)
      .orderBy('ip_address')
      .orderBy('mac_address')
      .execute();
    for (const p of pairRows)
      pairs.set(p.port_id, [
        ...(pairs.get(p.port_id) ?? []),
        { ipAddress: p.ip_address, macAddress: p.mac_address },
      ]);
  }
  return rows.map((row) => {
    const vifType = VIF_TYPES.find((t) => t === row.binding_vif_type) ?? 'unbound';
    return {
      id: row.id,
      name: row.name,
      description: row.description,
      networkId: row.network_id,
      projectId: row.project_id,
      macAddress: row.mac_address,
      fixedIps: fixedIps.get(row.id) ?? [],
      status: PORT_STATUSES.find((s) => s === row.status) ?? 'DOWN',
      adminStateUp: row.admin_state_up === 1,
      deviceId: row.device_id,
      deviceOwner: row.device_owner,
      bindingHostId: row.binding_host_id,
      bindingVifType: vifType,
      bindingVifDetails: vifType === 'ovs' ? (JSON.parse(row.binding_vif_details) as VifDetails) : {},
      bindingVnicType: 'normal',
      securityGroupIds: groups.get(row.id) ?? [],
      allowedAddressPairs: pairs.get(row.id) ?? [],
      requestKey: row.request_key,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
    };
  });
}
