/** MAC addresses as Neutron generates them: the OpenStack prefix fa:16:3e and three random octets. */
import { randomBytes } from 'node:crypto';

export const MAC_PREFIX = 'fa:16:3e';
export const MAC_PATTERN = /^fa:16:3e(:[0-9a-f]{2}){3}$/;

export function randomMac(): string {
  const tail = [...randomBytes(3)].map((b) => b.toString(16).padStart(2, '0')).join(':');
  return `${MAC_PREFIX}:${tail}`;
}
