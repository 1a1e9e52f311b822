/**
 * A server's security groups through Nova (compute/security_groups.py ServerSecurityGroupController and
 * SecurityGroupActionController, nova/network/security_group_api.py add_to_instance and
 * remove_from_instance): GET /servers/{id}/os-security-groups lists the groups of the server's Neutron ports,
 * and the addSecurityGroup / removeSecurityGroup actions (202) change the groups of every one of its ports.
 * Neither is bounded by 2.35: they were kept when the proxies went. The group is named by name or id and
 * looked up in the caller's project, as neutronclient's find_resourceid_by_name_or_id does.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { isCloudError } from '../../cloud/errors';
import type { RequestContext } from '../../cloud/keystone';
import type { SecurityGroup } from '../../cloud/neutron';
import { authOf } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { parseBody } from './common';
import { groupScopeOf, securityGroupViews } from './security-group-view';
import type { ActionAnswer, ActionCall } from './server-actions';
import { visibleInstance } from './servers';

const actionBody = (action: 'addSecurityGroup' | 'removeSecurityGroup') =>
  z.object({ [action]: z.strictObject({ name: z.string().min(1) }) });

/** find_resourceid_by_name_or_id in the caller's project: 404 (Nova's words) or 409 for a name used twice. */
async function findGroup(deps: ApiDeps, ctx: RequestContext, name: string): Promise<SecurityGroup> {
  const { neutron } = deps.cloud;
  await neutron.ensureDefaultSecurityGroup(ctx.projectId);
  try {
    return await neutron.securityGroups.visibleGroup(name, groupScopeOf(ctx));
  } catch (err) {
    if (!isCloudError(err, 'NotFound') && !isCloudError(err, 'BadRequest')) throw err;
  }
  const named = (await neutron.listSecurityGroups(ctx.projectId)).filter((g) => g.name === name);
  if (named.length > 1)
    throw new ApiError(
      409,
      `Multiple security_group matches found for name '${name}', use an ID to be more specific.`,
    );
  if (!named[0]) throw new ApiError(404, `Security group ${name} is not found for project ${ctx.projectId}`);
  return named[0];
}

async function changeGroup(call: ActionCall, change: 'add' | 'remove'): Promise<ActionAnswer> {
  const { deps, ctx, id, body } = call;
  const action = change === 'add' ? 'addSecurityGroup' : 'removeSecurityGroup';
  const parsed = parseBody(actionBody(action), body) as Record<string, { name: string }>;
  const instance = await visibleInstance(deps, ctx, id, `os_compute_api:os-security-groups:${change}`);
  const name = parsed[action]!.name;
  if (name.trim() === '') throw new ApiError(400, 'Security group name cannot be empty');
  const group = await findGroup(deps, ctx, name);
  const { neutron } = deps.cloud;
  const ports = await neutron.listPorts({ deviceId: instance.uuid });
  if (ports.length === 0)
    throw new ApiError(404, `instance_id ${instance.uuid} could not be found as device id on any ports`);
  // _has_security_group_requirements: a port without an address takes no group.
  if (change === 'add' && ports.some((p) => p.fixedIps.length === 0))
    throw new ApiError(
      400,
      'Network requires port_security_enabled and subnet associated in order to apply security groups.',
    );
  let changed: number;
  try {
    changed = await neutron.changeDeviceSecurityGroup(instance.uuid, group.id, change);
  } catch (err) {
    // Neutron's update_port refusing the group (another project's): Nova's SecurityGroupNotFound.
    if (isCloudError(err, 'NotFound')) throw new ApiError(404, err.message);
    throw err;
  }
  if (change === 'remove' && changed === 0)
    throw new ApiError(404, `Security group ${name} not associated with the instance ${instance.uuid}`);
  return { status: 202 };
}

export const addSecurityGroupAction = (call: ActionCall) => changeGroup(call, 'add');
export const removeSecurityGroupAction = (call: ActionCall) => changeGroup(call, 'remove');

/** get_instance_security_groups(detailed): each port's groups the caller may see, port by port. */
async function listServerGroups(deps: ApiDeps, request: FastifyRequest) {
  const { ctx } = authOf(request);
  const { id } = request.params as { id: string };
  const instance = await visibleInstance(deps, ctx, id, 'os_compute_api:os-security-groups:list');
  const { neutron } = deps.cloud;
  const scope = groupScopeOf(ctx);
  const groups: SecurityGroup[] = [];
  for (const port of await neutron.listPorts({ deviceId: instance.uuid })) {
    for (const groupId of port.securityGroupIds) {
      try {
        groups.push(await neutron.securityGroups.visibleGroup(groupId, scope));
      } catch (err) {
        if (!isCloudError(err, 'NotFound')) throw err;
      }
    }
  }
  return { security_groups: await securityGroupViews(neutron, scope, groups) };
}

export async function serverSecurityGroupRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  app.get('/servers/:id/os-security-groups', (request) => listServerGroups(deps, request));
}
