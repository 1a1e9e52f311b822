/**
 * What a flavor has beyond its sizes (migration 009): its extra specs (Nova's flavor_extra_specs, the
 * os-extra_specs API) and its description (2.55, os-flavor-manage's update). Kept apart from Flavor,
 * which instances copy.
 */
import { z } from 'zod';
import { CloudError } from '../errors';
import { parseRequest } from '../validation';
import type { NovaContext } from './db-util';

export interface FlavorExtras {
  description: string | null;
  extraSpecs: Record<string, string>;
  /** os-flavor-access:is_public (flavor-access.ts: a private flavor is seen by admins and its projects). */
  isPublic: boolean;
}

const flavorIdSchema = z.string().min(1).max(255);
/** Nova's flavors_extraspecs schema (before 2.86's validation of known keys). */
const specsSchema = z.record(
  z.string().regex(/^[a-zA-Z0-9\-_:. ]{1,255}$/, 'does not match any allowed key pattern'),
  z.string().max(255),
);

async function existingFlavor(ctx: NovaContext, id: string): Promise<void> {
  const row = await ctx.store.db
    .selectFrom('flavors')
    .select('flavorid')
    .where('flavorid', '=', id)
    .executeTakeFirst();
  if (!row) throw new CloudError('NotFound', `Flavor ${id} could not be found.`, { flavor: id });
}

/** The extras of the given flavors (all when omitted), by flavor id. */
export async function listFlavorExtras(ctx: NovaContext, ids?: string[]): Promise<Map<string, FlavorExtras>> {
  let flavors = ctx.store.db.selectFrom('flavors').select(['flavorid', 'description', 'is_public']);
  let specs = ctx.store.db.selectFrom('flavor_extra_specs').select(['flavorid', 'spec_key', 'spec_value']);
  if (ids) {
    if (ids.length === 0) return new Map();
    flavors = flavors.where('flavorid', 'in', ids);
    specs = specs.where('flavorid', 'in', ids);
  }
  const out = new Map<string, FlavorExtras>();
  for (const f of await flavors.execute())
    out.set(f.flavorid, {
      description: f.description ?? null,
      extraSpecs: {},
      isPublic: Number(f.is_public) === 1,
    });
  for (const s of await specs.orderBy('spec_key').execute()) {
    const extras = out.get(s.flavorid);
    if (extras) extras.extraSpecs[s.spec_key] = s.spec_value;
  }
  return out;
}

/** os-extra_specs create and update: the given keys set (others kept), in one transaction. */
export async function setFlavorExtraSpecs(
  ctx: NovaContext,
  idIn: unknown,
  specsIn: unknown,
): Promise<Record<string, string>> {
  const id = parseRequest(flavorIdSchema, idIn, 'flavor id');
  const specs = parseRequest(specsSchema, specsIn, 'flavor extra specs');
  await existingFlavor(ctx, id);
  await ctx.store.transaction(async (trx) => {
    for (const [key, value] of Object.entries(specs)) {
      await trx
        .deleteFrom('flavor_extra_specs')
        .where('flavorid', '=', id)
        .where('spec_key', '=', key)
        .execute();
      await trx
        .insertInto('flavor_extra_specs')
        .values({ flavorid: id, spec_key: key, spec_value: value })
        .execute();
    }
  });
  return specs;
}

/** os-extra_specs delete: 404 with Nova's words for a key the flavor does not have. */
export async function deleteFlavorExtraSpec(ctx: NovaContext, idIn: unknown, keyIn: unknown): Promise<void> {
  const id = parseRequest(flavorIdSchema, idIn, 'flavor id');
  const key = parseRequest(z.string().min(1).max(255), keyIn, 'extra spec key');
  await existingFlavor(ctx, id);
  const result = await ctx.store.db
    .deleteFrom('flavor_extra_specs')
    .where('flavorid', '=', id)
    .where('spec_key', '=', key)
    .executeTakeFirst();
  if (Number(result.numDeletedRows) === 0)
    throw new CloudError('NotFound', `Flavor ${id} has no extra specs with key ${key}.`);
}

/** os-flavor-manage update (2.55): the description, the only thing a flavor update changes. */
export async function setFlavorDescription(
  ctx: NovaContext,
  idIn: unknown,
  descriptionIn: unknown,
): Promise<void> {
  const id = parseRequest(flavorIdSchema, idIn, 'flavor id');
  const description = parseRequest(z.string().max(65535).nullable(), descriptionIn, 'flavor description');
  await existingFlavor(ctx, id);
  await ctx.store.db.updateTable('flavors').set({ description }).where('flavorid', '=', id).execute();
}
