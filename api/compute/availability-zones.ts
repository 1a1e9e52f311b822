/**
 * /os-availability-zone (nova/api/openstack/compute/availability_zone.py): the zones of the compute
 * services, available while one of their services is enabled; `/detail` (admin) with each host's
 * nova-compute state.
 */
import type { FastifyInstance } from 'fastify';
import type { ComputeHost } from '../../cloud/nova';
import { authOf } from '../auth';
import type { ApiDeps } from '../deps';
import { enforcePolicy, naiveTime } from './common';

function zonesOf(hosts: ComputeHost[]): Map<string, ComputeHost[]> {
  const zones = new Map<string, ComputeHost[]>();
  for (const host of hosts)
    zones.set(host.availabilityZone, [...(zones.get(host.availabilityZone) ?? []), host]);
  return zones;
}

export async function availabilityZoneRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  app.get('/os-availability-zone', async () => {
    const zones = zonesOf(await deps.cloud.nova.listComputeHosts());
    return {
      availabilityZoneInfo: [...zones].map(([name, hosts]) => ({
        zoneName: name,
        zoneState: { available: hosts.some((h) => !h.disabled) },
        hosts: null,
      })),
    };
  });
  app.get('/os-availability-zone/detail', async (request) => {
    const { ctx } = authOf(request);
    enforcePolicy(ctx, 'os_compute_api:os-availability-zone:detail');
    const zones = zonesOf(await deps.cloud.nova.listComputeHosts());
    return {
      availabilityZoneInfo: [...zones].map(([name, hosts]) => ({
        zoneName: name,
        zoneState: { available: hosts.some((h) => !h.disabled) },
        hosts: Object.fromEntries(
          hosts.map((h) => [
            h.host,
            {
              'nova-compute': {
                available: h.up,
                active: !h.disabled,
                updated_at: naiveTime(h.lastHeartbeatAt),
              },
            },
          ]),
        ),
      })),
    };
  });
}
