/**
 * Keystone's OS-OAUTH1 consumers (keystone/api/os_oauth1.py ConsumerResource): `/v3/OS-OAUTH1/consumers`
 * create (the secret answered this once), list, show, update (description and extra attributes; never the
 * secret), delete. Keystone's defaults (keystone/common/policies/consumer.py): writes admin only; an admin or
 * a system reader reads. The delegated flow (request and access tokens, the oauth1 auth method) is not
 * served: README's differ notes.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { OAuth1Consumer } from '../../cloud/keystone';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { callerOf, enforceAdmin, enforceSystemReader, parseBody, requireIdentityAuth } from './common';
import { collectionLinks, v3Url } from './views';

type Json = z.core.util.JSONType;
const NAMED = ['id', 'description', 'secret', 'links'];
const extras = (body: Record<string, unknown>): Record<string, Json> =>
  Object.fromEntries(Object.entries(body).filter(([k]) => !NAMED.includes(k))) as Record<string, Json>;

const description = z.string().nullable().optional();
// Keystone: `consumer` defaults to {} (a consumer with no description); additional properties are extras.
const consumerCreate = z
  .object({ consumer: z.object({ description }).catchall(z.json()).optional() })
  .catchall(z.json());
const consumerUpdate = z.object({
  consumer: z
    .object({ description, id: z.string().optional() })
    .catchall(z.json())
    .refine((c) => Object.keys(c).length > 0, 'at least one property is required')
    .refine((c) => !('secret' in c), 'the secret cannot be changed'),
});

export async function oauth1Routes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const consumers = deps.cloud.keystone.oauth1Consumers;
  const authenticated = { preHandler: requireIdentityAuth(deps) };
  const idOf = (request: FastifyRequest) => (request.params as { consumerId: string }).consumerId;
  const view = (c: OAuth1Consumer) => ({
    ...c.extra,
    id: c.id,
    description: c.description,
    links: { self: v3Url(deps, `/OS-OAUTH1/consumers/${c.id}`) },
  });

  app.get('/v3/OS-OAUTH1/consumers', authenticated, async (request) => {
    enforceSystemReader(callerOf(request), 'identity:list_consumers');
    return {
      consumers: (await consumers.list()).map(view),
      links: collectionLinks(deps, '/OS-OAUTH1/consumers'),
    };
  });

  app.post('/v3/OS-OAUTH1/consumers', authenticated, async (request, reply) => {
    enforceAdmin(callerOf(request), 'identity:create_consumer');
    const body = parseBody(consumerCreate, request.body ?? {}).consumer ?? {};
    const created = await consumers.create({
      ...(body.description !== undefined ? { description: body.description } : {}),
      extra: extras(body),
    });
    return reply.code(201).send({ consumer: { ...view(created), secret: created.secret } });
  });

  app.get('/v3/OS-OAUTH1/consumers/:consumerId', authenticated, async (request) => {
    enforceSystemReader(callerOf(request), 'identity:get_consumer');
    return { consumer: view(await consumers.get(idOf(request))) };
  });

  app.patch('/v3/OS-OAUTH1/consumers/:consumerId', authenticated, async (request) => {
    enforceAdmin(callerOf(request), 'identity:update_consumer');
    const { consumer: body } = parseBody(consumerUpdate, request.body);
    if (body.id !== undefined && body.id !== idOf(request))
      throw new ApiError(400, 'Cannot change ID', 'ValidationError');
    const updated = await consumers.update({
      id: idOf(request),
      ...(body.description !== undefined ? { description: body.description } : {}),
      extra: extras(body),
    });
    return { consumer: view(updated) };
  });

  app.delete('/v3/OS-OAUTH1/consumers/:consumerId', authenticated, async (request, reply) => {
    enforceAdmin(callerOf(request), 'identity:delete_consumer');
    await consumers.delete(idOf(request));
    return reply.code(204).send();
  });
}
