/**
 * The server tags API's writes (nova/api/openstack/compute/server_tags.py over objects.Tag / TagList):
 * add one tag, replace them all, remove one or all, each read, changed and saved in one transaction on the
 * locked row (the tags are the instance's JSON column), so concurrent writers do not lose each other's
 * tags. Only while the server is active or stopped (Nova's _check_instance_in_valid_state, of bootflow's
 * vm_states); at most 50 tags, each 1 to 60 characters without '/' or ','.
 */
import { z } from 'zod';
import { CloudError } from '../errors';
import { parseRequest, serverTagsSchema } from '../validation';
import type { NovaContext } from './db-util';
import { instanceFromRow } from './instances';
import { instanceUuidSchema } from './schemas';
import { VM_STATES } from './states';
import { instanceInvalidState } from './volume-actions';

/** nova/objects/instance.py MAX_TAG_COUNT. */
export const MAX_TAG_COUNT = 50;

const tagSchema = serverTagsSchema.element;
const changeSchema = z.union([
  z.strictObject({ add: tagSchema }),
  z.strictObject({ replace: serverTagsSchema }),
  // Any name may be asked for: one the server cannot have is simply not there (NotFound).
  z.strictObject({ remove: z.string().min(1).max(1024) }),
  z.strictObject({ removeAll: z.literal(true) }),
]);
export type TagChange = z.input<typeof changeSchema>;

export interface TagChangeResult {
  tags: string[];
  /** An add of a tag the server did not have (Nova's 201, else 204). */
  added: boolean;
}

/** The action as Nova's conflict message names it ("Cannot 'update tag' instance ..."). */
function methodOf(change: z.infer<typeof changeSchema>): string {
  if ('add' in change) return 'update tag';
  if ('replace' in change) return 'update tags';
  return 'remove' in change ? 'delete tag' : 'delete tags';
}

const TAG_VM_STATES: ReadonlySet<string> = new Set([VM_STATES.ACTIVE, VM_STATES.STOPPED]);

export async function changeInstanceTags(
  ctx: NovaContext,
  uuidIn: unknown,
  changeIn: unknown,
): Promise<TagChangeResult> {
  const uuid = parseRequest(instanceUuidSchema, uuidIn, 'instance uuid');
  const change = parseRequest(changeSchema, changeIn, 'tag change');
  return ctx.store.transaction(async (trx) => {
    const row = await ctx.store
      .forUpdate(trx.selectFrom('instances').selectAll().where('uuid', '=', uuid))
      .executeTakeFirst();
    if (!row || row.deleted === 1) {
      throw new CloudError('NotFound', `Instance ${uuid} could not be found.`, { instanceUuid: uuid });
    }
    const instance = instanceFromRow(row);
    if (!TAG_VM_STATES.has(instance.vmState))
      throw instanceInvalidState(methodOf(change), instance, 'vm_state');
    let tags: string[];
    if ('add' in change) {
      if (instance.tags.includes(change.add)) return { tags: instance.tags, added: false };
      if (instance.tags.length >= MAX_TAG_COUNT) {
        throw new CloudError(
          'BadRequest',
          `The number of tags exceeded the per-server limit ${MAX_TAG_COUNT}`,
          {
            instanceUuid: uuid,
          },
        );
      }
      tags = [...instance.tags, change.add];
    } else if ('replace' in change) {
      tags = [...new Set(change.replace)];
    } else if ('remove' in change) {
      if (!instance.tags.includes(change.remove)) {
        throw new CloudError('NotFound', `Instance ${uuid} has no tag '${change.remove}'`, {
          instanceUuid: uuid,
        });
      }
      tags = instance.tags.filter((t) => t !== change.remove);
    } else {
      tags = [];
    }
    await trx
      .updateTable('instances')
      .set({ tags: tags.length > 0 ? JSON.stringify(tags) : null, updated_at: ctx.clock.now() })
      .where('uuid', '=', uuid)
      .execute();
    return { tags, added: 'add' in change };
  });
}
