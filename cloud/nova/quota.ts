/**
 * Quotas per project (instances, cores, ram as Nova's; volumes, snapshots, gigabytes, ports as Cinder's and
 * Neutron's defaults). A claim locks the project's quota_usages rows, checks limit against in_use + requested and
 * records the consumer's allocation in one transaction, so two claims can never both pass a limit that only
 * one fits. Claims are keyed by consumer uuid: claiming again what a consumer already holds changes nothing.
 */
import { sql, type Kysely } from 'kysely';
import { z } from 'zod';
import { CloudError } from '../errors';
import { parseRequest } from '../validation';
import { isUniqueViolation, type NovaContext } from './db-util';
import type { NovaDb } from './schema';
import { instanceUuidSchema, keystoneIdSchema, MAX_INT } from './schemas';

export const QUOTA_RESOURCES = [
  'instances',
  'cores',
  'ram',
  'volumes',
  'snapshots',
  'gigabytes',
  'ports',
] as const;
export type QuotaResource = (typeof QUOTA_RESOURCES)[number];
export type QuotaAmounts = Partial<Record<QuotaResource, number>>;

/**
 * Nova's quota defaults (ram in MB), Cinder's for volumes/snapshots/gigabytes (gigabytes counts both volumes and
 * snapshots, as Cinder's does), Neutron's for ports; -1 = unlimited.
 */
export const DEFAULT_QUOTA_LIMITS: Readonly<Record<QuotaResource, number>> = {
  instances: 10,
  cores: 20,
  ram: 51200,
  volumes: 10,
  snapshots: 10,
  gigabytes: 1000,
  ports: 50,
};

export interface QuotaClaim {
  consumerUuid: string;
  projectId: string;
  /** Everything the consumer holds now (resources it never claimed are absent). */
  resources: QuotaAmounts;
}

export type QuotaUsage = Record<QuotaResource, { limit: number; inUse: number }>;

const amountSchema = z.number().int().min(0).max(MAX_INT);
const amountsSchema = z
  .strictObject(Object.fromEntries(QUOTA_RESOURCES.map((r) => [r, amountSchema.optional()])))
  .refine((o) => Object.values(o).some((v) => v !== undefined), 'name at least one resource');
const limitsSchema = z
  .strictObject(
    Object.fromEntries(QUOTA_RESOURCES.map((r) => [r, z.number().int().min(-1).max(MAX_INT).optional()])),
  )
  .refine((o) => Object.values(o).some((v) => v !== undefined), 'name at least one resource');

function amountsOf(value: Record<string, number | undefined>): QuotaAmounts {
  const out: QuotaAmounts = {};
  for (const r of QUOTA_RESOURCES) if (value[r] !== undefined) out[r] = value[r];
  return out;
}

function isQuotaResource(name: string): name is QuotaResource {
  return (QUOTA_RESOURCES as readonly string[]).includes(name);
}

// Projects whose usage rows are known to exist (rows are never deleted), per database handle.
const initialisedProjects = new WeakMap<object, Set<string>>();

/** Creates the project's usage rows (the rows claims lock) once; racing creators are harmless. */
async function ensureUsageRows(ctx: NovaContext, projectId: string): Promise<void> {
  let known = initialisedProjects.get(ctx.store);
  if (!known) initialisedProjects.set(ctx.store, (known = new Set()));
  if (known.has(projectId)) return;
  const existing = await ctx.store.db
    .selectFrom('quota_usages')
    .select('resource')
    .where('project_id', '=', projectId)
    .execute();
  const have = new Set(existing.map((r) => r.resource));
  for (const resource of QUOTA_RESOURCES) {
    if (have.has(resource)) continue;
    try {
      await ctx.store.db
        .insertInto('quota_usages')
        .values({ project_id: projectId, resource, in_use: 0, updated_at: ctx.clock.now() })
        .execute();
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
    }
  }
  known.add(projectId);
}

/** Adds signed deltas to a project's usage rows in one statement (fewer round trips under the lock). */
async function addToUsage(
  trx: Kysely<NovaDb>,
  projectId: string,
  deltas: QuotaAmounts,
  now: number,
): Promise<void> {
  const resources = QUOTA_RESOURCES.filter((r) => deltas[r] !== undefined && deltas[r] !== 0);
  if (resources.length === 0) return;
  await trx
    .updateTable('quota_usages')
    .set({
      in_use: sql<number>`${sql.ref('in_use')} + case ${sql.ref('resource')} ${sql.join(
        resources.map((r) => sql`when ${r} then ${deltas[r] ?? 0}`),
        sql` `,
      )} else 0 end`,
      updated_at: now,
    })
    .where('project_id', '=', projectId)
    .where('resource', 'in', resources)
    .execute();
}

async function limitsOf(trx: Kysely<NovaDb>, projectId: string): Promise<Record<QuotaResource, number>> {
  const rows = await trx
    .selectFrom('quotas')
    .select(['resource', 'hard_limit'])
    .where('project_id', '=', projectId)
    .execute();
  const limits = { ...DEFAULT_QUOTA_LIMITS };
  for (const row of rows) if (isQuotaResource(row.resource)) limits[row.resource] = Number(row.hard_limit);
  return limits;
}

/** Locks the project's usage rows: every claim and release of the project queues here. */
async function lockUsage(
  ctx: NovaContext,
  trx: Kysely<NovaDb>,
  projectId: string,
  touching?: readonly QuotaResource[],
): Promise<Record<QuotaResource, number>> {
  const rows = await ctx.store
    .forUpdate(trx.selectFrom('quota_usages').selectAll().where('project_id', '=', projectId))
    .execute();
  const usage = Object.fromEntries(QUOTA_RESOURCES.map((r) => [r, 0])) as Record<QuotaResource, number>;
  for (const row of rows) if (isQuotaResource(row.resource)) usage[row.resource] = Number(row.in_use);
  // A release touches only rows its claim made; a project from before a resource was added may lack that one.
  const needed = touching ?? QUOTA_RESOURCES;
  if (needed.some((r) => !rows.some((row) => row.resource === r))) {
    throw new CloudError('ServiceUnavailable', `Quota usage of project ${projectId} is not initialised`);
  }
  return usage;
}

/** Nova's TooManyInstances / OverQuota message, resources joined the way nova.compute.api joins them. */
function quotaExceeded(
  projectId: string,
  overs: QuotaResource[],
  requested: QuotaAmounts,
  used: Record<QuotaResource, number>,
  limits: Record<QuotaResource, number>,
): CloudError {
  const join = (values: Array<string | number | undefined>) => values.join(', ');
  const names = join(overs);
  return new CloudError(
    'QuotaExceeded',
    `Quota exceeded for ${names}: Requested ${join(overs.map((r) => requested[r]))}, but already used ` +
      `${join(overs.map((r) => used[r]))} of ${join(overs.map((r) => limits[r]))} ${names}`,
    {
      projectId,
      overs,
      requested: Object.fromEntries(overs.map((r) => [r, requested[r]])),
      used: Object.fromEntries(overs.map((r) => [r, used[r]])),
      allowed: Object.fromEntries(overs.map((r) => [r, limits[r]])),
    },
  );
}

/** A claim's part inside a write transaction: what quotaClaimStep hands back. */
export type QuotaClaimStep = (trx: Kysely<NovaDb>) => Promise<QuotaClaim>;

/**
 * A claim's checks and reads before its transaction (the arguments, the project's usage rows, its limits),
 * and the step that locks, checks and writes inside one: claimQuota runs it alone, nova-api's create
 * (instances.ts) in the transaction that writes the instance row.
 */
export async function quotaClaimStep(
  ctx: NovaContext,
  projectIdIn: unknown,
  consumerUuidIn: unknown,
  amountsIn: unknown,
): Promise<QuotaClaimStep> {
  const projectId = parseRequest(keystoneIdSchema, projectIdIn, 'project id');
  const consumerUuid = parseRequest(instanceUuidSchema, consumerUuidIn, 'consumer uuid');
  const requested = amountsOf(parseRequest(amountsSchema, amountsIn, 'quota claim'));
  await ensureUsageRows(ctx, projectId);
  // Limits are read before the lock: a limit changed meanwhile applies to the next claim, as in Nova.
  const limits = await limitsOf(ctx.store.db, projectId);
  return async (trx) => {
    const used = await lockUsage(ctx, trx, projectId);
    // A plain read is current here: every writer of this project's allocations holds the lock we now hold.
    const heldRows = await trx
      .selectFrom('quota_allocations')
      .selectAll()
      .where('consumer_uuid', '=', consumerUuid)
      .execute();
    const held: QuotaAmounts = {};
    for (const row of heldRows) {
      if (row.project_id !== projectId) {
        throw new CloudError(
          'BadRequest',
          `Consumer ${consumerUuid} already holds quota in project ${row.project_id}, not ${projectId}`,
        );
      }
      if (isQuotaResource(row.resource)) held[row.resource] = Number(row.amount);
    }
    const deltas: QuotaAmounts = {};
    for (const r of QUOTA_RESOURCES) {
      const want = requested[r];
      if (want === undefined || want === 0) continue;
      if (held[r] === undefined) deltas[r] = want;
      else if (held[r] !== want) {
        throw new CloudError(
          'BadRequest',
          `Consumer ${consumerUuid} already holds ${r}=${held[r]}; a claim for ${r}=${want} does not match it`,
        );
      }
    }
    const newResources = QUOTA_RESOURCES.filter((r) => deltas[r] !== undefined);
    if (newResources.length === 0) return { consumerUuid, projectId, resources: held };
    const overs = newResources.filter((r) => limits[r] >= 0 && used[r] + (deltas[r] ?? 0) > limits[r]);
    if (overs.length > 0) throw quotaExceeded(projectId, overs, deltas, used, limits);
    const now = ctx.clock.now();
    await trx
      .insertInto('quota_allocations')
      .values(
        newResources.map((resource) => ({
          consumer_uuid: consumerUuid,
          project_id: projectId,
          resource,
          amount: deltas[resource] ?? 0,
          created_at: now,
        })),
      )
      .execute();
    await addToUsage(trx, projectId, deltas, now);
    return { consumerUuid, projectId, resources: { ...held, ...deltas } };
  };
}

export async function claimQuota(
  ctx: NovaContext,
  projectIdIn: unknown,
  consumerUuidIn: unknown,
  amountsIn: unknown,
): Promise<QuotaClaim> {
  const step = await quotaClaimStep(ctx, projectIdIn, consumerUuidIn, amountsIn);
  return ctx.store.transaction(step);
}

/**
 * Frees what a consumer holds, inside the caller's transaction (soft delete uses it so the instance and
 * its quota go together). Returns what was released; nothing held → {}.
 */
export async function releaseConsumerIn(
  ctx: NovaContext,
  trx: Kysely<NovaDb>,
  consumerUuid: string,
): Promise<QuotaAmounts> {
  const owner = await trx
    .selectFrom('quota_allocations')
    .select('project_id')
    .where('consumer_uuid', '=', consumerUuid)
    .executeTakeFirst();
  if (!owner) return {};
  // Same lock order as claims (usage rows, then allocations), so claims and releases never deadlock.
  await lockUsage(ctx, trx, owner.project_id, []);
  const rows = await ctx.store
    .forUpdate(trx.selectFrom('quota_allocations').selectAll().where('consumer_uuid', '=', consumerUuid))
    .execute();
  if (rows.length === 0) return {};
  const released: QuotaAmounts = {};
  const negated: QuotaAmounts = {};
  for (const row of rows) {
    if (!isQuotaResource(row.resource)) continue;
    released[row.resource] = Number(row.amount);
    negated[row.resource] = -Number(row.amount);
  }
  await addToUsage(trx, owner.project_id, negated, ctx.clock.now());
  await trx.deleteFrom('quota_allocations').where('consumer_uuid', '=', consumerUuid).execute();
  return released;
}

export async function releaseQuota(ctx: NovaContext, consumerUuidIn: unknown): Promise<QuotaAmounts> {
  const consumerUuid = parseRequest(instanceUuidSchema, consumerUuidIn, 'consumer uuid');
  return ctx.store.transaction((trx) => releaseConsumerIn(ctx, trx, consumerUuid));
}

export async function getQuotaUsage(ctx: NovaContext, projectIdIn: unknown): Promise<QuotaUsage> {
  const projectId = parseRequest(keystoneIdSchema, projectIdIn, 'project id');
  const limits = await limitsOf(ctx.store.db, projectId);
  const rows = await ctx.store.db
    .selectFrom('quota_usages')
    .select(['resource', 'in_use'])
    .where('project_id', '=', projectId)
    .execute();
  const usage = Object.fromEntries(
    QUOTA_RESOURCES.map((r) => [r, { limit: limits[r], inUse: 0 }]),
  ) as QuotaUsage;
  for (const row of rows) if (isQuotaResource(row.resource)) usage[row.resource].inUse = Number(row.in_use);
  return usage;
}

/** Sets some of a project's limits (the others keep theirs); -1 means unlimited, as in Nova. */
export async function setQuotaLimits(
  ctx: NovaContext,
  projectIdIn: unknown,
  limitsIn: unknown,
): Promise<QuotaUsage> {
  const projectId = parseRequest(keystoneIdSchema, projectIdIn, 'project id');
  const limits = amountsOf(parseRequest(limitsSchema, limitsIn, 'quota limits'));
  const write = () =>
    ctx.store.transaction(async (trx) => {
      const now = ctx.clock.now();
      for (const resource of QUOTA_RESOURCES) {
        const hardLimit = limits[resource];
        if (hardLimit === undefined) continue;
        const res = await trx
          .updateTable('quotas')
          .set({ hard_limit: hardLimit, updated_at: now })
          .where('project_id', '=', projectId)
          .where('resource', '=', resource)
          .executeTakeFirst();
        if (Number(res.numUpdatedRows) > 0) continue;
        const exists = await trx
          .selectFrom('quotas')
          .select('resource')
          .where('project_id', '=', projectId)
          .where('resource', '=', resource)
          .executeTakeFirst();
        // MySQL reports 0 changed rows when the value is unchanged: only insert when the row is truly absent.
        if (exists) continue;
        await trx
          .insertInto('quotas')
          .values({
            project_id: projectId,
            resource,
            hard_limit: hardLimit,
            created_at: now,
            updated_at: now,
          })
          .execute();
      }
    });
  try {
    await write();
  } catch (err) {
    // A concurrent setter inserted the same row first: run again, now as an update.
    if (!isUniqueViolation(err)) throw err;
    await write();
  }
  return getQuotaUsage(ctx, projectId);
}

/** Every consumer's allocations (for the leak audit), optionally for one project. */
export async function listQuotaClaims(ctx: NovaContext, projectIdIn?: unknown): Promise<QuotaClaim[]> {
  const projectId =
    projectIdIn === undefined ? undefined : parseRequest(keystoneIdSchema, projectIdIn, 'project id');
  let query = ctx.store.db.selectFrom('quota_allocations').selectAll().orderBy('consumer_uuid');
  if (projectId !== undefined) query = query.where('project_id', '=', projectId);
  const claims = new Map<string, QuotaClaim>();
  for (const row of await query.execute()) {
    let claim = claims.get(row.consumer_uuid);
    if (!claim) {
      claim = { consumerUuid: row.consumer_uuid, projectId: row.project_id, resources: {} };
      claims.set(row.consumer_uuid, claim);
    }
    if (isQuotaResource(row.resource)) claim.resources[row.resource] = Number(row.amount);
  }
  return [...claims.values()];
}

/**
 * compute/api.py _check_num_instances_quota: how many servers of one request the project's quota takes,
 * between min and max, each holding `each`; fewer than min is TooManyInstances (QuotaExceeded) for what
 * min would need. Read from a usage snapshot: the claims that follow still decide, one server at a time.
 */
export function instancesAllowed(
  projectId: string,
  usage: QuotaUsage,
  each: QuotaAmounts,
  count: { min: number; max: number },
): number {
  let allowed = count.max;
  for (const resource of QUOTA_RESOURCES) {
    const amount = each[resource] ?? 0;
    if (amount <= 0) continue;
    const { limit, inUse } = usage[resource];
    if (limit >= 0) allowed = Math.min(allowed, Math.floor((limit - inUse) / amount));
  }
  if (allowed >= count.min) return allowed;
  const requested = Object.fromEntries(QUOTA_RESOURCES.map((r) => [r, (each[r] ?? 0) * count.min]));
  const overs = QUOTA_RESOURCES.filter((r) => (each[r] ?? 0) > 0 && usage[r].limit >= 0).filter(
    (r) => usage[r].inUse + (requested[r] ?? 0) > usage[r].limit,
  );
  const used = Object.fromEntries(QUOTA_RESOURCES.map((r) => [r, usage[r].inUse])) as Record<
    QuotaResource,
    number
  >;
  const limits = Object.fromEntries(QUOTA_RESOURCES.map((r) => [r, usage[r].limit])) as Record<
    QuotaResource,
    number
  >;
  throw quotaExceeded(projectId, overs, requested, used, limits);
}
