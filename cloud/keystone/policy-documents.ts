/**
 * Keystone's policy API (keystone/policy/core.py, backends/sql.py): blobs of a type, stored and answered
 * back as they were given. Keystone itself does not read them (its own policies are its defaults, policy.ts);
 * nor does bootflow.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Clock } from '../clock';
import type { ServiceDb } from '../db';
import { CloudError } from '../errors';
import { idSchema, parseRequest } from '../validation';
import type { KeystoneDb, PoliciesTable } from './schema';
import { parseExtra } from './views';

export interface PolicyDocument {
  id: string;
  type: string;
  blob: string;
  extra: Record<string, unknown>;
}

const extraSchema = z
  .record(z.string().max(255), z.json())
  .refine((e) => JSON.stringify(e).length <= 65536, 'extra attributes exceed 64 KiB');
const createRequest = z.strictObject({
  type: z.string().max(255),
  blob: z.string().max(65536),
  extra: extraSchema.optional(),
});
const updateRequest = z.strictObject({
  id: idSchema,
  type: z.string().max(255).optional(),
  blob: z.string().max(65536).optional(),
  extra: extraSchema.optional(),
});

const toPolicy = (r: PoliciesTable): PolicyDocument => ({
  id: r.id,
  type: r.type,
  blob: r.blob,
  extra: parseExtra(r.extra),
});
const notFound = (id: string) => new CloudError('NotFound', `Could not find policy: ${id}.`, { policy: id });

export class PolicyDocuments {
  constructor(
    private readonly store: ServiceDb<KeystoneDb>,
    private readonly clock: Clock,
  ) {}

  async create(input: z.input<typeof createRequest>): Promise<PolicyDocument> {
    const r = parseRequest(createRequest, input, 'policy');
    const row: PoliciesTable = {
      id: randomUUID().replace(/-/g, ''),
      type: r.type,
      blob: r.blob,
      extra: JSON.stringify(r.extra ?? {}),
      created_at: this.clock.now(),
    };
    await this.store.db.insertInto('policies').values(row).execute();
    return toPolicy(row);
  }

  async get(id: string): Promise<PolicyDocument> {
    const policyId = parseRequest(idSchema, id, 'policy id');
    const row = await this.store.db
      .selectFrom('policies')
      .selectAll()
      .where('id', '=', policyId)
      .executeTakeFirst();
    if (!row) throw notFound(policyId);
    return toPolicy(row);
  }

  /** Keystone's list_policies, with its `type` filter. */
  async list(filter: { type?: string } = {}): Promise<PolicyDocument[]> {
    let query = this.store.db.selectFrom('policies').selectAll();
    if (filter.type !== undefined) query = query.where('type', '=', filter.type);
    return (await query.orderBy('created_at').orderBy('id').execute()).map(toPolicy);
  }

  async update(input: z.input<typeof updateRequest>): Promise<PolicyDocument> {
    const r = parseRequest(updateRequest, input, 'policy update');
    return this.store.transaction(async (trx) => {
      const row = await trx.selectFrom('policies').selectAll().where('id', '=', r.id).executeTakeFirst();
      if (!row) throw notFound(r.id);
      const next: PoliciesTable = {
        ...row,
        ...(r.type !== undefined ? { type: r.type } : {}),
        ...(r.blob !== undefined ? { blob: r.blob } : {}),
        extra: JSON.stringify({ ...parseExtra(row.extra), ...r.extra }),
      };
      await trx
        .updateTable('policies')
        .set({ type: next.type, blob: next.blob, extra: next.extra })
        .where('id', '=', r.id)
        .execute();
      return toPolicy(next);
    });
  }

  async delete(id: string): Promise<void> {
    const policyId = parseRequest(idSchema, id, 'policy id');
    const res = await this.store.db.deleteFrom('policies').where('id', '=', policyId).executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw notFound(policyId);
  }
}
