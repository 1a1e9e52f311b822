/**
 * IPAM: picks a fixed IP for a new port inside the port's write transaction. The caller holds the network
 * row lock (FOR UPDATE; SQLite's write transaction is exclusive anyway), so allocations on one network are
 * serialized and the lowest free address is never handed out twice; the (subnet_id, ip_address) primary key
 * of ipallocations is the last line of defence.
 */
import type { Kysely } from 'kysely';
import { CloudError } from '../errors';
import { cidrContains, firstFreeAddress, formatIpv4, parseIpv4, type Ipv4Range } from './ipv4';
import type { NeutronDb, SubnetsTable } from './schema';
import { parseSubnetCidr } from './subnet-plan';
import type { FixedIp } from './types';

export interface FixedIpRequest {
  subnetId?: string;
  ipAddress?: string;
  /** A router interface port may take its subnet's gateway address (add_router_interface). */
  allowGateway?: boolean;
}

async function poolsOf(trx: Kysely<NeutronDb>, subnetId: string): Promise<Ipv4Range[]> {
  const rows = await trx
    .selectFrom('ip_allocation_pools')
    .select(['first_ip', 'last_ip'])
    .where('subnet_id', '=', subnetId)
    .execute();
  return rows
    .map((row) => ({ first: parseIpv4(row.first_ip) ?? 0, last: parseIpv4(row.last_ip) ?? -1 }))
    .sort((a, b) => a.first - b.first);
}

async function takenAddresses(trx: Kysely<NeutronDb>, subnetId: string): Promise<Set<number>> {
  const rows = await trx
    .selectFrom('ipallocations')
    .select('ip_address')
    .where('subnet_id', '=', subnetId)
    .execute();
  return new Set(rows.map((row) => parseIpv4(row.ip_address) ?? -1));
}

async function specificAddress(
  trx: Kysely<NeutronDb>,
  networkId: string,
  subnets: SubnetsTable[],
  request: FixedIpRequest & { ipAddress: string },
): Promise<FixedIp> {
  const address = parseIpv4(request.ipAddress);
  if (address === undefined) {
    throw new CloudError(
      'BadRequest',
      `Invalid input for operation: '${request.ipAddress}' is not a valid IP address.`,
      { neutronType: 'InvalidInput' },
    );
  }
  const subnet = subnets.find((s) => {
    if (request.subnetId !== undefined && s.id !== request.subnetId) return false;
    return cidrContains(parseSubnetCidr(s.cidr), address);
  });
  if (!subnet) {
    throw request.subnetId === undefined
      ? new CloudError(
          'BadRequest',
          `IP address ${request.ipAddress} is not a valid IP for any of the subnets on the specified network.`,
          { neutronType: 'InvalidIpForNetwork' },
        )
      : new CloudError(
          'BadRequest',
          `IP address ${request.ipAddress} is not a valid IP for the specified subnet.`,
          { neutronType: 'InvalidIpForSubnet' },
        );
  }
  const cidr = parseSubnetCidr(subnet.cidr);
  if (
    address === cidr.network ||
    address === cidr.broadcast ||
    (request.ipAddress === subnet.gateway_ip && !request.allowGateway)
  ) {
    throw new CloudError(
      'BadRequest',
      `IP address ${request.ipAddress} is not a valid IP for the specified subnet.`,
      { neutronType: 'InvalidIpForSubnet' },
    );
  }
  if ((await takenAddresses(trx, subnet.id)).has(address)) {
    throw new CloudError(
      'Conflict',
      `IP address ${request.ipAddress} already allocated in subnet ${subnet.id}`,
      { networkId, ipAddress: request.ipAddress, neutronType: 'IpAddressAlreadyAllocated' },
    );
  }
  return { subnetId: subnet.id, ipAddress: formatIpv4(address) };
}

/**
 * The fixed IP for a new port: the requested address, or the lowest free pool address of the requested
 * subnet, or of the first IPv4 subnet of the network that has one. undefined when the network has no
 * subnet (Neutron then creates the port without an address).
 */
export async function chooseFixedIp(
  trx: Kysely<NeutronDb>,
  networkId: string,
  request: FixedIpRequest | undefined,
): Promise<FixedIp | undefined> {
  const subnets = await trx
    .selectFrom('subnets')
    .selectAll()
    .where('network_id', '=', networkId)
    .where('ip_version', '=', 4)
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  if (request?.ipAddress !== undefined) {
    return specificAddress(trx, networkId, subnets, { ...request, ipAddress: request.ipAddress });
  }
  let candidates = subnets;
  if (request?.subnetId !== undefined) {
    candidates = subnets.filter((s) => s.id === request.subnetId);
    if (!candidates.length) {
      throw new CloudError(
        'BadRequest',
        `Invalid input for operation: Failed to create port on network ${networkId}, because fixed_ips ` +
          `included invalid subnet ${request.subnetId}.`,
        { neutronType: 'InvalidInput' },
      );
    }
  }
  if (!candidates.length) return undefined;
  for (const subnet of candidates) {
    const address = firstFreeAddress(await poolsOf(trx, subnet.id), await takenAddresses(trx, subnet.id));
    if (address !== undefined) return { subnetId: subnet.id, ipAddress: formatIpv4(address) };
  }
  throw new CloudError(
    'IpAddressGenerationFailure',
    `No more IP addresses available on network ${networkId}.`,
    { networkId, neutronType: 'IpAddressGenerationFailure' },
  );
}
