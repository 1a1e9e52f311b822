/**
 * Cinder v3's snapshots (cinder/api/v3/snapshots.py, api-ref volumes-v3-snapshots.inc): list (summary and
 * `detail`, filters status / volume_id / name / metadata from 3.22, `all_tenants` for an admin, sort, marker,
 * offset, limit), create (202, `creating`; an in-use volume only with `force`), show, update, delete (202),
 * the snapshot's metadata (cinder/api/v3/snapshot_metadata.py), and the admin actions os-reset_status and
 * os-force_delete (cinder/api/contrib/admin_actions.py SnapshotAdminController). Policies are Cinder's
 * defaults (cinder/policies/snapshots.py, snapshot_metadata.py): a reader of the project reads, a member
 * writes, an admin sees every project and runs the admin actions.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { RESETTABLE_SNAPSHOT_STATUSES, type Cinder, type Snapshot } from '../../cloud/cinder';
import { isCloudError } from '../../cloud/errors';
import type { RequestContext } from '../../cloud/keystone';
import { ApiError } from '../errors';
import { isTrue, parameterBoolean } from '../parameter-types';
import { pageOf } from './list';
import { metadataRoutes } from './metadata';
import type { Microversion } from './microversion';
import { cinderBadRequest, cinderMetadataSchema, parseMetadataFilter } from './validation';
import { snapshotDetail, snapshotSummary } from './views';

export interface SnapshotRouteKit {
  cinder: Cinder;
  route: (path: string) => string[];
  checkProject: (request: FastifyRequest) => void;
  ctxOf: (request: FastifyRequest) => RequestContext;
  versionOf: (request: FastifyRequest) => Microversion;
  /** The volume API's public URL (`<public>/volume`, read per request), for next links. */
  publicVolumeUrl: () => string;
}

const text = z.string().max(255).nullable().optional();
const uuid = z.string().uuid();

/** cinder/api/schemas/snapshots.py create. */
const createBody = z.strictObject({
  snapshot: z.strictObject({
    name: text,
    display_name: text,
    description: text,
    // Required, but may be null (uuid_allow_null): then the volume "None" is not found.
    volume_id: uuid.nullable(),
    force: parameterBoolean.optional(),
    metadata: cinderMetadataSchema.nullable().optional(),
  }),
});

/** cinder/api/schemas/snapshots.py update: at least one of the four. */
const updateBody = z.strictObject({
  snapshot: z
    .strictObject({ name: text, description: text, display_name: text, display_description: text })
    .refine((s) => Object.keys(s).length > 0, 'is not valid under any of the given schemas'),
});

const ACTION_BODIES = {
  'os-reset_status': z.strictObject({
    'os-reset_status': z.strictObject({
      status: z
        .string()
        .transform((s) => s.toLowerCase())
        .pipe(z.enum(RESETTABLE_SNAPSHOT_STATUSES)),
    }),
  }),
  'os-force_delete': z.strictObject({ 'os-force_delete': z.object({}).nullable() }),
};

/** Cinder's snapshot sort keys (columns of its snapshots table) and how bootflow's snapshots compare by them. */
const SORT_KEYS: Record<string, (s: Snapshot) => string | number> = {
  id: (s) => s.id,
  created_at: (s) => s.createdAt,
  updated_at: (s) => s.updatedAt,
  display_name: (s) => s.name ?? '',
  display_description: (s) => s.description ?? '',
  status: (s) => s.status,
  volume_id: (s) => s.volumeId,
  volume_size: (s) => s.sizeGb,
  project_id: (s) => s.projectId,
  user_id: (s) => s.userId ?? '',
};

const isAdmin = (ctx: RequestContext) => ctx.roles.includes('admin');

/** The cloud's refusals as Cinder's API words them. */
export function cinderFailure(err: unknown): unknown {
  if (!isCloudError(err)) return err;
  if (err.type === 'NotFound' || err.type === 'InvalidVolume') return new ApiError(err.code, err.message);
  if (err.type === 'BadRequest')
    return new ApiError(
      400,
      err.details.invalid === 'snapshot' ? err.message : `Invalid input received: ${err.message}`,
    );
  if (err.type === 'QuotaExceeded') {
    // cinder/quota_utils.py process_reserve_over_quota: SnapshotLimitExceeded, or VolumeSizeExceedsAvailableQuota.
    const overs = (err.details.overs ?? []) as string[];
    const of = (key: string, resource: string) =>
      Number((err.details[key] as Record<string, number> | undefined)?.[resource] ?? 0);
    const message = overs.includes('snapshots')
      ? `Maximum number of snapshots allowed (${of('allowed', 'snapshots')}) exceeded`
      : `Requested volume or snapshot exceeds allowed gigabytes quota. Requested ${of('requested', 'gigabytes')}G, ` +
        `quota is ${of('allowed', 'gigabytes')}G and ${of('used', 'gigabytes')}G has been consumed.`;
    return new ApiError(413, message, undefined, { 'Retry-After': '0' });
  }
  return err;
}

async function cinderCall<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw cinderFailure(err);
  }
}

export async function snapshotRoutes(app: FastifyInstance, kit: SnapshotRouteKit): Promise<void> {
  const { cinder, route, checkProject, ctxOf, versionOf } = kit;
  const snapshots = cinder.snapshots;

  async function visible(request: FastifyRequest): Promise<Snapshot> {
    checkProject(request);
    const { snapshotId } = request.params as { snapshotId: string };
    try {
      return await snapshots.get(snapshotId, ctxOf(request));
    } catch (err) {
      if (isCloudError(err, 'NotFound') || isCloudError(err, 'BadRequest'))
        throw new ApiError(404, `Snapshot ${snapshotId} could not be found.`);
      throw err;
    }
  }

  /** The caller's page of snapshots and its next link. */
  async function listed(request: FastifyRequest) {
    checkProject(request);
    const ctx = ctxOf(request);
    const version = versionOf(request);
    const q = Object.fromEntries(
      Object.entries(request.query as Record<string, unknown>).map(([k, v]) => [
        k,
        typeof v === 'string' ? v : undefined,
      ]),
    );
    const allTenants = ['1', 'true', 'True'].includes(q.all_tenants ?? '');
    const projectFilter = isAdmin(ctx) ? (allTenants ? q.project_id : ctx.projectId) : ctx.projectId;
    let items = await snapshots.list(projectFilter ? { projectId: projectFilter } : {}, ctx);
    if (q.status !== undefined) items = items.filter((s) => s.status === q.status);
    if (q.volume_id !== undefined) items = items.filter((s) => s.volumeId === q.volume_id);
    const name = q.name ?? q.display_name;
    if (name !== undefined) items = items.filter((s) => s.name === name);
    // The metadata filter is Cinder's from 3.22; before, it is dropped as an unknown filter.
    if (q.metadata !== undefined && version.minor >= 22) {
      const wanted = Object.entries(parseMetadataFilter(q.metadata));
      items = items.filter((s) => wanted.every(([k, v]) => s.metadata[k] === v));
    }
    // Cinder's SNAPSHOT_SORT (3.30) reads the `name` sort key as display_name.
    const keys = version.minor >= 30 ? { ...SORT_KEYS, name: SORT_KEYS.display_name! } : SORT_KEYS;
    const path = request.url.split('?')[0]!.replace(/^\/volume/, '');
    return pageOf(items, q, `${kit.publicVolumeUrl()}${path}`, keys, 'Snapshot');
  }

  for (const path of route('/snapshots')) {
    app.get(path, async (request) => {
      const page = await listed(request);
      return {
        snapshots: page.items.map(snapshotSummary),
        ...(page.links.length ? { snapshots_links: page.links } : {}),
      };
    });
    app.post(path, async (request, reply) => {
      checkProject(request);
      const parsed = createBody.safeParse(request.body);
      if (!parsed.success) throw cinderBadRequest(parsed.error);
      const body = parsed.data.snapshot;
      if (body.volume_id === null) throw new ApiError(404, 'Volume None could not be found.');
      const ctx = ctxOf(request);
      const name = body.name !== undefined ? body.name : body.display_name;
      const created = await cinderCall(() =>
        snapshots.create(
          {
            volumeId: body.volume_id!,
            projectId: ctx.projectId,
            userId: ctx.userId,
            ...(name ? { name } : {}),
            ...(body.description ? { description: body.description } : {}),
            ...(body.metadata ? { metadata: body.metadata } : {}),
            force: body.force === undefined ? false : isTrue(body.force),
          },
          ctx,
        ),
      );
      return reply.code(202).send({ snapshot: snapshotDetail(created, versionOf(request), false) });
    });
  }

  for (const path of route('/snapshots/detail')) {
    app.get(path, async (request) => {
      const page = await listed(request);
      const version = versionOf(request);
      return {
        snapshots: page.items.map((s) => snapshotDetail(s, version, true)),
        ...(page.links.length ? { snapshots_links: page.links } : {}),
      };
    });
  }

  for (const path of route('/snapshots/:snapshotId')) {
    app.get(path, async (request) => ({
      snapshot: snapshotDetail(await visible(request), versionOf(request), true),
    }));
    app.put(path, async (request) => {
      checkProject(request);
      const parsed = updateBody.safeParse(request.body);
      if (!parsed.success) throw cinderBadRequest(parsed.error);
      const snapshot = await visible(request);
      const body = parsed.data.snapshot;
      const name = body.name !== undefined ? body.name : body.display_name;
      const description = body.description !== undefined ? body.description : body.display_description;
      const updated = await cinderCall(() =>
        snapshots.update(
          snapshot.id,
          {
            ...(name !== undefined ? { name } : {}),
            ...(description !== undefined ? { description } : {}),
          },
          ctxOf(request),
        ),
      );
      return { snapshot: snapshotDetail(updated, versionOf(request), false) };
    });
    app.delete(path, async (request, reply) => {
      const snapshot = await visible(request);
      await cinderCall(() => snapshots.delete(snapshot.id, {}, ctxOf(request)));
      return reply.code(202).send();
    });
  }

  for (const path of route('/snapshots/:snapshotId/action')) {
    app.post(path, async (request, reply: FastifyReply) => {
      checkProject(request);
      const body = request.body;
      const name =
        typeof body === 'object' && body !== null && Object.keys(body).length === 1
          ? Object.keys(body)[0]!
          : undefined;
      if (name !== 'os-reset_status' && name !== 'os-force_delete')
        throw new ApiError(400, `There is no such action: ${name ?? JSON.stringify(body)}`);
      const parsed = ACTION_BODIES[name].safeParse(body);
      if (!parsed.success) throw cinderBadRequest(parsed.error);
      const snapshot = await visible(request);
      const ctx = ctxOf(request);
      if (name === 'os-reset_status') {
        const { status } = ACTION_BODIES[name].parse(body)[name];
        await cinderCall(() => snapshots.resetStatus(snapshot.id, status, ctx));
      } else {
        if (!isAdmin(ctx))
          throw new ApiError(
            403,
            `Policy doesn't allow volume_extension:snapshot_admin_actions:force_delete to be performed.`,
          );
        await cinderCall(() => snapshots.delete(snapshot.id, { force: true }, ctx));
      }
      return reply.code(202).send();
    });
  }

  await metadataRoutes(app, {
    route,
    collection: 'snapshots',
    param: 'snapshotId',
    noun: 'Snapshot',
    load: visible,
    set: (request, id, metadata, mode) =>
      cinderCall(() => snapshots.setMetadata(id, metadata, mode, ctxOf(request))),
    remove: (request, id, key) => cinderCall(() => snapshots.deleteMetadataItem(id, key, ctxOf(request))),
  });
}
