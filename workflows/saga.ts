/**
 * The saga: each step that created something registers its undo; on failure or cancellation the undos run
 * newest first. The build runs in a non-cancellable scope (see abort.ts), so a cancelled workflow still
 * runs every undo activity to its end. Undo activities retry until they succeed; one that still fails (non-retryable)
 * is recorded and the others go on, so one stuck resource never keeps the rest leaking.
 */
import { log, type ActivityFunctionWithOptions } from '@temporalio/workflow';
import { classify } from './failures';
import { call, type OneInputActivity } from './proxies';

export interface Undo {
  /** As the status and the Web UI show it: "neutron: delete ports of <uuid>". */
  name: string;
  /** Set for work on a compute host: skipped when that host is unreachable. */
  host?: string;
  run: () => Promise<unknown>;
}

export interface CompensationReport {
  done: string[];
  skipped: string[];
  failed: Array<{ name: string; error: string }>;
}

export class Saga {
  private readonly undos: Undo[] = [];

  /** Registers an undo; the answer withdraws it (what it undoes turned out not to be this run's). */
  add(name: string, run: () => Promise<unknown>, host?: string): () => void {
    const undo: Undo = { name, run, ...(host ? { host } : {}) };
    this.undos.push(undo);
    return () => {
      const at = this.undos.indexOf(undo);
      if (at >= 0) this.undos.splice(at, 1);
    };
  }

  /** Registers an undo activity: its summary is both the undo's name and its Web UI summary. */
  addCall<F extends OneInputActivity>(
    stub: ActivityFunctionWithOptions<F>,
    summary: string,
    input: Parameters<F>[0],
    host?: string,
  ): () => void {
    return this.add(summary, () => call(stub, summary, input), host);
  }

  get size(): number {
    return this.undos.length;
  }

  /**
   * Runs and forgets every registered undo, newest first. Undos on `unreachableHost` are skipped: no worker
   * serves that host, and whatever it holds is the host's own clean-up when it comes back (Nova's periodic
   * tasks), not something a queue nobody polls could do.
   */
  async compensate(
    options: { unreachableHost?: string; onProgress?: (line: string) => void } = {},
  ): Promise<CompensationReport> {
    const report: CompensationReport = { done: [], skipped: [], failed: [] };
    const down = new Set(options.unreachableHost ? [options.unreachableHost] : []);
    while (this.undos.length > 0) {
      const undo = this.undos.pop() as Undo;
      if (undo.host !== undefined && down.has(undo.host)) {
        report.skipped.push(undo.name);
        options.onProgress?.(`skipped (host down): ${undo.name}`);
        continue;
      }
      try {
        await undo.run();
        report.done.push(undo.name);
        options.onProgress?.(undo.name);
      } catch (err) {
        const failure = classify(err, undo.host);
        if (undo.host !== undefined && failure.hostDown) {
          down.add(undo.host);
          report.skipped.push(undo.name);
          options.onProgress?.(`skipped (host down): ${undo.name}`);
          continue;
        }
        log.error('compensation failed', { undo: undo.name, type: failure.type, error: failure.message });
        report.failed.push({ name: undo.name, error: `${failure.type}: ${failure.message}` });
        options.onProgress?.(`failed: ${undo.name}`);
      }
    }
    return report;
  }
}
