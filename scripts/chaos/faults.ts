/**
 * Faults injected into the embedded services from outside their processes, the way an operator's bad day
 * would: the compute hosts' fault file (failing or slow spawns, failing downloads), a damaged file in a
 * host's image cache, Cinder's fault file (slow or failing volume creation), a service database held
 * busy by another process's write transaction (SQLite BEGIN IMMEDIATE) for a few seconds, and Temporal's
 * own reset and terminate of a workflow (what anyone with the frontend port may do).
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import Long from 'long';
import { mkdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { faultsFile } from '../../cloud/cinder';
import type { CinderFaults } from '../../cloud/cinder/types';
import { FaultInjector, type FaultOperation, type FaultSpec } from '../../cloud/compute/faults';
import { hostDirOf } from '../../cloud/index';
import { PROJECT_ROOT } from '../../lib/temporal-binaries';
import { scribble } from './setup';

export async function setComputeFault(
  dataDir: string,
  host: string,
  operation: FaultOperation,
  spec: FaultSpec,
): Promise<void> {
  await new FaultInjector(hostDirOf(dataDir, host), host).set(operation, spec);
}

export async function clearComputeFaults(dataDir: string, host: string): Promise<void> {
  await new FaultInjector(hostDirOf(dataDir, host), host).clear();
}

/**
 * Damages the cached copy of an image in a host's `_base/`: cut to half its size (as a full disk would
 * leave it), or scribbled over at the same size (bit rot). Returns false when the host has not cached it.
 */
export async function corruptCachedImage(
  dataDir: string,
  host: string,
  imageId: string,
  how: 'truncate' | 'scribble',
): Promise<boolean> {
  const file = path.join(hostDirOf(dataDir, host), '_base', imageId);
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch {
    return false;
  }
  if (how === 'truncate') await truncate(file, Math.floor(size / 2));
  else await scribble(file);
  return true;
}

/** Cinder's creation fault for `forMs`, then none. */
export async function cinderFaultFor(dataDir: string, faults: CinderFaults, forMs: number): Promise<void> {
  const dir = path.join(dataDir, 'volumes');
  await mkdir(dir, { recursive: true });
  const file = faultsFile(dir);
  await writeFile(file, JSON.stringify(faults));
  await new Promise((resolve) => setTimeout(resolve, forMs));
  await rm(file, { force: true });
}

/** Clears every fault file (the end of the run: the verification reads a calm cloud). */
export async function clearAllFaults(dataDir: string, hosts: readonly string[]): Promise<void> {
  await rm(faultsFile(path.join(dataDir, 'volumes')), { force: true });
  for (const host of hosts) await clearComputeFaults(dataDir, host).catch(() => undefined);
}

const HOLD_LOCK = `
const Database = require('better-sqlite3');
const [file, ms] = process.argv.slice(1);
const db = new Database(file, { timeout: 30000 });
db.exec('BEGIN IMMEDIATE');
process.send && process.send('locked');
setTimeout(() => { db.exec('COMMIT'); db.close(); process.exit(0); }, Number(ms));
`;

/**
 * Another process takes the service database's write lock and sits on it for holdMs: every writer in the
 * workers waits (busy_timeout) or gets SQLITE_BUSY. Resolves when the lock is released.
 */
export function holdDatabaseLock(dataDir: string, service: string, holdMs: number): Promise<void> {
  const file = path.join(dataDir, `${service}.sqlite`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', HOLD_LOCK, file, String(holdMs)], {
      cwd: PROJECT_ROOT,
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`lock holder on ${service} failed (${code}): ${stderr}`)),
    );
  });
}

/** The run's workflow-task-completed events: where `temporal workflow reset --event-id` may send it back. */
export async function resetPoints(client: Client, workflowId: string, runId: string): Promise<number[]> {
  const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  return (history.events ?? [])
    .filter((e) => e.eventType === temporal.api.enums.v1.EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
    .map((e) => Number(e.eventId));
}

/**
 * Resets the run to one of its workflow-task-completed events, as `temporal workflow reset` does: the run
 * is terminated and a new one replays up to that event and goes on from there. Returns the new run's id.
 */
export async function resetWorkflow(
  client: Client,
  workflowId: string,
  runId: string,
  eventId: number,
): Promise<string> {
  const { runId: newRunId } = (await client.workflowService.resetWorkflowExecution({
    namespace: client.options.namespace,
    workflowExecution: { workflowId, runId },
    reason: `chaos: reset to event ${eventId}`,
    workflowTaskFinishEventId: Long.fromNumber(eventId),
    requestId: randomUUID(),
  })) as temporal.api.workflowservice.v1.IResetWorkflowExecutionResponse;
  return newRunId ?? '';
}
