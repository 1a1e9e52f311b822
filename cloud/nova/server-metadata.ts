/**
 * The server metadata API's writes (nova/api/openstack/compute/server_metadata.py over
 * compute/api.py update_instance_metadata / delete_instance_metadata): read, change and save in one
 * transaction on the locked row, so two writers do not lose each other's items.
 */
import { z } from 'zod';
import { CloudError } from '../errors';
import { parseRequest, serverMetadataSchema } from '../validation';
import type { NovaContext } from './db-util';
import { getInstance, instanceFromRow, type Instance } from './instances';
import { instanceUuidSchema } from './schemas';
import { VM_STATES } from './states';
import { instanceInvalidState } from './volume-actions';

/** Nova's default metadata_items quota. */
export const MAX_METADATA_ITEMS = 128;

const changeSchema = z.union([
  /** POST (merge) or PUT of one item: these items set, the others kept. */
  z.strictObject({ merge: z.record(z.string().min(1).max(255), z.string().max(255)) }),
  /** PUT of the whole metadata: exactly these items. */
  z.strictObject({ replace: z.record(z.string().min(1).max(255), z.string().max(255)) }),
  /** DELETE of one item: NotFound when it is not there. */
  z.strictObject({ remove: z.string().min(1).max(255) }),
]);
export type MetadataChange = z.input<typeof changeSchema>;

/** check_instance_state(vm_state=[ACTIVE, PAUSED, SUSPENDED, STOPPED], task_state=[None]). */
const METADATA_VM_STATES: ReadonlySet<string> = new Set([
  VM_STATES.ACTIVE,
  VM_STATES.PAUSED,
  VM_STATES.SUSPENDED,
  VM_STATES.STOPPED,
]);

export const metadataItemNotFound = () => new CloudError('NotFound', 'Metadata item was not found');

/** Applies the change and returns the server's metadata after it. */
export async function changeInstanceMetadata(
  ctx: NovaContext,
  uuidIn: unknown,
  changeIn: unknown,
): Promise<Record<string, string>> {
  const uuid = parseRequest(instanceUuidSchema, uuidIn, 'instance uuid');
  const change = parseRequest(changeSchema, changeIn, 'metadata change');
  const method = 'remove' in change ? 'delete_instance_metadata' : 'update_instance_metadata';
  await getInstance(ctx, uuid);
  return ctx.store.transaction(async (trx) => {
    const row = await ctx.store
      .forUpdate(trx.selectFrom('instances').selectAll().where('uuid', '=', uuid))
      .executeTakeFirst();
    if (!row || row.deleted === 1) {
      throw new CloudError('NotFound', `Instance ${uuid} could not be found.`, { instanceUuid: uuid });
    }
    const instance: Instance = instanceFromRow(row);
    if (!METADATA_VM_STATES.has(instance.vmState)) throw instanceInvalidState(method, instance, 'vm_state');
    if (instance.taskState !== null) throw instanceInvalidState(method, instance, 'task_state');
    let metadata: Record<string, string>;
    if ('remove' in change) {
      if (!(change.remove in instance.metadata)) throw metadataItemNotFound();
      metadata = Object.fromEntries(Object.entries(instance.metadata).filter(([k]) => k !== change.remove));
    } else {
      metadata = 'merge' in change ? { ...instance.metadata, ...change.merge } : change.replace;
      // compute/api.py _check_metadata_properties_quota: MetadataLimitExceeded, a 403.
      if (Object.keys(metadata).length > MAX_METADATA_ITEMS) {
        throw new CloudError('Forbidden', `Maximum number of metadata items exceeds ${MAX_METADATA_ITEMS}`, {
          instanceUuid: uuid,
        });
      }
    }
    const checked = parseRequest(serverMetadataSchema, metadata, 'server metadata');
    await trx
      .updateTable('instances')
      .set({
        metadata: Object.keys(checked).length > 0 ? JSON.stringify(checked) : null,
        updated_at: ctx.clock.now(),
      })
      .where('uuid', '=', uuid)
      .execute();
    return checked;
  });
}
