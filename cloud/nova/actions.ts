/**
 * The audit trail of an instance: instance_faults (why it went to ERROR), instance_actions (one per API
 * request, keyed by request id) and instance_actions_events (each service's step of that request, with its
 * result), as `openstack server event list/show` shows them.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { CloudError } from '../errors';
import { idSchema, parseRequest } from '../validation';
import { nextSeq, truncate, type NovaContext } from './db-util';
import type { InstanceActionsEventsTable, InstanceActionsTable, InstanceFaultsTable, NovaDb } from './schema';
import { hostSchema, instanceUuidSchema, keystoneIdSchema } from './schemas';

export interface InstanceFault {
  id: string;
  instanceUuid: string;
  code: number;
  message: string;
  details: string | null;
  host: string | null;
  createdAt: number;
}

export interface InstanceActionEvent {
  event: string;
  startTime: number;
  finishTime: number | null;
  /** 'Success' or 'Error' once finished (Nova's values), null while running. */
  result: string | null;
  host: string | null;
  details: string | null;
}

export interface InstanceAction {
  id: string;
  instanceUuid: string;
  requestId: string;
  action: string;
  userId: string;
  projectId: string;
  startTime: number;
  finishTime: number | null;
  /** 'Error' when one of its events failed, as Nova marks it. */
  message: string | null;
  events: InstanceActionEvent[];
}

// Fault messages go to a varchar(255) and details to a text column: long inputs are cut, as Nova cuts them.
const FAULT_MESSAGE_MAX = 255;
const DETAILS_MAX = 16000;
const stepNameSchema = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[A-Za-z0-9_.:-]+$/, 'must be letters, digits, "_", ".", ":" or "-"');

const faultSchema = z.strictObject({
  code: z.number().int().min(100).max(599),
  message: z
    .string()
    .min(1)
    .max(64 * 1024),
  details: z
    .string()
    .max(1024 * 1024)
    .optional(),
  host: hostSchema.optional(),
});
export type FaultInput = z.input<typeof faultSchema>;

/** Locks the instance row so seq numbers of its faults and actions are handed out one at a time. */
async function lockInstance(ctx: NovaContext, trx: Kysely<NovaDb>, uuid: string): Promise<void> {
  const row = await ctx.store
    .forUpdate(trx.selectFrom('instances').select('uuid').where('uuid', '=', uuid))
    .executeTakeFirst();
  if (!row) throw new CloudError('NotFound', `Instance ${uuid} could not be found.`, { instanceUuid: uuid });
}

function faultFromRow(row: InstanceFaultsTable): InstanceFault {
  return {
    id: row.id,
    instanceUuid: row.instance_uuid,
    code: Number(row.code),
    message: row.message,
    details: row.details,
    host: row.host,
    createdAt: Number(row.created_at),
  };
}

export async function addFault(ctx: NovaContext, uuidIn: unknown, faultIn: unknown): Promise<InstanceFault> {
  const uuid = parseRequest(instanceUuidSchema, uuidIn, 'instance uuid');
  const fault = parseRequest(faultSchema, faultIn, 'instance fault');
  return ctx.store.transaction(async (trx) => {
    await lockInstance(ctx, trx, uuid);
    const row: InstanceFaultsTable = {
      id: randomUUID(),
      instance_uuid: uuid,
      seq: await nextSeq(trx, 'instance_faults', uuid),
      code: fault.code,
      message: truncate(fault.message, FAULT_MESSAGE_MAX),
      details: fault.details === undefined ? null : truncate(fault.details, DETAILS_MAX),
      host: fault.host ?? null,
      created_at: ctx.clock.now(),
    };
    await trx.insertInto('instance_faults').values(row).execute();
    return faultFromRow(row);
  });
}

/** Newest first: the first one is what `server show` displays as the fault. */
export async function listFaults(ctx: NovaContext, uuidIn: unknown): Promise<InstanceFault[]> {
  const uuid = parseRequest(instanceUuidSchema, uuidIn, 'instance uuid');
  const rows = await ctx.store.db
    .selectFrom('instance_faults')
    .selectAll()
    .where('instance_uuid', '=', uuid)
    .orderBy('seq', 'desc')
    .execute();
  return rows.map(faultFromRow);
}

function eventFromRow(row: InstanceActionsEventsTable): InstanceActionEvent {
  return {
    event: row.event,
    startTime: Number(row.start_time),
    finishTime: row.finish_time === null ? null : Number(row.finish_time),
    result: row.result,
    host: row.host,
    details: row.details,
  };
}

function actionFromRow(row: InstanceActionsTable, events: InstanceActionsEventsTable[]): InstanceAction {
  return {
    id: row.id,
    instanceUuid: row.instance_uuid,
    requestId: row.request_id,
    action: row.action,
    userId: row.user_id,
    projectId: row.project_id,
    startTime: Number(row.start_time),
    finishTime: row.finish_time === null ? null : Number(row.finish_time),
    message: row.message,
    events: events.map(eventFromRow),
  };
}

async function eventsOf(db: Kysely<NovaDb>, actionIds: string[]): Promise<InstanceActionsEventsTable[]> {
  if (actionIds.length === 0) return [];
  return db
    .selectFrom('instance_actions_events')
    .selectAll()
    .where('action_id', 'in', actionIds)
    .orderBy('seq')
    .execute();
}

async function actionByRequest(
  db: Kysely<NovaDb>,
  instanceUuid: string,
  requestId: string,
): Promise<InstanceActionsTable | undefined> {
  return db
    .selectFrom('instance_actions')
    .selectAll()
    .where('instance_uuid', '=', instanceUuid)
    .where('request_id', '=', requestId)
    .executeTakeFirst();
}

const startActionSchema = z.strictObject({
  instanceUuid: instanceUuidSchema,
  requestId: idSchema,
  action: stepNameSchema,
  userId: keystoneIdSchema,
  projectId: keystoneIdSchema,
});
export type StartActionInput = z.input<typeof startActionSchema>;

/** InstanceAction.action_start: one action per (instance, request id); starting it again returns it. */
export async function startAction(ctx: NovaContext, input: unknown): Promise<InstanceAction> {
  const req = parseRequest(startActionSchema, input, 'instance action');
  return ctx.store.transaction(async (trx) => {
    await lockInstance(ctx, trx, req.instanceUuid);
    const existing = await actionByRequest(trx, req.instanceUuid, req.requestId);
    if (existing) return actionFromRow(existing, await eventsOf(trx, [existing.id]));
    const now = ctx.clock.now();
    const row: InstanceActionsTable = {
      id: randomUUID(),
      instance_uuid: req.instanceUuid,
      seq: await nextSeq(trx, 'instance_actions', req.instanceUuid),
      request_id: req.requestId,
      action: req.action,
      user_id: req.userId,
      project_id: req.projectId,
      start_time: now,
      finish_time: null,
      message: null,
      created_at: now,
      updated_at: now,
    };
    await trx.insertInto('instance_actions').values(row).execute();
    return actionFromRow(row, []);
  });
}

const finishActionSchema = z.strictObject({
  instanceUuid: instanceUuidSchema,
  requestId: idSchema,
  message: z.string().min(1).max(255).optional(),
});

/** InstanceAction.action_finish: sets finish_time once; a later call returns the finished action. */
export async function finishAction(ctx: NovaContext, input: unknown): Promise<InstanceAction> {
  const req = parseRequest(finishActionSchema, input, 'instance action finish');
  return ctx.store.transaction(async (trx) => {
    const row = await lockAction(ctx, trx, req.instanceUuid, req.requestId);
    if (row.finish_time === null) {
      const now = ctx.clock.now();
      row.finish_time = now;
      row.updated_at = now;
      if (req.message !== undefined) row.message = req.message;
      await trx
        .updateTable('instance_actions')
        .set({ finish_time: row.finish_time, updated_at: now, message: row.message })
        .where('id', '=', row.id)
        .execute();
    }
    return actionFromRow(row, await eventsOf(trx, [row.id]));
  });
}

async function lockAction(
  ctx: NovaContext,
  trx: Kysely<NovaDb>,
  instanceUuid: string,
  requestId: string,
): Promise<InstanceActionsTable> {
  const row = await ctx.store
    .forUpdate(
      trx
        .selectFrom('instance_actions')
        .selectAll()
        .where('instance_uuid', '=', instanceUuid)
        .where('request_id', '=', requestId),
    )
    .executeTakeFirst();
  if (!row) {
    throw new CloudError(
      'NotFound',
      `Action for request_id ${requestId} on instance ${instanceUuid} not found`,
      { instanceUuid, requestId },
    );
  }
  return row;
}

const eventSchema = z.strictObject({
  instanceUuid: instanceUuidSchema,
  requestId: idSchema,
  event: stepNameSchema,
  host: hostSchema.optional(),
  /** Absent: the step starts. 'Success' / 'Error': the step finished so. */
  result: z.enum(['Success', 'Error']).optional(),
  details: z
    .string()
    .max(1024 * 1024)
    .optional(),
});
export type RecordEventInput = z.input<typeof eventSchema>;

/**
 * InstanceActionEvent.event_start / event_finish in one call. Starting an event that is already running
 * returns it; finishing closes the running event of that name (or records a finished one if it never
 * started); repeating a finish returns the first. An 'Error' marks the action's message 'Error', as Nova does.
 */
export async function recordEvent(ctx: NovaContext, input: unknown): Promise<InstanceActionEvent> {
  const req = parseRequest(eventSchema, input, 'instance action event');
  return ctx.store.transaction(async (trx) => {
    const action = await lockAction(ctx, trx, req.instanceUuid, req.requestId);
    const sameName = (await eventsOf(trx, [action.id])).filter(
      (e) => e.event === req.event && (req.host === undefined || e.host === req.host),
    );
    const running = sameName.filter((e) => e.finish_time === null).at(-1);
    const now = ctx.clock.now();
    const details = req.details === undefined ? null : truncate(req.details, DETAILS_MAX);
    if (req.result === undefined) {
      if (running) return eventFromRow(running);
    } else if (running) {
      const done = { ...running, finish_time: now, result: req.result, details: details ?? running.details };
      await trx
        .updateTable('instance_actions_events')
        .set({ finish_time: now, result: req.result, details: done.details })
        .where('id', '=', running.id)
        .execute();
      await markActionError(trx, action, req.result, now);
      return eventFromRow(done);
    } else {
      const last = sameName.at(-1);
      if (last && last.result === req.result) return eventFromRow(last);
    }
    const row: InstanceActionsEventsTable = {
      id: randomUUID(),
      action_id: action.id,
      seq: await nextEventSeq(trx, action.id),
      event: req.event,
      start_time: now,
      finish_time: req.result === undefined ? null : now,
      result: req.result ?? null,
      host: req.host ?? null,
      details,
    };
    await trx.insertInto('instance_actions_events').values(row).execute();
    if (req.result !== undefined) await markActionError(trx, action, req.result, now);
    return eventFromRow(row);
  });
}

async function nextEventSeq(trx: Kysely<NovaDb>, actionId: string): Promise<number> {
  const row = await trx
    .selectFrom('instance_actions_events')
    .select((eb) => eb.fn.max('seq').as('maxSeq'))
    .where('action_id', '=', actionId)
    .executeTakeFirst();
  return Number(row?.maxSeq ?? 0) + 1;
}

async function markActionError(
  trx: Kysely<NovaDb>,
  action: InstanceActionsTable,
  result: string,
  now: number,
): Promise<void> {
  if (result !== 'Error') return;
  await trx
    .updateTable('instance_actions')
    .set({ message: 'Error', updated_at: now })
    .where('id', '=', action.id)
    .execute();
}

/** The instance's actions, oldest first, each with its events in the order they started. */
export async function listActions(ctx: NovaContext, uuidIn: unknown): Promise<InstanceAction[]> {
  const uuid = parseRequest(instanceUuidSchema, uuidIn, 'instance uuid');
  const rows = await ctx.store.db
    .selectFrom('instance_actions')
    .selectAll()
    .where('instance_uuid', '=', uuid)
    .orderBy('seq')
    .execute();
  const events = await eventsOf(
    ctx.store.db,
    rows.map((r) => r.id),
  );
  return rows.map((r) =>
    actionFromRow(
      r,
      events.filter((e) => e.action_id === r.id),
    ),
  );
}
