/**
 * Helpers of the security suites: a bootstrapped cloud with extra projects and users, typed-error
 * assertions that accept a CloudError or the ApplicationFailure an activity turns it into, and a snapshot of
 * every row of the six service databases plus the files under the data directory, to prove that a refused
 * request changed nothing.
 */
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, MysqlDialect, PostgresDialect, SqliteDialect, sql, type Dialect } from 'kysely';
import { createPool } from 'mysql2';
import pg from 'pg';
import { ApplicationFailure } from '@temporalio/common';
import { auditLeaks, type AuditOptions, type LeakFinding } from '../../cloud/audit';
import { bootstrapCloud, type BootstrapResult } from '../../cloud/bootstrap';
import { ManualClock } from '../../cloud/clock';
import { SERVICES, type DbConfig, type ServiceName } from '../../cloud/db';
import { isCloudError, type CloudErrorType } from '../../cloud/errors';
import { openCloud, type Cloud } from '../../cloud/index';
import type { RequestContext } from '../../cloud/keystone';
import { testDbConfig, type TestDb } from './cloud-db';

// ---- typed errors ------------------------------------------------------------------------------------

/** The error's type: a CloudError's, or an activity's ApplicationFailure's (the same names). */
export function errorTypeOf(err: unknown): string | undefined {
  if (isCloudError(err)) return err.type;
  if (err instanceof ApplicationFailure) return err.type ?? undefined;
  return undefined;
}

/** Awaits `work`, asserting it fails with a typed error of `type`; returns the error. */
export async function expectTyped(
  work: Promise<unknown> | (() => Promise<unknown>),
  type: CloudErrorType,
  what = '',
): Promise<Error> {
  let caught: unknown;
  try {
    await (typeof work === 'function' ? work() : work);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught !== undefined, `${what}: expected ${type}, but it succeeded`);
  assert.equal(
    errorTypeOf(caught),
    type,
    `${what}: expected ${type}, got ${errorTypeOf(caught) ?? 'an untyped error'}: ${String((caught as Error)?.message ?? caught)}`,
  );
  return caught as Error;
}

/** The outcome of a call as the policy matrix names it. */
export type Outcome = 'allowed' | CloudErrorType;

// ---- a cloud with tenants ----------------------------------------------------------------------------

export interface SecurityCloud {
  testDb: TestDb;
  cloud: Cloud;
  boot: BootstrapResult;
  clock: ManualClock;
  snapshotter: DbSnapshotter;
  /** Rows, files and leak audit now. */
  state(): Promise<CloudState>;
  close(): Promise<void>;
}

/** A bootstrapped cloud (admin and demo projects, cirros, private and public networks, three hosts). */
export async function openSecurityCloud(label: string): Promise<SecurityCloud> {
  const testDb = testDbConfig(label);
  const clock = new ManualClock(Date.now());
  const cloud = await openCloud({ db: testDb.config, clock });
  try {
    const boot = await bootstrapCloud(cloud);
    // Bootstrap's password set-up revokes the users' earlier tokens "issued at or before now"; a token
    // issued in the same millisecond of the manual clock would count as revoked too.
    clock.advance(1000);
    const snapshotter = new DbSnapshotter(testDb.config);
    return {
      testDb,
      cloud,
      boot,
      clock,
      snapshotter,
      state: () => captureState(cloud, snapshotter),
      async close() {
        await snapshotter.close();
        await cloud.close();
        await testDb.cleanup();
      },
    };
  } catch (err) {
    await cloud.close();
    await testDb.cleanup();
    throw err;
  }
}

export interface Tenant {
  username: string;
  password: string;
  projectName: string;
  projectId: string;
  token: string;
  ctx: RequestContext;
}

/** A user with `role` (or none) on `projectName`, both created if missing, and a token when it can get one. */
export async function addTenantUser(
  cloud: Cloud,
  options: { username: string; projectName: string; role?: string; password?: string },
): Promise<Omit<Tenant, 'token' | 'ctx'> & Partial<Pick<Tenant, 'token' | 'ctx'>>> {
  const project = await cloud.keystone.ensureProject({ name: options.projectName });
  const password = options.password ?? `pw-${options.username}-${Math.random().toString(36).slice(2)}`;
  await cloud.keystone.ensureUser({ name: options.username, password });
  const base = { username: options.username, password, projectName: project.name, projectId: project.id };
  if (!options.role) return base;
  await cloud.keystone.assignRole({ user: options.username, project: project.name, role: options.role });
  const auth = await cloud.keystone.authenticate({
    username: options.username,
    password,
    projectName: project.name,
  });
  return { ...base, token: auth.token, ctx: auth.context };
}

export async function tenant(
  cloud: Cloud,
  options: { username: string; projectName: string; role: string },
): Promise<Tenant> {
  const t = await addTenantUser(cloud, options);
  assert.ok(t.token && t.ctx);
  return t as Tenant;
}

// ---- database and file snapshots ---------------------------------------------------------------------

export type Row = Record<string, unknown>;
/** service → table → rows (sorted, values normalised). */
export type DbSnapshot = Record<string, Record<string, string[]>>;

function serverDialect(url: URL, database: string): Dialect {
  const user = decodeURIComponent(url.username) || 'root';
  const password = decodeURIComponent(url.password) || undefined;
  const scheme = url.protocol.replace(':', '');
  if (scheme === 'mysql' || scheme === 'mariadb') {
    return new MysqlDialect({
      pool: createPool({
        host: url.hostname,
        port: Number(url.port || 3306),
        user,
        password,
        database,
        connectionLimit: 1,
      }),
    });
  }
  return new PostgresDialect({
    pool: new pg.Pool({
      host: url.hostname,
      port: Number(url.port || 5432),
      user,
      password,
      database,
      max: 1,
    }),
  });
}

/** A read connection of its own to one service's database (never a second ServiceDb). */
function readerOf(config: DbConfig, service: ServiceName): Kysely<Record<string, Row>> {
  const perService = config.serviceUrls?.[service];
  if (perService) {
    const url = new URL(perService);
    return new Kysely({ dialect: serverDialect(url, url.pathname.replace(/^\//, '') || service) });
  }
  if (config.serverUrl) {
    const database = `${config.databasePrefix ?? 'bootflow_'}${service}`;
    return new Kysely({ dialect: serverDialect(new URL(config.serverUrl), database) });
  }
  const file = new Database(path.join(config.dataDir, `${service}.sqlite`), { fileMustExist: true });
  return new Kysely({ dialect: new SqliteDialect({ database: file }) });
}

function normalise(value: unknown): unknown {
  if (typeof value === 'bigint') return Number(value);
  if (value instanceof Date) return value.getTime();
  if (Buffer.isBuffer(value)) return `hex:${value.toString('hex')}`;
  return value;
}

/**
 * Read connections of their own to the six databases (opened once, tables listed once), for snapshots of
 * every row of every table: each row as sorted-key JSON, rows sorted.
 */
/**
 * Columns that move with time alone, not with any request: nova-compute's state reports (heartbeats) bump
 * the compute services' last_seen_up and report_count whenever the test clock moves.
 */
export const HEARTBEAT_COLUMNS: Readonly<Record<string, readonly string[]>> = {
  'nova.services': ['last_seen_up', 'report_count', 'updated_at'],
};

export class DbSnapshotter {
  private readonly readers = new Map<ServiceName, Kysely<Record<string, Row>>>();
  private readonly tables = new Map<ServiceName, string[]>();

  constructor(
    private readonly config: DbConfig,
    private readonly ignoredColumns: Readonly<Record<string, readonly string[]>> = HEARTBEAT_COLUMNS,
  ) {}

  async snapshot(): Promise<DbSnapshot> {
    const snapshot: DbSnapshot = {};
    for (const service of SERVICES) {
      let db = this.readers.get(service);
      if (!db) this.readers.set(service, (db = readerOf(this.config, service)));
      let tables = this.tables.get(service);
      if (!tables) {
        tables = (await db.introspection.getTables()).map((t) => t.name).sort();
        this.tables.set(service, tables);
      }
      const byTable: Record<string, string[]> = {};
      for (const table of tables) {
        const ignored = new Set(this.ignoredColumns[`${service}.${table}`] ?? []);
        const { rows } = await sql<Row>`select * from ${sql.table(table)}`.execute(db);
        byTable[table] = rows
          .map((row) => {
            const keys = Object.keys(row)
              .filter((k) => !ignored.has(k))
              .sort();
            return JSON.stringify(Object.fromEntries(keys.map((k) => [k, normalise(row[k])])));
          })
          .sort();
      }
      snapshot[service] = byTable;
    }
    return snapshot;
  }

  async close(): Promise<void> {
    for (const db of this.readers.values()) await db.destroy();
    this.readers.clear();
  }
}

/** One snapshot of every database (opens and closes its own connections). */
export async function snapshotDatabases(config: DbConfig): Promise<DbSnapshot> {
  const snapshotter = new DbSnapshotter(config);
  try {
    return await snapshotter.snapshot();
  } finally {
    await snapshotter.close();
  }
}

/** Files under the data directory (image store, volumes, compute hosts) with their sizes; not the databases. */
export function snapshotFiles(dataDir: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      const rel = path.relative(dataDir, full);
      if (entry.isDirectory()) {
        out.push(`${rel}/`);
        walk(full);
      } else if (!/\.sqlite(-wal|-shm|-journal)?$/.test(entry.name) && !entry.name.endsWith('.lock')) {
        out.push(`${rel} ${statSync(full).size}`);
      }
    }
  };
  walk(dataDir);
  return out.sort();
}

/** The rows that differ between two snapshots, as readable lines ("+ nova.instances {...}"). */
export function diffSnapshots(before: DbSnapshot, after: DbSnapshot): string[] {
  const lines: string[] = [];
  for (const service of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const a = before[service] ?? {};
    const b = after[service] ?? {};
    for (const table of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const was = new Set(a[table] ?? []);
      const now = new Set(b[table] ?? []);
      for (const row of was) if (!now.has(row)) lines.push(`- ${service}.${table} ${row}`);
      for (const row of now) if (!was.has(row)) lines.push(`+ ${service}.${table} ${row}`);
    }
  }
  return lines;
}

export interface CloudState {
  rows: DbSnapshot;
  files: string[];
  leaks: LeakFinding[];
}

/** Rows, files and the leak audit: what a refused request must leave exactly as it found it. */
export async function captureState(
  cloud: Cloud,
  snapshotter: DbSnapshotter,
  options: AuditOptions = {},
): Promise<CloudState> {
  return {
    rows: await snapshotter.snapshot(),
    files: snapshotFiles(cloud.dataDir),
    leaks: await auditLeaks(cloud, options),
  };
}

export function assertUnchanged(before: CloudState, after: CloudState, what: string): void {
  const changed = diffSnapshots(before.rows, after.rows);
  assert.deepEqual(changed, [], `${what}: database rows changed`);
  assert.deepEqual(after.files, before.files, `${what}: files under the data directory changed`);
  assert.deepEqual(after.leaks, before.leaks, `${what}: the leak audit changed`);
}
