/**
 * The service catalog every token carries, DevStack-style: one listener, a path prefix per service. Clients
 * find each service here (python-openstackclient by type and interface), so these types and paths are what
 * openstacksdk expects: `compute` at /compute/v2.1, `volumev3` and `block-storage` at /volume/v3.
 */
import { createHash } from 'node:crypto';
import type { ApiDeps } from './deps';
import type { ServiceName } from './errors';

/** Where each service is mounted on the listener. */
export const SERVICE_PREFIX: Record<ServiceName, string> = {
  identity: '/identity',
  compute: '/compute',
  image: '/image',
  network: '/network',
  volume: '/volume',
  placement: '/placement',
};

interface CatalogService {
  type: string;
  name: string;
  path: string;
}

const SERVICES: CatalogService[] = [
  { type: 'identity', name: 'keystone', path: '/identity' },
  { type: 'compute', name: 'nova', path: '/compute/v2.1' },
  { type: 'image', name: 'glance', path: '/image' },
  { type: 'network', name: 'neutron', path: '/network' },
  { type: 'volumev3', name: 'cinderv3', path: '/volume/v3' },
  { type: 'block-storage', name: 'cinder', path: '/volume/v3' },
  { type: 'placement', name: 'placement', path: '/placement' },
];

export interface CatalogEndpoint {
  id: string;
  interface: 'public' | 'internal' | 'admin';
  region: string;
  region_id: string;
  url: string;
}

export interface CatalogEntry {
  id: string;
  type: string;
  name: string;
  endpoints: CatalogEndpoint[];
}

/** Stable ids: the same catalog on every token and every restart. */
function stableId(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 32);
}

export function serviceCatalog(deps: Pick<ApiDeps, 'publicUrl' | 'region'>): CatalogEntry[] {
  return SERVICES.map((service) => ({
    id: stableId('service', service.type),
    type: service.type,
    name: service.name,
    endpoints: (['public', 'internal', 'admin'] as const).map((iface) => ({
      id: stableId('endpoint', service.type, iface),
      interface: iface,
      region: deps.region,
      region_id: deps.region,
      url: `${deps.publicUrl}${service.path}`,
    })),
  }));
}
