/**
 * /os-hypervisors and /os-services (admin by default), from Nova's service and compute node records and
 * Placement's usage of each node's resource provider. Ids are the node's and service's uuids from 2.53;
 * before, Nova's integers, which bootflow does not keep: a stable number derived from the uuid.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ComputeHost } from '../../cloud/nova';
import { authOf } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { enforcePolicy, naiveTime, nextLink, paginate, parseLimit, queryOf } from './common';
import { atLeast } from './microversion';

const legacyId = (uuid: string): number => parseInt(uuid.replace(/-/g, '').slice(0, 7), 16);

function idOf(request: FastifyRequest, uuid: string): string | number {
  return atLeast(request, 2, 53) ? uuid : legacyId(uuid);
}

function hypervisorBasic(request: FastifyRequest, host: ComputeHost) {
  return {
    id: idOf(request, host.nodeUuid),
    hypervisor_hostname: host.host,
    state: host.up ? 'up' : 'down',
    status: host.disabled ? 'disabled' : 'enabled',
  };
}

async function hypervisorDetail(deps: ApiDeps, request: FastifyRequest, host: ComputeHost) {
  const { placement, nova } = deps.cloud;
  const provider = await placement.getResourceProvider(host.nodeUuid).catch(() => undefined);
  const allocations = provider ? await placement.listAllocations({ providerUuid: host.nodeUuid }) : [];
  const used = (rc: 'VCPU' | 'MEMORY_MB' | 'DISK_GB') => provider?.inventories[rc]?.used ?? 0;
  const cpuInfo = { arch: host.cpuArch, model: '', vendor: '', topology: {}, features: [] };
  const detail: Record<string, unknown> = {
    ...hypervisorBasic(request, host),
    cpu_info: atLeast(request, 2, 28) ? cpuInfo : JSON.stringify(cpuInfo),
    current_workload: 0,
    disk_available_least: host.diskGb - used('DISK_GB'),
    free_disk_gb: host.diskGb - used('DISK_GB'),
    free_ram_mb: host.memoryMb - used('MEMORY_MB'),
    host_ip: '127.0.0.1',
    hypervisor_type: host.hypervisorType,
    hypervisor_version: 1000,
    local_gb: host.diskGb,
    local_gb_used: used('DISK_GB'),
    memory_mb: host.memoryMb,
    memory_mb_used: used('MEMORY_MB'),
    running_vms: allocations.length,
    service: { host: host.host, id: idOf(request, host.serviceId), disabled_reason: host.disabledReason },
    vcpus: host.vcpus,
    vcpus_used: used('VCPU'),
  };
  if (atLeast(request, 2, 53) && queryOf(request).with_servers === 'true') {
    const servers = (await nova.listInstances({ allProjects: true })).filter((i) => i.host === host.host);
    if (servers.length > 0)
      detail.servers = servers.map((i) => ({ name: `instance-${i.uuid}`, uuid: i.uuid }));
  }
  return detail;
}

async function listHosts(deps: ApiDeps, request: FastifyRequest, detail: boolean) {
  const { ctx } = authOf(request);
  enforcePolicy(
    ctx,
    detail ? 'os_compute_api:os-hypervisors:list-detail' : 'os_compute_api:os-hypervisors:list',
  );
  const q = queryOf(request);
  let hosts = await deps.cloud.nova.listComputeHosts();
  if (atLeast(request, 2, 53) && q.hypervisor_hostname_pattern !== undefined) {
    const pattern = q.hypervisor_hostname_pattern;
    hosts = hosts.filter((h) => h.host.includes(pattern));
    if (hosts.length === 0)
      throw new ApiError(404, `Hypervisor with hostname pattern ${pattern} could not be found.`);
  }
  const paged = atLeast(request, 2, 33);
  const { page, more } = paged
    ? paginate(hosts, (h) => String(idOf(request, h.nodeUuid)), parseLimit(q.limit), q.marker)
    : { page: hosts, more: false };
  const views = detail
    ? await Promise.all(page.map((h) => hypervisorDetail(deps, request, h)))
    : page.map((h) => hypervisorBasic(request, h));
  const path = detail ? 'os-hypervisors/detail' : 'os-hypervisors';
  return {
    hypervisors: views,
    ...(more
      ? { hypervisors_links: nextLink(deps, request, path, String(idOf(request, page.at(-1)!.nodeUuid))) }
      : {}),
  };
}

export async function hypervisorRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  app.get('/os-hypervisors', (request) => listHosts(deps, request, false));
  app.get('/os-hypervisors/detail', (request) => listHosts(deps, request, true));
  app.get('/os-hypervisors/:id', async (request) => {
    const { ctx } = authOf(request);
    enforcePolicy(ctx, 'os_compute_api:os-hypervisors:show');
    const { id } = request.params as { id: string };
    const host = (await deps.cloud.nova.listComputeHosts()).find(
      (h) => String(idOf(request, h.nodeUuid)) === id,
    );
    if (!host) {
      if (atLeast(request, 2, 53) && !/^[0-9a-f-]{36}$/i.test(id))
        throw new ApiError(400, `Invalid uuid ${id}`);
      throw new ApiError(404, `Hypervisor with ID ${id} could not be found.`);
    }
    return { hypervisor: await hypervisorDetail(deps, request, host) };
  });

  app.get('/os-services', async (request) => {
    const { ctx } = authOf(request);
    enforcePolicy(ctx, 'os_compute_api:os-services:list');
    const q = queryOf(request);
    const hosts = (await deps.cloud.nova.listComputeHosts()).filter(
      (h) =>
        (q.host === undefined || h.host === q.host) &&
        (q.binary === undefined || q.binary === 'nova-compute'),
    );
    return {
      services: hosts.map((h) => ({
        id: idOf(request, h.serviceId),
        binary: 'nova-compute',
        host: h.host,
        zone: h.availabilityZone,
        status: h.disabled ? 'disabled' : 'enabled',
        state: h.up ? 'up' : 'down',
        updated_at: naiveTime(h.lastHeartbeatAt),
        disabled_reason: h.disabledReason,
        ...(atLeast(request, 2, 11) ? { forced_down: h.forcedDown } : {}),
      })),
    };
  });
}
