/**
 * Placement: resource providers (one per compute node) with inventories, consumers (instances) and their
 * allocations. Claims never over-commit a provider, even from many processes at once; see claims.ts.
 */
import { sql } from 'kysely';
import { z } from 'zod';
import { systemClock, type Clock } from '../clock';
import { openServiceDb, type DbConfig, type ServiceDb } from '../db';
import { CloudError } from '../errors';
import { idSchema, nameSchema, parseRequest, uuidSchema } from '../validation';
import { findAllocationCandidates, type AllocationCandidate, type CandidateQuery } from './candidates';
import {
  claimOnce,
  readAllocation,
  refuseWithoutLock,
  releaseOnce,
  StaleGeneration,
  type Allocation,
  type ClaimRequest,
} from './claims';
import { isUniqueViolation } from '../db';
import { placementMigrations } from './migrations';
import { readProviders, replaceInventories, isResourceClass, type ResourceProvider } from './providers';
import {
  inventoriesInputSchema,
  inventoryWithDefaults,
  RESOURCE_CLASSES,
  resourcesSchema,
  type InventoriesInput,
  type Inventory,
  type ResourceClass,
  type Resources,
} from './resources';
import type { PlacementDb } from './schema';

export interface PlacementOptions {
  db: DbConfig;
  clock?: Clock;
}

export interface UsageMismatch {
  providerUuid: string;
  resourceClass: string;
  /** The `used` kept on the inventory row. */
  recorded: number;
  /** The sum of the allocations. */
  allocated: number;
}

/** Attempts of one claim or release when a racing writer moved a generation first. */
const MAX_GENERATION_ATTEMPTS = 10;

const providerInputSchema = z.strictObject({
  uuid: uuidSchema,
  name: nameSchema,
  inventories: inventoriesInputSchema,
});

const claimSchema = z.strictObject({
  consumerUuid: uuidSchema,
  providerUuid: uuidSchema,
  resources: resourcesSchema,
  projectId: idSchema,
  userId: idSchema,
  consumerGeneration: z.number().int().min(0).nullable().optional(),
});

const candidateQuerySchema = z.strictObject({
  limit: z.number().int().min(1).max(100_000).optional(),
  offset: z.number().int().min(0).optional(),
  excludeProviderUuids: z.array(uuidSchema).max(100_000).optional(),
  onlyProviderUuids: z.array(uuidSchema).max(100_000).optional(),
  order: z.enum(['most-free-memory', 'least-free-memory']).optional(),
});

const generationSchema = z.strictObject({ generation: z.number().int().min(0) });
const releaseOptionsSchema = z.strictObject({ consumerGeneration: z.number().int().min(0).optional() });
const listFilterSchema = z.strictObject({
  providerUuid: uuidSchema.optional(),
  projectId: idSchema.optional(),
});

function withDefaults(input: InventoriesInput): Partial<Record<ResourceClass, Inventory>> {
  const out: Partial<Record<ResourceClass, Inventory>> = {};
  for (const rc of RESOURCE_CLASSES) {
    const inv = input[rc];
    if (!inv) continue;
    const full = inventoryWithDefaults(rc, inv);
    if (full.minUnit > full.maxUnit) {
      throw new CloudError(
        'BadRequest',
        `Invalid inventory of ${rc}: min_unit ${full.minUnit} exceeds max_unit ${full.maxUnit}`,
      );
    }
    out[rc] = full;
  }
  return out;
}

export class Placement {
  private constructor(
    private readonly store: ServiceDb<PlacementDb>,
    private readonly clock: Clock,
  ) {}

  static async open(options: PlacementOptions): Promise<Placement> {
    const store = await openServiceDb<PlacementDb>('placement', placementMigrations, options.db);
    return new Placement(store, options.clock ?? systemClock);
  }

  close(): Promise<void> {
    return this.store.close();
  }

  /** The service's database, for audits and tests (other services never read it). */
  get database(): ServiceDb<PlacementDb> {
    return this.store;
  }

  /**
   * Creates the provider or brings its name and inventories to what is given (what a compute host reports
   * when it starts); idempotent. Defaults: allocation ratios VCPU 4.0, MEMORY_MB 1.0, DISK_GB 1.0;
   * reserved MEMORY_MB 512; min_unit 1, max_unit total, step_size 1.
   */
  async ensureResourceProvider(input: {
    uuid: string;
    name: string;
    inventories: InventoriesInput;
  }): Promise<ResourceProvider> {
    const req = parseRequest(providerInputSchema, input, 'resource provider');
    const desired = withDefaults(req.inventories);
    await this.retryingRaces('ensure resource provider', () =>
      this.store.transaction(async (trx) => {
        const now = this.clock.now();
        const clash = await trx
          .selectFrom('resource_providers')
          .select('uuid')
          .where('name', '=', req.name)
          .where('uuid', '!=', req.uuid)
          .executeTakeFirst();
        if (clash) {
          throw new CloudError(
            'Conflict',
            `Resource provider name '${req.name}' is already used by ${clash.uuid}`,
            {
              reason: 'DuplicateName',
              name: req.name,
            },
          );
        }
        const row = await this.store
          .forUpdate(
            trx.selectFrom('resource_providers').select(['name', 'generation']).where('uuid', '=', req.uuid),
          )
          .executeTakeFirst();
        if (!row) {
          await trx
            .insertInto('resource_providers')
            .values({ uuid: req.uuid, name: req.name, generation: 0, created_at: now, updated_at: now })
            .execute();
        }
        const generation = row ? Number(row.generation) : 0;
        const changed = await replaceInventories(trx, req.uuid, desired);
        if (changed || (row && row.name !== req.name)) {
          await trx
            .updateTable('resource_providers')
            .set({ name: req.name, generation: generation + 1, updated_at: now })
            .where('uuid', '=', req.uuid)
            .execute();
        }
      }),
    );
    return this.getResourceProvider(req.uuid);
  }

  /**
   * Placement's PUT inventories: replaces the inventories if the provider is still at `generation`;
   * otherwise a Conflict the caller resolves by reading the provider again.
   */
  async updateInventories(
    providerUuid: string,
    inventories: InventoriesInput,
    options: { generation: number },
  ): Promise<ResourceProvider> {
    const uuid = parseRequest(uuidSchema, providerUuid, 'resource provider uuid');
    const desired = withDefaults(parseRequest(inventoriesInputSchema, inventories, 'inventories'));
    const { generation } = parseRequest(generationSchema, options, 'inventory update options');
    await this.store.transaction(async (trx) => {
      const row = await this.store
        .forUpdate(trx.selectFrom('resource_providers').select('generation').where('uuid', '=', uuid))
        .executeTakeFirst();
      if (!row)
        throw new CloudError('NotFound', `Resource provider ${uuid} not found`, { providerUuid: uuid });
      if (Number(row.generation) !== generation) {
        throw new CloudError(
          'Conflict',
          `Resource provider generation conflict for ${uuid}: expected ${generation}, found ${Number(row.generation)}; read the provider again and retry`,
          { reason: 'ResourceProviderGenerationConflict', providerUuid: uuid, expected: generation },
        );
      }
      if (await replaceInventories(trx, uuid, desired)) {
        await trx
          .updateTable('resource_providers')
          .set({ generation: generation + 1, updated_at: this.clock.now() })
          .where('uuid', '=', uuid)
          .execute();
      }
    });
    return this.getResourceProvider(uuid);
  }

  async getResourceProvider(providerUuid: string): Promise<ResourceProvider> {
    const uuid = parseRequest(uuidSchema, providerUuid, 'resource provider uuid');
    const [provider] = await readProviders(this.store.db, [uuid]);
    if (!provider)
      throw new CloudError('NotFound', `Resource provider ${uuid} not found`, { providerUuid: uuid });
    return provider;
  }

  listResourceProviders(): Promise<ResourceProvider[]> {
    return readProviders(this.store.db);
  }

  /** Removes a provider with no allocations (idempotent: false when it did not exist). */
  async deleteResourceProvider(providerUuid: string): Promise<boolean> {
    const uuid = parseRequest(uuidSchema, providerUuid, 'resource provider uuid');
    return this.store.transaction(async (trx) => {
      const row = await this.store
        .forUpdate(trx.selectFrom('resource_providers').select('uuid').where('uuid', '=', uuid))
        .executeTakeFirst();
      if (!row) return false;
      const inUse = await trx
        .selectFrom('allocations')
        .select('consumer_uuid')
        .where('provider_uuid', '=', uuid)
        .limit(1)
        .executeTakeFirst();
      if (inUse) {
        throw new CloudError('Conflict', `Resource provider ${uuid} still has allocations`, {
          reason: 'ResourceProviderInUse',
          providerUuid: uuid,
        });
      }
      await trx.deleteFrom('inventories').where('provider_uuid', '=', uuid).execute();
      await trx.deleteFrom('resource_providers').where('uuid', '=', uuid).execute();
      return true;
    });
  }

  /**
   * Providers with room for all of `resources` (min_unit, max_unit and step_size respected), most free
   * memory first unless told otherwise, with their usage and capacity. One indexed SQL query.
   */
  async allocationCandidates(
    resources: Resources,
    query: CandidateQuery = {},
  ): Promise<AllocationCandidate[]> {
    const wanted = parseRequest(resourcesSchema, resources, 'resources');
    const q = parseRequest(candidateQuerySchema, query, 'allocation candidate query');
    return findAllocationCandidates(this.store.db, this.store.dialect, wanted, q);
  }

  /**
   * Claims `resources` on one provider for a consumer (an instance). Idempotent: the same claim again returns
   * the allocation already made. No room → AllocationCapacityExceeded (try another provider); a consumer
   * generation that does not match, or racing writers beyond the retries → Conflict (retryable).
   */
  async claim(input: ClaimRequest): Promise<Allocation> {
    const req = parseRequest(claimSchema, input, 'allocation claim');
    await refuseWithoutLock(this.store.db, req);
    return this.retryingRaces('claim', () =>
      this.store.transaction((trx) => claimOnce(this.store, trx, req, this.clock.now())),
    );
  }

  /** Deletes every allocation of the consumer and the consumer itself; idempotent. */
  async releaseAllocations(
    consumerUuid: string,
    options: { consumerGeneration?: number } = {},
  ): Promise<{ released: boolean }> {
    const uuid = parseRequest(uuidSchema, consumerUuid, 'consumer uuid');
    const { consumerGeneration } = parseRequest(releaseOptionsSchema, options, 'release options');
    const released = await this.retryingRaces('release allocations', () =>
      this.store.transaction((trx) =>
        releaseOnce(this.store, trx, uuid, consumerGeneration, this.clock.now()),
      ),
    );
    return { released };
  }

  /** The consumer's allocation, or null when it has none. */
  async getAllocations(consumerUuid: string): Promise<Allocation | null> {
    const uuid = parseRequest(uuidSchema, consumerUuid, 'consumer uuid');
    return readAllocation(this.store.db, uuid);
  }

  async listAllocations(filter: { providerUuid?: string; projectId?: string } = {}): Promise<Allocation[]> {
    const f = parseRequest(listFilterSchema, filter, 'allocation filter');
    let q = this.store.db
      .selectFrom('allocations as a')
      .innerJoin('consumers as c', 'c.uuid', 'a.consumer_uuid')
      .select([
        'a.consumer_uuid',
        'a.provider_uuid',
        'a.resource_class',
        'a.used',
        'c.project_id',
        'c.user_id',
      ])
      .select('c.generation')
      .orderBy('a.consumer_uuid');
    if (f.providerUuid) q = q.where('a.provider_uuid', '=', f.providerUuid);
    if (f.projectId) q = q.where('c.project_id', '=', f.projectId);
    const byConsumer = new Map<string, Allocation>();
    for (const r of await q.execute()) {
      let a = byConsumer.get(r.consumer_uuid);
      if (!a) {
        a = {
          consumerUuid: r.consumer_uuid,
          providerUuid: r.provider_uuid,
          projectId: r.project_id,
          userId: r.user_id,
          consumerGeneration: Number(r.generation),
          resources: {},
        };
        byConsumer.set(r.consumer_uuid, a);
      }
      if (isResourceClass(r.resource_class)) a.resources[r.resource_class] = Number(r.used);
    }
    return [...byConsumer.values()];
  }

  /** What the allocations on a provider add up to, per class (from the allocations themselves). */
  async usages(providerUuid: string): Promise<Record<ResourceClass, number>> {
    await this.getResourceProvider(providerUuid);
    const rows = await this.store.db
      .selectFrom('allocations')
      .select(['resource_class', (eb) => eb.fn.sum<number | string>('used').as('used')])
      .where('provider_uuid', '=', providerUuid)
      .groupBy('resource_class')
      .execute();
    const out: Record<ResourceClass, number> = { VCPU: 0, MEMORY_MB: 0, DISK_GB: 0 };
    for (const r of rows) if (isResourceClass(r.resource_class)) out[r.resource_class] = Number(r.used);
    return out;
  }

  /** Inventory rows whose recorded usage differs from the sum of their allocations (should be none). */
  async auditUsage(): Promise<UsageMismatch[]> {
    const result = await sql<{
      provider_uuid: string;
      resource_class: string;
      recorded: number | string;
      allocated: number | string;
    }>`select i.provider_uuid, i.resource_class, i.used as recorded, coalesce(s.allocated, 0) as allocated
from inventories i
left join (select provider_uuid, resource_class, sum(used) as allocated from allocations
           group by provider_uuid, resource_class) s
  on s.provider_uuid = i.provider_uuid and s.resource_class = i.resource_class
where i.used <> coalesce(s.allocated, 0)
union all
select a.provider_uuid, a.resource_class, 0, sum(a.used) from allocations a
left join inventories i on i.provider_uuid = a.provider_uuid and i.resource_class = a.resource_class
where i.provider_uuid is null
group by a.provider_uuid, a.resource_class`.execute(this.store.db);
    return result.rows.map((r) => ({
      providerUuid: r.provider_uuid,
      resourceClass: r.resource_class,
      recorded: Number(r.recorded),
      allocated: Number(r.allocated),
    }));
  }

  /** Runs one whole transaction again when a racing writer moved a generation or took a key first. */
  private async retryingRaces<T>(what: string, attempt: () => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (err) {
        if (!(err instanceof StaleGeneration) && !isUniqueViolation(err)) throw err;
        if (n >= MAX_GENERATION_ATTEMPTS) {
          throw new CloudError(
            'Conflict',
            `Could not ${what}: another request kept changing the same resource provider or consumer; retry`,
            { reason: 'ConcurrentUpdateDetected' },
          );
        }
      }
    }
  }
}
