import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect, sql, type Migration } from 'kysely';
import { cachingStatements, openServiceDb, type ServiceDb } from '../cloud/db';
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

describe('SQLite statement cache', () => {
  test('the same SQL reuses its statement, and every answer is current', () => {
    const file = new Database(':memory:');
    const cached = cachingStatements(file);
    try {
      file.exec('create table t (k integer primary key, v text)');
      const insert = 'insert into t (k, v) values (?, ?)';
      assert.equal(cached.prepare(insert), cached.prepare(insert), 'prepared once');
      cached.prepare(insert).run([1, 'a']);
      const select = 'select * from t where k = ?';
      assert.deepEqual(cached.prepare(select).all([1]), [{ k: 1, v: 'a' }]);
      cached.prepare('update t set v = ? where k = ?').run(['b', 1]);
      assert.deepEqual(cached.prepare(select).all([1]), [{ k: 1, v: 'b' }], 'no result is cached');
      // A schema change after the statement was prepared: SQLite prepares it again by itself.
      file.exec('alter table t add column w integer default 7');
      assert.deepEqual(cached.prepare(select).all([1]), [{ k: 1, v: 'b', w: 7 }]);
    } finally {
      cached.close();
    }
  });

  test('a statement being iterated is busy: the same SQL meanwhile gets a fresh one', () => {
    const file = new Database(':memory:');
    const cached = cachingStatements(file);
    try {
      file.exec('create table t (k integer primary key)');
      file.exec('insert into t (k) values (1), (2), (3)');
      const all = 'select k from t order by k';
      const streaming = cached.prepare(all);
      const seen: unknown[] = [];
      for (const row of streaming.iterate([])) {
        const inner = cached.prepare(all);
        assert.notEqual(inner, streaming);
        assert.equal(inner.all([]).length, 3);
        seen.push(row);
      }
      assert.equal(seen.length, 3);
      assert.equal(cached.prepare(all), streaming, 'the cached one again once the stream is done');
    } finally {
      cached.close();
    }
  });

  test('least recently used statements go first; one-off long SQL is never kept', () => {
    const file = new Database(':memory:');
    const cached = cachingStatements(file, 2);
    try {
      const a = cached.prepare('select 1');
      const b = cached.prepare('select 2');
      assert.equal(cached.prepare('select 1'), a); // now b is the least recently used
      cached.prepare('select 3');
      assert.equal(cached.prepare('select 1'), a);
      assert.notEqual(cached.prepare('select 2'), b, 'evicted, prepared again');
      const long = `select ${Array.from({ length: 2000 }, (_, i) => i).join(', ')}`;
      assert.notEqual(cached.prepare(long), cached.prepare(long));
    } finally {
      cached.close();
    }
  });

  test('Kysely over the cache: parameters are bound per call', async () => {
    const db = new Kysely<CounterDb>({
      dialect: new SqliteDialect({ database: cachingStatements(new Database(':memory:')) }),
    });
    try {
      await db.schema
        .createTable('counters')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('value', 'integer', (c) => c.notNull())
        .addColumn('generation', 'integer', (c) => c.notNull())
        .execute();
      for (const [name, value] of [
        ['a', 1],
        ['b', 2],
      ] as const) {
        await db.insertInto('counters').values({ name, value, generation: 0 }).execute();
      }
      const valueOf = async (name: string) =>
        (await db.selectFrom('counters').select('value').where('name', '=', name).executeTakeFirst())?.value;
      assert.equal(await valueOf('a'), 1);
      assert.equal(await valueOf('b'), 2);
      assert.equal(await valueOf('c'), undefined);
    } finally {
      await db.destroy();
    }
  });
});
