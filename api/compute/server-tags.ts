/**
 * /servers/{id}/tags[/{tag}] from 2.26 (nova/api/openstack/compute/server_tags.py, schemas/server_tags.py):
 * list and check one (a reader), add one (201 with Location, 204 when already there), replace all (200
 * with the tags), delete one or all (204) for a member; changes only while the server is active or
 * stopped (409), at most 50 tags (400). Before 2.26 the routes do not exist (404).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { MAX_TAG_COUNT } from '../../cloud/nova';
import { serverTagsSchema } from '../../cloud/validation';
import { authOf } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { parseBody, resourceLinks } from './common';
import { atLeast } from './microversion';
import { visibleInstance, type PolicyName } from './servers';

const updateAllBody = z.strictObject({
  tags: z.array(serverTagsSchema.element).max(MAX_TAG_COUNT),
});

/** parameter_types.tag as jsonschema words a failure, for update's check of the tag in the URL. */
function tagProblem(tag: string): string | undefined {
  const shown = `'${tag}'`;
  if (tag.length === 0) return `${shown} is too short`;
  if (tag.length > 60) return `${shown} is too long`;
  if (/[,/]/.test(tag)) return `${shown} does not match '^[^,/]*$'`;
  return undefined;
}

async function instanceFor(deps: ApiDeps, request: FastifyRequest, rule: PolicyName) {
  if (!atLeast(request, 2, 26)) throw new ApiError(404, 'The resource could not be found.');
  const { ctx } = authOf(request);
  const { id } = request.params as { id: string };
  return visibleInstance(deps, ctx, id, rule);
}

export async function serverTagRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { nova } = deps.cloud;
  app.get('/servers/:id/tags', async (request) => {
    const instance = await instanceFor(deps, request, 'os_compute_api:os-server-tags:index');
    return { tags: instance.tags };
  });
  app.get('/servers/:id/tags/:tag', async (request, reply: FastifyReply) => {
    const instance = await instanceFor(deps, request, 'os_compute_api:os-server-tags:show');
    const { id, tag } = request.params as { id: string; tag: string };
    if (!instance.tags.includes(tag)) throw new ApiError(404, `Server ${id} has no tag '${tag}'`);
    return reply.code(204).send();
  });
  app.put('/servers/:id/tags', async (request) => {
    if (!atLeast(request, 2, 26)) throw new ApiError(404, 'The resource could not be found.');
    const body = parseBody(updateAllBody, request.body);
    const instance = await instanceFor(deps, request, 'os_compute_api:os-server-tags:update_all');
    return { tags: (await nova.changeInstanceTags(instance.uuid, { replace: body.tags })).tags };
  });
  app.put('/servers/:id/tags/:tag', async (request, reply: FastifyReply) => {
    if (!atLeast(request, 2, 26)) throw new ApiError(404, 'The resource could not be found.');
    // schemas/server_tags.py update: the body is null (or none at all).
    if (request.body !== undefined && request.body !== null) {
      throw new ApiError(
        400,
        `Invalid input for field/attribute body. Value: ${JSON.stringify(request.body)}. ${JSON.stringify(request.body)} is not of type 'null'`,
      );
    }
    const instance = await instanceFor(deps, request, 'os_compute_api:os-server-tags:update');
    const { tag } = request.params as { tag: string };
    const problem = tagProblem(tag);
    if (problem !== undefined) {
      throw new ApiError(
        400,
        `Tag '${tag}' is invalid. It must be a non empty string without characters '/' and ','. Validation error message: ${problem}`,
      );
    }
    const { added } = await nova.changeInstanceTags(instance.uuid, { add: tag });
    if (!added) return reply.code(204).send();
    const location = `${resourceLinks(deps, 'servers', instance.uuid)[0]!.href}/tags/${tag}`;
    return reply.code(201).header('location', location).send();
  });
  app.delete('/servers/:id/tags/:tag', async (request, reply: FastifyReply) => {
    const instance = await instanceFor(deps, request, 'os_compute_api:os-server-tags:delete');
    const { tag } = request.params as { tag: string };
    await nova.changeInstanceTags(instance.uuid, { remove: tag });
    return reply.code(204).send();
  });
  app.delete('/servers/:id/tags', async (request, reply: FastifyReply) => {
    const instance = await instanceFor(deps, request, 'os_compute_api:os-server-tags:delete_all');
    await nova.changeInstanceTags(instance.uuid, { removeAll: true });
    return reply.code(204).send();
  });
}
