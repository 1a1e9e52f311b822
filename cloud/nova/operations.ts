/**
 * Day-two operations on a server, the way Nova guards them: nova-api checks the instance's state
 * (compute/api.py's check_instance_host and check_instance_state decorators), moves task_state on with a
 * compare-and-swap save (Instance.save(expected_task_state=...)) and records the instance action, all in
 * one transaction, so a second operation on the same server meets the first one's task_state and is
 * refused (409). The host's step is an instance action event named as wrap_instance_event names it
 * (`compute_stop_instance`). The end saves the new states guarded by the operation's own task_state; a
 * failure puts task_state back and keeps the fault (reverts_task_state, wrap_instance_fault).
 *
 * A delete sets task_state deleting whatever runs: from then on every guarded write of a running operation
 * fails with UnexpectedTaskState (or InstanceDeleted), and the operation stops, recording only its event's
 * error, while the delete completes.
 */
import { z } from 'zod';
import { CloudError, isCloudError } from '../errors';
import { idSchema, nameSchema, parseRequest, serverMetadataSchema, userDataSchema } from '../validation';
import * as actions from './actions';
import { within, type NovaContext } from './db-util';
import * as instances from './instances';
import { hostSchema, instanceUuidSchema, keystoneIdSchema } from './schemas';
import {
  POWER_STATE_VALUES,
  POWER_STATES,
  TASK_STATE_VALUES,
  VM_STATES,
  type PowerState,
  type TaskState,
  type VmState,
} from './states';

/** One day-two operation's rules, from its nova-api method and its nova-compute manager method. */
export interface OperationRule {
  /** The instance action recorded (nova/compute/instance_actions.py). */
  action: string;
  /** The action as the 409 message names it ("Cannot 'stop' instance ..."). */
  apiAction: string;
  /** check_instance_state(vm_state=...). */
  vmStates: readonly VmState[];
  /** check_instance_state(task_state=...): the tasks it may start from (null: none running). */
  fromTaskStates: readonly (TaskState | null)[];
  /** The task_state while it runs (null: Nova sets none, as for a volume attach). */
  taskState: TaskState | null;
  /** The task_states the host moves it through after taskState (rebuild's), each still the operation's. */
  laterTaskStates?: readonly TaskState[];
  /**
   * check_instance_host comes first: InstanceNotReady without a host before any state rule. Without it
   * (reboot) the state rules answer first; a server they allow but that has no host is still not ready.
   */
  needsHost: boolean;
  /** The compute manager's event (wrap_instance_event(prefix='compute') on its method). */
  event: string;
  /** vm_state once done (undefined: unchanged). */
  vmStateAfter?: VmState;
  /**
   * On failure: 'revert' puts task_state back (reverts_task_state); 'error-unless-running' also puts the
   * server in ERROR when the guest is not running afterwards (the compute manager's reboot failure);
   * 'error' always does (a failed rebuild: the guest is gone wherever it was).
   */
  onFailure: 'revert' | 'error-unless-running' | 'error';
}

/**
 * The operations and their rules. Adding one is one entry here (and its task_state in states.ts, its
 * policy rules in keystone's policy.ts). Evacuate's rules are here too; its begin is its own
 * (evacuate.ts: the source host must be down and the scheduler told which hosts to avoid), so it is not
 * one of the OPERATION_NAMES the generic begin takes.
 */
export const OPERATION_RULES = {
  stop: {
    action: 'stop',
    apiAction: 'stop',
    vmStates: [VM_STATES.ACTIVE, VM_STATES.ERROR],
    fromTaskStates: [null],
    taskState: 'powering-off',
    needsHost: true,
    event: 'compute_stop_instance',
    vmStateAfter: VM_STATES.STOPPED,
    onFailure: 'revert',
  },
  start: {
    action: 'start',
    apiAction: 'start',
    vmStates: [VM_STATES.STOPPED],
    fromTaskStates: [null],
    taskState: 'powering-on',
    needsHost: true,
    event: 'compute_start_instance',
    vmStateAfter: VM_STATES.ACTIVE,
    onFailure: 'revert',
  },
  /**
   * compute/api.py pause: check_instance_state(vm_state=[ACTIVE]) from no task (no check_instance_host);
   * the compute manager's pause_instance saves PAUSED with the driver's power state (reverts_task_state).
   */
  pause: {
    action: 'pause',
    apiAction: 'pause',
    vmStates: [VM_STATES.ACTIVE],
    fromTaskStates: [null],
    taskState: 'pausing',
    needsHost: false,
    event: 'compute_pause_instance',
    vmStateAfter: VM_STATES.PAUSED,
    onFailure: 'revert',
  },
  /** compute/api.py unpause: from PAUSED; unpause_instance saves ACTIVE. */
  unpause: {
    action: 'unpause',
    apiAction: 'unpause',
    vmStates: [VM_STATES.PAUSED],
    fromTaskStates: [null],
    taskState: 'unpausing',
    needsHost: false,
    event: 'compute_unpause_instance',
    vmStateAfter: VM_STATES.ACTIVE,
    onFailure: 'revert',
  },
  /**
   * compute/api.py suspend: from ACTIVE; suspend_instance runs the driver's suspend inside
   * _error_out_instance_on_exception, so a failure leaves ERROR.
   */
  suspend: {
    action: 'suspend',
    apiAction: 'suspend',
    vmStates: [VM_STATES.ACTIVE],
    fromTaskStates: [null],
    taskState: 'suspending',
    needsHost: false,
    event: 'compute_suspend_instance',
    vmStateAfter: VM_STATES.SUSPENDED,
    onFailure: 'error',
  },
  /** compute/api.py resume: from SUSPENDED; resume_instance (a failure leaves ERROR, as suspend's). */
  resume: {
    action: 'resume',
    apiAction: 'resume',
    vmStates: [VM_STATES.SUSPENDED],
    fromTaskStates: [null],
    taskState: 'resuming',
    needsHost: false,
    event: 'compute_resume_instance',
    vmStateAfter: VM_STATES.ACTIVE,
    onFailure: 'error',
  },
  /** vm_states.ALLOW_SOFT_REBOOT, from no task. */
  'reboot-soft': {
    action: 'reboot',
    apiAction: 'reboot',
    vmStates: [VM_STATES.ACTIVE],
    fromTaskStates: [null],
    taskState: 'rebooting',
    needsHost: false,
    event: 'compute_reboot_instance',
    vmStateAfter: VM_STATES.ACTIVE,
    onFailure: 'error-unless-running',
  },
  /**
   * vm_states.ALLOW_HARD_REBOOT (of the states bootflow has: a paused guest is reset and runs, a suspended
   * one starts afresh, its saved state discarded), and task_states.ALLOW_REBOOT: it may take over a reboot.
   */
  'reboot-hard': {
    action: 'reboot',
    apiAction: 'reboot',
    vmStates: [VM_STATES.ACTIVE, VM_STATES.STOPPED, VM_STATES.PAUSED, VM_STATES.SUSPENDED, VM_STATES.ERROR],
    fromTaskStates: [null, 'rebooting', 'rebooting_hard'],
    taskState: 'rebooting_hard',
    needsHost: false,
    event: 'compute_reboot_instance',
    vmStateAfter: VM_STATES.ACTIVE,
    onFailure: 'error-unless-running',
  },
  /**
   * compute/api.py rebuild: check_instance_state(vm_state=[ACTIVE, STOPPED, ERROR]) from no task; the
   * compute manager's rebuild_instance moves it to rebuild_block_device_mapping, then rebuild_spawning; a
   * failure leaves ERROR (the old guest is gone).
   */
  rebuild: {
    action: 'rebuild',
    apiAction: 'rebuild',
    vmStates: [VM_STATES.ACTIVE, VM_STATES.STOPPED, VM_STATES.ERROR],
    fromTaskStates: [null],
    taskState: 'rebuilding',
    laterTaskStates: ['rebuild_block_device_mapping', 'rebuild_spawning'],
    needsHost: false,
    event: 'compute_rebuild_instance',
    vmStateAfter: VM_STATES.ACTIVE,
    onFailure: 'error',
  },
  /**
   * compute/api.py snapshot (createImage): check_instance_state(vm_state=[ACTIVE, STOPPED, PAUSED,
   * SUSPENDED]) from no task, no lock check; task_state image_snapshot_pending, then the compute manager's
   * snapshot_instance image_snapshot and the driver's image_pending_upload and image_uploading; a failure
   * puts task_state back (reverts_task_state) with the fault, the server's vm_state unchanged.
   */
  snapshot: {
    action: 'createImage',
    apiAction: 'createImage',
    vmStates: [VM_STATES.ACTIVE, VM_STATES.STOPPED, VM_STATES.PAUSED, VM_STATES.SUSPENDED],
    fromTaskStates: [null],
    taskState: 'image_snapshot_pending',
    laterTaskStates: ['image_snapshot', 'image_pending_upload', 'image_uploading'],
    needsHost: false,
    event: 'compute_snapshot_instance',
    onFailure: 'revert',
  },
  /**
   * compute/api.py evacuate: check_instance_state(vm_state=[ACTIVE, STOPPED, ERROR], task_state=None);
   * the rebuild on another host (rebuild_instance with recreate=True and its wrap_instance_event).
   */
  evacuate: {
    action: 'evacuate',
    apiAction: 'evacuate',
    vmStates: [VM_STATES.ACTIVE, VM_STATES.STOPPED, VM_STATES.ERROR],
    fromTaskStates: [null],
    taskState: 'rebuilding',
    needsHost: false,
    event: 'compute_rebuild_instance',
    vmStateAfter: VM_STATES.ACTIVE,
    onFailure: 'error',
  },
} as const satisfies Record<string, OperationRule>;

/** Every operation with rules, evacuate included. */
export type RuledOperation = keyof typeof OPERATION_RULES;
/** The operations the generic begin/event/finish/fail below run (all but evacuate). */
export type OperationName = Exclude<RuledOperation, 'evacuate'>;
export const OPERATION_NAMES = (Object.keys(OPERATION_RULES) as RuledOperation[]).filter(
  (name): name is OperationName => name !== 'evacuate',
) as [OperationName, ...OperationName[]];

export function operationRule(name: RuledOperation): OperationRule {
  return OPERATION_RULES[name];
}

/** Every task_state the operation holds the instance in while it runs. */
function ownTaskStates(rule: OperationRule): Array<TaskState | null> {
  return [rule.taskState, ...(rule.laterTaskStates ?? [])];
}

/**
 * What nova-api's rebuild writes with its task_state: the new image and the body's name, metadata, access
 * IPs, key pair name (2.54; null removes it), user_data (2.57; null removes it) and OS-DCF:diskConfig.
 */
const rebuildChangesSchema = z.strictObject({
  imageRef: idSchema,
  name: nameSchema.optional(),
  metadata: serverMetadataSchema.optional(),
  accessIPv4: z.ipv4().optional(),
  accessIPv6: z.ipv6().optional(),
  keyName: nameSchema.nullable().optional(),
  userData: userDataSchema.nullable().optional(),
  /** OS-DCF:diskConfig (AUTO: true); kept as it was without. */
  autoDiskConfig: z.boolean().optional(),
});
export type RebuildChanges = z.input<typeof rebuildChangesSchema>;

const operationSchema = z.enum(OPERATION_NAMES);
const stepSchema = z.strictObject({
  instanceUuid: instanceUuidSchema,
  requestId: idSchema,
  operation: operationSchema,
});

const beginSchema = stepSchema
  .extend({
    userId: keystoneIdSchema,
    projectId: keystoneIdSchema,
    rebuild: rebuildChangesSchema.optional(),
  })
  .refine((b) => (b.operation === 'rebuild') === (b.rebuild !== undefined), {
    message: 'a rebuild, and only a rebuild, gives its changes',
    path: ['rebuild'],
  });
export type BeginOperationInput = z.input<typeof beginSchema>;

/** InstanceInvalidState as the servers API words it (common.raise_http_conflict_for_instance_invalid_state). */
function invalidState(rule: OperationRule, uuid: string, attr: string, state: string | null): CloudError {
  return new CloudError(
    'InstanceInvalidState',
    `Cannot '${rule.apiAction}' instance ${uuid} while it is in ${attr} ${state ?? 'None'}`,
    { instanceUuid: uuid, attr, state },
  );
}

/** The checks of nova-api's decorators, in their order: host (if first), vm_state, task_state, launched_at. */
export function checkOperationAllowed(rule: OperationRule, instance: instances.Instance): void {
  if (rule.needsHost && !instance.host) {
    throw new CloudError('InstanceNotReady', `Instance ${instance.uuid} is not ready`, {
      instanceUuid: instance.uuid,
    });
  }
  if (!rule.vmStates.includes(instance.vmState))
    throw invalidState(rule, instance.uuid, 'vm_state', instance.vmState);
  if (!rule.fromTaskStates.includes(instance.taskState))
    throw invalidState(rule, instance.uuid, 'task_state', instance.taskState);
  if (instance.launchedAt === null) throw invalidState(rule, instance.uuid, 'launched_at', null);
  // The operation's steps run on the host: without one there is nowhere to run them.
  if (!instance.host) {
    throw new CloudError('InstanceNotReady', `Instance ${instance.uuid} is not ready`, {
      instanceUuid: instance.uuid,
    });
  }
}

/**
 * nova-api's half: the checks, the guarded task_state save and the instance action, in one transaction.
 * Idempotent per request id: beginning the same request again (the workflow after the API) returns the
 * instance as it is.
 */
export async function beginOperation(ctx: NovaContext, input: unknown): Promise<instances.Instance> {
  const req = parseRequest(beginSchema, input, 'operation');
  const rule = operationRule(req.operation);
  return ctx.store.transaction(async (trx) => {
    const scoped = within(ctx, trx);
    // The row locked before the checks, so two begins are decided one after the other.
    await ctx.store
      .forUpdate(trx.selectFrom('instances').select('uuid').where('uuid', '=', req.instanceUuid))
      .executeTakeFirst();
    const instance = await instances.getInstance(scoped, req.instanceUuid);
    const earlier = (await actions.listActions(scoped, req.instanceUuid)).find(
      (a) => a.requestId === req.requestId,
    );
    if (earlier) {
      if (earlier.action !== rule.action) {
        throw new CloudError(
          'BadRequest',
          `Request ${req.requestId} was a ${earlier.action}, not a ${rule.action}`,
          {
            instanceUuid: req.instanceUuid,
          },
        );
      }
      return instance;
    }
    checkOperationAllowed(rule, instance);
    const started =
      rule.taskState === null
        ? instance
        : await instances.updateInstance(
            scoped,
            req.instanceUuid,
            { taskState: rule.taskState, ...req.rebuild },
            { expectedTaskState: [...rule.fromTaskStates] },
          );
    await actions.startAction(scoped, {
      instanceUuid: req.instanceUuid,
      requestId: req.requestId,
      action: rule.action,
      userId: req.userId,
      projectId: req.projectId,
    });
    return started;
  });
}

/** The operation no longer owns the instance (a delete, or a hard reboot over a soft one, took over). */
function notOurs(rule: OperationRule, instance: instances.Instance): CloudError | undefined {
  if (instance.deleted) {
    return new CloudError('Conflict', `Instance ${instance.uuid} has been deleted; it cannot be updated.`, {
      reason: 'InstanceDeleted',
      instanceUuid: instance.uuid,
    });
  }
  const own = ownTaskStates(rule);
  if (!own.includes(instance.taskState)) {
    return new CloudError(
      'Conflict',
      `Conflict updating instance ${instance.uuid}. Expected task_state: [${own.map((t) => t ?? 'None').join(', ')}]. Actual: ${instance.taskState ?? 'None'}`,
      {
        reason: 'UnexpectedTaskState',
        instanceUuid: instance.uuid,
        expected: own,
        actual: instance.taskState,
      },
    );
  }
  return undefined;
}

const eventSchema = stepSchema.extend({ host: hostSchema });

/**
 * The host's step begins: its event opened on that host, if the operation still owns the instance
 * (otherwise Conflict, and nothing is recorded). Repeating it returns the open event.
 */
export async function startOperationEvent(ctx: NovaContext, input: unknown): Promise<instances.Instance> {
  const req = parseRequest(eventSchema, input, 'operation event');
  const rule = operationRule(req.operation);
  return ctx.store.transaction(async (trx) => {
    const scoped = within(ctx, trx);
    const instance = await instances.getInstance(scoped, req.instanceUuid, { includeDeleted: true });
    const action = await openAction(scoped, req.instanceUuid, req.requestId);
    if (action.finishTime !== null) return instance;
    const taken = notOurs(rule, instance);
    if (taken) throw taken;
    await actions.recordEvent(scoped, {
      instanceUuid: req.instanceUuid,
      requestId: req.requestId,
      event: rule.event,
      host: req.host,
    });
    return instance;
  });
}

async function openAction(ctx: NovaContext, instanceUuid: string, requestId: string) {
  const action = (await actions.listActions(ctx, instanceUuid)).find((a) => a.requestId === requestId);
  if (!action) {
    throw new CloudError(
      'NotFound',
      `Action for request_id ${requestId} on instance ${instanceUuid} not found`,
      {
        instanceUuid,
        requestId,
      },
    );
  }
  return action;
}

const advanceSchema = stepSchema.extend({ taskState: z.enum(TASK_STATE_VALUES) });
export type AdvanceOperationInput = z.input<typeof advanceSchema>;

/**
 * The host moves the operation to its next task_state (rebuild: rebuild_block_device_mapping, then
 * rebuild_spawning), guarded by the states the operation holds; Conflict once it no longer owns the
 * instance. Repeating it changes nothing.
 */
export async function advanceOperation(ctx: NovaContext, input: unknown): Promise<instances.Instance> {
  const req = parseRequest(advanceSchema, input, 'operation task state');
  const rule = operationRule(req.operation);
  if (!(rule.laterTaskStates ?? []).includes(req.taskState))
    throw new CloudError('BadRequest', `A ${rule.action} does not go through task_state ${req.taskState}`);
  return instances.updateInstance(
    ctx,
    req.instanceUuid,
    { taskState: req.taskState },
    { expectedTaskState: ownTaskStates(rule) },
  );
}

const finishSchema = eventSchema.extend({
  powerState: z.literal(POWER_STATE_VALUES).optional(),
  /** A rebuild of a stopped server ends stopped (the compute manager stops it again), not vmStateAfter. */
  vmState: z.literal(VM_STATES.STOPPED).optional(),
});
/** powerState: a number from the host's driver (checked here against Nova's values). */
export type FinishOperationInput = Omit<z.input<typeof finishSchema>, 'powerState'> & { powerState?: number };

/**
 * Done on the host: the new vm_state and power_state with task_state None, guarded by the operation's own
 * task_state; the event closed with Success and the action finished. A retry after it committed finds the
 * action finished and returns the instance. Conflict when the operation no longer owns the instance.
 */
export async function finishOperation(ctx: NovaContext, input: unknown): Promise<instances.Instance> {
  const req = parseRequest(finishSchema, input, 'operation finish');
  const rule = operationRule(req.operation);
  return ctx.store.transaction(async (trx) => {
    const scoped = within(ctx, trx);
    const instance = await instances.getInstance(scoped, req.instanceUuid, { includeDeleted: true });
    const action = await openAction(scoped, req.instanceUuid, req.requestId);
    if (action.finishTime !== null) return instance;
    const taken = notOurs(rule, instance);
    if (taken) throw taken;
    const done = await instances.updateInstance(
      scoped,
      req.instanceUuid,
      {
        taskState: null,
        ...(rule.vmStateAfter ? { vmState: rule.vmStateAfter } : {}),
        ...(req.vmState ? { vmState: req.vmState } : {}),
        ...(req.powerState === undefined ? {} : { powerState: req.powerState }),
        // The compute manager's rebuild records its launch again.
        ...(req.operation === 'rebuild' ? { launchedAt: ctx.clock.now() } : {}),
      },
      { expectedTaskState: ownTaskStates(rule) },
    );
    const step = { instanceUuid: req.instanceUuid, requestId: req.requestId };
    await actions.recordEvent(scoped, { ...step, event: rule.event, host: req.host, result: 'Success' });
    await actions.finishAction(scoped, step);
    return done;
  });
}

const failSchema = stepSchema.extend({
  host: hostSchema.optional(),
  error: z.strictObject({
    type: z.string().min(1).max(255),
    message: z
      .string()
      .min(1)
      .max(64 * 1024),
  }),
  /** The fault to keep (absent: nothing to tell, e.g. the operation was cancelled before its host step). */
  fault: z
    .strictObject({
      code: z.number().int().min(100).max(599),
      message: z
        .string()
        .min(1)
        .max(64 * 1024),
      details: z
        .string()
        .max(1024 * 1024)
        .optional(),
    })
    .optional(),
  /** The guest's power state read back after the failure, when the host could tell. */
  powerState: z.literal(POWER_STATE_VALUES).optional(),
});
export type FailOperationInput = Omit<z.input<typeof failSchema>, 'powerState'> & { powerState?: number };

export interface FailOperationResult {
  /** The operation no longer owned the instance (deleted, or another task took over): nothing reverted. */
  superseded: boolean;
  instance: instances.Instance;
}

/**
 * The operation failed (or was cancelled, or lost the instance to a delete). If it still owns the
 * instance: task_state back to None (ERROR for a reboot that left the guest not running), power_state as
 * read back, the fault kept. Always: the event closed with Error and the action finished with 'Error'.
 * A retry after it committed finds the action finished and changes nothing.
 */
export async function failOperation(ctx: NovaContext, input: unknown): Promise<FailOperationResult> {
  const req = parseRequest(failSchema, input, 'operation failure');
  const rule = operationRule(req.operation);
  return ctx.store.transaction(async (trx) => {
    const scoped = within(ctx, trx);
    let instance = await instances.getInstance(scoped, req.instanceUuid, { includeDeleted: true });
    const action = await openAction(scoped, req.instanceUuid, req.requestId);
    const superseded = notOurs(rule, instance) !== undefined;
    if (action.finishTime !== null) return { superseded, instance };
    if (!superseded) {
      const toError =
        rule.onFailure === 'error' ||
        (rule.onFailure === 'error-unless-running' &&
          req.powerState !== undefined &&
          req.powerState !== POWER_STATES.RUNNING);
      instance = await instances.updateInstance(
        scoped,
        req.instanceUuid,
        {
          taskState: null,
          ...(toError ? { vmState: VM_STATES.ERROR } : {}),
          ...(req.powerState === undefined ? {} : { powerState: req.powerState as PowerState }),
        },
        { expectedTaskState: ownTaskStates(rule) },
      );
      if (req.fault) {
        await actions.addFault(scoped, req.instanceUuid, {
          ...req.fault,
          ...(req.host ? { host: req.host } : {}),
        });
      }
    }
    const step = { instanceUuid: req.instanceUuid, requestId: req.requestId };
    await actions.recordEvent(scoped, {
      ...step,
      event: rule.event,
      ...(req.host ? { host: req.host } : {}),
      result: 'Error',
      details: `${req.error.type}: ${req.error.message}`,
    });
    await actions.finishAction(scoped, { ...step, message: 'Error' });
    return { superseded, instance };
  });
}

/** True for the Conflicts a guarded write of a superseded operation meets. */
export function isSuperseded(err: unknown): boolean {
  return (
    isCloudError(err, 'Conflict') &&
    (err.details.reason === 'UnexpectedTaskState' || err.details.reason === 'InstanceDeleted')
  );
}
