/**
 * The older hypervisor routes (nova/api/openstack/compute/hypervisors.py, admin by default), each with its
 * own policy: `GET /os-hypervisors/statistics` (the sums over the enabled compute services' nodes, as
 * compute_node_statistics adds them), `/{id}/uptime` (the `uptime` line of an up host), and before 2.53
 * `/{pattern}/search` and `/{pattern}/servers` (hosts whose hostname contains the pattern, with their
 * servers), which 2.53 replaced with the list's hypervisor_hostname_pattern and with_servers.
 */
import os from 'node:os';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ComputeHost } from '../../cloud/nova';
import { authOf } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { enforcePolicy } from './common';
import { hostUsage, hypervisorBasic, idOf, serversOn } from './hypervisors';
import { atLeast } from './microversion';

/** compute_node_search_by_hypervisor: hostnames containing the pattern; none is 404. */
export function matching(hosts: ComputeHost[], pattern: string): ComputeHost[] {
  const found = hosts.filter((h) => h.host.includes(pattern));
  if (found.length === 0) throw new ApiError(404, `No hypervisor matching '${pattern}' could be found.`);
  return found;
}

const notFound = (id: string) => new ApiError(404, `Hypervisor with ID '${id}' could not be found.`);

/** _validate_id, then the node: a uuid from 2.53 (else 400), before it an integer (else 404). */
async function hostById(deps: ApiDeps, request: FastifyRequest, id: string): Promise<ComputeHost> {
  if (atLeast(request, 2, 53)) {
    if (!/^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i.test(id))
      throw new ApiError(400, `Invalid uuid ${id}`);
  } else if (!/^-?\d+$/.test(id)) {
    throw notFound(id);
  }
  const host = (await deps.cloud.nova.listComputeHosts()).find(
    (h) => String(idOf(request, h.nodeUuid)) === id,
  );
  if (!host) throw notFound(id);
  return host;
}

/**
 * What libvirt's get_host_uptime answers: the `uptime` command's line. bootflow's compute hosts run on the
 * API's machine (npm start's workers), so it is that machine's uptime and load, not asked of the host.
 */
function uptimeLine(now: Date): string {
  const seconds = Math.floor(os.uptime());
  const days = Math.floor(seconds / 86400);
  const hours = Math.floor((seconds % 86400) / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const clock = now.toISOString().slice(11, 19);
  const up = `${days > 0 ? `${days} day${days === 1 ? '' : 's'}, ` : ''}${hours}:${String(minutes).padStart(2, '0')}`;
  const load = os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(', ');
  return ` ${clock} up ${up},  0 users,  load average: ${load}`;
}

const versionNotFound = () => new ApiError(404, 'The resource could not be found.');

export async function hypervisorExtraRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  app.get('/os-hypervisors/statistics', async (request) => {
    const { ctx } = authOf(request);
    enforcePolicy(ctx, 'os_compute_api:os-hypervisors:statistics');
    const enabled = (await deps.cloud.nova.listComputeHosts()).filter((h) => !h.disabled);
    const stats: Record<string, number> = {
      count: enabled.length,
      vcpus: 0,
      memory_mb: 0,
      local_gb: 0,
      vcpus_used: 0,
      memory_mb_used: 0,
      local_gb_used: 0,
      free_ram_mb: 0,
      free_disk_gb: 0,
      current_workload: 0,
      running_vms: 0,
      disk_available_least: 0,
    };
    for (const host of enabled)
      for (const [field, value] of Object.entries(await hostUsage(deps, host))) stats[field]! += value;
    return { hypervisor_statistics: stats };
  });

  app.get('/os-hypervisors/:id/uptime', async (request) => {
    const { ctx } = authOf(request);
    enforcePolicy(ctx, 'os_compute_api:os-hypervisors:uptime');
    const { id } = request.params as { id: string };
    const host = await hostById(deps, request, id);
    // ComputeServiceUnavailable: the RPC to a host that is down is not made.
    if (!host.up) throw new ApiError(400, `Compute service of ${host.host} is unavailable at this time.`);
    return { hypervisor: { ...hypervisorBasic(request, host), uptime: uptimeLine(new Date()) } };
  });

  for (const route of ['search', 'servers'] as const) {
    app.get(`/os-hypervisors/:pattern/${route}`, async (request) => {
      if (atLeast(request, 2, 53)) throw versionNotFound();
      const { ctx } = authOf(request);
      enforcePolicy(ctx, `os_compute_api:os-hypervisors:${route}`);
      const { pattern } = request.params as { pattern: string };
      const hosts = matching(await deps.cloud.nova.listComputeHosts(), pattern);
      return {
        hypervisors: await Promise.all(
          hosts.map(async (h) => ({
            ...hypervisorBasic(request, h),
            ...(route === 'servers' ? await serversOn(deps, request, h, true) : {}),
          })),
        ),
      };
    });
  }
}
