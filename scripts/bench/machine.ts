/** What the figures were measured on: the machine, its load, and the versions of everything involved. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { PROJECT_ROOT, resolveTemporalBinary } from '../../lib/temporal-binaries';

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryMb: number;
  platform: string;
  release: string;
  /** 1, 5 and 15 minute load averages when the run started: above the CPU count, the machine was shared. */
  loadAverage: number[];
}

export interface Versions {
  node: string;
  temporalSdk: string;
  temporalCli: string | null;
  sqlite: string;
  kysely: string;
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    memoryMb: Math.round(os.totalmem() / 2 ** 20),
    platform: os.platform(),
    release: os.release(),
    loadAverage: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

function packageVersion(name: string): string {
  const file = path.join(PROJECT_ROOT, 'node_modules', name, 'package.json');
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

function temporalCliVersion(): string | null {
  const resolved = resolveTemporalBinary('cli');
  if (resolved.source === 'download') return null;
  try {
    return execFileSync(resolved.path, ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
}

function sqliteVersion(): string {
  const db = new Database(':memory:');
  try {
    return (db.prepare('select sqlite_version() as v').get() as { v: string }).v;
  } finally {
    db.close();
  }
}

export function versions(): Versions {
  return {
    node: process.version,
    temporalSdk: packageVersion('@temporalio/worker'),
    temporalCli: temporalCliVersion(),
    sqlite: sqliteVersion(),
    kysely: packageVersion('kysely'),
  };
}
