/**
 * Neutron's standard-attr tags (neutron/extensions/tagging.py, neutron/services/tag/tag_plugin.py) on
 * networks, subnets, ports and security groups: a resource's tags are read, replaced whole, added or removed
 * one at a time. Tags are strings of at most 255 characters, at most 50 on a resource (MAX_TAGS_COUNT).
 * Who may see or change a resource is the API's (api/network/tags.ts); here, the rows, each change in
 * one transaction with the resource locked, and Neutron's checks and exception names.
 */
import type { Kysely } from 'kysely';
import type { ServiceDb } from '../db';
import { CloudError } from '../errors';
import { TAG_TABLES } from './migrations';
import type { NeutronDb } from './schema';

export type TaggedCollection =
  'networks' | 'subnets' | 'ports' | 'security_groups' | 'routers' | 'floatingips';
type TagTable = keyof typeof TAG_TABLES;

const TABLE_OF: Record<TaggedCollection, TagTable> = {
  networks: 'network_tags',
  subnets: 'subnet_tags',
  ports: 'port_tags',
  security_groups: 'security_group_tags',
  routers: 'router_tags',
  floatingips: 'floatingip_tags',
};

/** tagging.py's MAX_TAG_LEN and MAX_TAGS_COUNT. */
export const MAX_TAG_LENGTH = 255;
export const MAX_TAGS = 50;

function invalid(message: string): CloudError {
  return new CloudError('BadRequest', `Invalid input for operation: ${message}.`, {
    neutronType: 'InvalidInput',
  });
}

/** validate_tag: a string of at most 255 characters. */
export function checkTag(tag: unknown): string {
  if (typeof tag !== 'string') throw invalid(`'${String(tag)}' is not a valid string`);
  if (tag.length > MAX_TAG_LENGTH) throw invalid(`'${tag}' exceeds maximum length of ${MAX_TAG_LENGTH}`);
  return tag;
}

/** validate_tags: `{"tags": [...]}`, a list of unique strings, at most MAX_TAGS of them. */
export function checkTagsBody(body: unknown, collection: TaggedCollection): string[] {
  if (typeof body !== 'object' || body === null || !('tags' in body)) throw invalid('Invalid tags body');
  const tags = (body as { tags: unknown }).tags;
  if (!Array.isArray(tags)) throw invalid(`'${JSON.stringify(tags)}' is not a list`);
  tags.forEach(checkTag);
  const dup = tags.find((t, i) => tags.indexOf(t) !== i);
  if (dup !== undefined) throw invalid(`Duplicate items in the list: '${String(dup)}'`);
  if (tags.length > MAX_TAGS)
    throw new CloudError(
      'BadRequest',
      `Bad ${collection} request: The number of tags exceed the per-resource limit of ${MAX_TAGS}.`,
      { neutronType: 'BadRequest' },
    );
  return tags as string[];
}

function tagNotFound(tag: string): CloudError {
  return new CloudError('NotFound', `Tag ${tag} could not be found.`, { neutronType: 'TagNotFound' });
}

export class ResourceTags {
  constructor(
    private readonly store: ServiceDb<NeutronDb>,
    private readonly now: () => number,
  ) {}

  /** The tags of many resources of one collection (absent ids: none). */
  async tagsOf(collection: TaggedCollection, ids: readonly string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (let i = 0; i < ids.length; i += 500) {
      const rows = await this.store.db
        .selectFrom(TABLE_OF[collection])
        .select(['resource_id', 'tag'])
        .where('resource_id', 'in', ids.slice(i, i + 500))
        .orderBy('tag')
        .execute();
      for (const r of rows) out.set(r.resource_id, [...(out.get(r.resource_id) ?? []), r.tag]);
    }
    return out;
  }

  async getTags(collection: TaggedCollection, id: string): Promise<string[]> {
    return (await this.tagsOf(collection, [id])).get(id) ?? [];
  }

  /** GET .../tags/{tag}: TagNotFound when the resource does not carry it. */
  async requireTag(collection: TaggedCollection, id: string, tag: string): Promise<void> {
    checkTag(tag);
    if (!(await this.getTags(collection, id)).includes(tag)) throw tagNotFound(tag);
  }

  /** PUT .../tags: the resource's tags become these. */
  async replaceTags(collection: TaggedCollection, id: string, body: unknown): Promise<string[]> {
    const tags = checkTagsBody(body, collection);
    await this.write(collection, id, async (trx) => {
      await trx.deleteFrom(TABLE_OF[collection]).where('resource_id', '=', id).execute();
      if (tags.length)
        await trx
          .insertInto(TABLE_OF[collection])
          .values(tags.map((tag) => ({ resource_id: id, tag })))
          .execute();
    });
    return tags;
  }

  /** PUT .../tags/{tag}: adds it (already there is fine), within MAX_TAGS. */
  async addTag(collection: TaggedCollection, id: string, tag: string): Promise<void> {
    checkTag(tag);
    await this.write(collection, id, async (trx) => {
      const current = await this.tagsIn(trx, collection, id);
      if (current.includes(tag)) return;
      if (current.length + 1 > MAX_TAGS)
        throw new CloudError(
          'BadRequest',
          `Bad ${collection} request: The number of tags exceed the per-resource limit of ${MAX_TAGS}.`,
          { neutronType: 'BadRequest' },
        );
      await trx.insertInto(TABLE_OF[collection]).values({ resource_id: id, tag }).execute();
    });
  }

  /** DELETE .../tags/{tag}: TagNotFound when it is not there. */
  async removeTag(collection: TaggedCollection, id: string, tag: string): Promise<void> {
    checkTag(tag);
    await this.write(collection, id, async (trx) => {
      const res = await trx
        .deleteFrom(TABLE_OF[collection])
        .where('resource_id', '=', id)
        .where('tag', '=', tag)
        .executeTakeFirst();
      if (Number(res.numDeletedRows) === 0) throw tagNotFound(tag);
    });
  }

  /** DELETE .../tags: every tag of the resource. */
  async removeAllTags(collection: TaggedCollection, id: string): Promise<void> {
    await this.write(collection, id, async (trx) => {
      await trx.deleteFrom(TABLE_OF[collection]).where('resource_id', '=', id).execute();
    });
  }

  private async tagsIn(trx: Kysely<NeutronDb>, collection: TaggedCollection, id: string): Promise<string[]> {
    const rows = await trx
      .selectFrom(TABLE_OF[collection])
      .select('tag')
      .where('resource_id', '=', id)
      .execute();
    return rows.map((r) => r.tag);
  }

  /** A tag change in one transaction with the resource locked (TagResourceNotFound if it is gone). */
  private async write(
    collection: TaggedCollection,
    id: string,
    fn: (trx: Kysely<NeutronDb>) => Promise<void>,
  ): Promise<void> {
    await this.store.transaction(async (trx) => {
      const found = await this.store
        .forUpdate(trx.selectFrom(TAG_TABLES[TABLE_OF[collection]]).select('id').where('id', '=', id))
        .executeTakeFirst();
      if (!found)
        throw new CloudError('NotFound', `Resource ${collection} ${id} could not be found.`, {
          neutronType: 'TagResourceNotFound',
        });
      await fn(trx);
      // A tag change is a change of the resource (security groups keep no updated_at here).
      if (collection !== 'security_groups')
        await trx.updateTable(collection).set({ updated_at: this.now() }).where('id', '=', id).execute();
    });
  }
}
