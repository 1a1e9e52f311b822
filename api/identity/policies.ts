/**
 * Keystone's policy API (keystone/api/policy.py, deprecated there but served): `/v3/policies` create, list
 * (`type`), show, update, delete of blobs. Keystone's defaults (keystone/common/policies/policy.py): writes
 * are admin only; an admin or a reader on a system-scoped token reads.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { PolicyDocument } from '../../cloud/keystone';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import {
  callerOf,
  enforceAdmin,
  enforceSystemReader,
  parseBody,
  queryParam,
  requireIdentityAuth,
} from './common';
import { collectionLinks, v3Url } from './views';

const NAMED = ['id', 'type', 'blob', 'links'];
type Json = z.core.util.JSONType;
const extras = (body: Record<string, unknown>): Record<string, Json> =>
  Object.fromEntries(Object.entries(body).filter(([k]) => !NAMED.includes(k))) as Record<string, Json>;

const policyCreate = z.object({
  policy: z.object({ blob: z.string(), type: z.string().max(255) }).catchall(z.json()),
});
const policyUpdate = z.object({
  policy: z
    .object({ blob: z.string().optional(), type: z.string().max(255).optional(), id: z.string().optional() })
    .catchall(z.json())
    .refine((p) => Object.keys(p).length > 0, 'at least one property is required'),
});

export async function policyRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const policies = deps.cloud.keystone.policies;
  const authenticated = { preHandler: requireIdentityAuth(deps) };
  const idOf = (request: FastifyRequest) => (request.params as { policyId: string }).policyId;
  const view = (p: PolicyDocument) => ({
    ...p.extra,
    id: p.id,
    type: p.type,
    blob: p.blob,
    links: { self: v3Url(deps, `/policies/${p.id}`) },
  });

  app.get('/v3/policies', authenticated, async (request) => {
    enforceSystemReader(callerOf(request), 'identity:list_policies');
    const type = queryParam(request, 'type');
    const list = await policies.list(type !== undefined ? { type } : {});
    return { policies: list.map(view), links: collectionLinks(deps, '/policies') };
  });

  app.post('/v3/policies', authenticated, async (request, reply) => {
    enforceAdmin(callerOf(request), 'identity:create_policy');
    const { policy: body } = parseBody(policyCreate, request.body);
    const created = await policies.create({ type: body.type, blob: body.blob, extra: extras(body) });
    return reply.code(201).send({ policy: view(created) });
  });

  app.get('/v3/policies/:policyId', authenticated, async (request) => {
    enforceSystemReader(callerOf(request), 'identity:get_policy');
    return { policy: view(await policies.get(idOf(request))) };
  });

  app.patch('/v3/policies/:policyId', authenticated, async (request) => {
    enforceAdmin(callerOf(request), 'identity:update_policy');
    const { policy: body } = parseBody(policyUpdate, request.body);
    if (body.id !== undefined && body.id !== idOf(request))
      throw new ApiError(400, 'Cannot change ID', 'ValidationError');
    const updated = await policies.update({
      id: idOf(request),
      ...(body.type !== undefined ? { type: body.type } : {}),
      ...(body.blob !== undefined ? { blob: body.blob } : {}),
      extra: extras(body),
    });
    return { policy: view(updated) };
  });

  app.delete('/v3/policies/:policyId', authenticated, async (request, reply) => {
    enforceAdmin(callerOf(request), 'identity:delete_policy');
    await policies.delete(idOf(request));
    return reply.code(204).send();
  });
}
