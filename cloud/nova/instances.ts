/**
 * Instances in the nova database: created by nova-api (building/scheduling), moved on by the conductor with
 * a task_state guard (Nova's expected_task_state), soft-deleted at the end, as Nova's Instance.save() and
 * Instance.destroy() do.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { CloudError } from '../errors';
import {
  idSchema,
  nameSchema,
  parseRequest,
  serverMetadataSchema,
  serverTagsSchema,
  userDataSchema,
} from '../validation';
import { isUniqueViolation, parseJsonArray, type NovaContext } from './db-util';
import { findFlavor, flavorRefSchema, type Flavor } from './flavors';
import { quotaClaimStep, releaseConsumerIn } from './quota';
import { addMemberIn, removeMemberIn } from './server-groups';
import type { InstancesTable, NovaDb } from './schema';
import { instanceUuidSchema, keystoneIdSchema } from './schemas';
import {
  POWER_STATE_VALUES,
  POWER_STATES,
  TASK_STATE_VALUES,
  TASK_STATES,
  VM_STATE_VALUES,
  VM_STATES,
  statusFromState,
  type ApiStatus,
  type PowerState,
  type TaskState,
  type VmState,
} from './states';

export interface Instance {
  uuid: string;
  requestId: string;
  name: string;
  projectId: string;
  userId: string;
  flavor: Flavor;
  imageRef: string | null;
  bootFromVolume: boolean;
  networks: string[];
  availabilityZone: string | null;
  keyName: string | null;
  metadata: Record<string, string>;
  /** Nova's user_data as given (base64), or null. */
  userData: string | null;
  tags: string[];
  accessIPv4: string | null;
  accessIPv6: string | null;
  /** os-lock-server: whether locked, by whom ('owner' or 'admin'), and the reason given (2.73). */
  locked: boolean;
  lockedBy: 'owner' | 'admin' | null;
  lockedReason: string | null;
  /** The create request's reservation id, shared by its servers (Nova's `r-` and 8 characters). */
  reservationId: string;
  /** Nova's auto_disk_config: OS-DCF:diskConfig AUTO (true) or MANUAL (false). */
  autoDiskConfig: boolean;
  vmState: VmState;
  taskState: TaskState | null;
  powerState: PowerState;
  host: string | null;
  node: string | null;
  launchedAt: number | null;
  terminatedAt: number | null;
  deleted: boolean;
  deletedAt: number | null;
  createdAt: number;
  updatedAt: number;
}

export function instanceFromRow(row: InstancesTable): Instance {
  return {
    uuid: row.uuid,
    requestId: row.request_id,
    name: row.name,
    projectId: row.project_id,
    userId: row.user_id,
    flavor: {
      id: row.flavor_id,
      name: row.flavor_name,
      vcpus: row.vcpus,
      memoryMb: row.memory_mb,
      rootGb: row.root_gb,
      ephemeralGb: row.ephemeral_gb,
      swapMb: row.swap_mb,
    },
    imageRef: row.image_ref,
    bootFromVolume: row.boot_from_volume === 1,
    networks: parseJsonArray(row.networks),
    availabilityZone: row.availability_zone,
    keyName: row.key_name ?? null,
    metadata: parseMetadata(row.metadata),
    userData: row.user_data ?? null,
    tags: row.tags ? parseJsonArray(row.tags) : [],
    accessIPv4: row.access_ip_v4 ?? null,
    accessIPv6: row.access_ip_v6 ?? null,
    locked: Number(row.locked ?? 0) === 1,
    lockedBy: row.locked_by === 'owner' || row.locked_by === 'admin' ? row.locked_by : null,
    lockedReason: row.locked_reason ?? null,
    reservationId: row.reservation_id ?? legacyReservationId(row.uuid),
    autoDiskConfig: Number(row.auto_disk_config ?? 0) === 1,
    vmState: row.vm_state as VmState,
    taskState: row.task_state as TaskState | null,
    powerState: Number(row.power_state) as PowerState,
    host: row.host,
    node: row.node,
    launchedAt: row.launched_at === null ? null : Number(row.launched_at),
    terminatedAt: row.terminated_at === null ? null : Number(row.terminated_at),
    deleted: row.deleted === 1,
    deletedAt: row.deleted_at === null ? null : Number(row.deleted_at),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

/** Rows written before migration 011 have none: a stable one derived from the uuid, as shown before. */
function legacyReservationId(uuid: string): string {
  return `r-${createHash('sha256').update(uuid).digest('hex').slice(0, 8)}`;
}

function parseMetadata(text: string | null | undefined): Record<string, string> {
  if (!text) return {};
  const value: unknown = JSON.parse(text);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return {};
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, String(v)]));
}

export function apiStatus(instance: Pick<Instance, 'vmState' | 'taskState'>): ApiStatus {
  return statusFromState(instance.vmState, instance.taskState);
}

/** Nova's same_host / different_host hints: instance uuids (a plain string is not checked to be one). */
const hintIdsSchema = z.array(z.string().min(1).max(255)).max(1000);
const schedulerHintsSchema = z.strictObject({
  sameHost: hintIdsSchema.optional(),
  differentHost: hintIdsSchema.optional(),
});
export type InstanceSchedulerHints = z.output<typeof schedulerHintsSchema>;

/**
 * The affinity hints of the instance being scheduled (RequestSpec.scheduler_hints same_host and
 * different_host), each instance named with the host Nova has recorded for it (null while unplaced), or
 * null when it has none. Instances that do not exist (or are deleted) are left out: no host holds them.
 */
export async function schedulingHintsOf(
  ctx: NovaContext,
  uuidIn: unknown,
): Promise<{
  sameHost?: Array<{ uuid: string; host: string | null }>;
  differentHost?: Array<{ uuid: string; host: string | null }>;
} | null> {
  const uuid = parseRequest(instanceUuidSchema, uuidIn, 'instance uuid');
  const row = await ctx.store.db
    .selectFrom('instances')
    .select('scheduler_hints')
    .where('uuid', '=', uuid)
    .executeTakeFirst();
  if (!row?.scheduler_hints) return null;
  const hints = schedulerHintsSchema.parse(JSON.parse(row.scheduler_hints));
  const named = [...(hints.sameHost ?? []), ...(hints.differentHost ?? [])].map((u) => u.toLowerCase());
  const rows =
    named.length === 0
      ? []
      : await ctx.store.db
          .selectFrom('instances')
          .select(['uuid', 'host'])
          .where('uuid', 'in', named)
          .where('deleted', '=', 0)
          .execute();
  const byUuid = new Map(rows.map((r) => [r.uuid, r.host]));
  const resolve = (ids: string[]) =>
    ids.flatMap((u) => {
      const host = byUuid.get(u.toLowerCase());
      return host === undefined ? [] : [{ uuid: u.toLowerCase(), host }];
    });
  // Nova's filters pass every host for an empty hint (`if affinity_uuids:`).
  return {
    ...(hints.sameHost?.length ? { sameHost: resolve(hints.sameHost) } : {}),
    ...(hints.differentHost?.length ? { differentHost: resolve(hints.differentHost) } : {}),
  };
}

const createSchema = z
  .strictObject({
    uuid: instanceUuidSchema,
    requestId: idSchema,
    name: nameSchema,
    projectId: keystoneIdSchema,
    userId: keystoneIdSchema,
    flavor: flavorRefSchema,
    imageRef: idSchema.optional(),
    bootFromVolume: z.boolean().optional(),
    networks: z.array(idSchema).max(32),
    availabilityZone: nameSchema.optional(),
    keyName: nameSchema.optional(),
    metadata: serverMetadataSchema.optional(),
    userData: userDataSchema.optional(),
    tags: serverTagsSchema.optional(),
    accessIPv4: z.ipv4().optional(),
    accessIPv6: z.ipv6().optional(),
    /** The `group` scheduler hint: the instance becomes a member of this server group. */
    serverGroup: z.uuid().optional(),
    /** The same_host / different_host hints: the instances to share, or not share, a host with. */
    schedulerHints: schedulerHintsSchema.optional(),
    /** OS-DCF:diskConfig (AUTO: true), as the API resolved it from the request and the image. */
    autoDiskConfig: z.boolean().optional(),
    reservationId: z
      .string()
      .regex(/^r-[a-z0-9]{8}$/, 'must be r- and 8 letters or digits')
      .optional(),
  })
  .refine((v) => v.imageRef !== undefined || v.bootFromVolume === true, {
    message: 'an imageRef is required unless booting from a volume',
    path: ['imageRef'],
  });
export type CreateInstanceRequest = z.input<typeof createSchema>;

/** A retry (same uuid, or same request id) gets the first result; a uuid reused by another request is refused. */
function sameRequest(row: InstancesTable, uuid: string, requestId: string): Instance {
  if (row.uuid === uuid && row.request_id !== requestId) {
    throw new CloudError(
      'Conflict',
      `Instance ${uuid} already exists for another request (${row.request_id})`,
      { reason: 'InstanceExists', instanceUuid: uuid },
    );
  }
  return instanceFromRow(row);
}

/**
 * nova-api's part of a boot: the instance record in building/scheduling and the 'create' action. With
 * `quota` (the boot's amounts), the claim held by the instance uuid is written in the same transaction:
 * either both are written or neither (a retry that finds the row claims nothing again).
 */
export async function createInstance(ctx: NovaContext, input: unknown, quota?: unknown): Promise<Instance> {
  const req = parseRequest(createSchema, input, 'instance');
  const earlier = async (db: Kysely<NovaDb>) => {
    const rows = await db
      .selectFrom('instances')
      .selectAll()
      .where((eb) => eb.or([eb('uuid', '=', req.uuid), eb('request_id', '=', req.requestId)]))
      .execute();
    const first = rows.find((r) => r.uuid === req.uuid) ?? rows[0];
    return first && sameRequest(first, req.uuid, req.requestId);
  };
  // A retry returns the first result even if its flavor has been disabled since.
  const retried = await earlier(ctx.store.db);
  if (retried) return retried;
  const flavorKey = typeof req.flavor === 'string' ? req.flavor : req.flavor.id;
  const flavor = await findFlavor(ctx, flavorKey);
  if (!flavor) throw new CloudError('BadRequest', `Flavor ${flavorKey} could not be found.`);
  const claim = quota === undefined ? undefined : await quotaClaimStep(ctx, req.projectId, req.uuid, quota);
  const create = () =>
    ctx.store.transaction(async (trx) => {
      const first = await earlier(trx);
      if (first) return first;
      await claim?.(trx);
      const now = ctx.clock.now();
      const row: InstancesTable = {
        uuid: req.uuid,
        request_id: req.requestId,
        name: req.name,
        project_id: req.projectId,
        user_id: req.userId,
        flavor_id: flavor.id,
        flavor_name: flavor.name,
        vcpus: flavor.vcpus,
        memory_mb: flavor.memoryMb,
        root_gb: flavor.rootGb,
        ephemeral_gb: flavor.ephemeralGb,
        swap_mb: flavor.swapMb,
        image_ref: req.imageRef ?? null,
        boot_from_volume: req.bootFromVolume ? 1 : 0,
        networks: JSON.stringify(req.networks),
        availability_zone: req.availabilityZone ?? null,
        key_name: req.keyName ?? null,
        metadata: req.metadata ? JSON.stringify(req.metadata) : null,
        user_data: req.userData ?? null,
        tags: req.tags?.length ? JSON.stringify(req.tags) : null,
        access_ip_v4: req.accessIPv4 ?? null,
        access_ip_v6: req.accessIPv6 ?? null,
        locked: 0,
        locked_by: null,
        locked_reason: null,
        reservation_id: req.reservationId ?? null,
        scheduler_hints:
          req.schedulerHints && (req.schedulerHints.sameHost || req.schedulerHints.differentHost)
            ? JSON.stringify(req.schedulerHints)
            : null,
        auto_disk_config: req.autoDiskConfig ? 1 : 0,
        vm_state: VM_STATES.BUILDING,
        task_state: TASK_STATES.SCHEDULING,
        power_state: POWER_STATES.NOSTATE,
        host: null,
        node: null,
        launched_at: null,
        terminated_at: null,
        deleted: 0,
        deleted_at: null,
        created_at: now,
        updated_at: now,
      };
      await trx.insertInto('instances').values(row).execute();
      if (req.serverGroup !== undefined) {
        await addMemberIn(ctx, trx, {
          groupUuid: req.serverGroup.toLowerCase(),
          instanceUuid: req.uuid,
          userId: req.userId,
        });
      }
      await trx
        .insertInto('instance_actions')
        .values({
          id: randomUUID(),
          instance_uuid: req.uuid,
          // The row is new in this transaction, so it has no action yet (instance_uuid is a foreign key).
          seq: 1,
          request_id: req.requestId,
          action: 'create',
          user_id: req.userId,
          project_id: req.projectId,
          start_time: now,
          finish_time: null,
          message: null,
          created_at: now,
          updated_at: now,
        })
        .execute();
      return instanceFromRow(row);
    });
  try {
    return await create();
  } catch (err) {
    // Two retries raced (MySQL/PostgreSQL): the loser reads what the winner wrote.
    if (!isUniqueViolation(err)) throw err;
    return create();
  }
}

/**
 * nova-api's quota reserve for a boot: the claim held by the instance uuid (idempotent per uuid). Answers
 * whether the claim is the boot's own to undo on failure: it is, unless the uuid already held it and its
 * instance record exists (an earlier run of the same boot, before a `temporal workflow reset`, made both:
 * the instance keeps its claim until its delete or its failed build's clean-up releases it). A claim found
 * held with no record yet is this boot's own, made by an attempt whose answer was lost.
 */
export async function claimBootQuota(
  ctx: NovaContext,
  projectId: unknown,
  uuidIn: unknown,
  amounts: unknown,
): Promise<{ ownClaim: boolean }> {
  const uuid = parseRequest(instanceUuidSchema, uuidIn, 'instance uuid');
  const claim = await quotaClaimStep(ctx, projectId, uuid, amounts);
  return ctx.store.transaction(async (trx) => {
    // Only this boot's runs claim for its uuid, and one at a time: plain reads are current enough.
    const held = await trx
      .selectFrom('quota_allocations')
      .select('consumer_uuid')
      .where('consumer_uuid', '=', uuid)
      .executeTakeFirst();
    const record = await trx
      .selectFrom('instances')
      .select('deleted')
      .where('uuid', '=', uuid)
      .executeTakeFirst();
    await claim(trx);
    return { ownClaim: held === undefined || record === undefined || record.deleted === 1 };
  });
}

/** The instance's row, locked for this transaction's writes (deleted rows too); NotFound without one. */
async function lockedRow(ctx: NovaContext, trx: Kysely<NovaDb>, uuid: string): Promise<InstancesTable> {
  const row = await ctx.store
    .forUpdate(trx.selectFrom('instances').selectAll().where('uuid', '=', uuid))
    .executeTakeFirst();
  if (!row) throw new CloudError('NotFound', `Instance ${uuid} could not be found.`, { instanceUuid: uuid });
  return row;
}

export async function getInstance(
  ctx: NovaContext,
  uuidIn: unknown,
  options: { includeDeleted?: boolean } = {},
): Promise<Instance> {
  const uuid = parseRequest(instanceUuidSchema, uuidIn, 'instance uuid');
  const row = await ctx.store.db
    .selectFrom('instances')
    .selectAll()
    .where('uuid', '=', uuid)
    .executeTakeFirst();
  if (!row || (row.deleted === 1 && !options.includeDeleted)) {
    throw new CloudError('NotFound', `Instance ${uuid} could not be found.`, { instanceUuid: uuid });
  }
  return instanceFromRow(row);
}

const listSchema = z
  .strictObject({
    projectId: keystoneIdSchema.optional(),
    allProjects: z.boolean().optional(),
    includeDeleted: z.boolean().optional(),
    /** Only the instances placed on this compute host (Nova's InstanceList.get_by_host). */
    host: z.string().min(1).max(255).optional(),
  })
  .refine(
    (v) => v.projectId !== undefined || v.allProjects === true,
    'give a projectId or allProjects: true',
  );

export async function listInstances(ctx: NovaContext, filter: unknown): Promise<Instance[]> {
  const f = parseRequest(listSchema, filter, 'instance filter');
  let query = ctx.store.db.selectFrom('instances').selectAll();
  // allProjects alone lists every project; with a projectId it narrows to that one (Nova's all_tenants).
  if (f.projectId !== undefined) query = query.where('project_id', '=', f.projectId);
  if (!f.includeDeleted) query = query.where('deleted', '=', 0);
  if (f.host !== undefined) query = query.where('host', '=', f.host);
  const rows = await query.orderBy('created_at', 'desc').orderBy('uuid').execute();
  return rows.map(instanceFromRow);
}

const epochSchema = z.number().int().min(0).max(8.64e15);
const patchSchema = z
  .strictObject({
    // 'deleted' is reached only through softDeleteInstance, which also sets deleted/deleted_at.
    vmState: z.enum(VM_STATE_VALUES).exclude([VM_STATES.DELETED]).optional(),
    taskState: z.enum(TASK_STATE_VALUES).nullable().optional(),
    powerState: z.literal(POWER_STATE_VALUES).optional(),
    host: z.string().min(1).max(255).nullable().optional(),
    node: z.string().min(1).max(255).nullable().optional(),
    launchedAt: epochSchema.nullable().optional(),
    terminatedAt: epochSchema.nullable().optional(),
    availabilityZone: nameSchema.nullable().optional(),
    /** The servers API's rename and access addresses (PUT /servers/{id}). */
    name: nameSchema.optional(),
    accessIPv4: z.ipv4().optional(),
    accessIPv6: z.ipv6().optional(),
    /** A rebuild's new image and metadata (replaced whole, as Nova's rebuild does). */
    imageRef: idSchema.optional(),
    metadata: serverMetadataSchema.optional(),
    /** A rebuild's key pair name (2.54) and user_data (2.57); null removes them. */
    keyName: nameSchema.nullable().optional(),
    userData: userDataSchema.nullable().optional(),
    /** OS-DCF:diskConfig on rebuild, resize or update (AUTO: true). */
    autoDiskConfig: z.boolean().optional(),
  })
  .refine((p) => Object.keys(p).length > 0, 'the patch changes nothing');
export type InstancePatch = z.input<typeof patchSchema>;

const expectedSchema = z.strictObject({
  expectedTaskState: z
    .union([z.enum(TASK_STATE_VALUES).nullable(), z.array(z.enum(TASK_STATE_VALUES).nullable()).min(1)])
    .optional(),
});
export type UpdateOptions = z.input<typeof expectedSchema>;

function unexpectedTaskState(
  uuid: string,
  expected: Array<string | null>,
  actual: string | null,
): CloudError {
  const shown = expected.map((s) => s ?? 'None').join(', ');
  return new CloudError(
    'Conflict',
    `Conflict updating instance ${uuid}. Expected task_state: [${shown}]. Actual: ${actual ?? 'None'}`,
    { reason: 'UnexpectedTaskState', instanceUuid: uuid, expected, actual },
  );
}

function columnsOfPatch(patch: z.infer<typeof patchSchema>): Partial<InstancesTable> {
  const set: Partial<InstancesTable> = {};
  if (patch.vmState !== undefined) set.vm_state = patch.vmState;
  if (patch.taskState !== undefined) set.task_state = patch.taskState;
  if (patch.powerState !== undefined) set.power_state = patch.powerState;
  if (patch.host !== undefined) set.host = patch.host;
  if (patch.node !== undefined) set.node = patch.node;
  if (patch.launchedAt !== undefined) set.launched_at = patch.launchedAt;
  if (patch.terminatedAt !== undefined) set.terminated_at = patch.terminatedAt;
  if (patch.availabilityZone !== undefined) set.availability_zone = patch.availabilityZone;
  if (patch.name !== undefined) set.name = patch.name;
  if (patch.accessIPv4 !== undefined) set.access_ip_v4 = patch.accessIPv4;
  if (patch.accessIPv6 !== undefined) set.access_ip_v6 = patch.accessIPv6;
  if (patch.imageRef !== undefined) set.image_ref = patch.imageRef;
  if (patch.metadata !== undefined) set.metadata = JSON.stringify(patch.metadata);
  if (patch.keyName !== undefined) set.key_name = patch.keyName;
  if (patch.userData !== undefined) set.user_data = patch.userData;
  if (patch.autoDiskConfig !== undefined) set.auto_disk_config = patch.autoDiskConfig ? 1 : 0;
  return set;
}

/**
 * Instance.save(expected_task_state=...): the patch applies only if the instance is live and, when a guard
 * is given, its task_state is one of the expected ones; otherwise Conflict (reason UnexpectedTaskState or
 * InstanceDeleted), e.g. when a delete started meanwhile.
 */
export async function updateInstance(
  ctx: NovaContext,
  uuidIn: unknown,
  patchIn: unknown,
  optionsIn: unknown = {},
): Promise<Instance> {
  const uuid = parseRequest(instanceUuidSchema, uuidIn, 'instance uuid');
  const patch = parseRequest(patchSchema, patchIn, 'instance update');
  const { expectedTaskState } = parseRequest(expectedSchema, optionsIn, 'update options');
  const expected =
    expectedTaskState === undefined
      ? undefined
      : Array.isArray(expectedTaskState)
        ? expectedTaskState
        : [expectedTaskState];
  return ctx.store.transaction(async (trx) => {
    const row = await lockedRow(ctx, trx, uuid);
    if (row.deleted === 1) {
      throw new CloudError('Conflict', `Instance ${uuid} has been deleted; it cannot be updated.`, {
        reason: 'InstanceDeleted',
        instanceUuid: uuid,
      });
    }
    if (expected && !expected.includes(row.task_state as TaskState | null)) {
      throw unexpectedTaskState(uuid, expected, row.task_state);
    }
    const updated: InstancesTable = { ...row, ...columnsOfPatch(patch), updated_at: ctx.clock.now() };
    await trx
      .updateTable('instances')
      .set({ ...columnsOfPatch(patch), updated_at: updated.updated_at })
      .where('uuid', '=', uuid)
      .execute();
    return instanceFromRow(updated);
  });
}

/**
 * Instance.destroy(): vm_state deleted, task_state None, deleted/deleted_at/terminated_at set, the row kept
 * (soft delete). The quota the instance holds as a consumer is released, and its server group membership
 * removed, in the same transaction.
 * Idempotent: deleting a deleted instance returns it unchanged.
 */
export async function softDeleteInstance(ctx: NovaContext, uuidIn: unknown): Promise<Instance> {
  const uuid = parseRequest(instanceUuidSchema, uuidIn, 'instance uuid');
  return ctx.store.transaction(async (trx) => {
    const row = await lockedRow(ctx, trx, uuid);
    if (row.deleted === 1) return instanceFromRow(row);
    const now = ctx.clock.now();
    const set = {
      vm_state: VM_STATES.DELETED,
      task_state: null,
      deleted: 1,
      deleted_at: now,
      terminated_at: row.terminated_at ?? now,
      updated_at: now,
    };
    await trx.updateTable('instances').set(set).where('uuid', '=', uuid).execute();
    await releaseConsumerIn(ctx, trx, uuid);
    await removeMemberIn(trx, uuid);
    return instanceFromRow({ ...row, ...set });
  });
}
