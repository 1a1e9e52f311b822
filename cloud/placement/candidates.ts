/**
 * Allocation candidates in one SQL query: every requested class is an inner join on its inventory row with
 * the free, min_unit, max_unit and step_size checks in the WHERE clause. The query is driven by the
 * (resource_class, free, provider_uuid) index of the memory inventory, so with a limit the database walks
 * the providers with the most (or least) free memory first and stops after `limit` matches: no provider is
 * loaded into JavaScript unless it is returned, and 10,000 providers cost little more than the limit.
 */
import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { DialectName } from '../db';
import { RESOURCE_CLASSES, requestedClasses, type ResourceClass, type Resources } from './resources';
import type { PlacementDb } from './schema';

export interface ProviderResourceUsage {
  /** (total − reserved) × allocation_ratio */
  capacity: number;
  used: number;
  free: number;
}

export interface AllocationCandidate {
  providerUuid: string;
  name: string;
  generation: number;
  /** Usage and capacity of each class the provider has an inventory of. */
  resources: Partial<Record<ResourceClass, ProviderResourceUsage>>;
}

/** Which providers come first: spreading (most free memory, the default) or stacking (least free). */
export type CandidateOrder = 'most-free-memory' | 'least-free-memory';

export interface CandidateQuery {
  limit?: number;
  offset?: number;
  excludeProviderUuids?: readonly string[];
  /** Only these providers (e.g. the hosts of an affinity group); empty means none. */
  onlyProviderUuids?: readonly string[];
  order?: CandidateOrder;
}

/** Fixed SQL aliases, one per class; never user input. */
const ALIAS: Record<ResourceClass, string> = { VCPU: 'inv_vcpu', MEMORY_MB: 'inv_mem', DISK_GB: 'inv_disk' };

interface CandidateRow {
  provider_uuid: string;
  name: string;
  generation: number | string;
  VCPU_capacity: number | string | null;
  VCPU_used: number | string | null;
  MEMORY_MB_capacity: number | string | null;
  MEMORY_MB_used: number | string | null;
  DISK_GB_capacity: number | string | null;
  DISK_GB_used: number | string | null;
}

function inList(values: readonly string[]): RawBuilder<unknown> {
  return sql.join(values.map((v) => sql`${v}`));
}

export function candidateQuery(
  resources: Resources,
  q: CandidateQuery,
  dialect: DialectName,
): RawBuilder<CandidateRow> {
  const requested = new Map(requestedClasses(resources));
  // Memory drives the query when it is requested (Nova's flavors always request it): the scan starts in the
  // free-memory index. MySQL's planner would rather start at the providers and sort, so its join order is
  // fixed with STRAIGHT_JOIN; SQLite's and PostgreSQL's planners pick the index on their own.
  const memoryDriven = requested.has('MEMORY_MB');
  const columns = RESOURCE_CLASSES.map((rc) => {
    const a = sql.raw(ALIAS[rc]);
    // Quoted aliases: PostgreSQL would fold unquoted ones to lower case.
    return sql`(${a}.total - ${a}.reserved) * ${a}.allocation_ratio as ${sql.id(`${rc}_capacity`)}, ${a}.used as ${sql.id(`${rc}_used`)}`;
  });
  const joins = RESOURCE_CLASSES.filter((rc) => !(memoryDriven && rc === 'MEMORY_MB')).map((rc) => {
    const a = sql.raw(ALIAS[rc]);
    const kind = sql.raw(requested.has(rc) ? 'join' : 'left join');
    return sql`${kind} inventories ${a} on ${a}.provider_uuid = rp.uuid and ${a}.resource_class = ${rc}`;
  });
  const mem = sql.raw(ALIAS.MEMORY_MB);
  const from = memoryDriven
    ? sql`from inventories ${mem} join resource_providers rp on rp.uuid = ${mem}.provider_uuid`
    : sql`from resource_providers rp`;
  const conditions: RawBuilder<unknown>[] = [];
  if (memoryDriven) conditions.push(sql`${mem}.resource_class = ${'MEMORY_MB'}`);
  for (const [rc, amount] of requested) {
    const a = sql.raw(ALIAS[rc]);
    conditions.push(
      sql`${a}.free >= ${amount} and ${a}.min_unit <= ${amount} and ${a}.max_unit >= ${amount} and ${amount} % ${a}.step_size = 0`,
    );
  }
  if (q.excludeProviderUuids?.length)
    conditions.push(sql`rp.uuid not in (${inList(q.excludeProviderUuids)})`);
  if (q.onlyProviderUuids) {
    conditions.push(
      q.onlyProviderUuids.length ? sql`rp.uuid in (${inList(q.onlyProviderUuids)})` : sql`1 = 0`,
    );
  }
  const where = conditions.length ? sql`where ${sql.join(conditions, sql` and `)}` : sql``;
  // Both keys in the same direction and both in the index, so it is walked in order with no sort step.
  const dir = sql.raw(q.order === 'least-free-memory' ? 'asc' : 'desc');
  const order = memoryDriven
    ? sql`order by ${mem}.free ${dir}, ${mem}.provider_uuid ${dir}`
    : sql`order by coalesce(${mem}.free, 0) ${dir}, rp.uuid ${dir}`;
  // MySQL has no OFFSET without LIMIT; the largest safe integer stands for "no limit".
  const limit = sql`limit ${q.limit ?? Number.MAX_SAFE_INTEGER} offset ${q.offset ?? 0}`;
  const hint = sql.raw(dialect === 'mysql' && memoryDriven ? 'straight_join ' : '');
  return sql<CandidateRow>`select ${hint}rp.uuid as provider_uuid, rp.name, rp.generation, ${sql.join(columns)}
${from}
${sql.join(joins, sql` `)}
${where}
${order}
${limit}`;
}

function toCandidate(row: CandidateRow): AllocationCandidate {
  const resources: Partial<Record<ResourceClass, ProviderResourceUsage>> = {};
  for (const rc of RESOURCE_CLASSES) {
    const capacity = row[`${rc}_capacity`];
    if (capacity === null) continue;
    const used = Number(row[`${rc}_used`]);
    resources[rc] = { capacity: Number(capacity), used, free: Number(capacity) - used };
  }
  return { providerUuid: row.provider_uuid, name: row.name, generation: Number(row.generation), resources };
}

export async function findAllocationCandidates(
  db: Kysely<PlacementDb>,
  dialect: DialectName,
  resources: Resources,
  q: CandidateQuery,
): Promise<AllocationCandidate[]> {
  const result = await candidateQuery(resources, q, dialect).execute(db);
  return result.rows.map(toCandidate);
}
