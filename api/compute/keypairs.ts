/**
 * /os-keypairs (nova/api/openstack/compute/keypairs.py) for 2.1 to 2.79: a user's key pairs, generated
 * (the private key answered once, never stored) or imported; `type` from 2.2 (201/204 from 2.2, 200/202
 * before), `user_id` for an admin from 2.10, limit/marker from 2.35.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { CloudError } from '../../cloud/errors';
import type { RequestContext } from '../../cloud/keystone';
import type { KeyPair } from '../../cloud/nova';
import { authOf } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { enforcePolicy, naiveTime, nextLink, paginate, parseBody, parseLimit, queryOf } from './common';
import { atLeast } from './microversion';
import { serverNameSchema } from './server-schema';

function createSchema(request: FastifyRequest) {
  return z.strictObject({
    keypair: z.strictObject({
      name: serverNameSchema,
      public_key: z.string().min(1).optional(),
      ...(atLeast(request, 2, 2) ? { type: z.enum(['ssh', 'x509']).optional() } : {}),
      ...(atLeast(request, 2, 10) ? { user_id: z.string().min(1).max(255).optional() } : {}),
    }),
  });
}

/** The user whose key pairs a request is about: the caller's, or (admin, 2.10+) the `user_id` given. */
function ownerOf(request: FastifyRequest, ctx: RequestContext, asked: string | undefined): string {
  if (asked === undefined || asked === ctx.userId || !atLeast(request, 2, 10)) return ctx.userId;
  enforcePolicy(ctx, 'os_compute_api:os-keypairs:other_user');
  return asked;
}

function keypairView(request: FastifyRequest, key: KeyPair) {
  return {
    name: key.name,
    public_key: key.publicKey,
    fingerprint: key.fingerprint,
    ...(atLeast(request, 2, 2) ? { type: key.type } : {}),
  };
}

/** Nova's key pair ids are integers; bootflow's are uuids: a stable number derived from it. */
const numericId = (key: KeyPair): number => parseInt(key.id.replace(/-/g, '').slice(0, 7), 16);

async function badKeypairName<T>(promise: Promise<T>): Promise<T> {
  return promise.catch((err: unknown) => {
    if (err instanceof CloudError && err.type === 'BadRequest' && /unsafe characters/.test(err.message))
      throw new ApiError(400, 'Keypair data is invalid: Keypair name contains unsafe characters');
    if (err instanceof CloudError && err.type === 'QuotaExceeded') throw new ApiError(403, err.message);
    throw err;
  });
}

export async function keypairRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { nova } = deps.cloud;

  app.get('/os-keypairs', async (request) => {
    const { ctx } = authOf(request);
    const q = queryOf(request);
    const userId = ownerOf(request, ctx, q.user_id);
    const keys = await nova.listKeyPairs(userId);
    if (!atLeast(request, 2, 35))
      return { keypairs: keys.map((k) => ({ keypair: keypairView(request, k) })) };
    const { page, more } = paginate(keys, (k) => k.name, parseLimit(q.limit), q.marker);
    return {
      keypairs: page.map((k) => ({ keypair: keypairView(request, k) })),
      ...(more ? { keypairs_links: nextLink(deps, request, 'os-keypairs', page.at(-1)!.name) } : {}),
    };
  });

  app.post('/os-keypairs', async (request, reply) => {
    const { ctx } = authOf(request);
    const body = parseBody(createSchema(request), request.body).keypair as {
      name: string;
      public_key?: string;
      type?: 'ssh' | 'x509';
      user_id?: string;
    };
    const userId = ownerOf(request, ctx, body.user_id);
    const type = body.type ?? 'ssh';
    const created =
      body.public_key === undefined
        ? await badKeypairName(nova.createKeyPair({ userId, name: body.name, type }))
        : await badKeypairName(
            nova.importKeyPair({ userId, name: body.name, publicKey: body.public_key, type }),
          );
    return reply.code(atLeast(request, 2, 2) ? 201 : 200).send({
      keypair: {
        ...keypairView(request, created),
        user_id: created.userId,
        ...('privateKey' in created ? { private_key: created.privateKey } : {}),
      },
    });
  });

  app.get('/os-keypairs/:name', async (request) => {
    const { ctx } = authOf(request);
    const { name } = request.params as { name: string };
    const key = await nova.getKeyPair(ownerOf(request, ctx, queryOf(request).user_id), name);
    return {
      keypair: {
        ...keypairView(request, key),
        user_id: key.userId,
        created_at: naiveTime(key.createdAt),
        deleted: false,
        deleted_at: null,
        updated_at: null,
        id: numericId(key),
      },
    };
  });

  app.delete('/os-keypairs/:name', async (request, reply) => {
    const { ctx } = authOf(request);
    const { name } = request.params as { name: string };
    await nova.deleteKeyPair(ownerOf(request, ctx, queryOf(request).user_id), name);
    return reply.code(atLeast(request, 2, 2) ? 204 : 202).send();
  });
}
