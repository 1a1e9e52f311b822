/**
 * Keystone's role inference rules: `PUT`/`GET`/`HEAD`/`DELETE /v3/roles/{prior}/implies/{implied}`,
 * `GET /v3/roles/{prior}/implies` (the direct rules of one role) and `GET /v3/role_inferences` (every
 * rule). Keystone's defaults: an admin writes; an admin or a reader on a system-scoped token reads.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Role } from '../../cloud/keystone';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { callerOf, enforceIdentity, enforceSystemReader, requireIdentityAuth } from './common';
import { byIdParams, lookups } from './lookups';
import { v3Url } from './views';

const enforceReader = enforceSystemReader;

export async function impliedRoleRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const keystone = deps.cloud.keystone;
  const authenticated = { preHandler: requireIdentityAuth(deps) };
  const { roleById } = lookups(keystone);
  const ref = (r: Role) => ({ id: r.id, name: r.name, links: { self: v3Url(deps, `/roles/${r.id}`) } });
  const path = '/v3/roles/:roleId/implies/:impliedId';

  /** The rule of the path (404 for a missing role, or a prior role that does not imply the other). */
  async function rule(request: FastifyRequest) {
    const { roleId, impliedId } = byIdParams(request);
    const [prior, implied] = [await roleById(roleId), await roleById(impliedId ?? '')];
    const exists = (await keystone.listImpliedRoles()).some(
      (r) => r.prior.id === prior.id && r.implied.id === implied.id,
    );
    const body = {
      role_inference: { prior_role: ref(prior), implies: ref(implied) },
      links: { self: v3Url(deps, `/roles/${prior.id}/implies/${implied.id}`) },
    };
    return { prior, implied, exists, body };
  }
  const notImplied = (prior: Role, implied: Role) =>
    new ApiError(404, `${prior.id} does not imply ${implied.id}.`, 'ImpliedRoleNotFound');

  app.put(path, authenticated, async (request, reply) => {
    enforceIdentity(callerOf(request), 'identity:create_implied_role');
    const r = await rule(request);
    if (r.implied.name === 'admin' && r.implied.domainId === null)
      throw new ApiError(403, 'admin role cannot be an implied role.', 'Forbidden');
    await keystone.addImpliedRole(r.prior.id, r.implied.id);
    return reply.code(201).send(r.body);
  });

  app.get(path, { ...authenticated, exposeHeadRoute: false }, async (request) => {
    enforceReader(callerOf(request), 'identity:get_implied_role');
    const r = await rule(request);
    if (!r.exists) throw notImplied(r.prior, r.implied);
    return r.body;
  });

  app.head(path, authenticated, async (request, reply) => {
    enforceReader(callerOf(request), 'identity:check_implied_role');
    const r = await rule(request);
    if (!r.exists) throw notImplied(r.prior, r.implied);
    return reply.code(204).send();
  });

  app.delete(path, authenticated, async (request, reply) => {
    enforceIdentity(callerOf(request), 'identity:delete_implied_role');
    const r = await rule(request);
    if (!r.exists) throw notImplied(r.prior, r.implied);
    await keystone.removeImpliedRole(r.prior.id, r.implied.id);
    return reply.code(204).send();
  });

  app.get('/v3/roles/:roleId/implies', authenticated, async (request) => {
    enforceReader(callerOf(request), 'identity:list_implied_roles');
    const prior = await roleById(byIdParams(request).roleId);
    const implies = (await keystone.listImpliedRoles()).filter((r) => r.prior.id === prior.id);
    return {
      role_inference: { prior_role: ref(prior), implies: implies.map((r) => ref(r.implied)) },
      links: { self: v3Url(deps, `/roles/${prior.id}/implies`) },
    };
  });

  app.get('/v3/role_inferences', authenticated, async (request) => {
    enforceReader(callerOf(request), 'identity:list_role_inference_rules');
    const byPrior = new Map<string, { prior: Role; implies: Role[] }>();
    for (const r of await keystone.listImpliedRoles()) {
      const entry = byPrior.get(r.prior.id) ?? { prior: r.prior, implies: [] };
      entry.implies.push(r.implied);
      byPrior.set(r.prior.id, entry);
    }
    return {
      role_inferences: [...byPrior.values()].map((e) => ({
        prior_role: ref(e.prior),
        implies: e.implies.map(ref),
      })),
      links: { self: v3Url(deps, '/role_inferences'), previous: null, next: null },
    };
  });
}
