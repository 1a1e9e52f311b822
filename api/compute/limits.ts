/**
 * GET /limits (nova/api/openstack/compute/limits.py, views/limits.py): the project's absolute limits and
 * usage from Nova's quota tables. Before 2.36 the network proxies (floating IPs, security groups, with
 * Neutron's default quotas) are shown; before 2.39 maxImageMeta; before 2.57 the personality limits. An admin may ask for another
 * project's with `tenant_id`.
 */
import type { FastifyInstance } from 'fastify';
import {
  DEFAULT_KEY_PAIRS_PER_USER,
  DEFAULT_SERVER_GROUP_MEMBERS,
  DEFAULT_SERVER_GROUPS,
} from '../../cloud/nova';
import { authOf } from '../auth';
import type { ApiDeps } from '../deps';
import { enforcePolicy, queryOf } from './common';
import { atLeast } from './microversion';

export async function limitsRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  app.get('/limits', async (request) => {
    const { ctx } = authOf(request);
    const asked = queryOf(request).tenant_id;
    let projectId = ctx.projectId;
    if (asked !== undefined && asked !== ctx.projectId) {
      enforcePolicy(ctx, 'os_compute_api:limits:other_project');
      projectId = asked;
    }
    const usage = await deps.cloud.nova.getQuotaUsage(projectId);
    const absolute: Record<string, number> = {
      maxServerMeta: 128,
      maxTotalCores: usage.cores.limit,
      maxTotalInstances: usage.instances.limit,
      maxTotalKeypairs: DEFAULT_KEY_PAIRS_PER_USER,
      maxTotalRAMSize: usage.ram.limit,
      maxServerGroups: DEFAULT_SERVER_GROUPS,
      maxServerGroupMembers: DEFAULT_SERVER_GROUP_MEMBERS,
      totalCoresUsed: usage.cores.inUse,
      totalInstancesUsed: usage.instances.inUse,
      totalRAMUsed: usage.ram.inUse,
      totalServerGroupsUsed: await deps.cloud.nova.countServerGroups(projectId),
    };
    if (!atLeast(request, 2, 36)) {
      Object.assign(absolute, {
        maxSecurityGroups: 10,
        maxSecurityGroupRules: 100,
        maxTotalFloatingIps: 50,
        totalFloatingIpsUsed: 0,
        totalSecurityGroupsUsed: 0,
      });
    }
    // 2.39 dropped the image-metadata proxy and its limit (limits.py max_image_meta=False).
    if (!atLeast(request, 2, 39)) absolute.maxImageMeta = 128;
    if (!atLeast(request, 2, 57)) Object.assign(absolute, { maxPersonality: 5, maxPersonalitySize: 10240 });
    return { limits: { rate: [], absolute } };
  });
}
