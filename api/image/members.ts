/**
 * Glance's image members (glance/api/v2/image_members.py): the owner shares a `shared` image with another
 * project (pending), that project accepts or rejects it; the owner lists and removes members, a member sees
 * only its own membership. Policies are Glance's defaults (add/delete_member: the owner's members;
 * modify_member: the member project's).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { isCloudError } from '../../cloud/errors';
import { MEMBER_STATUSES, type Glance, type Image, type MemberStatus } from '../../cloud/glance';
import { authOf } from '../auth';
import { ApiError } from '../errors';
import { memberSchema, memberView } from './views';

function body(request: FastifyRequest): Record<string, unknown> {
  const b = request.body;
  if (b === undefined || b === null) throw new ApiError(400, 'Body expected in request.');
  if (typeof b !== 'object' || Array.isArray(b)) throw new ApiError(400, 'Body expected in request.');
  return b as Record<string, unknown>;
}

export async function imageMembersRoutes(
  app: FastifyInstance,
  glance: Glance,
  byId: (request: FastifyRequest) => Promise<Image>,
): Promise<void> {
  app.get('/schemas/member', async () => memberSchema());
  app.get('/schemas/members', async () => ({
    name: 'members',
    properties: { members: { type: 'array', items: memberSchema() }, schema: { type: 'string' } },
    links: [{ rel: 'describedby', href: '{schema}' }],
  }));

  app.post('/images/:imageId/members', async (request) => {
    const b = body(request);
    if (!('member' in b)) throw new ApiError(400, 'Member to be added not specified');
    if (b.member === '' || b.member === null) throw new ApiError(400, "Member can't be empty");
    if (typeof b.member !== 'string')
      throw new ApiError(400, 'Expected a member in the form: {"member": "image_id"}');
    const image = await byId(request);
    try {
      return memberView(await glance.addImageMember(image.id, b.member, authOf(request).ctx));
    } catch (err) {
      // Glance words every refusal of the create alike.
      if (isCloudError(err, 'Forbidden'))
        throw new ApiError(403, `Not allowed to create members for image ${image.id}.`);
      if (isCloudError(err, 'ImageLimitExceeded'))
        throw new ApiError(413, `Image member limit exceeded for image ${image.id}: ${err.message}:`);
      throw err;
    }
  });

  app.get('/images/:imageId/members', async (request) => {
    const image = await byId(request);
    try {
      const members = await glance.listImageMembers(image.id, authOf(request).ctx);
      return { members: members.map(memberView), schema: '/v2/schemas/members' };
    } catch (err) {
      if (isCloudError(err, 'Forbidden'))
        throw new ApiError(403, `Not allowed to list members for image ${image.id}: ${err.message}`);
      throw err;
    }
  });

  app.get('/images/:imageId/members/:memberId', async (request) => {
    const image = await byId(request);
    const { memberId } = request.params as { memberId: string };
    try {
      return memberView(await glance.getImageMember(image.id, memberId, authOf(request).ctx));
    } catch (err) {
      // Glance's show answers its Forbidden as 404.
      if (isCloudError(err, 'Forbidden')) throw new ApiError(404, err.message);
      throw err;
    }
  });

  app.put('/images/:imageId/members/:memberId', async (request) => {
    const b = body(request);
    if (!('status' in b)) throw new ApiError(400, 'Status not specified');
    if (typeof b.status !== 'string')
      throw new ApiError(400, 'Expected a status in the form: {"status": "status"}');
    const image = await byId(request);
    const { memberId } = request.params as { memberId: string };
    const { ctx } = authOf(request);
    // The membership must exist (and be the caller's to see) before the status is looked at.
    await glance.getImageMember(image.id, memberId, ctx).catch((err: unknown) => {
      if (isCloudError(err, 'Forbidden'))
        throw new ApiError(403, `Not allowed to update members for image ${image.id}.`);
      throw err;
    });
    if (!MEMBER_STATUSES.includes(b.status as MemberStatus))
      throw new ApiError(400, 'Incorrect request: Status must be "pending", "accepted" or "rejected".');
    try {
      return memberView(await glance.updateImageMember(image.id, memberId, b.status as MemberStatus, ctx));
    } catch (err) {
      if (isCloudError(err, 'Forbidden'))
        throw new ApiError(403, `Not allowed to update members for image ${image.id}.`);
      throw err;
    }
  });

  app.delete('/images/:imageId/members/:memberId', async (request, reply) => {
    const image = await byId(request);
    const { memberId } = request.params as { memberId: string };
    const { ctx } = authOf(request);
    await glance.getImageMember(image.id, memberId, ctx).catch((err: unknown) => {
      if (isCloudError(err, 'Forbidden'))
        throw new ApiError(403, `Not allowed to delete members for image ${image.id}.`);
      throw err;
    });
    try {
      await glance.removeImageMember(image.id, memberId, ctx);
    } catch (err) {
      if (isCloudError(err, 'Forbidden'))
        throw new ApiError(403, `Not allowed to delete members for image ${image.id}.`);
      throw err;
    }
    return reply.code(204).send();
  });
}
