/**
 * /os-hypervisors and /os-services (admin by default; `PUT /os-services` enables, disables and forces down), from Nova's service and compute node records and
 * Placement's usage of each node's resource provider. Ids are the node's and service's uuids from 2.53;
 * before, Nova's integers, which bootflow does not keep: a stable number derived from the uuid.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { ComputeHost } from '../../cloud/nova';
import { authOf } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { enforcePolicy, naiveTime, nextLink, paginate, parseBody, parseLimit, queryOf } from './common';
import { FALSE_STRINGS, TRUE_STRINGS } from '../parameter-types';
import { hypervisorExtraRoutes, matching } from './hypervisor-extras';
import { atLeast } from './microversion';

export const legacyId = (uuid: string): number => parseInt(uuid.replace(/-/g, '').slice(0, 7), 16);

export function idOf(request: FastifyRequest, uuid: string): string | number {
  return atLeast(request, 2, 53) ? uuid : legacyId(uuid);
}

export function hypervisorBasic(request: FastifyRequest, host: ComputeHost) {
  return {
    id: idOf(request, host.nodeUuid),
    hypervisor_hostname: host.host,
    state: host.up ? 'up' : 'down',
    status: host.disabled ? 'disabled' : 'enabled',
  };
}

/** with_servers (2.53): oslo's strict boolean; absent is false. */
function withServers(request: FastifyRequest): boolean {
  if (!atLeast(request, 2, 53)) return false;
  const raw = queryOf(request).with_servers;
  if (raw === undefined) return false;
  const value = raw.toLowerCase();
  if (TRUE_STRINGS.includes(value)) return true;
  if (FALSE_STRINGS.includes(value)) return false;
  throw new ApiError(
    400,
    `Invalid input for query parameters with_servers. Value: ${raw}. '${raw}' is not one of the allowed boolean values`,
  );
}

/**
 * The servers on the host ({name, uuid}) when asked: only when it has some, and from 2.75 an empty list
 * too (hypervisors.py _view_hypervisor).
 */
export async function serversOn(
  deps: ApiDeps,
  request: FastifyRequest,
  host: ComputeHost,
  asked: boolean,
): Promise<{ servers?: Array<{ name: string; uuid: string }> }> {
  if (!asked) return {};
  const servers = await deps.cloud.nova.listInstances({ allProjects: true, host: host.host });
  if (servers.length === 0 && !atLeast(request, 2, 75)) return {};
  return { servers: servers.map((i) => ({ name: `instance-${i.uuid}`, uuid: i.uuid })) };
}

/** The numbers of the detail view (Nova's compute node fields), from the host and Placement's usage. */
export async function hostUsage(deps: ApiDeps, host: ComputeHost) {
  const { placement } = deps.cloud;
  const provider = await placement.getResourceProvider(host.nodeUuid).catch(() => undefined);
  const allocations = provider ? await placement.listAllocations({ providerUuid: host.nodeUuid }) : [];
  const used = (rc: 'VCPU' | 'MEMORY_MB' | 'DISK_GB') => provider?.inventories[rc]?.used ?? 0;
  return {
    vcpus: host.vcpus,
    memory_mb: host.memoryMb,
    local_gb: host.diskGb,
    vcpus_used: used('VCPU'),
    memory_mb_used: used('MEMORY_MB'),
    local_gb_used: used('DISK_GB'),
    free_ram_mb: host.memoryMb - used('MEMORY_MB'),
    free_disk_gb: host.diskGb - used('DISK_GB'),
    current_workload: 0,
    running_vms: allocations.length,
    disk_available_least: host.diskGb - used('DISK_GB'),
  };
}

async function hypervisorDetail(deps: ApiDeps, request: FastifyRequest, host: ComputeHost) {
  const cpuInfo = { arch: host.cpuArch, model: '', vendor: '', topology: {}, features: [] };
  return {
    ...hypervisorBasic(request, host),
    cpu_info: atLeast(request, 2, 28) ? cpuInfo : JSON.stringify(cpuInfo),
    host_ip: '127.0.0.1',
    hypervisor_type: host.hypervisorType,
    hypervisor_version: 1000,
    service: { host: host.host, id: idOf(request, host.serviceId), disabled_reason: host.disabledReason },
    ...(await hostUsage(deps, host)),
    ...(await serversOn(deps, request, host, withServers(request))),
  };
}

async function listHosts(deps: ApiDeps, request: FastifyRequest, detail: boolean) {
  const { ctx } = authOf(request);
  enforcePolicy(
    ctx,
    detail ? 'os_compute_api:os-hypervisors:list-detail' : 'os_compute_api:os-hypervisors:list',
  );
  const q = queryOf(request);
  let hosts = await deps.cloud.nova.listComputeHosts();
  const pattern = atLeast(request, 2, 53) ? q.hypervisor_hostname_pattern : undefined;
  if (pattern !== undefined) {
    if (q.limit !== undefined || q.marker !== undefined) {
      throw new ApiError(
        400,
        'Paging over hypervisors with the hypervisor_hostname_pattern query parameter is not supported.',
      );
    }
    hosts = matching(hosts, pattern);
  }
  const asked = withServers(request);
  const paged = atLeast(request, 2, 33) && pattern === undefined;
  const { page, more } = paged
    ? paginate(hosts, (h) => String(idOf(request, h.nodeUuid)), parseLimit(q.limit), q.marker)
    : { page: hosts, more: false };
  const views = detail
    ? await Promise.all(page.map((h) => hypervisorDetail(deps, request, h)))
    : await Promise.all(
        page.map(async (h) => ({
          ...hypervisorBasic(request, h),
          ...(await serversOn(deps, request, h, asked)),
        })),
      );
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
      throw new ApiError(404, `Hypervisor with ID '${id}' could not be found.`);
    }
    return { hypervisor: await hypervisorDetail(deps, request, host) };
  });
  await hypervisorExtraRoutes(app, deps);

  app.get('/os-services', async (request) => {
    const { ctx } = authOf(request);
    enforcePolicy(ctx, 'os_compute_api:os-services:list');
    const q = queryOf(request);
    const hosts = (await deps.cloud.nova.listComputeHosts()).filter(
      (h) =>
        (q.host === undefined || h.host === q.host) &&
        (q.binary === undefined || q.binary === 'nova-compute'),
    );
    return { services: hosts.map((h) => serviceBody(request, h)) };
  });

  // `openstack compute service set`: the legacy actions by host and binary before 2.53, the service's uuid from it.
  app.put('/os-services/:id', async (request) => {
    const { ctx } = authOf(request);
    enforcePolicy(ctx, 'os_compute_api:os-services:update');
    const { id } = request.params as { id: string };
    if (atLeast(request, 2, 53)) return { service: await updateServiceV253(deps, request, id) };
    return { service: await serviceAction(deps, request, id) };
  });
}

function serviceBody(request: FastifyRequest, h: ComputeHost) {
  return {
    id: idOf(request, h.serviceId),
    binary: 'nova-compute',
    host: h.host,
    zone: h.availabilityZone,
    status: h.disabled ? 'disabled' : 'enabled',
    state: h.up ? 'up' : 'down',
    updated_at: naiveTime(h.lastHeartbeatAt),
    disabled_reason: h.disabledReason,
    ...(atLeast(request, 2, 11) ? { forced_down: h.forcedDown } : {}),
  };
}

const serviceName = z.string().min(1).max(255);
const legacyServiceSchema = (minor: number) =>
  z.strictObject({
    host: serviceName,
    binary: serviceName,
    disabled_reason: serviceName.optional(),
    ...(minor >= 11 ? { forced_down: z.boolean().optional() } : {}),
  });
const serviceUpdateSchema = z.strictObject({
  status: z.enum(['enabled', 'disabled']).optional(),
  disabled_reason: serviceName.optional(),
  forced_down: z.boolean().optional(),
});

/** Nova keeps one nova-compute per host here: any other binary is not found. */
async function hostOfBinary(deps: ApiDeps, host: string, binary: string): Promise<ComputeHost> {
  const found =
    binary === 'nova-compute'
      ? (await deps.cloud.nova.listComputeHosts()).find((h) => h.host === host)
      : undefined;
  if (!found) throw new ApiError(404, `Could not find binary ${binary} on host ${host}.`);
  return found;
}

/** PUT /os-services/{enable,disable,disable-log-reason,force-down} (force-down from 2.11), before 2.53. */
async function serviceAction(deps: ApiDeps, request: FastifyRequest, action: string) {
  const minor = request.microversion.minor;
  const body = parseBody(legacyServiceSchema(minor), request.body) as {
    host: string;
    binary: string;
    disabled_reason?: string;
    forced_down?: boolean;
  };
  // The body's schema first (Nova's validation decorator), then the action.
  const actions = ['enable', 'disable', 'disable-log-reason', ...(minor >= 11 ? ['force-down'] : [])];
  if (!actions.includes(action)) throw new ApiError(404, 'Unknown action');
  const { host, binary } = body;
  await hostOfBinary(deps, host, binary);
  const { nova } = deps.cloud;
  switch (action) {
    case 'enable':
      await nova.setHostDisabled(host, false);
      return { host, binary, status: 'enabled' };
    case 'disable':
      await nova.setHostDisabled(host, true);
      return { host, binary, status: 'disabled' };
    case 'disable-log-reason': {
      if (body.disabled_reason === undefined) throw new ApiError(400, 'Missing disabled reason field');
      await nova.setHostDisabled(host, true, body.disabled_reason);
      return { host, binary, status: 'disabled', disabled_reason: body.disabled_reason };
    }
    default: {
      if (body.forced_down === undefined) throw new ApiError(400, 'Missing forced_down field');
      await nova.setHostForcedDown(host, body.forced_down);
      return { host, binary, forced_down: body.forced_down };
    }
  }
}

/** PUT /os-services/{service_id} from 2.53: status, disabled_reason and forced_down of one nova-compute. */
async function updateServiceV253(deps: ApiDeps, request: FastifyRequest, id: string) {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id))
    throw new ApiError(400, `Invalid uuid ${id}`);
  const body = parseBody(serviceUpdateSchema, request.body);
  if (body.disabled_reason !== undefined && body.status !== 'disabled') {
    throw new ApiError(400, 'Specifying a disabled reason is not supported unless disabling the service.');
  }
  const { nova } = deps.cloud;
  const found = (await nova.listComputeHosts()).find((h) => h.serviceId === id);
  if (!found) throw new ApiError(404, `Service ${id} could not be found.`);
  if (body.status !== undefined)
    await nova.setHostDisabled(found.host, body.status === 'disabled', body.disabled_reason);
  if (body.forced_down !== undefined) await nova.setHostForcedDown(found.host, body.forced_down);
  const updated = (await nova.listComputeHosts()).find((h) => h.serviceId === id) as ComputeHost;
  return serviceBody(request, updated);
}
