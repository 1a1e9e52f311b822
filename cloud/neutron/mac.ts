/** MAC addresses as Neutron generates them: the OpenStack prefix fa:16:3e and three random octets. */
import { randomBytes } from 'node:crypto';

export const MAC_PREFIX = 'fa:16:3e';
export const MAC_PATTERN = /^fa:16:3e(:[0-9a-f]{2}){3}$/;

export function randomMac(): string {
  const tail = [...randomBytes(3)].map((b) => b.toString(16).padStart(2, '0')).join(':');
  return `${MAC_PREFIX}:${tail}`;
}

/**
 * A MAC a caller asked for, as Neutron's validate_mac_address takes it: six octets (`:` or `-`), not
 * multicast, not all zeros; lower case with colons. undefined when it is not one.
 */
export function normalizeMac(text: string): string | undefined {
  if (!/^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$/i.test(text)) return undefined;
  const mac = text.toLowerCase().replace(/-/g, ':');
  const first = parseInt(mac.slice(0, 2), 16);
  if (first & 1 || mac === '00:00:00:00:00:00') return undefined;
  return mac;
}
