/**
 * Small IPv4 helpers for Neutron's IPAM: addresses as unsigned 32-bit numbers, CIDR math, range checks.
 * IPv4 only (the networks are IPv4); every parser returns undefined instead of guessing.
 */

export interface Ipv4Cidr {
  /** The network address as a number. */
  network: number;
  prefixLength: number;
  /** The broadcast (last) address as a number. */
  broadcast: number;
}

export interface Ipv4Range {
  first: number;
  last: number;
}

const OCTET = /^(0|[1-9][0-9]{0,2})$/;

/** '10.0.0.1' → 167772161; undefined for anything that is not four decimal octets (no leading zeros). */
export function parseIpv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!OCTET.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

export function formatIpv4(value: number): string {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`Not an IPv4 address value: ${value}`);
  }
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
}

/** Number of addresses in a prefix: /24 → 256. */
export function prefixSize(prefixLength: number): number {
  return 2 ** (32 - prefixLength);
}

export type CidrParse =
  | { ok: true; cidr: Ipv4Cidr }
  | { ok: false; reason: 'syntax' }
  | { ok: false; reason: 'host-bits'; recommended: string };

/** Parses 'a.b.c.d/n'; host bits must be zero (Neutron rejects '10.0.0.1/24' and recommends '10.0.0.0/24'). */
export function parseCidr(text: string): CidrParse {
  const match = /^([0-9.]+)\/(0|[1-9][0-9]?)$/.exec(text);
  if (!match) return { ok: false, reason: 'syntax' };
  const address = parseIpv4(match[1] ?? '');
  const prefixLength = Number(match[2]);
  if (address === undefined || prefixLength > 32) return { ok: false, reason: 'syntax' };
  const size = prefixSize(prefixLength);
  const network = Math.floor(address / size) * size;
  if (network !== address) {
    return { ok: false, reason: 'host-bits', recommended: `${formatIpv4(network)}/${prefixLength}` };
  }
  return { ok: true, cidr: { network, prefixLength, broadcast: network + size - 1 } };
}

export function formatCidr(cidr: Ipv4Cidr): string {
  return `${formatIpv4(cidr.network)}/${cidr.prefixLength}`;
}

export function cidrContains(cidr: Ipv4Cidr, address: number): boolean {
  return address >= cidr.network && address <= cidr.broadcast;
}

export function rangesOverlap(a: Ipv4Range, b: Ipv4Range): boolean {
  return a.first <= b.last && b.first <= a.last;
}

export function cidrRange(cidr: Ipv4Cidr): Ipv4Range {
  return { first: cidr.network, last: cidr.broadcast };
}

/** The first host address, Neutron's default gateway. */
export function defaultGateway(cidr: Ipv4Cidr): number {
  return cidr.network + 1;
}

/**
 * Neutron's default allocation pools: every host address except the network, broadcast and gateway
 * addresses; a gateway in the middle splits the range in two.
 */
export function defaultAllocationPools(cidr: Ipv4Cidr, gateway: number | undefined): Ipv4Range[] {
  const hosts: Ipv4Range = { first: cidr.network + 1, last: cidr.broadcast - 1 };
  if (hosts.first > hosts.last) return [];
  if (gateway === undefined || gateway < hosts.first || gateway > hosts.last) return [hosts];
  const pools: Ipv4Range[] = [];
  if (gateway > hosts.first) pools.push({ first: hosts.first, last: gateway - 1 });
  if (gateway < hosts.last) pools.push({ first: gateway + 1, last: hosts.last });
  return pools;
}

export function rangeSize(range: Ipv4Range): number {
  return range.last - range.first + 1;
}

/** The lowest address of the ranges (in order) that is not in `taken`, or undefined when all are used. */
export function firstFreeAddress(
  ranges: readonly Ipv4Range[],
  taken: ReadonlySet<number>,
): number | undefined {
  for (const range of ranges) {
    // Walking only past taken addresses keeps this O(allocated) even for large pools.
    for (let address = range.first; address <= range.last; address++) {
      if (!taken.has(address)) return address;
    }
  }
  return undefined;
}
