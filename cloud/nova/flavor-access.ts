/**
 * Private flavors (migration 011): a flavor with is_public 0 is seen only by an admin and by the projects
 * on its access list (Nova's flavor_projects, the os-flavor-access API). The visibility rule is Nova's
 * _flavor_get_query_from_db and _flavor_get_all_from_db: a non-admin sees the public flavors and those
 * shared with its project; an admin sees every flavor.
 */
import type { ExpressionBuilder } from 'kysely';
import { z } from 'zod';
import { CloudError } from '../errors';
import { parseRequest } from '../validation';
import { isUniqueViolation, type NovaContext } from './db-util';
import type { NovaDb } from './schema';

/** Who is looking: a project, and whether the caller is an admin (Nova's context.is_admin). */
export interface FlavorViewer {
  projectId: string;
  admin: boolean;
}

const flavorIdSchema = z.string().min(1).max(255);
/** instance_type_projects.project_id: a string of 1 to 255 (flavor_access.py's schema). */
const projectIdSchema = z.string().min(1).max(255);
export const flavorViewerSchema = z.strictObject({ projectId: projectIdSchema, admin: z.boolean() });

/** The where-clause a non-admin's flavor reads take: public flavors, or those shared with its project. */
export function visibleTo(projectId: string) {
  return (eb: ExpressionBuilder<NovaDb, 'flavors'>) =>
    eb.or([
      eb('flavors.is_public', '=', 1),
      eb.exists(
        eb
          .selectFrom('flavor_projects')
          .select('flavor_projects.flavorid')
          .whereRef('flavor_projects.flavorid', '=', 'flavors.flavorid')
          .where('flavor_projects.project_id', '=', projectId),
      ),
    ]);
}

async function flavorRow(ctx: NovaContext, id: string): Promise<{ flavorid: string; is_public: number }> {
  const row = await ctx.store.db
    .selectFrom('flavors')
    .select(['flavorid', 'is_public'])
    .where('flavorid', '=', id)
    .executeTakeFirst();
  if (!row) throw new CloudError('NotFound', `Flavor ${id} could not be found.`, { flavor: id });
  return row;
}

async function projectsOf(ctx: NovaContext, id: string): Promise<string[]> {
  const rows = await ctx.store.db
    .selectFrom('flavor_projects')
    .select('project_id')
    .where('flavorid', '=', id)
    .orderBy('project_id')
    .execute();
  return rows.map((r) => r.project_id);
}

/** The access list of a private flavor; a public flavor has none (NotFound, as Nova's index answers 404). */
export async function listFlavorAccess(ctx: NovaContext, idIn: unknown): Promise<string[]> {
  const id = parseRequest(flavorIdSchema, idIn, 'flavor id');
  const flavor = await flavorRow(ctx, id);
  if (flavor.is_public === 1)
    throw new CloudError('NotFound', 'Access list not available for public flavors.', { flavor: id });
  return projectsOf(ctx, id);
}

const addSchema = z.strictObject({
  flavorId: flavorIdSchema,
  projectId: projectIdSchema,
  /** From 2.7 a public flavor refuses it (Conflict); before, Nova records the row anyway. */
  refusePublic: z.boolean(),
});
export type AddFlavorAccessInput = z.input<typeof addSchema>;

/** Flavor.add_access: one row; Conflict (FlavorAccessExists) when the project has it already. */
export async function addFlavorAccess(ctx: NovaContext, input: unknown): Promise<string[]> {
  const req = parseRequest(addSchema, input, 'flavor access');
  const flavor = await flavorRow(ctx, req.flavorId);
  if (req.refusePublic && flavor.is_public === 1)
    throw new CloudError('Conflict', 'Can not add access to a public flavor.', { flavor: req.flavorId });
  const exists = () =>
    new CloudError(
      'Conflict',
      `Flavor access already exists for flavor ${req.flavorId} and project ${req.projectId} combination.`,
      { flavor: req.flavorId, projectId: req.projectId },
    );
  const held = await ctx.store.db
    .selectFrom('flavor_projects')
    .select('project_id')
    .where('flavorid', '=', req.flavorId)
    .where('project_id', '=', req.projectId)
    .executeTakeFirst();
  if (held) throw exists();
  try {
    await ctx.store.db
      .insertInto('flavor_projects')
      .values({ flavorid: req.flavorId, project_id: req.projectId, created_at: ctx.clock.now() })
      .execute();
  } catch (err) {
    // A concurrent add of the same project won: the primary key makes it one row.
    if (isUniqueViolation(err)) throw exists();
    throw err;
  }
  return projectsOf(ctx, req.flavorId);
}

const removeSchema = z.strictObject({ flavorId: flavorIdSchema, projectId: projectIdSchema });
export type RemoveFlavorAccessInput = z.input<typeof removeSchema>;

/** Flavor.remove_access: NotFound (FlavorAccessNotFound) when the project had none. */
export async function removeFlavorAccess(ctx: NovaContext, input: unknown): Promise<string[]> {
  const req = parseRequest(removeSchema, input, 'flavor access');
  await flavorRow(ctx, req.flavorId);
  const result = await ctx.store.db
    .deleteFrom('flavor_projects')
    .where('flavorid', '=', req.flavorId)
    .where('project_id', '=', req.projectId)
    .executeTakeFirst();
  if (Number(result.numDeletedRows) === 0) {
    throw new CloudError(
      'NotFound',
      `Flavor access not found for ${req.flavorId} / ${req.projectId} combination.`,
      { flavor: req.flavorId, projectId: req.projectId },
    );
  }
  return projectsOf(ctx, req.flavorId);
}
