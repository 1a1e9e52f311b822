/**
 * A throw-away database configuration per test file: SQLite files in a temp directory by default, or fresh
 * databases on the server named by BOOTFLOW_TEST_DB_URL (CI sets it to the machine's MariaDB).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { dropServerDatabases, type DbConfig } from '../../cloud/db';

export interface TestDb {
  config: DbConfig;
  dataDir: string;
  cleanup(): Promise<void>;
}

export function testDbConfig(label = 'cloud'): TestDb {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), `bootflow-${label}-`));
  const serverUrl = process.env.BOOTFLOW_TEST_DB_URL || undefined;
  const config: DbConfig = serverUrl
    ? { dataDir, serverUrl, databasePrefix: `bft_${randomBytes(4).toString('hex')}_` }
    : { dataDir };
  return {
    config,
    dataDir,
    async cleanup() {
      if (serverUrl) await dropServerDatabases(config);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export const testDbDialect = process.env.BOOTFLOW_TEST_DB_URL
  ? new URL(process.env.BOOTFLOW_TEST_DB_URL).protocol
  : 'sqlite';
