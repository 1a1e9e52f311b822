/**
 * GET /os-quota-sets/{project_id}[/defaults, /detail] (nova/api/openstack/compute/quota_sets.py): the
 * project's compute quotas, read only. Limits and usage come from Nova's quota tables (instances, cores,
 * ram) and, for server_groups, the project's groups; the others are Nova's fixed defaults, as /limits shows them. The network proxies (-1, Nova's legacy
 * value) until 2.35, the personality quotas until 2.56.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CloudError } from '../../cloud/errors';
import {
  DEFAULT_KEY_PAIRS_PER_USER,
  DEFAULT_QUOTA_LIMITS,
  DEFAULT_SERVER_GROUP_MEMBERS,
  DEFAULT_SERVER_GROUPS,
  MAX_METADATA_ITEMS,
} from '../../cloud/nova';
import { authOf } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { enforcePolicy } from './common';
import { atLeast } from './microversion';

interface Usage {
  limit: number;
  inUse: number;
}

/** Every quota of Nova's QUOTAS.resources the microversion shows, with its limit and usage. */
function quotasOf(
  request: FastifyRequest,
  counted: Record<'instances' | 'cores' | 'ram', Usage>,
  serverGroupsInUse = 0,
) {
  const fixed = (limit: number): Usage => ({ limit, inUse: 0 });
  // Only Nova's own resources: bootflow's quota table also holds Cinder's and Neutron's.
  const quotas: Record<string, Usage> = {
    instances: counted.instances,
    cores: counted.cores,
    ram: counted.ram,
    metadata_items: fixed(MAX_METADATA_ITEMS),
    key_pairs: fixed(DEFAULT_KEY_PAIRS_PER_USER),
    // Counted from the project's groups; members are counted per group (Nova shows 0 here too).
    server_groups: { limit: DEFAULT_SERVER_GROUPS, inUse: serverGroupsInUse },
    server_group_members: fixed(DEFAULT_SERVER_GROUP_MEMBERS),
  };
  if (!atLeast(request, 2, 36)) {
    for (const name of ['fixed_ips', 'floating_ips', 'security_groups', 'security_group_rules'])
      quotas[name] = fixed(-1);
  }
  if (!atLeast(request, 2, 57)) {
    Object.assign(quotas, {
      injected_files: fixed(5),
      injected_file_content_bytes: fixed(10240),
      injected_file_path_bytes: fixed(255),
    });
  }
  return quotas;
}

/** identity.verify_project_id: a project Keystone does not know is 400. */
export async function verifyProjectId(deps: ApiDeps, projectId: string): Promise<void> {
  await deps.cloud.keystone.getProject({ project: projectId }).catch((err: unknown) => {
    if (err instanceof CloudError && (err.type === 'NotFound' || err.type === 'BadRequest'))
      throw new ApiError(400, `Project ID ${projectId} is not a valid project.`);
    throw err;
  });
}

export async function quotaSetRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const quotaSet = async (request: FastifyRequest, view: 'show' | 'detail') => {
    const { ctx } = authOf(request);
    const { id } = request.params as { id: string };
    enforcePolicy(ctx, `os_compute_api:os-quota-sets:${view}`, id);
    // Bootflow sets no per-user quotas, so a user's limits are the project's (as Nova's without any); a
    // user's usage is not counted apart.
    if (view === 'detail' && (request.query as Record<string, unknown>).user_id !== undefined)
      throw new ApiError(400, "A user's quota usage (user_id) is not supported by bootflow's compute API.");
    await verifyProjectId(deps, id);
    const usage = await deps.cloud.nova.getQuotaUsage(id);
    const quotas = quotasOf(request, usage, await deps.cloud.nova.countServerGroups(id));
    const values = Object.fromEntries(
      Object.entries(quotas).map(([name, q]) => [
        name,
        view === 'detail' ? { in_use: q.inUse, limit: q.limit, reserved: 0 } : q.limit,
      ]),
    );
    return { quota_set: { id, ...values } };
  };
  app.get('/os-quota-sets/:id', (request) => quotaSet(request, 'show'));
  app.get('/os-quota-sets/:id/detail', (request) => quotaSet(request, 'detail'));
  app.get('/os-quota-sets/:id/defaults', async (request) => {
    const { ctx } = authOf(request);
    const { id } = request.params as { id: string };
    enforcePolicy(ctx, 'os_compute_api:os-quota-sets:defaults', id);
    await verifyProjectId(deps, id);
    const zero = (limit: number): Usage => ({ limit, inUse: 0 });
    const quotas = quotasOf(request, {
      instances: zero(DEFAULT_QUOTA_LIMITS.instances),
      cores: zero(DEFAULT_QUOTA_LIMITS.cores),
      ram: zero(DEFAULT_QUOTA_LIMITS.ram),
    });
    return { quota_set: { id, ...Object.fromEntries(Object.entries(quotas).map(([n, q]) => [n, q.limit])) } };
  });
}
