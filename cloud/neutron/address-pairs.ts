/**
 * A port's allowed address pairs (Neutron's allowedaddresspairs extension): the addresses or CIDRs, each
 * with a MAC (the port's own when none is given), that the port may also send from. Checked as
 * neutron_lib's _validate_allowed_address_pairs does (at most max_allowed_address_pair 10, each an address or
 * a CIDR, not multicast, no duplicate pair, a valid unicast MAC), set on create and replaced whole on update.
 * Recorded only: nothing filters traffic (README), as with security groups.
 */
import { isIP } from 'node:net';
import type { Kysely } from 'kysely';
import { CloudError } from '../errors';
import { normalizeMac } from './mac';
import type { NeutronDb } from './schema';
import type { AddressPair } from './types';

/** Neutron's max_allowed_address_pair default. */
export const MAX_ALLOWED_ADDRESS_PAIRS = 10;

function badRequest(message: string, neutronType = 'HTTPBadRequest'): CloudError {
  return new CloudError('BadRequest', message, { neutronType });
}

function isMulticast(address: string): boolean {
  if (isIP(address) === 4) {
    const first = Number(address.split('.')[0]);
    return first >= 224 && first <= 239;
  }
  return /^ff/i.test(address);
}

/** validate_ip_address / validate_subnet, then the not-multicast checks. */
function checkAddress(ip: string): string {
  const [address = '', prefix, ...rest] = ip.split('/');
  const version = isIP(address);
  if (prefix === undefined) {
    if (!version) throw badRequest(`'${ip}' is not a valid IP address`);
  } else if (
    !version ||
    rest.length ||
    !/^\d{1,3}$/.test(prefix) ||
    Number(prefix) > (version === 4 ? 32 : 128)
  ) {
    throw badRequest(`'${ip}' is not a valid IP subnet`);
  }
  if (isMulticast(address))
    throw badRequest(
      prefix === undefined ? `'${ip}' is a multicast IP address` : `'${ip}' is a multicast IP subnet`,
    );
  return ip;
}

/**
 * The pairs a request gives, checked (an empty macAddress: the port's, filled in by setAddressPairs). Every refusal is
 * Neutron's 400 (AllowedAddressPairExhausted, AllowedAddressPairsMissingIP, DuplicateAddressPairInRequest,
 * or its HTTPBadRequest with the validator's message).
 */
export function parseAddressPairs(pairs: unknown): AddressPair[] {
  if (!Array.isArray(pairs)) throw badRequest('Allowed address pairs must be a list.');
  if (pairs.length > MAX_ALLOWED_ADDRESS_PAIRS)
    throw badRequest(
      `The number of allowed address pair exceeds the maximum ${MAX_ALLOWED_ADDRESS_PAIRS}.`,
      'AllowedAddressPairExhausted',
    );
  const seen = new Set<string>();
  const out: AddressPair[] = [];
  for (const pair of pairs) {
    if (typeof pair !== 'object' || pair === null || Array.isArray(pair))
      throw badRequest(`'${JSON.stringify(pair)}' is not a dictionary`);
    const { mac_address: mac, ip_address: ip, ...extra } = pair as Record<string, unknown>;
    let macAddress: string | undefined;
    if (mac !== undefined) {
      macAddress = typeof mac === 'string' ? normalizeMac(mac) : undefined;
      if (macAddress === undefined) throw badRequest(`'${String(mac)}' is not a valid MAC address`);
    }
    if (ip === undefined)
      throw badRequest('AllowedAddressPair must contain ip_address', 'AllowedAddressPairsMissingIP');
    const key = `${String(mac)} ${String(ip)}`;
    if (seen.has(key))
      throw badRequest(
        `Request contains duplicate address pair: mac_address ${String(mac)} ip_address ${String(ip)}.`,
        'DuplicateAddressPairInRequest',
      );
    seen.add(key);
    if (Object.keys(extra).length)
      throw badRequest(`Unrecognized attribute(s) '${Object.keys(extra).join(', ')}'`);
    if (typeof ip !== 'string') throw badRequest(`'${String(ip)}' is not a valid IP address`);
    out.push({ ipAddress: checkAddress(ip), macAddress: macAddress ?? '' });
  }
  return out;
}

/** Replaces a port's pairs (the MACs left empty by parseAddressPairs take the port's). */
export async function setAddressPairs(
  trx: Kysely<NeutronDb>,
  port: { id: string; macAddress: string },
  pairs: readonly AddressPair[],
): Promise<void> {
  await trx.deleteFrom('allowedaddresspairs').where('port_id', '=', port.id).execute();
  const rows = new Map<string, { port_id: string; mac_address: string; ip_address: string }>();
  for (const p of pairs) {
    const mac = p.macAddress || port.macAddress;
    const key = `${mac} ${p.ipAddress}`;
    // The same pair once the port's MAC is filled in: Neutron's duplicate entry is this 400 too.
    if (rows.has(key))
      throw badRequest(
        `Request contains duplicate address pair: mac_address ${mac} ip_address ${p.ipAddress}.`,
        'DuplicateAddressPairInRequest',
      );
    rows.set(key, { port_id: port.id, mac_address: mac, ip_address: p.ipAddress });
  }
  if (rows.size)
    await trx
      .insertInto('allowedaddresspairs')
      .values([...rows.values()])
      .execute();
}
