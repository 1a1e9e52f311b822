/**
 * Throw-away databases for one benchmark: SQLite files in a temp directory, or fresh databases on the
 * server given by --db-url (MariaDB/MySQL or PostgreSQL), dropped afterwards.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { dropServerDatabases, type DbConfig } from '../../cloud/db';

export interface BenchDb {
  /** 'sqlite', 'mysql' or 'postgres' */
  label: string;
  config: DbConfig;
  cleanup(): Promise<void>;
}

export function dbLabel(serverUrl: string | undefined): string {
  if (!serverUrl) return 'sqlite';
  const scheme = new URL(serverUrl).protocol.replace(':', '');
  return scheme === 'mariadb' ? 'mysql' : scheme === 'postgresql' ? 'postgres' : scheme;
}

export function benchDb(name: string, serverUrl?: string): BenchDb {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), `bootflow-bench-${name}-`));
  const config: DbConfig = serverUrl
    ? { dataDir, serverUrl, databasePrefix: `bfb_${randomBytes(4).toString('hex')}_` }
    : { dataDir };
  return {
    label: dbLabel(serverUrl),
    config,
    async cleanup() {
      if (serverUrl) await dropServerDatabases(config);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
