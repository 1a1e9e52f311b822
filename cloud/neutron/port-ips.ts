/**
 * A port's fixed IPs on create and on update, inside the port's write transaction with the network row
 * locked (ipam.ts). Each address is inserted as soon as it is chosen, so the next choice sees it; a failure
 * rolls the whole transaction back, so nothing is taken from the pools.
 */
import type { Kysely } from 'kysely';
import { CloudError } from '../errors';
import { chooseFixedIp, type FixedIpRequest } from './ipam';
import type { NeutronDb } from './schema';
import type { FixedIp } from './types';

/** Neutron's max_fixed_ips_per_port default. */
export const MAX_FIXED_IPS_PER_PORT = 5;

function tooMany(): CloudError {
  return new CloudError(
    'BadRequest',
    'Invalid input for operation: Exceeded maximum amount of fixed ips per port.',
    { neutronType: 'InvalidInput' },
  );
}

async function insertAllocations(
  trx: Kysely<NeutronDb>,
  networkId: string,
  portId: string,
  requests: readonly FixedIpRequest[],
): Promise<void> {
  // Asked-for addresses first: a pool pick must not take one of them.
  const ordered = [
    ...requests.filter((r) => r.ipAddress !== undefined),
    ...requests.filter((r) => r.ipAddress === undefined),
  ];
  for (const request of ordered) {
    const ip = await chooseFixedIp(trx, networkId, request);
    if (!ip) continue;
    await trx
      .insertInto('ipallocations')
      .values({ ip_address: ip.ipAddress, subnet_id: ip.subnetId, network_id: networkId, port_id: portId })
      .execute();
  }
}

/**
 * A new port's addresses: those asked for (an address, a subnet's next free one, or both), or without
 * fixed_ips one address of the network's first IPv4 subnet with room (none when the network has no subnet).
 */
export async function allocatePortIps(
  trx: Kysely<NeutronDb>,
  networkId: string,
  portId: string,
  requests: readonly FixedIpRequest[] | undefined,
): Promise<void> {
  if (requests && requests.length > MAX_FIXED_IPS_PER_PORT) throw tooMany();
  await insertAllocations(trx, networkId, portId, requests ?? [{}]);
}

/**
 * Neutron's fixed_ips update (_get_changed_ips_for_port): an asked-for address the port already holds is
 * kept; a subnet-only entry keeps an address the port holds on that subnet; every other address the port
 * holds goes back to the pools (an IPv4 subnet always needs its address named); new entries are allocated.
 */
export async function replacePortIps(
  trx: Kysely<NeutronDb>,
  networkId: string,
  portId: string,
  requests: readonly FixedIpRequest[],
): Promise<void> {
  if (requests.length > MAX_FIXED_IPS_PER_PORT) throw tooMany();
  const held: FixedIp[] = (
    await trx
      .selectFrom('ipallocations')
      .select(['subnet_id', 'ip_address'])
      .where('port_id', '=', portId)
      .execute()
  ).map((row) => ({ subnetId: row.subnet_id, ipAddress: row.ip_address }));
  const unclaimed = [...held];
  const claim = (match: (ip: FixedIp) => boolean): boolean => {
    const at = unclaimed.findIndex(match);
    if (at < 0) return false;
    unclaimed.splice(at, 1);
    return true;
  };
  const added: FixedIpRequest[] = [];
  for (const r of requests.filter((x) => x.ipAddress !== undefined)) {
    const same = (ip: FixedIp) =>
      ip.ipAddress === r.ipAddress && (r.subnetId === undefined || ip.subnetId === r.subnetId);
    if (!claim(same)) added.push(r);
  }
  for (const r of requests.filter((x) => x.ipAddress === undefined)) {
    if (r.subnetId === undefined || !claim((ip) => ip.subnetId === r.subnetId)) added.push(r);
  }
  for (const ip of unclaimed)
    await trx
      .deleteFrom('ipallocations')
      .where('port_id', '=', portId)
      .where('subnet_id', '=', ip.subnetId)
      .where('ip_address', '=', ip.ipAddress)
      .execute();
  await insertAllocations(trx, networkId, portId, added);
}
