/**
 * /os-snapshots (nova/api/openstack/compute/volumes.py SnapshotController), up to 2.35: Nova's proxy to
 * Cinder's snapshots in Nova's old view (_translate_snapshot_summary_view: id, volumeId, status, size,
 * createdAt, displayName, displayDescription; the detail view is the same). Reads go to bootflow's Cinder
 * as the caller sees it (the caller's project's snapshots, newest first, paged by offset/limit); a create
 * is Cinder's own snapshot (taken in the background, `creating` then `available`), answered 200 as Nova
 * does; a delete is Cinder's (202).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Snapshot } from '../../cloud/cinder';
import { isCloudError } from '../../cloud/errors';
import type { RequestContext } from '../../cloud/keystone';
import { authOf } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { isTrue, parameterBoolean } from '../parameter-types';
import { cinderFailure } from '../volume/snapshots';
import { cinderTime } from '../volume/views';
import { enforcePolicy, parseBody } from './common';
import { invalidInput, limited, proxyUntil, refuseEmptyId } from './proxy-common';

/** schemas/volumes.py snapshot_create: `volume_id` required, nothing unknown. */
const createBody = z.strictObject({
  snapshot: z.strictObject({
    volume_id: z.string(),
    force: parameterBoolean.optional(),
    display_name: z.string().optional(),
    display_description: z.string().optional(),
  }),
});

type SnapshotPolicy = 'list' | 'detail' | 'show' | 'create' | 'delete';
const allow = (ctx: RequestContext, action: SnapshotPolicy) =>
  enforcePolicy(ctx, `os_compute_api:os-volumes:snapshots:${action}`, ctx.projectId);

/** _translate_snapshot_summary_view over nova/volume/cinder.py's _untranslate_snapshot_summary_view. */
export function novaSnapshotView(s: Snapshot) {
  return {
    id: s.id,
    volumeId: s.volumeId,
    status: s.status,
    // Nova maps the snapshot's volume_size as its size.
    size: s.sizeGb,
    createdAt: cinderTime(s.createdAt),
    displayName: s.name,
    displayDescription: s.description,
  };
}

const notFound = (id: string) => new ApiError(404, `Snapshot ${id} could not be found.`);

async function visibleSnapshot(deps: ApiDeps, ctx: RequestContext, id: string): Promise<Snapshot> {
  try {
    return await deps.cloud.cinder.snapshots.get(id, ctx);
  } catch (err) {
    if (isCloudError(err, 'NotFound') || isCloudError(err, 'BadRequest')) throw notFound(id);
    throw err;
  }
}

async function listSnapshots(deps: ApiDeps, request: FastifyRequest, action: 'list' | 'detail') {
  proxyUntil(request);
  refuseEmptyId(request);
  const { ctx } = authOf(request);
  allow(ctx, action);
  // cinder.API.get_all_snapshots: the caller's project's snapshots, Cinder's order: newest first.
  const snapshots = await deps.cloud.cinder.snapshots.list({ projectId: ctx.projectId }, ctx);
  const newestFirst = [...snapshots].sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1));
  return { snapshots: limited(newestFirst, request).map(novaSnapshotView) };
}

async function createSnapshot(deps: ApiDeps, request: FastifyRequest) {
  proxyUntil(request);
  const { ctx } = authOf(request);
  const body = parseBody(createBody, request.body).snapshot;
  allow(ctx, 'create');
  for (const [field, value] of [
    ['display_name', body.display_name],
    ['display_description', body.display_description],
  ] as const)
    if (value !== undefined && value.length > 255)
      throw invalidInput(`Invalid input for field/attribute ${field}. '${value}' is too long`);
  try {
    const snapshot = await deps.cloud.cinder.snapshots.create(
      {
        volumeId: body.volume_id,
        projectId: ctx.projectId,
        userId: ctx.userId,
        ...(body.display_name !== undefined ? { name: body.display_name } : {}),
        ...(body.display_description !== undefined ? { description: body.display_description } : {}),
        // create_snapshot_force for `force` (an in-use volume too), else create_snapshot.
        force: isTrue(body.force),
      },
      ctx,
    );
    return { snapshot: novaSnapshotView(snapshot) };
  } catch (err) {
    if (isCloudError(err, 'NotFound'))
      throw new ApiError(404, `Volume ${body.volume_id} could not be found.`);
    // translate_volume_exception: Cinder's OverLimit is OverQuota, which the controller answers 403.
    if (isCloudError(err, 'QuotaExceeded')) {
      const cinder = cinderFailure(err);
      throw new ApiError(403, cinder instanceof Error ? cinder.message : err.message);
    }
    if (isCloudError(err, 'InvalidVolume') || isCloudError(err, 'BadRequest'))
      throw invalidInput(err.message);
    throw err;
  }
}

async function deleteSnapshot(deps: ApiDeps, request: FastifyRequest): Promise<void> {
  proxyUntil(request);
  const { ctx } = authOf(request);
  allow(ctx, 'delete');
  const { id } = request.params as { id: string };
  const snapshot = await visibleSnapshot(deps, ctx, id);
  try {
    await deps.cloud.cinder.snapshots.delete(snapshot.id, {}, ctx);
  } catch (err) {
    if (isCloudError(err, 'NotFound')) throw notFound(id);
    if (isCloudError(err, 'BadRequest') || isCloudError(err, 'InvalidVolume'))
      throw invalidInput(err.message);
    throw err;
  }
}

export async function snapshotProxyRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  app.get('/os-snapshots', (request) => listSnapshots(deps, request, 'list'));
  app.get('/os-snapshots/detail', (request) => listSnapshots(deps, request, 'detail'));
  app.get('/os-snapshots/:id', async (request) => {
    proxyUntil(request);
    const { ctx } = authOf(request);
    allow(ctx, 'show');
    const { id } = request.params as { id: string };
    return { snapshot: novaSnapshotView(await visibleSnapshot(deps, ctx, id)) };
  });
  app.post('/os-snapshots', (request) => createSnapshot(deps, request));
  app.delete('/os-snapshots/:id', async (request, reply) => {
    await deleteSnapshot(deps, request);
    return reply.code(202).send();
  });
}
