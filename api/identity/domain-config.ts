/**
 * Keystone's domain configuration API (keystone/api/domains.py DomainConfig*Resource, Default*Resource):
 * `/v3/domains/{id}/config[/{group}[/{option}]]` PUT (the whole config; 201 when the domain had none, else
 * 200), GET, PATCH, DELETE, and `/v3/domains/config[/{group}[/{option}]]/default`. Keystone's defaults
 * (keystone/common/policies/domain_config.py): writes admin only; an admin or a system reader reads; the
 * security_compliance group is readable by anyone. Stored only: no LDAP backend reads it (README).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ApiDeps } from '../deps';
import { callerOf, enforceAdmin, enforceSystemReader, requireIdentityAuth } from './common';
import { lookups } from './lookups';

interface ConfigParams {
  domainId: string;
  group?: string;
  option?: string;
}

/** Keystone's request_body_json.get('config', {}): the body's config, anything else left to the checks. */
const configOf = (body: unknown): unknown =>
  body !== null && typeof body === 'object' && !Array.isArray(body) && 'config' in body
    ? (body as { config: unknown }).config
    : {};

export async function domainConfigRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const keystone = deps.cloud.keystone;
  const configs = keystone.domainConfigs;
  const { domainById } = lookups(keystone);
  const authenticated = { preHandler: requireIdentityAuth(deps) };
  const paramsOf = (request: FastifyRequest) => request.params as ConfigParams;

  for (const path of [
    '/v3/domains/config/default',
    '/v3/domains/config/:group/default',
    '/v3/domains/config/:group/:option/default',
  ])
    app.get(path, authenticated, async (request) => {
      enforceSystemReader(callerOf(request), 'identity:get_domain_config_default');
      const { group, option } = request.params as Partial<ConfigParams>;
      return { config: configs.getDefault(group, option) };
    });

  app.put('/v3/domains/:domainId/config', authenticated, async (request, reply) => {
    enforceAdmin(callerOf(request), 'identity:create_domain_config');
    const { domainId } = paramsOf(request);
    await domainById(domainId);
    const had = await configs.exists(domainId);
    const config = await configs.create(domainId, configOf(request.body));
    return reply.code(had ? 200 : 201).send({ config });
  });

  for (const path of [
    '/v3/domains/:domainId/config',
    '/v3/domains/:domainId/config/:group',
    '/v3/domains/:domainId/config/:group/:option',
  ]) {
    app.get(path, authenticated, async (request) => {
      const { domainId, group, option } = paramsOf(request);
      // Keystone looks the domain up first but raises its NotFound only after the policy check and the
      // config's own answer, so that a caller learns nothing of domains it may not read.
      const domain = domainById(domainId).then(
        () => undefined,
        (err: unknown) => err,
      );
      let config: Record<string, unknown>;
      if (group === 'security_compliance') {
        config = configs.securityCompliance(domainId, option);
      } else {
        enforceSystemReader(callerOf(request), 'identity:get_domain_config');
        config = await configs.get(domainId, group, option);
      }
      const missing = await domain;
      if (missing !== undefined) throw missing;
      return { config };
    });

    app.patch(path, authenticated, async (request) => {
      enforceAdmin(callerOf(request), 'identity:update_domain_config');
      const { domainId, group, option } = paramsOf(request);
      await domainById(domainId);
      return { config: await configs.update(domainId, configOf(request.body), group, option) };
    });

    app.delete(path, authenticated, async (request, reply) => {
      enforceAdmin(callerOf(request), 'identity:delete_domain_config');
      const { domainId, group, option } = paramsOf(request);
      await domainById(domainId);
      await configs.delete(domainId, group, option);
      return reply.code(204).send();
    });
  }
}
