/** Flavors: the default DevStack set (nova-manage / devstack create m1.* with ids 1..5). */
import { z } from 'zod';
import { CloudError } from '../errors';
import { idSchema, parseRequest } from '../validation';
import { isUniqueViolation, type NovaContext } from './db-util';
import { flavorViewerSchema, visibleTo, type FlavorViewer } from './flavor-access';
import type { FlavorsTable } from './schema';

export interface Flavor {
  id: string;
  name: string;
  vcpus: number;
  memoryMb: number;
  rootGb: number;
  ephemeralGb: number;
  swapMb: number;
}

/**
 * A flavor's own fields, the way a guest is defined with them, without what rows and views carry beside
 * them (extra specs, a description): what a workflow's plan holds.
 */
export function guestFlavor(flavor: Flavor): Flavor {
  const { id, name, vcpus, memoryMb, rootGb, ephemeralGb, swapMb } = flavor;
  return { id, name, vcpus, memoryMb, rootGb, ephemeralGb, swapMb };
}

export const DEFAULT_FLAVORS: readonly Flavor[] = [
  { id: '1', name: 'm1.tiny', vcpus: 1, memoryMb: 512, rootGb: 1, ephemeralGb: 0, swapMb: 0 },
  { id: '2', name: 'm1.small', vcpus: 1, memoryMb: 2048, rootGb: 20, ephemeralGb: 0, swapMb: 0 },
  { id: '3', name: 'm1.medium', vcpus: 2, memoryMb: 4096, rootGb: 40, ephemeralGb: 0, swapMb: 0 },
  { id: '4', name: 'm1.large', vcpus: 4, memoryMb: 8192, rootGb: 80, ephemeralGb: 0, swapMb: 0 },
  { id: '5', name: 'm1.xlarge', vcpus: 8, memoryMb: 16384, rootGb: 160, ephemeralGb: 0, swapMb: 0 },
];

export function flavorFromRow(row: FlavorsTable): Flavor {
  return {
    id: row.flavorid,
    name: row.name,
    vcpus: row.vcpus,
    memoryMb: row.memory_mb,
    rootGb: row.root_gb,
    ephemeralGb: row.ephemeral_gb,
    swapMb: row.swap_mb,
  };
}

/** Inserts the default flavors that are missing; existing ones (even edited) are left alone. */
export async function ensureDefaultFlavors(ctx: NovaContext): Promise<Flavor[]> {
  const now = ctx.clock.now();
  for (const f of DEFAULT_FLAVORS) {
    const existing = await ctx.store.db
      .selectFrom('flavors')
      .select('flavorid')
      .where((eb) => eb.or([eb('flavorid', '=', f.id), eb('name', '=', f.name)]))
      .executeTakeFirst();
    if (existing) continue;
    try {
      await ctx.store.db
        .insertInto('flavors')
        .values({
          flavorid: f.id,
          name: f.name,
          vcpus: f.vcpus,
          memory_mb: f.memoryMb,
          root_gb: f.rootGb,
          ephemeral_gb: f.ephemeralGb,
          swap_mb: f.swapMb,
          is_public: 1,
          disabled: 0,
          created_at: now,
        })
        .execute();
    } catch (err) {
      // Another process seeded it at the same moment: the flavor exists, which is all we wanted.
      if (!isUniqueViolation(err)) throw err;
    }
  }
  return listFlavors(ctx);
}

/**
 * A flavor by id or, failing that, by name (as `openstack flavor show` resolves it). With a viewer, only
 * a flavor it may see (a private one needs admin or access: flavor-access.ts).
 */
export async function findFlavor(
  ctx: NovaContext,
  nameOrId: string,
  viewer?: FlavorViewer,
): Promise<Flavor | undefined> {
  let query = ctx.store.db
    .selectFrom('flavors')
    .selectAll()
    .where((eb) => eb.or([eb('flavorid', '=', nameOrId), eb('name', '=', nameOrId)]))
    .where('disabled', '=', 0);
  if (viewer && !viewer.admin) query = query.where(visibleTo(viewer.projectId));
  const rows = await query.execute();
  const row = rows.find((r) => r.flavorid === nameOrId) ?? rows[0];
  return row ? flavorFromRow(row) : undefined;
}

/** As findFlavor; NotFound ("Flavor <id> could not be found.") when there is none the viewer may see. */
export async function getFlavor(ctx: NovaContext, nameOrId: unknown, viewerIn?: unknown): Promise<Flavor> {
  const key = parseRequest(idSchema, nameOrId, 'flavor id or name');
  const viewer = viewerIn === undefined ? undefined : parseRequest(flavorViewerSchema, viewerIn, 'viewer');
  const flavor = await findFlavor(ctx, key, viewer);
  if (!flavor) throw new CloudError('NotFound', `Flavor ${key} could not be found.`, { flavor: key });
  return flavor;
}

const listFilterSchema = z.strictObject({
  /**
   * Nova's is_public filter: true keeps the public flavors and those shared with projectId, false the
   * private ones only, null (or absent) all of them.
   */
  isPublic: z.boolean().nullable().optional(),
  projectId: z.string().min(1).max(255).optional(),
});
export type FlavorListFilter = z.input<typeof listFilterSchema>;

/** The enabled flavors, by memory then id; the filter as Nova's FlavorList.get_all applies it. */
export async function listFlavors(ctx: NovaContext, filterIn: unknown = {}): Promise<Flavor[]> {
  const filter = parseRequest(listFilterSchema, filterIn, 'flavor filter');
  let query = ctx.store.db.selectFrom('flavors').selectAll().where('disabled', '=', 0);
  if (filter.isPublic === false) query = query.where('is_public', '=', 0);
  if (filter.isPublic === true) {
    query =
      filter.projectId === undefined
        ? query.where('is_public', '=', 1)
        : query.where(visibleTo(filter.projectId));
  }
  const rows = await query.orderBy('memory_mb').orderBy('flavorid').execute();
  return rows.map(flavorFromRow);
}

/** A flavor as a caller hands it in (e.g. what getFlavor returned), or just its id or name. */
export const flavorRefSchema = z.union([
  idSchema,
  z.strictObject({
    id: idSchema,
    name: z.string().max(255),
    vcpus: z.number().int().min(1).max(1024),
    memoryMb: z
      .number()
      .int()
      .min(1)
      .max(16 * 1024 * 1024),
    rootGb: z
      .number()
      .int()
      .min(0)
      .max(1024 * 1024),
    ephemeralGb: z
      .number()
      .int()
      .min(0)
      .max(1024 * 1024),
    swapMb: z
      .number()
      .int()
      .min(0)
      .max(16 * 1024 * 1024),
  }),
]);

const createFlavorSchema = z.strictObject({
  id: z
    .string()
    .min(1)
    .max(255)
    .regex(/^[\w.\- ]+$/, 'must be letters, digits, "_", "-", "." or spaces'),
  name: z.string().min(1).max(255),
  vcpus: z.number().int().min(1).max(2147483647),
  memoryMb: z.number().int().min(1).max(2147483647),
  rootGb: z.number().int().min(0).max(2147483647),
  ephemeralGb: z.number().int().min(0).max(2147483647),
  swapMb: z.number().int().min(0).max(2147483647),
  /** os-flavor-access:is_public (default true); a private flavor starts with an empty access list. */
  isPublic: z.boolean().optional(),
});
export type CreateFlavorInput = z.input<typeof createFlavorSchema>;

/** nova-manage / os-flavor-manage create: names and ids are unique (409 FlavorExists / FlavorIdExists). */
export async function createFlavor(ctx: NovaContext, input: unknown): Promise<Flavor> {
  const req = parseRequest(createFlavorSchema, input, 'flavor');
  const clash = await ctx.store.db
    .selectFrom('flavors')
    .select(['flavorid', 'name'])
    .where((eb) => eb.or([eb('flavorid', '=', req.id), eb('name', '=', req.name)]))
    .executeTakeFirst();
  if (clash?.name === req.name)
    throw new CloudError('Conflict', `Flavor with name ${req.name} already exists.`);
  if (clash) throw new CloudError('Conflict', `Flavor with ID ${req.id} already exists.`);
  try {
    await ctx.store.db
      .insertInto('flavors')
      .values({
        flavorid: req.id,
        name: req.name,
        vcpus: req.vcpus,
        memory_mb: req.memoryMb,
        root_gb: req.rootGb,
        ephemeral_gb: req.ephemeralGb,
        swap_mb: req.swapMb,
        is_public: req.isPublic === false ? 0 : 1,
        disabled: 0,
        created_at: ctx.clock.now(),
      })
      .execute();
  } catch (err) {
    if (isUniqueViolation(err)) throw new CloudError('Conflict', `Flavor with ID ${req.id} already exists.`);
    throw err;
  }
  return {
    id: req.id,
    name: req.name,
    vcpus: req.vcpus,
    memoryMb: req.memoryMb,
    rootGb: req.rootGb,
    ephemeralGb: req.ephemeralGb,
    swapMb: req.swapMb,
  };
}

/** Removes a flavor; instances keep their copy of it (as Nova's embedded flavor). */
export async function deleteFlavor(ctx: NovaContext, id: string): Promise<void> {
  // Its extra specs and access list first (SQLite enforces the foreign key only when told to).
  await ctx.store.db.deleteFrom('flavor_extra_specs').where('flavorid', '=', id).execute();
  await ctx.store.db.deleteFrom('flavor_projects').where('flavorid', '=', id).execute();
  const result = await ctx.store.db.deleteFrom('flavors').where('flavorid', '=', id).executeTakeFirst();
  if (Number(result.numDeletedRows) === 0)
    throw new CloudError('NotFound', `Flavor ${id} could not be found.`);
}
