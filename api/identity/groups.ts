/**
 * Keystone's groups (/v3/groups): create, list, show, update, delete; members (`/v3/groups/{g}/users`,
 * `/v3/users/{u}/groups`); and roles granted to a group on a project or a domain
 * (`/v3/{projects,domains}/{id}/groups/{g}/roles/{r}`), which every member then holds in its tokens.
 * Keystone's default policies: writes are admin only; a reader on a domain-scoped token reads that
 * domain's groups; a user may list its own groups.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Group } from '../../cloud/keystone';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { callerOf, enforceIdentity, isAdmin, parseBody, queryParam, requireIdentityAuth } from './common';
import { byIdParams, lookups } from './lookups';
import { collectionLinks, groupView, roleView, userView } from './views';

// Keystone's group schema allows other properties: they are kept as the group's `extra`.
const groupFields = {
  name: z.string().min(1).max(64),
  domain_id: z.string().min(1).max(64).optional(),
  description: z.string().max(4096).nullable().optional(),
};
const GROUP_COLUMNS = ['name', 'domain_id', 'description'];
const groupCreate = z.strictObject({ group: z.object(groupFields).catchall(z.json()) });
const groupUpdate = z.strictObject({
  group: z
    .object({ ...groupFields, name: groupFields.name.optional() })
    .catchall(z.json())
    .refine((g) => Object.keys(g).length > 0, 'at least one property is required'),
});

const extrasOf = (body: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(body).filter(([k]) => !GROUP_COLUMNS.includes(k))) as Record<
    string,
    z.core.util.JSONType
  >;

const noAssignment = () => new ApiError(404, 'Could not find role assignment.', 'NotFound');

export async function groupRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const keystone = deps.cloud.keystone;
  const authenticated = { preHandler: requireIdentityAuth(deps) };
  const { groupById, userById, roleById, projectById, domainById, grantedRoles } = lookups(keystone);

  /** The group named in the path, once the caller may read it (a domain reader: its domain's only). */
  async function readableGroup(
    request: FastifyRequest,
    rule: 'identity:get_group' | 'identity:list_users_in_group' | 'identity:check_user_in_group',
  ): Promise<Group> {
    const caller = callerOf(request);
    if (!isAdmin(caller) && !caller.domain) enforceIdentity(caller, rule);
    const group = await groupById(byIdParams(request).groupId);
    enforceIdentity(caller, rule, { domainId: group.domainId });
    return group;
  }

  app.get('/v3/groups', authenticated, async (request) => {
    const caller = callerOf(request);
    const tokenDomain = caller.domain?.id;
    enforceIdentity(caller, 'identity:list_groups', tokenDomain ? { domainId: tokenDomain } : {});
    const domainId = queryParam(request, 'domain_id') ?? tokenDomain;
    if (tokenDomain && domainId !== tokenDomain)
      return { groups: [], links: collectionLinks(deps, '/groups') };
    const name = queryParam(request, 'name');
    const groups = await keystone.listGroups({
      ...(name !== undefined ? { name } : {}),
      ...(domainId !== undefined ? { domainId } : {}),
    });
    return { groups: groups.map((g) => groupView(deps, g)), links: collectionLinks(deps, '/groups') };
  });

  app.post('/v3/groups', authenticated, async (request, reply) => {
    const caller = callerOf(request);
    enforceIdentity(caller, 'identity:create_group');
    const { group: body } = parseBody(groupCreate, request.body);
    // Without a domain, Keystone creates the group in the token's domain (its project's).
    const domainId = body.domain_id ?? caller.domain?.id ?? caller.project?.domainId;
    if (!domainId) throw new ApiError(400, 'Expecting to find domain_id in group.', 'ValidationError');
    await domainById(domainId);
    const group = await keystone.createGroup({
      name: body.name,
      domainId,
      ...(body.description !== undefined ? { description: body.description } : {}),
      extra: extrasOf(body),
    });
    return reply.code(201).send({ group: groupView(deps, group) });
  });

  app.get('/v3/groups/:groupId', authenticated, async (request) => ({
    group: groupView(deps, await readableGroup(request, 'identity:get_group')),
  }));

  app.patch('/v3/groups/:groupId', authenticated, async (request) => {
    const { groupId } = byIdParams(request);
    enforceIdentity(callerOf(request), 'identity:update_group');
    const { group: body } = parseBody(groupUpdate, request.body);
    const current = await groupById(groupId);
    if (body.domain_id !== undefined && body.domain_id !== current.domainId)
      throw new ApiError(400, 'Cannot change Domain ID', 'ValidationError');
    const group = await keystone.updateGroup({
      id: groupId,
      ...(body.name !== undefined ? { name: body.name } : {}),
      ...(body.description !== undefined ? { description: body.description } : {}),
      extra: extrasOf(body),
    });
    return { group: groupView(deps, group) };
  });

  app.delete('/v3/groups/:groupId', authenticated, async (request, reply) => {
    const { groupId } = byIdParams(request);
    enforceIdentity(callerOf(request), 'identity:delete_group');
    await groupById(groupId);
    await keystone.deleteGroup(groupId);
    return reply.code(204).send();
  });

  // ---- members ------------------------------------------------------------------------------------------

  app.get('/v3/groups/:groupId/users', authenticated, async (request) => {
    const group = await readableGroup(request, 'identity:list_users_in_group');
    const users = await keystone.listGroupUsers(group.id);
    return {
      users: users.map((u) => userView(deps, u)),
      links: collectionLinks(deps, `/groups/${group.id}/users`),
    };
  });

  const memberPath = '/v3/groups/:groupId/users/:userId';
  async function checkMember(request: FastifyRequest) {
    const group = await readableGroup(request, 'identity:check_user_in_group');
    const user = await userById(byIdParams(request).userId);
    if (!(await keystone.isGroupMember({ groupId: group.id, userId: user.id })))
      throw new ApiError(404, `User '${user.id}' not found in group '${group.id}'`, 'NotFound');
  }
  app.get(memberPath, { ...authenticated, exposeHeadRoute: false }, async (request, reply) => {
    await checkMember(request);
    return reply.code(204).send();
  });
  app.head(memberPath, authenticated, async (request, reply) => {
    await checkMember(request);
    return reply.code(204).send();
  });

  app.put(memberPath, authenticated, async (request, reply) => {
    const { groupId, userId } = byIdParams(request);
    enforceIdentity(callerOf(request), 'identity:add_user_to_group');
    await groupById(groupId);
    await userById(userId);
    await keystone.addGroupMember({ groupId, userId });
    return reply.code(204).send();
  });

  app.delete(memberPath, authenticated, async (request, reply) => {
    const { groupId, userId } = byIdParams(request);
    enforceIdentity(callerOf(request), 'identity:remove_user_from_group');
    await groupById(groupId);
    await userById(userId);
    if (!(await keystone.isGroupMember({ groupId, userId })))
      throw new ApiError(404, `User '${userId}' not found in group '${groupId}'`, 'NotFound');
    await keystone.removeGroupMember({ groupId, userId });
    return reply.code(204).send();
  });

  // Keystone's list_groups_for_user: admin, a reader of the user's domain, or the user itself.
  app.get('/v3/users/:userId/groups', authenticated, async (request) => {
    const { userId } = byIdParams(request);
    const caller = callerOf(request);
    if (caller.userId !== userId) {
      if (!isAdmin(caller) && !caller.domain) enforceIdentity(caller, 'identity:list_groups_for_user');
      const user = await userById(userId);
      enforceIdentity(caller, 'identity:list_groups_for_user', { domainId: user.domainId });
    } else await userById(userId);
    const groups = await keystone.listGroups({ userId });
    return {
      groups: groups.map((g) => groupView(deps, g)),
      links: collectionLinks(deps, `/users/${userId}/groups`),
    };
  });

  // ---- grants: a role for a group on a project or a domain ----------------------------------------------

  for (const kind of ['projects', 'domains'] as const) {
    const param = kind === 'projects' ? 'projectId' : 'domainId';
    const base = `/v3/${kind}/:${param}/groups/:groupId/roles`;
    /** The target, group and role of the path (404 for any missing), and whether the grant is there. */
    async function target(request: FastifyRequest, rule: Parameters<typeof enforceIdentity>[1]) {
      const params = byIdParams(request);
      const { groupId, roleId } = params;
      const targetId = params[param];
      enforceIdentity(callerOf(request), rule, kind === 'domains' ? { domainId: targetId } : {});
      const on =
        kind === 'projects'
          ? { projectId: (await projectById(targetId)).id }
          : { domainId: (await domainById(targetId)).id };
      await groupById(groupId);
      if (roleId !== undefined) await roleById(roleId);
      const grants = await keystone.listGroupRoleAssignments({
        groupId,
        ...on,
        ...(roleId !== undefined ? { roleId } : {}),
      });
      return { on, groupId, roleId: roleId ?? '', grants };
    }

    app.put(`${base}/:roleId`, authenticated, async (request, reply) => {
      const t = await target(request, 'identity:create_grant');
      await keystone.assignGroupRole({ groupId: t.groupId, roleId: t.roleId, on: t.on });
      return reply.code(204).send();
    });
    app.get(`${base}/:roleId`, { ...authenticated, exposeHeadRoute: false }, async (request, reply) => {
      if ((await target(request, 'identity:check_grant')).grants.length === 0) throw noAssignment();
      return reply.code(204).send();
    });
    app.head(`${base}/:roleId`, authenticated, async (request, reply) => {
      if ((await target(request, 'identity:check_grant')).grants.length === 0) throw noAssignment();
      return reply.code(204).send();
    });
    app.delete(`${base}/:roleId`, authenticated, async (request, reply) => {
      const t = await target(request, 'identity:revoke_grant');
      if (t.grants.length === 0) throw noAssignment();
      await keystone.unassignGroupRole({ groupId: t.groupId, roleId: t.roleId, on: t.on });
      return reply.code(204).send();
    });
    app.get(base, authenticated, async (request) => {
      const t = await target(request, 'identity:list_grants');
      const { groupId } = byIdParams(request);
      const targetId = byIdParams(request)[param];
      return {
        roles: (await grantedRoles(t.grants)).map((r) => roleView(deps, r)),
        links: collectionLinks(deps, `/${kind}/${targetId}/groups/${groupId}/roles`),
      };
    });
  }

  // ---- grants: a role for a group on the system -----------------------------------------------------------

  const systemPath = '/v3/system/groups/:groupId/roles';
  async function systemTarget(request: FastifyRequest, rule: Parameters<typeof enforceIdentity>[1]) {
    const { groupId, roleId } = byIdParams(request);
    enforceIdentity(callerOf(request), rule);
    await groupById(groupId);
    await roleById(roleId);
    const grants = await keystone.listGroupRoleAssignments({ groupId, roleId, system: true });
    return { groupId, roleId, granted: grants.length > 0 };
  }
  app.put(`${systemPath}/:roleId`, authenticated, async (request, reply) => {
    const t = await systemTarget(request, 'identity:create_system_grant_for_group');
    await keystone.assignGroupRole({ groupId: t.groupId, roleId: t.roleId, on: 'system' });
    return reply.code(204).send();
  });
  app.get(`${systemPath}/:roleId`, { ...authenticated, exposeHeadRoute: false }, async (request, reply) => {
    if (!(await systemTarget(request, 'identity:check_system_grant_for_group')).granted) throw noAssignment();
    return reply.code(204).send();
  });
  app.head(`${systemPath}/:roleId`, authenticated, async (request, reply) => {
    if (!(await systemTarget(request, 'identity:check_system_grant_for_group')).granted) throw noAssignment();
    return reply.code(204).send();
  });
  app.delete(`${systemPath}/:roleId`, authenticated, async (request, reply) => {
    const t = await systemTarget(request, 'identity:revoke_system_grant_for_group');
    if (!t.granted) throw noAssignment();
    await keystone.unassignGroupRole({ groupId: t.groupId, roleId: t.roleId, on: 'system' });
    return reply.code(204).send();
  });
  app.get(systemPath, authenticated, async (request) => {
    const { groupId } = byIdParams(request);
    enforceIdentity(callerOf(request), 'identity:list_system_grants_for_group');
    await groupById(groupId);
    const grants = await keystone.listGroupRoleAssignments({ groupId, system: true });
    return {
      roles: (await grantedRoles(grants)).map((r) => roleView(deps, r)),
      links: collectionLinks(deps, `/system/groups/${groupId}/roles`),
    };
  });
}
