/**
 * The dev server's SQLite store runs in WAL mode with synchronous=normal (lib/dev-server.ts): read back from
 * the database file of a running server, not from the arguments it was given.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import { Connection } from '@temporalio/client';
import { startDevServerOnFreePorts, type RunningDevServer } from '../lib/dev-server';

let dataDir: string;
let server: RunningDevServer | undefined;

before(async () => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'bootflow-devstore-'));
  server = await startDevServerOnFreePorts({ dataDir, headless: true, output: 'ignore' });
});

after(async () => {
  await server?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

test('the dev server persists to SQLite in WAL mode', async () => {
  // A round trip makes sure the server has written its store.
  const connection = await Connection.connect({ address: server?.address ?? '' });
  await connection.workflowService.getSystemInfo({});
  await connection.close();
  const db = new Database(path.join(dataDir, 'temporal.db'), { readonly: true, fileMustExist: true });
  try {
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  } finally {
    db.close();
  }
});
