/**
 * /os-volumes (nova/api/openstack/compute/volumes.py), up to 2.35: Nova's proxy to Cinder's volumes in
 * Nova's old view (displayName, displayDescription, availabilityZone, createdAt, attachments as
 * `[{id, volumeId, serverId, device}]` or `[{}]`). Reads go to bootflow's Cinder as the caller sees it
 * (the caller's project's volumes, newest first, paged by offset/limit); a create is Cinder's own: the
 * volume is accepted `creating` and built by Cinder's durable background creation, as POST /volume/v3
 * does (api/volume), and a delete is Cinder's with Cinder's refusals as Nova words them.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { volumeMetadataSchema, type Volume } from '../../cloud/cinder';
import { isCloudError } from '../../cloud/errors';
import type { RequestContext } from '../../cloud/keystone';
import { authOf } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { refuseMissingSources } from '../volume';
import { cinderTime } from '../volume/views';
import { enforcePolicy, parseBody } from './common';
import { invalidInput, limited, proxyUntil, refuseEmptyId } from './proxy-common';

const DIGITS = /^[0-9]+$/;
/** schemas/volumes.py create: `size` an integer ≥ 1 or a string of digits; nothing unknown. */
const createBody = z.strictObject({
  volume: z.strictObject({
    volume_type: z.string().optional(),
    metadata: z.record(z.string(), z.unknown()).optional(),
    snapshot_id: z.string().optional(),
    size: z.unknown().superRefine((value, ctx) => {
      const ok =
        (typeof value === 'number' && Number.isInteger(value) && value >= 1) ||
        (typeof value === 'string' && DIGITS.test(value));
      if (!ok)
        ctx.addIssue({
          code: 'custom',
          message:
            typeof value === 'string'
              ? `'${value}' does not match '^[0-9]+$'`
              : typeof value === 'number'
                ? `${value} is less than the minimum of 1`
                : `${JSON.stringify(value) ?? 'None'} is not of type 'integer', 'string'`,
        });
    }),
    availability_zone: z.string().optional(),
    display_name: z.string().optional(),
    display_description: z.string().optional(),
  }),
});

type VolumePolicy = 'list' | 'detail' | 'show' | 'create' | 'delete';
const allow = (ctx: RequestContext, action: VolumePolicy) =>
  enforcePolicy(ctx, `os_compute_api:os-volumes:${action}`, ctx.projectId);

/** _translate_volume_summary_view over nova/volume/cinder.py's _untranslate_volume_summary_view. */
export function novaVolumeView(v: Volume) {
  const attached = v.attachments.find((a) => a.attachStatus === 'attached');
  return {
    id: v.id,
    status: v.status,
    size: v.sizeGb,
    availabilityZone: 'nova',
    createdAt: cinderTime(v.createdAt),
    attachments: attached
      ? [
          {
            id: v.id,
            volumeId: v.id,
            serverId: attached.instanceUuid,
            ...(attached.mountpoint ? { device: attached.mountpoint } : {}),
          },
        ]
      : [{}],
    displayName: v.name,
    displayDescription: v.description,
    volumeType: '__DEFAULT__',
    snapshotId: null,
    // Cinder's shown metadata: the user's, with its visible admin metadata (`readonly`).
    metadata: { ...v.metadata, ...(v.readonly === null ? {} : { readonly: v.readonly ? 'True' : 'False' }) },
  };
}

async function visibleVolume(deps: ApiDeps, ctx: RequestContext, id: string): Promise<Volume> {
  try {
    return await deps.cloud.cinder.getVolume(id, ctx);
  } catch (err) {
    if (isCloudError(err, 'NotFound') || isCloudError(err, 'BadRequest'))
      throw new ApiError(404, `Volume ${id} could not be found.`);
    throw err;
  }
}

async function listVolumes(deps: ApiDeps, request: FastifyRequest, action: 'list' | 'detail') {
  proxyUntil(request);
  refuseEmptyId(request);
  const { ctx } = authOf(request);
  allow(ctx, action);
  // cinder.API.get_all: the caller's project's volumes (no all_tenants), Cinder's order: newest first.
  const volumes = (await deps.cloud.cinder.listVolumes({ projectId: ctx.projectId }, ctx)).reverse();
  return { volumes: limited(volumes, request).map(novaVolumeView) };
}

async function createVolume(deps: ApiDeps, request: FastifyRequest) {
  proxyUntil(request);
  const { ctx } = authOf(request);
  const body = parseBody(createBody, request.body).volume;
  allow(ctx, 'create');
  const size = Number(body.size);
  // Cinder's own answers for a type it does not have and an unknown snapshot (Nova's schema has no
  // source volume, so the lookup of one is never called).
  await refuseMissingSources(
    { volume_type: body.volume_type ?? null, snapshot_id: body.snapshot_id ?? null },
    () => Promise.reject(new Error('os-volumes names no source volume')),
  );
  if (body.snapshot_id !== undefined)
    throw invalidInput("bootflow's Cinder does not create volumes from snapshots (snapshot_id).");
  if (size < 1)
    throw invalidInput(`Volume size '${String(body.size)}' must be an integer and greater than 0`);
  if (body.availability_zone !== undefined && body.availability_zone !== 'nova')
    throw invalidInput(`Availability zone '${body.availability_zone}' is invalid.`);
  const metadata = volumeMetadataSchema.safeParse(body.metadata ?? {});
  if (!metadata.success)
    throw invalidInput(`Invalid input for field/attribute metadata. ${metadata.error.issues[0]!.message}`);
  for (const [field, value] of [
    ['display_name', body.display_name],
    ['display_description', body.display_description],
  ] as const)
    if (value !== undefined && value.length > 255)
      throw invalidInput(`Invalid input for field/attribute ${field}. '${value}' is too long`);
  try {
    const volume = await deps.cloud.cinder.createVolume({
      // Each API call is its own creation, as POST /volume/v3/volumes names it.
      requestKey: `api:${request.id}`,
      projectId: ctx.projectId,
      userId: ctx.userId,
      sizeGb: size,
      ...(body.display_name ? { name: body.display_name } : {}),
      ...(body.display_description ? { description: body.display_description } : {}),
      ...(body.metadata ? { metadata: metadata.data } : {}),
    });
    return volume;
  } catch (err) {
    if (isCloudError(err, 'BadRequest')) throw invalidInput(err.message);
    throw err;
  }
}

async function deleteVolume(deps: ApiDeps, request: FastifyRequest): Promise<void> {
  proxyUntil(request);
  const { ctx } = authOf(request);
  allow(ctx, 'delete');
  const { id } = request.params as { id: string };
  const volume = await visibleVolume(deps, ctx, id);
  try {
    await deps.cloud.cinder.deleteVolume(volume.id, {}, ctx);
  } catch (err) {
    if (isCloudError(err, 'NotFound')) throw new ApiError(404, `Volume ${id} could not be found.`);
    // translate_cinder_exception: Cinder's 400 (attached, busy) is InvalidInput.
    if (isCloudError(err, 'InvalidVolume')) throw invalidInput(err.message);
    throw err;
  }
}

export async function volumeProxyRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  app.get('/os-volumes', (request) => listVolumes(deps, request, 'list'));
  app.get('/os-volumes/detail', (request) => listVolumes(deps, request, 'detail'));
  app.get('/os-volumes/:id', async (request) => {
    proxyUntil(request);
    const { ctx } = authOf(request);
    allow(ctx, 'show');
    const { id } = request.params as { id: string };
    return { volume: novaVolumeView(await visibleVolume(deps, ctx, id)) };
  });
  app.post('/os-volumes', async (request, reply) => {
    const volume = await createVolume(deps, request);
    reply.header('location', `${deps.publicUrl}/compute/v2.1/os-volumes/${volume.id}`);
    return { volume: novaVolumeView(volume) };
  });
  app.delete('/os-volumes/:id', async (request, reply) => {
    await deleteVolume(deps, request);
    return reply.code(202).send();
  });
}
