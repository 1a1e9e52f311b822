/**
 * An admission limit on server creates: at most `limit` POST /servers do their own work at once (checks,
 * reads, the grant, the quota claim and the row); the others wait their turn in the order they came. The
 * start RPC is not held: it is a wait on Temporal, not work here. A create's work is a few milliseconds of
 * CPU between awaits: fifty interleaved all answer near the end of the burst, while admitted a few at a time
 * the first answer first — the same throughput, a lower median answer time. Nova has no such limit
 * (README: where the compute API differs).
 */

/** Creates doing their own work at once, per API process (`--api-concurrent-creates`, api/settings.ts). */
export const DEFAULT_CONCURRENT_CREATES = 4;

export class AdmissionGate {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`admission limit must be ≥ 1 (got ${limit})`);
  }

  /**
   * Resolves once admitted (first come, first admitted) with the function that gives the slot up; calling
   * it again does nothing.
   */
  async enter(): Promise<() => void> {
    if (this.running < this.limit) this.running++;
    // The slot is handed over by the one leaving (running stays the same), so no later arrival jumps ahead.
    else await new Promise<void>((admit) => this.waiting.push(admit));
    let left = false;
    return () => {
      if (left) return;
      left = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    };
  }
}
