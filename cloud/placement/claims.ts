/**
 * The claim and the release, each one transaction. The provider row is locked first (FOR UPDATE; SQLite's
 * write transaction excludes other writers anyway), so on MySQL every later read of the transaction sees
 * the allocations committed before it. Then, as Placement does, the provider generation and the consumer
 * generation are moved by compare-and-swap, and each inventory's `used` grows by a conditional UPDATE that
 * cannot push it past capacity: even a bug in the locking above could not over-commit a provider.
 */
import type { Kysely } from 'kysely';
import type { ServiceDb } from '../db';
import { CloudError } from '../errors';
import { isResourceClass } from './providers';
import { capacityOf, requestedClasses, type ResourceClass, type Resources } from './resources';
import type { InventoriesTable, PlacementDb } from './schema';

export interface Allocation {
  consumerUuid: string;
  providerUuid: string;
  projectId: string;
  userId: string;
  consumerGeneration: number;
  resources: Resources;
}

export interface ClaimRequest {
  consumerUuid: string;
  providerUuid: string;
  resources: Resources;
  projectId: string;
  userId: string;
  /** As Placement's consumer_generation: null = the consumer must be new; a number = must match. */
  consumerGeneration?: number | null;
}

/** A generation moved between our read and our write: the whole transaction is run again. */
export class StaleGeneration extends Error {
  override readonly name = 'StaleGeneration';
}

function generationConflict(
  consumerUuid: string,
  expected: number | null,
  actual: number | null,
): CloudError {
  return new CloudError(
    'Conflict',
    `Consumer generation conflict for ${consumerUuid}: expected ${expected ?? 'a new consumer'}, found ${actual ?? 'none'}; read the allocations again and retry`,
    { reason: 'ConsumerGenerationConflict', consumerUuid, expected, actual },
  );
}

async function lockProvider(
  store: ServiceDb<PlacementDb>,
  trx: Kysely<PlacementDb>,
  providerUuid: string,
): Promise<number> {
  const row = await store
    .forUpdate(trx.selectFrom('resource_providers').select('generation').where('uuid', '=', providerUuid))
    .executeTakeFirst();
  if (!row) throw new CloudError('NotFound', `Resource provider ${providerUuid} not found`, { providerUuid });
  return Number(row.generation);
}

async function bumpProviderGeneration(
  trx: Kysely<PlacementDb>,
  providerUuid: string,
  generation: number,
  now: number,
): Promise<void> {
  const res = await trx
    .updateTable('resource_providers')
    .set({ generation: generation + 1, updated_at: now })
    .where('uuid', '=', providerUuid)
    .where('generation', '=', generation)
    .executeTakeFirst();
  if (Number(res.numUpdatedRows) !== 1) throw new StaleGeneration(`provider ${providerUuid}`);
}

export async function readAllocation(
  db: Kysely<PlacementDb>,
  consumerUuid: string,
): Promise<Allocation | null> {
  const rows = await db
    .selectFrom('allocations as a')
    .innerJoin('consumers as c', 'c.uuid', 'a.consumer_uuid')
    .select(['a.provider_uuid', 'a.resource_class', 'a.used', 'c.project_id', 'c.user_id', 'c.generation'])
    .where('a.consumer_uuid', '=', consumerUuid)
    .execute();
  const first = rows[0];
  if (!first) return null;
  const resources: Resources = {};
  for (const r of rows) if (isResourceClass(r.resource_class)) resources[r.resource_class] = Number(r.used);
  return {
    consumerUuid,
    providerUuid: first.provider_uuid,
    projectId: first.project_id,
    userId: first.user_id,
    consumerGeneration: Number(first.generation),
    resources,
  };
}

function sameClaim(existing: Allocation, req: ClaimRequest): boolean {
  const wanted = requestedClasses(req.resources);
  const have = requestedClasses(existing.resources);
  return (
    existing.providerUuid === req.providerUuid &&
    wanted.length === have.length &&
    wanted.every(([rc, n]) => existing.resources[rc] === n)
  );
}

function noRoom(providerUuid: string, rc: ResourceClass, message: string, details: object): CloudError {
  return new CloudError(
    'AllocationCapacityExceeded',
    `Unable to allocate ${rc} on resource provider ${providerUuid}: ${message}`,
    { providerUuid, resourceClass: rc, ...details },
  );
}

type InventoryLimits = Pick<
  InventoriesTable,
  | 'resource_class'
  | 'total'
  | 'reserved'
  | 'min_unit'
  | 'max_unit'
  | 'step_size'
  | 'allocation_ratio'
  | 'used'
>;

/** Placement's checks of one claim against one provider's inventories; throws when it does not fit. */
function checkFits(req: ClaimRequest, inventories: readonly InventoryLimits[]): void {
  for (const [rc, amount] of requestedClasses(req.resources)) {
    const inv = inventories.find((i) => i.resource_class === rc);
    if (!inv)
      throw noRoom(req.providerUuid, rc, 'the provider has no inventory of it', { requested: amount });
    const minUnit = Number(inv.min_unit);
    const maxUnit = Number(inv.max_unit);
    const stepSize = Number(inv.step_size);
    const violation =
      amount < minUnit
        ? `${amount} is below min_unit ${minUnit}`
        : amount > maxUnit
          ? `${amount} is above max_unit ${maxUnit}`
          : amount % stepSize !== 0
            ? `${amount} is not a multiple of step_size ${stepSize}`
            : undefined;
    if (violation)
      throw noRoom(req.providerUuid, rc, violation, { requested: amount, minUnit, maxUnit, stepSize });
    const capacity = capacityOf({
      total: Number(inv.total),
      reserved: Number(inv.reserved),
      allocationRatio: Number(inv.allocation_ratio),
    });
    const used = Number(inv.used);
    if (used + amount > capacity) {
      throw noRoom(
        req.providerUuid,
        rc,
        `the requested amount would exceed the capacity (used ${used} + requested ${amount} > capacity ${capacity})`,
        { requested: amount, used, capacity },
      );
    }
  }
}

/**
 * Refuses, before any transaction, a claim that committed usage already shows cannot fit: under contention
 * such a claim would otherwise queue for the provider's lock only to fail. A consumer that already holds
 * allocations goes on to the transaction, whose answer (idempotent or Conflict) depends on them; so does
 * an unknown provider (NotFound). Never accepts anything: the transaction checks everything again.
 */
export async function refuseWithoutLock(db: Kysely<PlacementDb>, req: ClaimRequest): Promise<void> {
  const [inventories, held] = await Promise.all([
    db
      .selectFrom('inventories')
      .select([
        'resource_class',
        'total',
        'reserved',
        'min_unit',
        'max_unit',
        'step_size',
        'allocation_ratio',
        'used',
      ])
      .where('provider_uuid', '=', req.providerUuid)
      .execute(),
    db
      .selectFrom('allocations')
      .select('resource_class')
      .where('consumer_uuid', '=', req.consumerUuid)
      .limit(1)
      .execute(),
  ]);
  if (held.length > 0 || inventories.length === 0) return;
  checkFits(req, inventories);
}

/** One attempt of a claim, inside the caller's transaction. */
export async function claimOnce(
  store: ServiceDb<PlacementDb>,
  trx: Kysely<PlacementDb>,
  req: ClaimRequest,
  now: number,
): Promise<Allocation> {
  const providerGeneration = await lockProvider(store, trx, req.providerUuid);

  const existing = await readAllocation(trx, req.consumerUuid);
  if (existing) {
    if (sameClaim(existing, req)) return existing; // a retry of a claim that already succeeded
    throw new CloudError(
      'Conflict',
      `Consumer ${req.consumerUuid} already has allocations on resource provider ${existing.providerUuid}; release them before claiming other resources`,
      {
        reason: 'ConsumerHasAllocations',
        consumerUuid: req.consumerUuid,
        providerUuid: existing.providerUuid,
      },
    );
  }
  const consumer = await trx
    .selectFrom('consumers')
    .select('generation')
    .where('uuid', '=', req.consumerUuid)
    .executeTakeFirst();
  const consumerGeneration = consumer ? Number(consumer.generation) : null;
  if (req.consumerGeneration !== undefined && req.consumerGeneration !== consumerGeneration) {
    throw generationConflict(req.consumerUuid, req.consumerGeneration, consumerGeneration);
  }

  const requested = requestedClasses(req.resources);
  const inventories = await trx
    .selectFrom('inventories')
    .selectAll()
    .where('provider_uuid', '=', req.providerUuid)
    .execute();
  checkFits(req, inventories);

  await bumpProviderGeneration(trx, req.providerUuid, providerGeneration, now);
  let newGeneration: number;
  if (consumerGeneration === null) {
    // A racing claim of the same new consumer fails here on the primary key, and its retry sees ours.
    await trx
      .insertInto('consumers')
      .values({
        uuid: req.consumerUuid,
        project_id: req.projectId,
        user_id: req.userId,
        generation: 1,
        created_at: now,
        updated_at: now,
      })
      .execute();
    newGeneration = 1;
  } else {
    newGeneration = consumerGeneration + 1;
    const res = await trx
      .updateTable('consumers')
      .set({ generation: newGeneration, project_id: req.projectId, user_id: req.userId, updated_at: now })
      .where('uuid', '=', req.consumerUuid)
      .where('generation', '=', consumerGeneration)
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) !== 1) throw new StaleGeneration(`consumer ${req.consumerUuid}`);
  }

  for (const [rc, amount] of requested) {
    const res = await trx
      .updateTable('inventories')
      .set((eb) => ({ used: eb('used', '+', amount) }))
      .where('provider_uuid', '=', req.providerUuid)
      .where('resource_class', '=', rc)
      .where('free', '>=', amount) // i.e. used + amount <= capacity, checked by the write itself
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) !== 1) throw new StaleGeneration(`inventory ${rc} of ${req.providerUuid}`);
  }
  await trx
    .insertInto('allocations')
    .values(
      requested.map(([rc, amount]) => ({
        consumer_uuid: req.consumerUuid,
        provider_uuid: req.providerUuid,
        resource_class: rc,
        used: amount,
        created_at: now,
      })),
    )
    .execute();
  const resources: Resources = Object.fromEntries(requested);
  return {
    consumerUuid: req.consumerUuid,
    providerUuid: req.providerUuid,
    projectId: req.projectId,
    userId: req.userId,
    consumerGeneration: newGeneration,
    resources,
  };
}

/** One attempt of a release, inside the caller's transaction. Returns whether anything was released. */
export async function releaseOnce(
  store: ServiceDb<PlacementDb>,
  trx: Kysely<PlacementDb>,
  consumerUuid: string,
  expectedGeneration: number | undefined,
  now: number,
): Promise<boolean> {
  const seen = await trx
    .selectFrom('allocations')
    .select('provider_uuid')
    .distinct()
    .where('consumer_uuid', '=', consumerUuid)
    .execute();
  // Providers in a fixed order, the same for every writer, so two releases cannot deadlock.
  const providers = seen.map((r) => r.provider_uuid).sort();
  const generations = new Map<string, number>();
  for (const p of providers) generations.set(p, await lockProvider(store, trx, p));

  const consumer = await store
    .forUpdate(trx.selectFrom('consumers').select('generation').where('uuid', '=', consumerUuid))
    .executeTakeFirst();
  const current = consumer ? Number(consumer.generation) : null;
  if (expectedGeneration !== undefined && expectedGeneration !== current) {
    throw generationConflict(consumerUuid, expectedGeneration, current);
  }
  const rows = await store
    .forUpdate(
      trx
        .selectFrom('allocations')
        .select(['provider_uuid', 'resource_class', 'used'])
        .where('consumer_uuid', '=', consumerUuid),
    )
    .execute();
  if (rows.some((r) => !generations.has(r.provider_uuid)))
    throw new StaleGeneration(`consumer ${consumerUuid}`);

  for (const r of rows) {
    await trx
      .updateTable('inventories')
      .set((eb) => ({ used: eb('used', '-', Number(r.used)) }))
      .where('provider_uuid', '=', r.provider_uuid)
      .where('resource_class', '=', r.resource_class)
      .execute();
  }
  await trx.deleteFrom('allocations').where('consumer_uuid', '=', consumerUuid).execute();
  // As Placement does, a consumer without allocations is deleted.
  await trx.deleteFrom('consumers').where('uuid', '=', consumerUuid).execute();
  const touched = new Set(rows.map((r) => r.provider_uuid));
  for (const p of touched) await bumpProviderGeneration(trx, p, generations.get(p) ?? 0, now);
  return rows.length > 0;
}
