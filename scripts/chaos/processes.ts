/**
 * The deployment under test, as real processes on loopback: the Temporal dev server (persisted to one
 * SQLite file, restartable on the same port) and worker.ts in the three-node layout (controller, network,
 * one process per compute host). Kills are SIGKILL (no clean-up of any kind); the final stop is SIGTERM,
 * the graceful path, and records whether each worker exited cleanly.
 */
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { EXIT } from '../../lib/command-line/errors';
import { startDevServer, type RunningDevServer } from '../../lib/dev-server';
import {
  cleanEnv,
  readyOutcome,
  startScript,
  tail,
  type ExitStatus,
  type ScriptProcess,
} from '../../lib/processes';
import { BOOT_SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';

export type WorkerName = 'controller' | 'network' | `compute${number}`;

const READY_TIMEOUT_MS = 240_000;

interface WorkerProcess extends ScriptProcess {
  name: WorkerName;
  /** Set when we kill or stop it; any other exit is a crash, restarted as a supervisor would. */
  expected: boolean;
  ready: boolean;
}

function argsOf(name: WorkerName): string[] {
  if (name === 'controller' || name === 'network') return ['--role', name];
  return ['--role', 'compute', '--host', name];
}

export interface ClusterOptions {
  dataDir: string;
  logsDir: string;
  port: number;
  /** Compute service report interval of the workers (s). */
  heartbeatSeconds: number;
  /** More environment for every worker (the real-guest preset's virt driver and network agent). */
  workerEnv?: Record<string, string>;
  log: (line: string) => void;
}

export class Cluster {
  private server: RunningDevServer | undefined;
  private readonly workers = new Map<WorkerName, WorkerProcess>();
  /** Workers killed for good: never restarted, not stopped at the end. */
  private readonly lost = new Set<WorkerName>();
  readonly address: string;
  /** Workers that exited without being told to (each was restarted). */
  readonly crashes: Array<{ name: WorkerName; code: number | null; signal: string | null; log: string }> = [];
  private stopping = false;
  /** Starts that found Temporal unreachable (the dev server restarting) and were tried again. */
  unavailableStarts = 0;

  constructor(private readonly options: ClusterOptions) {
    this.address = `127.0.0.1:${options.port}`;
  }

  async startServer(): Promise<void> {
    this.server = await startDevServer({
      dataDir: this.options.dataDir,
      port: this.options.port,
      headless: true,
      searchAttributes: BOOT_SEARCH_ATTRIBUTES,
      output: { file: path.join(this.options.logsDir, 'temporal.log') },
    });
  }

  /** Stops the dev server (SIGTERM, then SIGKILL after 10 s) and starts it again on the same database file. */
  async restartServer(pauseMs: number): Promise<void> {
    await this.server?.stop();
    await sleep(pauseMs);
    await this.startServer();
  }

  private spawnWorker(name: WorkerName): WorkerProcess {
    const log = path.join(this.options.logsDir, `${name}.log`);
    const started = startScript({
      name,
      script: 'worker.ts',
      args: argsOf(name),
      log,
      env: cleanEnv({
        TEMPORAL_ADDRESS: this.address,
        TEMPORAL_NAMESPACE: 'default',
        BOOTFLOW_DATA: this.options.dataDir,
        BOOTFLOW_HEARTBEAT_SECONDS: String(this.options.heartbeatSeconds),
        LOG_FORMAT: 'json',
        // Quiet workers: at info, the logging of every activity costs CPU the run is short of.
        LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
        ...this.options.workerEnv,
      }),
    });
    const proc: WorkerProcess = Object.assign(started, { name, expected: false, ready: false });
    this.workers.set(name, proc);
    proc.child.on('message', (message: { type?: string }) => {
      if (message?.type === 'ready') proc.ready = true;
    });
    void proc.exited.then(({ code, signal }) => {
      // Before it was ready, startWorker deals with it; after, any exit we did not cause is a crash.
      if (proc.expected || this.stopping || !proc.ready) return;
      this.crashes.push({ name, code, signal, log: tail(log, 5) });
      this.options.log(`! worker ${name} exited by itself (${code ?? signal}); restarting it`);
      setTimeout(() => {
        if (!this.stopping)
          this.startWorker(name).catch((err: unknown) => this.options.log(`! ${String(err)}`));
      }, 1_000);
    });
    return proc;
  }

  /**
   * Starts a worker and resolves once it reports ready (its queues polled, its host announced). A worker
   * that cannot reach Temporal at start exits 3 (the dev server may be restarting): it is started again,
   * as its supervisor would, until the ready timeout.
   */
  async startWorker(name: WorkerName): Promise<void> {
    const log = path.join(this.options.logsDir, `${name}.log`);
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      const proc = this.spawnWorker(name);
      const outcome = await readyOutcome(proc, Math.max(0, deadline - Date.now()));
      if (outcome.ready) return;
      const exit: ExitStatus | 'timeout' = outcome.exit;
      if (exit !== 'timeout' && exit.code === EXIT.UNAVAILABLE && Date.now() < deadline && !this.stopping) {
        this.unavailableStarts += 1;
        await sleep(2_000);
        continue;
      }
      if (exit === 'timeout') proc.child.kill('SIGKILL');
      const why = exit === 'timeout' ? 'timeout' : (exit.code ?? exit.signal);
      throw new Error(`worker ${name} did not start (${why}):\n${tail(log, 20)}`);
    }
  }

  /** kill -9: the process gets no chance to finish or hand back anything. */
  async kill(name: WorkerName): Promise<void> {
    const proc = this.workers.get(name);
    if (!proc || proc.child.exitCode !== null || proc.child.signalCode !== null) return;
    proc.expected = true;
    proc.child.kill('SIGKILL');
    await proc.exited;
  }

  async lose(name: WorkerName): Promise<void> {
    this.lost.add(name);
    await this.kill(name);
  }

  isLost(name: WorkerName): boolean {
    return this.lost.has(name);
  }

  /** Kills, waits, starts again (and waits until it is ready). */
  async bounce(name: WorkerName, pauseMs: number): Promise<void> {
    await this.kill(name);
    await sleep(pauseMs);
    await this.startWorker(name);
  }

  /**
   * The graceful stop: SIGTERM to every worker still running, then waits (bounded) for each to exit.
   * Returns how each ended: exit code 0 is a clean drain.
   */
  async stopWorkers(
    timeoutMs: number,
  ): Promise<Array<{ name: WorkerName; code: number | null; signal: string | null }>> {
    const running = [...this.workers.values()].filter(
      (w) => !this.lost.has(w.name) && w.child.exitCode === null && w.child.signalCode === null,
    );
    this.stopping = true;
    for (const w of running) {
      w.expected = true;
      w.child.kill('SIGTERM');
    }
    const results = [];
    for (const w of running) {
      const timer = setTimeout(() => w.child.kill('SIGKILL'), timeoutMs);
      const { code, signal } = await w.exited;
      clearTimeout(timer);
      results.push({ name: w.name, code, signal });
    }
    return results;
  }

  /** Everything down, whatever state it is in (also after a failed start). */
  async stopAll(): Promise<void> {
    this.stopping = true;
    for (const w of this.workers.values()) {
      if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    }
    await Promise.all([...this.workers.values()].map((w) => w.exited));
    await this.server?.stop();
  }
}
