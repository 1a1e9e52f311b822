/**
 * /servers/{id}/metadata[/{key}]: Nova's server metadata API (nova/api/openstack/compute/server_metadata.py
 * and schemas/server_metadata.py): list and show for a reader, create (merge), replace, set one item and
 * delete one for a member; changes only while the server is active or stopped with no task (409 otherwise).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { authOf } from '../auth';
import { parseBody } from './common';
import { metadataSchema } from './server-schema';
import { refuseIfLocked, visibleInstance, type PolicyName } from './servers';

const metadataBody = z.strictObject({ metadata: metadataSchema });
/** update: exactly one item (maxProperties 1), whose key the URL names. */
const metaBody = z.strictObject({
  meta: metadataSchema.refine((m) => Object.keys(m).length <= 1, 'Request body contains too many items'),
});

const itemNotFound = () => new ApiError(404, 'Metadata item was not found');

async function instanceFor(deps: ApiDeps, request: FastifyRequest, rule: PolicyName) {
  const { ctx } = authOf(request);
  const { id } = request.params as { id: string };
  const instance = await visibleInstance(deps, ctx, id, rule);
  // Nova's update/delete_instance_metadata are check_instance_lock'ed; reads are not.
  if (request.method !== 'GET') refuseIfLocked(ctx, instance);
  return instance;
}

export async function serverMetadataRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { nova } = deps.cloud;
  app.get('/servers/:id/metadata', async (request) => {
    const instance = await instanceFor(deps, request, 'os_compute_api:server-metadata:index');
    return { metadata: instance.metadata };
  });
  app.get('/servers/:id/metadata/:key', async (request) => {
    const instance = await instanceFor(deps, request, 'os_compute_api:server-metadata:show');
    const { key } = request.params as { key: string };
    if (!Object.hasOwn(instance.metadata, key)) throw itemNotFound();
    return { meta: { [key]: instance.metadata[key] } };
  });
  app.post('/servers/:id/metadata', async (request) => {
    const body = parseBody(metadataBody, request.body);
    const instance = await instanceFor(deps, request, 'os_compute_api:server-metadata:create');
    return { metadata: await nova.changeInstanceMetadata(instance.uuid, { merge: body.metadata }) };
  });
  app.put('/servers/:id/metadata', async (request) => {
    const body = parseBody(metadataBody, request.body);
    const instance = await instanceFor(deps, request, 'os_compute_api:server-metadata:update_all');
    return { metadata: await nova.changeInstanceMetadata(instance.uuid, { replace: body.metadata }) };
  });
  app.put('/servers/:id/metadata/:key', async (request) => {
    const body = parseBody(metaBody, request.body);
    const { key } = request.params as { key: string };
    const instance = await instanceFor(deps, request, 'os_compute_api:server-metadata:update');
    if (!Object.hasOwn(body.meta, key)) throw new ApiError(400, 'Request body and URI mismatch');
    const value = body.meta[key] as string;
    await nova.changeInstanceMetadata(instance.uuid, { merge: { [key]: value } });
    return { meta: { [key]: value } };
  });
  app.delete('/servers/:id/metadata/:key', async (request, reply: FastifyReply) => {
    const { key } = request.params as { key: string };
    const instance = await instanceFor(deps, request, 'os_compute_api:server-metadata:delete');
    await nova.changeInstanceMetadata(instance.uuid, { remove: key });
    return reply.code(204).send();
  });
}
