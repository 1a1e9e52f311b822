/**
 * One relational database per service, as in OpenStack. Embedded default: a SQLite file per service under
 * the data directory (WAL, so several worker processes on one machine share it). Production: MySQL/MariaDB
 * or PostgreSQL, from one server URL (a database per service, named `<prefix><service>`) or a URL per
 * service. The same Kysely migrations and queries run on all three.
 *
 * Portability rules for the schemas: booleans are integers 0/1, timestamps are epoch milliseconds in
 * `bigint` columns, indexed strings are `varchar(n)`, JSON is `text`, and aggregates (SUM, COUNT) are passed
 * through Number() because MySQL and PostgreSQL return them as strings.
 */
import { chmodSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import {
  Kysely,
  Migrator,
  MysqlDialect,
  PostgresDialect,
  SqliteDialect,
  sql,
  type DatabaseConnection,
  type Dialect,
  type Migration,
  type SelectQueryBuilder,
  type SqliteDatabase,
} from 'kysely';
import { createPool } from 'mysql2';
import pg from 'pg';
import { WriteGenerations } from './db-writes';
import { CloudError } from './errors';

export const SERVICES = ['keystone', 'nova', 'placement', 'glance', 'neutron', 'cinder'] as const;
export type ServiceName = (typeof SERVICES)[number];
export type DialectName = 'sqlite' | 'mysql' | 'postgres';

export interface DbConfig {
  /** Where SQLite files (and everything else the embedded cloud keeps) live. */
  dataDir: string;
  /** One server for every service: mysql://user:pass@host:port or postgres://user@host:port. */
  serverUrl?: string;
  /** A full URL for one service, database name included; wins over serverUrl. */
  serviceUrls?: Partial<Record<ServiceName, string>>;
  /** Prefix of the database names on a server (default `bootflow_`). */
  databasePrefix?: string;
}

export function dbConfigFromEnv(env: NodeJS.ProcessEnv = process.env): DbConfig {
  const serviceUrls: Partial<Record<ServiceName, string>> = {};
  for (const service of SERVICES) {
    const url = env[`BOOTFLOW_DB_URL_${service.toUpperCase()}`];
    if (url) serviceUrls[service] = url;
  }
  return {
    dataDir: path.resolve(env.BOOTFLOW_DATA ?? 'data'),
    serverUrl: env.BOOTFLOW_DB_URL || undefined,
    serviceUrls,
    databasePrefix: env.BOOTFLOW_DB_PREFIX || undefined,
  };
}

function dialectOfUrl(url: string): Exclude<DialectName, 'sqlite'> {
  const scheme = new URL(url).protocol.replace(':', '');
  if (scheme === 'mysql' || scheme === 'mariadb') return 'mysql';
  if (scheme === 'postgres' || scheme === 'postgresql') return 'postgres';
  throw new CloudError(
    'BadRequest',
    `Unsupported database URL scheme '${scheme}' (use mysql, mariadb or postgres)`,
  );
}

interface ServerTarget {
  dialect: Exclude<DialectName, 'sqlite'>;
  url: URL;
  database: string;
}

function serverTarget(service: ServiceName, config: DbConfig): ServerTarget | undefined {
  const perService = config.serviceUrls?.[service];
  if (perService) {
    const url = new URL(perService);
    return { dialect: dialectOfUrl(perService), url, database: url.pathname.replace(/^\//, '') || service };
  }
  if (!config.serverUrl) return undefined;
  const url = new URL(config.serverUrl);
  const database = `${config.databasePrefix ?? 'bootflow_'}${service}`;
  if (!/^[A-Za-z0-9_]+$/.test(database))
    throw new CloudError('BadRequest', `Bad database name '${database}'`);
  return { dialect: dialectOfUrl(config.serverUrl), url, database };
}

// PostgreSQL returns int8 and numeric as strings; every value we store fits a double.
pg.types.setTypeParser(20, (v: string) => Number(v));
pg.types.setTypeParser(1700, (v: string) => Number(v));

function serverDialect(target: ServerTarget, database: string | undefined): Dialect {
  const { url } = target;
  const user = decodeURIComponent(url.username) || 'root';
  const password = decodeURIComponent(url.password) || undefined;
  if (target.dialect === 'mysql') {
    return new MysqlDialect({
      pool: createPool({
        host: url.hostname,
        port: Number(url.port || 3306),
        user,
        password,
        database,
        connectionLimit: 10,
        supportBigNumbers: true,
        bigNumberStrings: false,
        timezone: 'Z',
      }),
    });
  }
  return new PostgresDialect({
    pool: new pg.Pool({
      host: url.hostname,
      port: Number(url.port || 5432),
      user,
      password,
      database: database ?? 'postgres',
      max: 10,
    }),
  });
}

async function ensureServerDatabase(target: ServerTarget): Promise<void> {
  const admin = new Kysely<unknown>({ dialect: serverDialect(target, undefined) });
  try {
    if (target.dialect === 'mysql') {
      await sql`create database if not exists ${sql.id(target.database)} character set utf8mb4 collate utf8mb4_bin`.execute(
        admin,
      );
    } else {
      const found = await sql<{
        n: number;
      }>`select count(*)::int as n from pg_database where datname = ${target.database}`.execute(admin);
      if (!found.rows[0]?.n) await sql`create database ${sql.id(target.database)}`.execute(admin);
    }
  } finally {
    await admin.destroy();
  }
}

/** Drops every service database on the configured server (tests clean up with it); SQLite: nothing. */
export async function dropServerDatabases(config: DbConfig): Promise<void> {
  for (const service of SERVICES) {
    const target = serverTarget(service, config);
    if (!target) continue;
    const admin = new Kysely<unknown>({ dialect: serverDialect(target, undefined) });
    try {
      if (target.dialect === 'postgres') {
        await sql`drop database if exists ${sql.id(target.database)} with (force)`.execute(admin);
      } else {
        await sql`drop database if exists ${sql.id(target.database)}`.execute(admin);
      }
    } finally {
      await admin.destroy();
    }
  }
}

const UNIQUE_VIOLATION_CODES = new Set([
  'SQLITE_CONSTRAINT_UNIQUE',
  'SQLITE_CONSTRAINT_PRIMARYKEY',
  'ER_DUP_ENTRY',
  '23505',
]);

/** A unique or primary-key violation, on any supported database: a concurrent creator inserted the key first. */
export function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && UNIQUE_VIOLATION_CODES.has(code);
}

const TRANSIENT_SQLITE = new Set(['SQLITE_BUSY', 'SQLITE_BUSY_SNAPSHOT', 'SQLITE_LOCKED']);
const TRANSIENT_MYSQL = new Set(['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT']);
const TRANSIENT_PG = new Set(['40001', '40P01', '55P03']);

/** Lock contention that a fresh attempt of the whole transaction resolves. */
export function isTransientDbError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return (
    typeof code === 'string' &&
    (TRANSIENT_SQLITE.has(code) || TRANSIENT_MYSQL.has(code) || TRANSIENT_PG.has(code))
  );
}

export interface ServiceDb<DB> {
  readonly service: ServiceName;
  readonly dialect: DialectName;
  readonly db: Kysely<DB>;
  /**
   * Runs fn in one write transaction and retries the whole of it on lock contention. On SQLite it takes the
   * write lock up front (BEGIN IMMEDIATE) so two writers never deadlock upgrading a read lock.
   */
  transaction<T>(fn: (trx: Kysely<DB>) => Promise<T>): Promise<T>;
  /** Adds FOR UPDATE where the database has row locks (SQLite's write transaction already excludes writers). */
  forUpdate<QB extends SelectQueryBuilder<DB, keyof DB & string, object>>(qb: QB): QB;
  /** The tables this process has written, for readers that keep what they read (db-writes.ts). */
  readonly writes: WriteGenerations;
  close(): Promise<void>;
}

const MAX_TRANSACTION_ATTEMPTS = 8;

/** Statements kept prepared per SQLite file (least recently used dropped first). */
const STATEMENT_CACHE_SIZE = 256;
/** Longer SQL (bulk multi-row INSERTs) is one-off: prepared each time, never kept. */
const STATEMENT_CACHE_MAX_SQL = 4096;

/**
 * Kysely's SQLite driver prepares every query again (SQLite parses and plans the SQL each time); on the
 * scheduler's path that was a tenth of a decision. The same SQL text gets the same prepared statement
 * back instead. A statement still being iterated (a stream) is busy: such a query gets a fresh one.
 */
export function cachingStatements(file: Database.Database, size = STATEMENT_CACHE_SIZE): SqliteDatabase {
  const cache = new Map<string, Database.Statement>();
  return {
    close: () => file.close(),
    prepare(text) {
      const hit = cache.get(text);
      if (hit && !hit.busy) {
        cache.delete(text); // re-inserted below: most recently used last
        cache.set(text, hit);
        return hit;
      }
      const stmt = file.prepare(text);
      if (!hit && text.length <= STATEMENT_CACHE_MAX_SQL) {
        cache.set(text, stmt);
        if (cache.size > size) cache.delete(cache.keys().next().value as string);
      }
      return stmt;
    },
  };
}

function sleepMs(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function makeServiceDb<DB>(
  service: ServiceName,
  dialect: DialectName,
  db: Kysely<DB>,
  writes: WriteGenerations,
): ServiceDb<DB> {
  async function once<T>(fn: (trx: Kysely<DB>) => Promise<T>): Promise<T> {
    if (dialect !== 'sqlite') return db.transaction().execute(fn);
    return db.connection().execute(async (conn) => {
      await sql`begin immediate`.execute(conn);
      try {
        const result = await fn(conn);
        await sql`commit`.execute(conn);
        return result;
      } catch (err) {
        await sql`rollback`.execute(conn).catch(() => undefined);
        throw err;
      }
    });
  }
  return {
    service,
    dialect,
    db,
    async transaction(fn) {
      for (let attempt = 1; ; attempt++) {
        try {
          return await once(fn);
        } catch (err) {
          if (!isTransientDbError(err)) throw err;
          if (attempt >= MAX_TRANSACTION_ATTEMPTS) {
            throw new CloudError('DatabaseBusy', `The ${service} database stayed busy; try again`);
          }
          await sleepMs(Math.min(200, 5 * 2 ** attempt) * (0.5 + Math.random()));
        }
      }
    },
    forUpdate(qb) {
      return (dialect === 'sqlite' ? qb : qb.forUpdate()) as typeof qb;
    },
    writes,
    close: () => db.destroy(),
  };
}

/** Errors a caller handles by their code: a unique violation (a concurrent creator) or lock contention. */
function handledByCode(err: unknown): boolean {
  return isUniqueViolation(err) || isTransientDbError(err);
}

/**
 * Any other failure of the database itself (read-only or full disk, I/O error, corrupt file, lost server)
 * leaves as a CloudError that names the service, e.g. "nova database: attempt to write a readonly database"
 * (503, retryable), rather than a bare SqliteError whose message says nothing of which of six databases failed.
 */
function serviceDbError(service: ServiceName, err: unknown): unknown {
  if (err instanceof CloudError || handledByCode(err) || !(err instanceof Error)) return err;
  const code = (err as { code?: unknown }).code;
  return new CloudError('ServiceUnavailable', `${service} database: ${err.message}`, {
    service,
    ...(typeof code === 'string' ? { dbCode: code } : {}),
  });
}

/** The dialect with every query's failure passed through serviceDbError. */
function namingFailures(service: ServiceName, inner: Dialect): Dialect {
  const wrapped = new WeakSet<DatabaseConnection>();
  return {
    createAdapter: () => inner.createAdapter(),
    createIntrospector: (db) => inner.createIntrospector(db),
    createQueryCompiler: () => inner.createQueryCompiler(),
    createDriver: () => {
      const driver = inner.createDriver();
      const acquireConnection = driver.acquireConnection.bind(driver);
      driver.acquireConnection = async () => {
        const connection = await acquireConnection();
        if (!wrapped.has(connection)) {
          // Patched in place: the driver knows its connections by identity (release, transactions).
          const executeQuery = connection.executeQuery.bind(connection);
          connection.executeQuery = async (query) => {
            try {
              return await executeQuery(query);
            } catch (err) {
              throw serviceDbError(service, err);
            }
          };
          wrapped.add(connection);
        }
        return connection;
      };
      return driver;
    },
  };
}

/**
 * Opens a service's database and brings its schema up to date. Open each database once per process: on
 * SQLite all of a process's queries then share one connection, and other processes wait on the file lock.
 */
export async function openServiceDb<DB>(
  service: ServiceName,
  migrations: Record<string, Migration>,
  config: DbConfig,
): Promise<ServiceDb<DB>> {
  const target = serverTarget(service, config);
  let dialect: Dialect;
  if (target) {
    await ensureServerDatabase(target);
    dialect = serverDialect(target, target.database);
  } else {
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    const fileName = path.join(config.dataDir, `${service}.sqlite`);
    let file: Database.Database;
    try {
      file = new Database(fileName);
      // Owner only (SQLite gives the -wal and -shm files the database file's mode): Keystone's holds hashes.
      if (process.platform !== 'win32') chmodSync(fileName, 0o600);
      file.pragma('journal_mode = WAL');
    } catch (err) {
      throw serviceDbError(service, err);
    }
    file.pragma('busy_timeout = 5000');
    file.pragma('synchronous = NORMAL');
    file.pragma('foreign_keys = ON');
    // Reads through a memory map instead of read() into the connection's own cache (16 MB here): at
    // 100,000 hosts placement's file is ~70 MB and the scheduler's random lookups by uuid missed that cache
    // on a third of its time. The mapping is the OS page cache, shared by every process on the file.
    file.pragma('mmap_size = 268435456');
    dialect = new SqliteDialect({ database: cachingStatements(file) });
  }
  const writes = new WriteGenerations();
  const db = new Kysely<DB>({ dialect: namingFailures(service, dialect), plugins: [writes] });
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
  const { error } = await migrator.migrateToLatest();
  if (error) {
    await db.destroy();
    throw error;
  }
  return makeServiceDb(service, target?.dialect ?? 'sqlite', db, writes);
}
