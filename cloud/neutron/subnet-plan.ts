/**
 * Turns a subnet request (CIDR, gateway, allocation pools) into checked numbers, with Neutron's rules:
 * host bits zero, the gateway inside the CIDR and not its network or broadcast address, pools inside the
 * CIDR, not overlapping each other and never containing the network, broadcast or gateway address.
 */
import { CloudError } from '../errors';
import {
  cidrContains,
  defaultAllocationPools,
  defaultGateway,
  formatIpv4,
  parseCidr,
  parseIpv4,
  rangesOverlap,
  type Ipv4Cidr,
  type Ipv4Range,
} from './ipv4';
import type { AllocationPool } from './types';

/** Smallest subnet: a /30 still has one address besides network, gateway and broadcast. */
const MAX_PREFIX = 30;
/** Largest subnet accepted here; keeps IPAM's address scans bounded. */
const MIN_PREFIX = 8;

export interface SubnetPlan {
  cidr: Ipv4Cidr;
  gateway: number | undefined;
  pools: Ipv4Range[];
}

export interface SubnetRequestShape {
  cidr: string;
  /** undefined: the first host address; null: no gateway. */
  gatewayIp?: string | null;
  allocationPools?: AllocationPool[];
}

function bad(message: string): CloudError {
  return new CloudError('BadRequest', message);
}

export function parseSubnetCidr(text: string): Ipv4Cidr {
  const parsed = parseCidr(text);
  if (!parsed.ok) {
    if (parsed.reason === 'host-bits') {
      throw bad(
        `Invalid input: '${text}' isn't a recognized IP subnet cidr, '${parsed.recommended}' is recommended`,
      );
    }
    throw bad(`Invalid input: '${text}' is not a valid IPv4 CIDR`);
  }
  const { prefixLength } = parsed.cidr;
  if (prefixLength < MIN_PREFIX || prefixLength > MAX_PREFIX) {
    throw bad(`Invalid input: prefix length of '${text}' must be between /${MIN_PREFIX} and /${MAX_PREFIX}`);
  }
  return parsed.cidr;
}

function parseAddress(text: string, what: string): number {
  const value = parseIpv4(text);
  if (value === undefined) throw bad(`Invalid input: ${what} '${text}' is not a valid IPv4 address`);
  return value;
}

function isHostAddress(cidr: Ipv4Cidr, address: number): boolean {
  return cidrContains(cidr, address) && address !== cidr.network && address !== cidr.broadcast;
}

export function planSubnet(request: SubnetRequestShape): SubnetPlan {
  const cidr = parseSubnetCidr(request.cidr);
  const cidrText = request.cidr;

  let gateway: number | undefined;
  if (request.gatewayIp === undefined) gateway = defaultGateway(cidr);
  else if (request.gatewayIp !== null) {
    gateway = parseAddress(request.gatewayIp, 'gateway_ip');
    if (!isHostAddress(cidr, gateway)) {
      throw bad(`Invalid input: gateway IP ${request.gatewayIp} is not a usable host address of ${cidrText}`);
    }
  }

  if (!request.allocationPools) return { cidr, gateway, pools: defaultAllocationPools(cidr, gateway) };

  const pools: Ipv4Range[] = request.allocationPools.map((pool) => {
    const first = parseAddress(pool.start, 'allocation pool start');
    const last = parseAddress(pool.end, 'allocation pool end');
    const label = `${pool.start}-${pool.end}`;
    if (first > last) throw bad(`Invalid input: allocation pool ${label} starts after it ends`);
    if (!isHostAddress(cidr, first) || !isHostAddress(cidr, last)) {
      throw bad(
        `Invalid input: allocation pool ${label} must lie within the host addresses of ${cidrText} ` +
          `(not its network or broadcast address)`,
      );
    }
    if (gateway !== undefined && gateway >= first && gateway <= last) {
      throw bad(`Gateway ip ${formatIpv4(gateway)} conflicts with allocation pool ${label}`);
    }
    return { first, last };
  });
  pools.sort((a, b) => a.first - b.first);
  for (let i = 1; i < pools.length; i++) {
    const previous = pools[i - 1];
    const current = pools[i];
    if (previous && current && rangesOverlap(previous, current)) {
      throw bad(
        `Invalid input: allocation pools ${formatIpv4(previous.first)}-${formatIpv4(previous.last)} and ` +
          `${formatIpv4(current.first)}-${formatIpv4(current.last)} overlap`,
      );
    }
  }
  return { cidr, gateway, pools };
}

/**
 * A new gateway of an existing subnet (Neutron's update_subnet): a host address of its CIDR, outside its
 * allocation pools (GatewayConflictWithAllocationPools, an InUse: 409). null removes the gateway.
 */
export function checkGatewayUpdate(
  cidrText: string,
  pools: readonly AllocationPool[],
  gatewayIp: string | null,
) {
  if (gatewayIp === null) return;
  const cidr = parseSubnetCidr(cidrText);
  const gateway = parseAddress(gatewayIp, 'gateway_ip');
  if (!isHostAddress(cidr, gateway))
    throw new CloudError('BadRequest', 'Invalid input for operation: Gateway is not valid on subnet.', {
      neutronType: 'InvalidInput',
    });
  for (const pool of pools) {
    const first = parseIpv4(pool.start) ?? 0;
    const last = parseIpv4(pool.end) ?? 0;
    if (gateway >= first && gateway <= last)
      throw new CloudError(
        'Conflict',
        `Gateway ip ${gatewayIp} conflicts with allocation pool ${pool.start}-${pool.end}.`,
        { neutronType: 'GatewayConflictWithAllocationPools' },
      );
  }
}
