/**
 * A rule as Nova's proxy builds it before it asks Neutron (nova/network/security_group_api.py parse_cidr,
 * _new_ingress_rule, _rule_exists; compute/security_groups.py's "Bad prefix" check): ingress only, a
 * remote group or a CIDR (0.0.0.0/0 when none), TCP, UDP or ICMP with both ports, Nova's messages.
 */
import { isIP } from 'node:net';
import type { SecurityGroup } from '../../cloud/neutron';
import { ApiError } from '../errors';
import { ingressRules } from './security-group-view';

/** The rule Nova sends on: a field it leaves out is null. */
export interface IngressRule {
  groupId: string | null;
  cidr: string | null;
  protocol: string | null;
  fromPort: number | null;
  toPort: number | null;
}

/** Python's str() of a JSON value, for the messages. */
const pyStr = (value: unknown): string =>
  value === null || value === undefined
    ? 'None'
    : typeof value === 'boolean'
      ? value
        ? 'True'
        : 'False'
      : typeof value === 'string'
        ? value
        : JSON.stringify(value);

/** Python's truthiness of a JSON value. */
const truthy = (value: unknown): boolean =>
  !(value === undefined || value === null || value === false || value === 0 || value === '');

/** netutils.is_valid_cidr: an address and a prefix length after the slash. */
function isValidCidr(cidr: string): boolean {
  const [address = '', length, ...rest] = cidr.split('/');
  if (rest.length > 0 || length === undefined || !/^[0-9]{1,3}$/.test(length)) return false;
  const version = isIP(address);
  return (version === 4 && Number(length) <= 32) || (version === 6 && Number(length) <= 128);
}

/** urllib's unquote, undefined for a malformed escape. */
function safeDecode(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

/** parse_cidr: none is 0.0.0.0/0; otherwise URL-decoded and a valid network, else InvalidCidr (400). */
function parseCidr(cidr: unknown): string {
  if (!truthy(cidr)) return '0.0.0.0/0';
  const decoded = typeof cidr === 'string' ? safeDecode(cidr) : undefined;
  if (decoded === undefined) throw new ApiError(400, `${pyStr(cidr)} is not a valid IP network.`);
  if (!isValidCidr(decoded)) throw new ApiError(400, `${decoded} is not a valid IP network.`);
  return decoded;
}

/** Python's int() of a port: an integer, a number (truncated), or a string of digits. */
function toInt(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return Math.trunc(value);
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'string' && /^\s*[-+]?[0-9](_?[0-9])*\s*$/.test(value))
    return Number(value.replace(/_/g, ''));
  return undefined;
}

const portRange = (from: number, to: number, msg: string) =>
  new ApiError(400, `Invalid port range ${from}:${to}. ${msg}`);

/**
 * _rule_args_to_dict and _new_ingress_rule: a remote group opens every port of TCP/UDP (1-65535) or ICMP
 * (-1) when none is given; a CIDR rule needs a protocol and both ports ("Not enough parameters").
 */
export function buildIngressRule(input: {
  groupId: string | null;
  protocol: unknown;
  fromPort: unknown;
  toPort: unknown;
  cidr: unknown;
}): IngressRule {
  const rule: IngressRule = { groupId: null, cidr: null, protocol: null, fromPort: null, toPort: null };
  let from = input.fromPort ?? null;
  let to = input.toPort ?? null;
  if (input.groupId !== null) {
    rule.groupId = input.groupId;
    const upper = truthy(input.protocol) ? pyStr(input.protocol).toUpperCase() : '';
    if (upper === 'ICMP' && from === null && to === null) [from, to] = [-1, -1];
    else if (['TCP', 'UDP'].includes(upper) && from === null && to === null) [from, to] = [1, 65535];
  } else {
    rule.cidr = parseCidr(input.cidr);
  }
  if (!truthy(input.protocol) || from === null || to === null) {
    if (rule.cidr !== null) throw new ApiError(400, 'Not enough parameters to build a valid rule.');
    return rule;
  }
  const protocol = pyStr(input.protocol);
  const upper = protocol.toUpperCase();
  const fromPort = toInt(from);
  const toPort = toInt(to);
  if (fromPort === undefined || toPort === undefined)
    throw new ApiError(
      400,
      upper === 'ICMP'
        ? 'Invalid input received: Type and Code must be integers for ICMP protocol type'
        : 'Invalid input received: To and From ports must be integers',
    );
  if (!['TCP', 'UDP', 'ICMP'].includes(upper)) throw new ApiError(400, `Invalid IP protocol ${protocol}.`);
  if (upper !== 'ICMP' && fromPort > toPort)
    throw portRange(fromPort, toPort, 'Former value cannot be greater than the later');
  if (upper !== 'ICMP' && (fromPort < 1 || toPort > 65535))
    throw portRange(fromPort, toPort, `Valid ${upper} ports should be between 1-65535`);
  if (upper === 'ICMP' && (fromPort < -1 || fromPort > 255 || toPort < -1 || toPort > 255))
    throw portRange(fromPort, toPort, 'For ICMP, the type:code must be valid');
  return { ...rule, protocol, fromPort, toPort };
}

/** "Bad prefix for network in cidr": a /0 of anything but 0.0.0.0 or ::. */
export function checkCidrPrefix(cidr: string): void {
  const [address = '', length] = cidr.split('/');
  const any = address === '0.0.0.0' || (isIP(address) === 6 && /^[0:]*$/.test(address));
  if (!any && Number(length) === 0) throw new ApiError(400, `Bad prefix for network in cidr ${cidr}`);
}

/**
 * _rule_exists: a rule of the group with the same remote group, CIDR, ports and protocol (compared as Nova
 * compares them, the CIDR of a remote-group rule included, so such duplicates are left to Neutron).
 */
export function sameRuleExists(group: SecurityGroup, rule: IngressRule): boolean {
  return ingressRules(group).some(
    (r) =>
      r.groupId === rule.groupId &&
      r.cidr === rule.cidr &&
      r.fromPort === rule.fromPort &&
      r.toPort === rule.toPort &&
      r.protocol === rule.protocol,
  );
}
