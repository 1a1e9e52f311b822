/**
 * Neutron's checks of a security group rule (neutron/extensions/securitygroup.py's converters and
 * securitygroups_db.py's _validate_* methods), with its exception names and wording: the protocol (a name
 * Neutron knows or 0-255), the port range (TCP/UDP-like ports, or ICMP type and code), the ethertype, the
 * remote IP prefix (IPv4 or IPv6 CIDR, a bare address being /32 or /128) and one remote at most.
 */
import { isIPv6 } from 'node:net';
import { CloudError } from '../errors';
import { parseIpv4 } from './ipv4';
import type { SecurityGroupRule } from './types';

/** neutron_lib.constants.IP_PROTOCOL_MAP's names, plus the legacy 'icmpv6'. */
const PROTOCOL_NUMBERS: Record<string, number> = {
  ah: 51,
  dccp: 33,
  egp: 8,
  esp: 50,
  gre: 47,
  hopopt: 0,
  icmp: 1,
  igmp: 2,
  ipip: 4,
  'ipv6-encap': 41,
  'ipv6-frag': 44,
  'ipv6-icmp': 58,
  icmpv6: 58,
  'ipv6-nonxt': 59,
  'ipv6-opts': 60,
  'ipv6-route': 43,
  ospf: 89,
  pgm: 113,
  rsvp: 46,
  sctp: 132,
  tcp: 6,
  udp: 17,
  udplite: 136,
  vrrp: 112,
};
/** Protocols whose rules take a port range (SG_PORT_PROTO_NAMES and their numbers). */
const PORT_PROTOCOLS = new Set([6, 17, 33, 132, 136]);
const ICMP_PROTOCOLS = new Set([1, 58]);
const IPV6_ONLY_PROTOCOLS = new Set([41, 43, 44, 58, 59, 60]);

export interface RuleRequest {
  direction: 'ingress' | 'egress';
  ethertype: 'IPv4' | 'IPv6';
  protocol: string | number | null;
  portRangeMin: number | string | null;
  portRangeMax: number | string | null;
  remoteIpPrefix: string | null;
  remoteGroupId: string | null;
}

/** A rule's own fields once checked: a stored rule without its id and description. */
export type CheckedRule = Omit<SecurityGroupRule, 'id' | 'description'>;

function invalid(type: string, message: string): CloudError {
  return new CloudError('BadRequest', message, { neutronType: type });
}

/** Neutron's convert_protocol: null for any, a known name (lower case), or a number 0-255 (kept as text). */
function checkProtocol(value: string | number | null): string | null {
  if (value === null || value === 'any') return null;
  const text = String(value);
  if (/^[0-9]+$/.test(text) && Number(text) <= 255) return String(Number(text));
  if (Object.hasOwn(PROTOCOL_NUMBERS, text.toLowerCase())) return text.toLowerCase();
  const names = [null, ...Object.keys(PROTOCOL_NUMBERS).sort()].map((n) => (n === null ? 'None' : `'${n}'`));
  throw invalid(
    'SecurityGroupRuleInvalidProtocol',
    `Security group rule protocol ${text} not supported. Only protocol values [${names.join(', ')}] and ` +
      'integer representations [0 to 255] are supported.',
  );
}

/** Neutron's convert_validate_port_value: null, or an integer 0-65535. */
function checkPortValue(value: number | string | null): number | null {
  if (value === null) return null;
  const n = typeof value === 'number' ? value : /^-?[0-9]+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw invalid('SecurityGroupInvalidPortValue', `Invalid value for port ${value}`);
  return n;
}

function protocolNumber(protocol: string): number {
  return PROTOCOL_NUMBERS[protocol] ?? Number(protocol);
}

/** _validate_port_range: TCP/UDP-like ranges, ICMP type and code, nothing for other protocols. */
function checkPorts(protocol: string | null, min: number | null, max: number | null): void {
  if (min === null && max === null) return;
  if (protocol === null)
    throw invalid(
      'SecurityGroupProtocolRequiredWithPorts',
      'Must also specify protocol if port range is given.',
    );
  const number = protocolNumber(protocol);
  if (PORT_PROTOCOLS.has(number)) {
    if (min === 0 || max === 0) throw invalid('SecurityGroupInvalidPortValue', 'Invalid value for port 0');
    if (min === null || max === null || min > max)
      throw invalid(
        'SecurityGroupInvalidPortRange',
        'For TCP/UDP protocols, port_range_min must be <= port_range_max',
      );
    return;
  }
  if (ICMP_PROTOCOLS.has(number)) {
    for (const [field, attr, value] of [
      ['type', 'port_range_min', min],
      ['code', 'port_range_max', max],
    ] as const)
      if (value !== null && value > 255)
        throw invalid(
          'SecurityGroupInvalidIcmpValue',
          `Invalid value for ICMP ${field} (${attr}) ${value}. It must be 0 to 255.`,
        );
    if (min === null && max !== null)
      throw invalid(
        'SecurityGroupMissingIcmpType',
        `ICMP code (port-range-max) ${max} is provided but ICMP type (port-range-min) is missing.`,
      );
    return;
  }
  throw invalid(
    'SecurityGroupInvalidProtocolForPort',
    `Ports cannot be specified for protocol ${protocol}. Ports are only supported for ` +
      "['tcp', 'udp', 'dccp', 'sctp', 'udplite', 'icmp', 'ipv6-icmp'].",
  );
}

/** convert_ip_prefix_to_cidr: an IPv4 or IPv6 prefix; a bare address is a host prefix. */
function checkPrefix(prefix: string): { cidr: string; version: 'IPv4' | 'IPv6' } {
  const [address = '', length, ...rest] = prefix.split('/');
  const bad = () =>
    invalid(
      'InvalidInput',
      `Invalid input for remote_ip_prefix. Reason: '${prefix}' is not a valid IP prefix.`,
    );
  if (rest.length > 0 || (length !== undefined && !/^(0|[1-9][0-9]{0,2})$/.test(length))) throw bad();
  if (parseIpv4(address) !== undefined) {
    if (length !== undefined && Number(length) > 32) throw bad();
    return { cidr: `${address}/${length ?? 32}`, version: 'IPv4' };
  }
  if (isIPv6(address)) {
    if (length !== undefined && Number(length) > 128) throw bad();
    return { cidr: `${address.toLowerCase()}/${length ?? 128}`, version: 'IPv6' };
  }
  throw bad();
}

/** Every check Neutron makes of a rule before it looks at the database. */
export function checkRule(rule: RuleRequest): CheckedRule {
  const protocol = checkProtocol(rule.protocol);
  const portRangeMin = checkPortValue(rule.portRangeMin);
  const portRangeMax = checkPortValue(rule.portRangeMax);
  checkPorts(protocol, portRangeMin, portRangeMax);
  if (protocol !== null && rule.ethertype === 'IPv4' && IPV6_ONLY_PROTOCOLS.has(protocolNumber(protocol)))
    throw invalid(
      'SecurityGroupEthertypeConflictWithProtocol',
      `Invalid ethertype ${rule.ethertype} for protocol ${protocol}.`,
    );
  if (rule.remoteIpPrefix !== null && rule.remoteGroupId !== null)
    throw invalid(
      'SecurityGroupMultipleRemoteEntites',
      'Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be provided.',
    );
  let remoteIpPrefix: string | null = null;
  if (rule.remoteIpPrefix !== null) {
    const prefix = checkPrefix(rule.remoteIpPrefix);
    if (prefix.version !== rule.ethertype)
      throw invalid(
        'SecurityGroupRuleParameterConflict',
        `Conflicting value ethertype ${rule.ethertype} for CIDR ${prefix.cidr}`,
      );
    remoteIpPrefix = prefix.cidr;
  }
  return {
    direction: rule.direction,
    ethertype: rule.ethertype,
    protocol,
    portRangeMin,
    portRangeMax,
    remoteIpPrefix,
    remoteGroupId: rule.remoteGroupId,
  };
}
