/**
 * Keystone's OS-INHERIT (keystone/api/os_inherit.py): a role granted to a user or a group on a domain or a
 * project `inherited_to_projects`, held on every project below it (not on the target itself):
 * `PUT`/`HEAD`/`DELETE /v3/OS-INHERIT/{domains,projects}/{id}/{users,groups}/{id}/roles/{role}/inherited_to_projects`
 * and the list `GET /v3/OS-INHERIT/domains/{id}/{users,groups}/{id}/roles/inherited_to_projects`. Keystone's
 * defaults: the grant rules, admin only.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { InheritedGrant } from '../../cloud/keystone';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { callerOf, enforceIdentity, requireIdentityAuth } from './common';
import { lookups } from './lookups';
import { roleView, v3Url } from './views';

type Target = 'domains' | 'projects';
type Actor = 'users' | 'groups';

export async function inheritedRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const keystone = deps.cloud.keystone;
  const authenticated = { preHandler: requireIdentityAuth(deps) };
  const { userById, groupById, roleById, projectById, domainById } = lookups(keystone);

  /** The path's grant, each part looked up (Keystone's 404 for a missing one). */
  async function grantOf(request: FastifyRequest, target: Target, actor: Actor): Promise<InheritedGrant> {
    const p = request.params as { targetId: string; actorId: string; roleId: string };
    if (target === 'domains') await domainById(p.targetId);
    else await projectById(p.targetId);
    if (actor === 'users') await userById(p.actorId);
    else await groupById(p.actorId);
    await roleById(p.roleId);
    return {
      actor: actor === 'users' ? { user: p.actorId } : { group: p.actorId },
      target: target === 'domains' ? { domain: p.targetId } : { project: p.targetId },
      roleId: p.roleId,
    };
  }
  const noAssignment = (g: InheritedGrant) =>
    new ApiError(
      404,
      `Could not find role assignment with role: ${g.roleId}, user or group: ${'user' in g.actor ? g.actor.user : g.actor.group}, project, domain, or system: ${'domain' in g.target ? g.target.domain : g.target.project}.`,
      'RoleAssignmentNotFound',
    );

  for (const target of ['domains', 'projects'] as const)
    for (const actor of ['users', 'groups'] as const) {
      const base = `/v3/OS-INHERIT/${target}/:targetId/${actor}/:actorId/roles`;
      const path = `${base}/:roleId/inherited_to_projects`;
      app.put(path, authenticated, async (request, reply) => {
        enforceIdentity(callerOf(request), 'identity:create_grant');
        await keystone.addInheritedGrant(await grantOf(request, target, actor));
        return reply.code(204).send();
      });
      app.head(path, authenticated, async (request, reply) => {
        enforceIdentity(callerOf(request), 'identity:check_grant');
        const grant = await grantOf(request, target, actor);
        if (!(await keystone.hasInheritedGrant(grant))) throw noAssignment(grant);
        return reply.code(204).send();
      });
      app.delete(path, authenticated, async (request, reply) => {
        enforceIdentity(callerOf(request), 'identity:revoke_grant');
        const grant = await grantOf(request, target, actor);
        if (!(await keystone.removeInheritedGrant(grant))) throw noAssignment(grant);
        return reply.code(204).send();
      });
      if (target === 'domains')
        app.get(`${base}/inherited_to_projects`, authenticated, async (request) => {
          enforceIdentity(callerOf(request), 'identity:list_grants');
          const p = request.params as { targetId: string; actorId: string };
          await domainById(p.targetId);
          if (actor === 'users') await userById(p.actorId);
          else await groupById(p.actorId);
          const ids = (await keystone.listInheritedGrants())
            .filter(
              (g) =>
                'domain' in g.target &&
                g.target.domain === p.targetId &&
                (actor === 'users'
                  ? 'user' in g.actor && g.actor.user === p.actorId
                  : 'group' in g.actor && g.actor.group === p.actorId),
            )
            .map((g) => g.roleId);
          const roles = (await keystone.listAllRoles()).filter((r) => ids.includes(r.id));
          return {
            roles: roles.map((r) => roleView(deps, r)),
            links: {
              self: v3Url(
                deps,
                `/OS-INHERIT/domains/${p.targetId}/${actor}/${p.actorId}/roles/inherited_to_projects`,
              ),
              previous: null,
              next: null,
            },
          };
        });
    }
}
