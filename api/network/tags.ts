/**
 * Neutron's standard-attr-tag API (neutron/extensions/tagging.py TaggingController) on networks, subnets,
 * ports, security groups, routers and floating IPs: `GET`/`PUT`/`DELETE /v2.0/{collection}/{id}/tags` and
 * `GET` (204) / `PUT` (201) / `DELETE` (204) `.../tags/{tag}`. The resource must be one the caller sees
 * (else its 404); a change needs Neutron's `update_<resource>:tags` / `delete_<resource>:tags` defaults,
 * admin or a member of the resource's project (a reader gets the policy's 403). The rows are
 * cloud/neutron/tags.ts's; views get their `tags` from `withTags`.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RequestContext } from '../../cloud/keystone';
import type { Neutron, TaggedCollection } from '../../cloud/neutron';
import { authOf } from '../auth';
import { isAdmin, policyDenied } from './request';

/** How the API finds a resource the caller may see (throwing the resource's 404 otherwise). */
export type VisibleLookup = (ctx: RequestContext, id: string) => Promise<{ projectId: string }>;

/** The URL collection (`security-groups`), the cloud's, and Neutron's member name for the policy rules. */
const COLLECTIONS: Array<[string, TaggedCollection, string]> = [
  ['networks', 'networks', 'network'],
  ['subnets', 'subnets', 'subnet'],
  ['ports', 'ports', 'port'],
  ['security-groups', 'security_groups', 'security_group'],
  ['routers', 'routers', 'router'],
  ['floatingips', 'floatingips', 'floatingip'],
];

/** Views of one collection with their tags filled in. */
export async function withTags<T extends { id: string; tags: string[] }>(
  neutron: Neutron,
  collection: TaggedCollection,
  views: T[],
): Promise<T[]> {
  if (!views.length) return views;
  const tags = await neutron.tags.tagsOf(
    collection,
    views.map((v) => v.id),
  );
  return views.map((v) => ({ ...v, tags: tags.get(v.id) ?? [] }));
}

export async function tagRoutes(
  app: FastifyInstance,
  neutron: Neutron,
  lookups: Record<TaggedCollection, VisibleLookup>,
): Promise<void> {
  const tags = neutron.tags;
  for (const [path, collection, member] of COLLECTIONS) {
    const target = async (request: FastifyRequest, change?: 'update' | 'delete') => {
      const ctx = authOf(request).ctx;
      const { id } = request.params as { id: string };
      const resource = await lookups[collection](ctx, id);
      if (change) {
        const owner = resource.projectId === ctx.projectId && ctx.roles.includes('member');
        if (!isAdmin(ctx) && !owner) throw policyDenied(`${change}_${member}:tags`);
      }
      return id;
    };
    const tagOf = (request: FastifyRequest) => (request.params as { tag: string }).tag;

    app.get(`/${path}/:id/tags`, async (request) => ({
      tags: await tags.getTags(collection, await target(request)),
    }));
    app.put(`/${path}/:id/tags`, async (request) => ({
      tags: await tags.replaceTags(collection, await target(request, 'update'), request.body),
    }));
    app.delete(`/${path}/:id/tags`, async (request, reply) => {
      await tags.removeAllTags(collection, await target(request, 'delete'));
      return reply.code(204).send();
    });
    app.get(`/${path}/:id/tags/:tag`, async (request, reply) => {
      await tags.requireTag(collection, await target(request), tagOf(request));
      return reply.code(204).send();
    });
    app.put(`/${path}/:id/tags/:tag`, async (request, reply) => {
      await tags.addTag(collection, await target(request, 'update'), tagOf(request));
      return reply.code(201).send();
    });
    app.delete(`/${path}/:id/tags/:tag`, async (request, reply) => {
      await tags.removeTag(collection, await target(request, 'delete'), tagOf(request));
      return reply.code(204).send();
    });
  }
}
