/**
 * nova-compute's periodic `_sync_power_states` (nova/compute/manager.py), the controller's half: given the
 * power states a host's driver reports for its guests, each live instance the database places on that host
 * gets its `power_state` updated, and an ACTIVE or PAUSED instance whose guest is found shut down or crashed is set
 * STOPPED (Nova calls the compute stop API there, whose end state that is; the guest is already off).
 * Instances with a task in progress (any task_state: building, deleting, powering-off, rebooting...) are
 * skipped, as Nova skips them, and every write is guarded by task_state None so a task that starts
 * meanwhile wins.
 */
import { z } from 'zod';
import { isCloudError } from '../errors';
import { parseRequest } from '../validation';
import type { NovaContext } from './db-util';
import * as instances from './instances';
import { instanceUuidSchema } from './schemas';
import { POWER_STATE_VALUES, POWER_STATES, VM_STATES, type PowerState } from './states';

const syncSchema = z.strictObject({
  host: z.string().min(1).max(255),
  /** The driver's view: every guest it knows on the host (an instance not listed is NOSTATE, not found). */
  domains: z
    .array(z.strictObject({ instanceUuid: instanceUuidSchema, powerState: z.literal(POWER_STATE_VALUES) }))
    .max(100_000),
});
export type PowerSyncInput = z.input<typeof syncSchema>;

export interface PowerSyncResult {
  /** Live instances the database places on the host. */
  checked: number;
  /** Instances whose power_state changed. */
  updated: string[];
  /** ACTIVE instances found shut down or crashed, now STOPPED. */
  stopped: string[];
  /** Instances with a task in progress (or one that started during the sync): left alone. */
  skipped: string[];
}

export async function syncPowerStates(ctx: NovaContext, input: unknown): Promise<PowerSyncResult> {
  const { host, domains } = parseRequest(syncSchema, input, 'power state sync');
  const observed = new Map<string, PowerState>(domains.map((d) => [d.instanceUuid, d.powerState]));
  const onHost = await instances.listInstances(ctx, { allProjects: true, host });
  const result: PowerSyncResult = { checked: onHost.length, updated: [], stopped: [], skipped: [] };
  for (const instance of onHost) {
    if (instance.taskState !== null) {
      result.skipped.push(instance.uuid);
      continue;
    }
    const powerState = observed.get(instance.uuid) ?? POWER_STATES.NOSTATE;
    const shutOff = powerState === POWER_STATES.SHUTDOWN || powerState === POWER_STATES.CRASHED;
    // Nova stops an ACTIVE guest found off, and a PAUSED one ("Paused instance shutdown by itself"); a
    // SUSPENDED guest has no process by design (its state is saved), so only its power_state is kept.
    const stop = (instance.vmState === VM_STATES.ACTIVE || instance.vmState === VM_STATES.PAUSED) && shutOff;
    if (powerState === instance.powerState && !stop) continue;
    try {
      await instances.updateInstance(
        ctx,
        instance.uuid,
        { powerState, ...(stop ? { vmState: VM_STATES.STOPPED } : {}) },
        { expectedTaskState: null },
      );
    } catch (err) {
      // A task started (or a delete finished) since the list: it owns the instance now.
      if (isCloudError(err, 'Conflict')) {
        result.skipped.push(instance.uuid);
        continue;
      }
      throw err;
    }
    if (powerState !== instance.powerState) result.updated.push(instance.uuid);
    if (stop) result.stopped.push(instance.uuid);
  }
  return result;
}
