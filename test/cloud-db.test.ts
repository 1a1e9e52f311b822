import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sql, type Kysely, type Migration } from 'kysely';
import { openServiceDb, type ServiceDb } from '../cloud/db';
import { testDbConfig, type TestDb } from './helpers/cloud-db';

interface CounterDb {
  counters: { name: string; value: number; generation: number };
}

const migrations: Record<string, Migration> = {
  '001_counters': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('counters')
        .addColumn('name', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('value', 'bigint', (c) => c.notNull())
        .addColumn('generation', 'integer', (c) => c.notNull())
        .execute();
    },
  },
};

describe('service databases', () => {
  let testDb: TestDb;
  let store: ServiceDb<CounterDb>;
  before(async () => {
    testDb = testDbConfig('db');
    store = await openServiceDb<CounterDb>('nova', migrations, testDb.config);
    await store.db.insertInto('counters').values({ name: 'c', value: 0, generation: 0 }).execute();
  });
  after(async () => {
    await store?.close();
    await testDb?.cleanup();
  });

  test('concurrent compare-and-swap transactions never lose an update', async () => {
    const increments = 50;
    await Promise.all(
      Array.from({ length: increments }, () =>
        store.transaction(async (trx) => {
          for (;;) {
            const row = await store
              .forUpdate(trx.selectFrom('counters').selectAll().where('name', '=', 'c'))
              .executeTakeFirstOrThrow();
            const res = await trx
              .updateTable('counters')
              .set({ value: row.value + 1, generation: row.generation + 1 })
              .where('name', '=', 'c')
              .where('generation', '=', row.generation)
              .executeTakeFirst();
            if (Number(res.numUpdatedRows) === 1) return;
          }
        }),
      ),
    );
    const row = await store.db.selectFrom('counters').selectAll().executeTakeFirstOrThrow();
    assert.equal(row.value, increments);
    assert.equal(row.generation, increments);
  });

  test('a failing transaction changes nothing', async () => {
    await assert.rejects(
      store.transaction(async (trx) => {
        await trx.updateTable('counters').set({ value: 999 }).where('name', '=', 'c').execute();
        throw new Error('boom');
      }),
      /boom/,
    );
    const row = await store.db.selectFrom('counters').selectAll().executeTakeFirstOrThrow();
    assert.notEqual(row.value, 999);
  });

  test('aggregates come back as numbers', async () => {
    const r = await sql<{ total: number }>`select sum(value) as total from counters`.execute(store.db);
    assert.equal(Number(r.rows[0]?.total), 50);
  });
});
