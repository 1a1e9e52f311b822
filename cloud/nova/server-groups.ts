/**
 * Server groups (Nova's InstanceGroup, nova/objects/instance_group.py): a project's group with one policy
 * (affinity, anti-affinity and their soft forms) and, for anti-affinity, the rule max_server_per_host; its
 * members are the instances booted with the `group` scheduler hint, added by nova-api in the transaction
 * that writes the instance and removed when the instance is deleted. The quotas server_groups (per
 * project) and server_group_members (per group and user) are counted from the rows, as Nova counts them.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { CloudError } from '../errors';
import { nameSchema, parseRequest } from '../validation';
import type { NovaContext } from './db-util';
import type { InstanceGroupsTable, NovaDb } from './schema';
import { instanceUuidSchema, keystoneIdSchema, MAX_INT } from './schemas';

export const SERVER_GROUP_POLICIES = [
  'affinity',
  'anti-affinity',
  'soft-affinity',
  'soft-anti-affinity',
] as const;
export type ServerGroupPolicy = (typeof SERVER_GROUP_POLICIES)[number];

export interface ServerGroupRules {
  max_server_per_host?: number;
}

export interface ServerGroup {
  uuid: string;
  name: string;
  projectId: string;
  userId: string;
  policy: ServerGroupPolicy;
  rules: ServerGroupRules;
  /** The instances in the group (deleted ones leave it). */
  members: string[];
  createdAt: number;
}

/** Nova's quota defaults: server_groups per project, server_group_members per group (and user). */
export const DEFAULT_SERVER_GROUPS = 10;
export const DEFAULT_SERVER_GROUP_MEMBERS = 10;

const rulesSchema = z.strictObject({ max_server_per_host: z.number().int().min(1).max(MAX_INT).optional() });

const createSchema = z
  .strictObject({
    name: nameSchema,
    projectId: keystoneIdSchema,
    userId: keystoneIdSchema,
    policy: z.enum(SERVER_GROUP_POLICIES),
    rules: rulesSchema.default({}),
  })
  .refine((v) => v.policy === 'anti-affinity' || Object.keys(v.rules).length === 0, {
    message: 'Only anti-affinity policy supports rules.',
    path: ['rules'],
  });
export type CreateServerGroupInput = z.input<typeof createSchema>;

const groupUuidSchema = z.uuid();

/** InstanceGroupNotFound's message. */
export const groupNotFound = (uuid: string): CloudError =>
  new CloudError('NotFound', `Instance group ${uuid} could not be found.`, { groupUuid: uuid });

function rulesOf(text: string): ServerGroupRules {
  const value: unknown = JSON.parse(text);
  const parsed = rulesSchema.safeParse(value);
  return parsed.success ? parsed.data : {};
}

function groupOf(row: InstanceGroupsTable, members: string[]): ServerGroup {
  return {
    uuid: row.uuid,
    name: row.name,
    projectId: row.project_id,
    userId: row.user_id,
    policy: row.policy as ServerGroupPolicy,
    rules: rulesOf(row.rules),
    members,
    createdAt: Number(row.created_at),
  };
}

async function membersOf(db: Kysely<NovaDb>, groupUuids: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>(groupUuids.map((g) => [g, []]));
  if (groupUuids.length === 0) return out;
  const rows = await db
    .selectFrom('instance_group_members')
    .select(['group_uuid', 'instance_uuid'])
    .where('group_uuid', 'in', groupUuids)
    .orderBy('created_at')
    .orderBy('instance_uuid')
    .execute();
  for (const row of rows) out.get(row.group_uuid)?.push(row.instance_uuid);
  return out;
}

/** The project's groups now (Nova's _server_group_count: the server_groups quota's usage). */
export async function countServerGroups(ctx: NovaContext, projectIdIn: unknown): Promise<number> {
  const projectId = parseRequest(keystoneIdSchema, projectIdIn, 'project id');
  const row = await ctx.store.db
    .selectFrom('instance_groups')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('project_id', '=', projectId)
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

/**
 * os-server-groups create: the group, then the server_groups quota counted with it (Nova's check and its
 * recheck after the create, in one transaction here): over the limit, nothing is written.
 */
export async function createServerGroup(ctx: NovaContext, input: unknown): Promise<ServerGroup> {
  const req = parseRequest(createSchema, input, 'server group');
  return ctx.store.transaction(async (trx) => {
    const row: InstanceGroupsTable = {
      uuid: randomUUID(),
      name: req.name,
      project_id: req.projectId,
      user_id: req.userId,
      policy: req.policy,
      rules: JSON.stringify(req.rules),
      created_at: ctx.clock.now(),
    };
    await trx.insertInto('instance_groups').values(row).execute();
    const count = await trx
      .selectFrom('instance_groups')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('project_id', '=', req.projectId)
      .executeTakeFirst();
    if (Number(count?.n ?? 0) > DEFAULT_SERVER_GROUPS) {
      throw new CloudError('QuotaExceeded', 'Quota exceeded, too many server groups.', {
        resource: 'server_groups',
        allowed: DEFAULT_SERVER_GROUPS,
      });
    }
    return groupOf(row, []);
  });
}

/** One group with its members; NotFound (Nova's InstanceGroupNotFound) for an unknown or malformed id. */
export async function getServerGroup(ctx: NovaContext, uuidIn: unknown): Promise<ServerGroup> {
  const parsed = groupUuidSchema.safeParse(uuidIn);
  if (!parsed.success) throw groupNotFound(String(uuidIn));
  const uuid = parsed.data.toLowerCase();
  const row = await ctx.store.db
    .selectFrom('instance_groups')
    .selectAll()
    .where('uuid', '=', uuid)
    .executeTakeFirst();
  if (!row) throw groupNotFound(uuid);
  return groupOf(row, (await membersOf(ctx.store.db, [uuid])).get(uuid) ?? []);
}

const listSchema = z.strictObject({
  projectId: keystoneIdSchema.optional(),
  limit: z.number().int().min(0).max(MAX_INT).optional(),
  offset: z.number().int().min(0).max(MAX_INT).default(0),
});

/** A project's groups (every project's without one), oldest first, Nova's limit and offset applied. */
export async function listServerGroups(ctx: NovaContext, filterIn: unknown): Promise<ServerGroup[]> {
  const filter = parseRequest(listSchema, filterIn, 'server group list');
  let query = ctx.store.db.selectFrom('instance_groups').selectAll().orderBy('created_at').orderBy('uuid');
  if (filter.projectId !== undefined) query = query.where('project_id', '=', filter.projectId);
  // MySQL takes no OFFSET without a LIMIT: without one, the page is cut here.
  const page =
    filter.limit === undefined
      ? (await query.execute()).slice(filter.offset)
      : await query.limit(filter.limit).offset(filter.offset).execute();
  const members = await membersOf(
    ctx.store.db,
    page.map((r) => r.uuid),
  );
  return page.map((r) => groupOf(r, members.get(r.uuid) ?? []));
}

/** InstanceGroup.destroy(): the group and its member rows (the instances stay). */
export async function deleteServerGroup(ctx: NovaContext, uuidIn: unknown): Promise<void> {
  const group = await getServerGroup(ctx, uuidIn);
  await ctx.store.transaction(async (trx) => {
    await trx.deleteFrom('instance_group_members').where('group_uuid', '=', group.uuid).execute();
    const deleted = await trx.deleteFrom('instance_groups').where('uuid', '=', group.uuid).executeTakeFirst();
    if (Number(deleted.numDeletedRows) === 0) throw groupNotFound(group.uuid);
  });
}

/** Each instance's group, for the server views (2.71's server_groups). */
export async function serverGroupsOf(
  ctx: NovaContext,
  instanceUuids: string[],
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (instanceUuids.length === 0) return out;
  const rows = await ctx.store.db
    .selectFrom('instance_group_members')
    .select(['instance_uuid', 'group_uuid'])
    .where('instance_uuid', 'in', instanceUuids)
    .execute();
  for (const row of rows) out.set(row.instance_uuid, row.group_uuid);
  return out;
}

/**
 * nova-api's add_members for a boot with the `group` hint, inside the transaction that writes the
 * instance: the group row locked, the server_group_members quota checked (the group's members of this
 * user, as Nova's _server_group_count_members_by_user), the member written. A group deleted meanwhile
 * is InstanceGroupNotFound.
 */
export async function addMemberIn(
  ctx: NovaContext,
  trx: Kysely<NovaDb>,
  input: { groupUuid: string; instanceUuid: string; userId: string },
): Promise<void> {
  const group = await ctx.store
    .forUpdate(trx.selectFrom('instance_groups').select('uuid').where('uuid', '=', input.groupUuid))
    .executeTakeFirst();
  if (!group) throw groupNotFound(input.groupUuid);
  const count = await trx
    .selectFrom('instance_group_members as m')
    .innerJoin('instances as i', 'i.uuid', 'm.instance_uuid')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('m.group_uuid', '=', input.groupUuid)
    .where('i.user_id', '=', input.userId)
    .executeTakeFirst();
  if (Number(count?.n ?? 0) + 1 > DEFAULT_SERVER_GROUP_MEMBERS) {
    throw new CloudError('QuotaExceeded', 'Quota exceeded, too many servers in group', {
      resource: 'server_group_members',
      allowed: DEFAULT_SERVER_GROUP_MEMBERS,
    });
  }
  await trx
    .insertInto('instance_group_members')
    .values({ instance_uuid: input.instanceUuid, group_uuid: input.groupUuid, created_at: ctx.clock.now() })
    .execute();
}

/** An instance's delete takes it out of its group (Nova's instance destroy removes the member). */
export async function removeMemberIn(trx: Kysely<NovaDb>, instanceUuid: string): Promise<void> {
  await trx.deleteFrom('instance_group_members').where('instance_uuid', '=', instanceUuid).execute();
}

/** What the scheduler needs of an instance's group: its policy, rules and the other members' hosts. */
export interface SchedulingGroup {
  uuid: string;
  policy: ServerGroupPolicy;
  rules: ServerGroupRules;
  /** The group's other live members, with the host Nova has recorded for each (null while unplaced). */
  members: Array<{ uuid: string; host: string | null }>;
}

/** The group of the instance being scheduled (RequestSpec.instance_group), or null when it has none. */
export async function schedulingGroupOf(
  ctx: NovaContext,
  instanceUuidIn: unknown,
): Promise<SchedulingGroup | null> {
  const instanceUuid = parseRequest(instanceUuidSchema, instanceUuidIn, 'instance uuid');
  const db = ctx.store.db;
  const membership = await db
    .selectFrom('instance_group_members as m')
    .innerJoin('instance_groups as g', 'g.uuid', 'm.group_uuid')
    .select(['g.uuid', 'g.policy', 'g.rules'])
    .where('m.instance_uuid', '=', instanceUuid)
    .executeTakeFirst();
  if (!membership) return null;
  const others = await db
    .selectFrom('instance_group_members as m')
    .innerJoin('instances as i', 'i.uuid', 'm.instance_uuid')
    .select(['i.uuid', 'i.host'])
    .where('m.group_uuid', '=', membership.uuid)
    .where('m.instance_uuid', '!=', instanceUuid)
    .where('i.deleted', '=', 0)
    .execute();
  return {
    uuid: membership.uuid,
    policy: membership.policy as ServerGroupPolicy,
    rules: rulesOf(membership.rules),
    members: others.map((o) => ({ uuid: o.uuid, host: o.host })),
  };
}
