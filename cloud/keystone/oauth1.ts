/**
 * Keystone's OS-OAUTH1 consumers (keystone/oauth1/core.py, backends/sql.py): a description, extra
 * attributes and a secret Keystone makes (uuid4 hex) and answers once, in the create's response. The secret
 * is stored sealed with the credential key (AES-256-GCM, as credential blobs), never plain: Keystone keeps it
 * to check the consumer's HMAC-SHA1 signatures, so a one-way hash would not do.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Clock } from '../clock';
import type { ServiceDb } from '../db';
import { CloudError } from '../errors';
import { idSchema, parseRequest } from '../validation';
import type { CredentialKey } from './credential-key';
import type { KeystoneDb, OAuth1ConsumersTable } from './schema';
import { parseExtra } from './views';

export interface OAuth1Consumer {
  id: string;
  description: string | null;
  extra: Record<string, unknown>;
}

const extraSchema = z
  .record(z.string().max(255), z.json())
  .refine((e) => JSON.stringify(e).length <= 65536, 'extra attributes exceed 64 KiB');
const createRequest = z.strictObject({
  description: z.string().max(65536).nullable().optional(),
  extra: extraSchema.optional(),
});
const updateRequest = z.strictObject({
  id: idSchema,
  description: z.string().max(65536).nullable().optional(),
  extra: extraSchema.optional(),
});

const toConsumer = (r: OAuth1ConsumersTable): OAuth1Consumer => ({
  id: r.id,
  description: r.description,
  extra: parseExtra(r.extra),
});
/** Keystone's NotFound(_('Consumer not found')). */
const notFound = () => new CloudError('NotFound', 'Consumer not found');

export class OAuth1Consumers {
  constructor(
    private readonly store: ServiceDb<KeystoneDb>,
    private readonly clock: Clock,
    private readonly key: CredentialKey,
  ) {}

  /** The new consumer with its secret: the only time the secret leaves the cloud. */
  async create(input: z.input<typeof createRequest>): Promise<OAuth1Consumer & { secret: string }> {
    const r = parseRequest(createRequest, input, 'consumer');
    const secret = randomUUID().replace(/-/g, '');
    const row: OAuth1ConsumersTable = {
      id: randomUUID().replace(/-/g, ''),
      description: r.description ?? null,
      secret_sealed: this.key.encrypt(secret),
      key_hash: this.key.hash,
      extra: JSON.stringify(r.extra ?? {}),
      created_at: this.clock.now(),
    };
    await this.store.db.insertInto('oauth1_consumers').values(row).execute();
    return { ...toConsumer(row), secret };
  }

  async get(id: string): Promise<OAuth1Consumer> {
    const consumerId = parseRequest(idSchema, id, 'consumer id');
    const row = await this.store.db
      .selectFrom('oauth1_consumers')
      .selectAll()
      .where('id', '=', consumerId)
      .executeTakeFirst();
    if (!row) throw notFound();
    return toConsumer(row);
  }

  async list(): Promise<OAuth1Consumer[]> {
    const rows = await this.store.db
      .selectFrom('oauth1_consumers')
      .selectAll()
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toConsumer);
  }

  /** Keystone's update_consumer: the description and extra attributes (never the secret). */
  async update(input: z.input<typeof updateRequest>): Promise<OAuth1Consumer> {
    const r = parseRequest(updateRequest, input, 'consumer update');
    return this.store.transaction(async (trx) => {
      const row = await trx
        .selectFrom('oauth1_consumers')
        .selectAll()
        .where('id', '=', r.id)
        .executeTakeFirst();
      if (!row) throw notFound();
      const next: OAuth1ConsumersTable = {
        ...row,
        ...(r.description !== undefined ? { description: r.description } : {}),
        extra: JSON.stringify({ ...parseExtra(row.extra), ...r.extra }),
      };
      await trx
        .updateTable('oauth1_consumers')
        .set({ description: next.description, extra: next.extra })
        .where('id', '=', r.id)
        .execute();
      return toConsumer(next);
    });
  }

  async delete(id: string): Promise<void> {
    const consumerId = parseRequest(idSchema, id, 'consumer id');
    const res = await this.store.db
      .deleteFrom('oauth1_consumers')
      .where('id', '=', consumerId)
      .executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw notFound();
  }
}
