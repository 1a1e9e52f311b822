/**
 * A subnet's DNS servers and host routes, checked as Neutron checks them: neutron-lib's validators
 * (`type:nameservers`, `type:hostroutes`: valid addresses, no duplicates) and neutron-server's
 * `_validate_subnet` (at most `max_dns_nameservers` / `max_subnet_host_routes`, the subnet's IP version).
 */
import type { Kysely } from 'kysely';
import { CloudError } from '../errors';
import { formatCidr, parseCidr, parseIpv4 } from './ipv4';
import type { NeutronDb } from './schema';
import type { HostRoute } from './types';

/** neutron.conf defaults (neutron/conf/common.py). */
export const MAX_DNS_NAMESERVERS = 5;
export const MAX_SUBNET_HOST_ROUTES = 20;

function invalid(attribute: string, reason: string): CloudError {
  return new CloudError('BadRequest', `Invalid input for ${attribute}. Reason: ${reason}.`, {
    neutronType: 'HTTPBadRequest',
  });
}

/** Neutron's InvalidInput for an address of the other IP version (bootflow's subnets are IPv4). */
function versionMismatch(name: string, address: string): CloudError {
  return new CloudError(
    'BadRequest',
    `Invalid input for operation: ${name} '${address}' does not match the ip_version '4'.`,
    { neutronType: 'InvalidInput' },
  );
}

const looksIpv6 = (text: string) => text.includes(':');

export function checkNameservers(subnetId: string | undefined, servers: readonly string[]): string[] {
  const seen: string[] = [];
  for (const host of servers) {
    if (parseIpv4(host) === undefined && !looksIpv6(host))
      throw invalid(
        'dns_nameservers',
        `'${host}' is not a valid nameserver. '${host}' is not a valid IP address`,
      );
    if (seen.includes(host)) throw invalid('dns_nameservers', `Duplicate nameserver '${host}'`);
    seen.push(host);
  }
  if (seen.length > MAX_DNS_NAMESERVERS)
    throw new CloudError(
      'BadRequest',
      `Unable to complete operation for ${subnetId ?? 'new subnet'}. The number of DNS nameservers exceeds the limit ${MAX_DNS_NAMESERVERS}.`,
      { neutronType: 'DNSNameServersExhausted' },
    );
  for (const host of seen) if (looksIpv6(host)) throw versionMismatch('dns_nameserver', host);
  return seen;
}

export function checkHostRoutes(subnetId: string | undefined, routes: readonly HostRoute[]): HostRoute[] {
  const seen: HostRoute[] = [];
  for (const route of routes) {
    const cidr = parseCidr(route.destination);
    if (!cidr.ok && !looksIpv6(route.destination))
      throw invalid('host_routes', `'${route.destination}' is not a valid CIDR`);
    if (cidr.ok && formatCidr(cidr.cidr) !== route.destination)
      throw invalid('host_routes', `'${route.destination}' is not a valid CIDR`);
    if (cidr.ok && cidr.cidr.network >>> 24 === 127)
      throw invalid('host_routes', `'${route.destination}' is not a routable CIDR`);
    if (parseIpv4(route.nexthop) === undefined && !looksIpv6(route.nexthop))
      throw invalid('host_routes', `'${route.nexthop}' is not a valid IP address`);
    if (seen.some((r) => r.destination === route.destination && r.nexthop === route.nexthop))
      throw invalid(
        'host_routes',
        `Duplicate hostroute '{'destination': '${route.destination}', 'nexthop': '${route.nexthop}'}'`,
      );
    seen.push({ destination: route.destination, nexthop: route.nexthop });
  }
  if (seen.length > MAX_SUBNET_HOST_ROUTES)
    throw new CloudError(
      'BadRequest',
      `Unable to complete operation for ${subnetId ?? 'new subnet'}. The number of host routes exceeds the limit ${MAX_SUBNET_HOST_ROUTES}.`,
      { neutronType: 'HostRoutesExhausted' },
    );
  for (const route of seen) {
    if (looksIpv6(route.nexthop)) throw versionMismatch('nexthop', route.nexthop);
    if (looksIpv6(route.destination)) throw versionMismatch('destination', route.destination);
  }
  return seen;
}

/** Replaces a subnet's DNS servers (kept in the order given) and, when given, its host routes. */
export async function writeSubnetExtras(
  trx: Kysely<NeutronDb>,
  subnetId: string,
  extras: { dnsNameservers?: string[] | undefined; hostRoutes?: HostRoute[] | undefined },
): Promise<void> {
  if (extras.dnsNameservers) {
    await trx.deleteFrom('dnsnameservers').where('subnet_id', '=', subnetId).execute();
    if (extras.dnsNameservers.length)
      await trx
        .insertInto('dnsnameservers')
        .values(extras.dnsNameservers.map((address, order) => ({ address, subnet_id: subnetId, order })))
        .execute();
  }
  if (extras.hostRoutes) {
    await trx.deleteFrom('subnetroutes').where('subnet_id', '=', subnetId).execute();
    if (extras.hostRoutes.length)
      await trx
        .insertInto('subnetroutes')
        .values(extras.hostRoutes.map((r) => ({ ...r, subnet_id: subnetId })))
        .execute();
  }
}
