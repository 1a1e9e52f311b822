/**
 * Where each service is mounted on the one listener, DevStack style. What the tokens' catalog says is
 * Keystone's catalog rows (cloud/keystone/catalog.ts), which the bootstrap registers from these prefixes
 * (cloud/bootstrap.ts CATALOG_SERVICES).
 */
import type { ServiceName } from './errors';

export const SERVICE_PREFIX: Record<ServiceName, string> = {
  identity: '/identity',
  compute: '/compute',
  image: '/image',
  network: '/network',
  volume: '/volume',
  placement: '/placement',
};
