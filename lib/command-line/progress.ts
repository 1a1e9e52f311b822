/**
 * Live progress of a boot from the workflow's `status` query: on a terminal, a block of lines redrawn in
 * place (one per step, with its host and time); otherwise plain lines, one per change, for logs and CI.
 */
import type { BootStatus, StepTiming } from '../../workflows/types';
import { escapeControls } from './output';

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

function duration(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function stateLine(status: BootStatus): string {
  const where = status.host && !status.step.includes(status.host) ? ` on ${status.host}` : '';
  const attempt = status.attempt > 1 ? ` (attempt ${status.attempt} of ${status.maxAttempts})` : '';
  const states = status.vmState
    ? `  vm_state=${status.vmState} task_state=${status.taskState ?? 'None'}`
    : '';
  return `${status.step}${where}${attempt}${states}`;
}

export interface ProgressOptions {
  out?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Redraw in place (a terminal) or print plain lines; default: whether `out` is a TTY. */
  tty?: boolean;
  title: string;
  now?: () => number;
}

export class BootProgress {
  private readonly out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  private readonly tty: boolean;
  private readonly title: string;
  private readonly now: () => number;
  private readonly started: number;
  private drawnLines = 0;
  private frame = 0;
  private last: BootStatus | null = null;
  // Plain mode: what has been told already.
  private toldStep = '';
  private toldStarts = 0;
  private readonly toldEnds = new Set<number>();
  private toldCompensations = 0;
  private toldError = '';

  constructor(options: ProgressOptions) {
    this.out = options.out ?? process.stderr;
    this.tty = options.tty ?? Boolean(this.out.isTTY);
    this.title = options.title;
    this.now = options.now ?? Date.now;
    this.started = this.now();
    if (!this.tty) this.write(`${this.title}\n`);
  }

  /** A note while the status cannot be read (no controller worker answering yet). */
  waiting(reason: string): void {
    if (this.tty) this.redraw([`${this.title}`, `  ${SPINNER[this.frame++ % SPINNER.length]} ${reason}`]);
    else if (this.toldStep !== `waiting:${reason}`) {
      this.toldStep = `waiting:${reason}`;
      this.line(reason);
    }
  }

  update(status: BootStatus): void {
    this.last = status;
    if (this.tty) this.redraw(this.block(status));
    else this.plain(status);
  }

  /** Leaves the final block on screen (terminal) and ends the line. */
  finish(): void {
    if (this.tty && this.last) this.redraw(this.block(this.last, true));
  }

  private block(status: BootStatus, final = false): string[] {
    const spin = final ? ' ' : SPINNER[this.frame++ % SPINNER.length];
    const lines = [`${this.title}`, `  ${spin} ${stateLine(status)}`];
    const width = Math.max(...status.timings.map((t) => t.step.length), 8);
    for (const t of status.timings) lines.push(`    ${this.timingLine(t, width)}`);
    for (const c of status.compensations) lines.push(`    ↺ ${c}`);
    if (status.lastError) {
      const where = status.lastError.host ? ` on ${status.lastError.host}` : '';
      const next = status.lastError.rescheduled ? ' — rescheduling' : '';
      lines.push(`  ! ${status.lastError.type}${where}: ${status.lastError.message}${next}`);
    }
    return lines;
  }

  private timingLine(t: StepTiming, width: number): string {
    const mark =
      t.outcome === 'ok' ? '✓' : t.outcome === 'failed' ? '✗' : t.outcome === 'cancelled' ? '−' : '…';
    const host = t.host ? ` ${t.host}` : '';
    const time = t.ms !== undefined ? duration(t.ms) : duration(Math.max(0, this.now() - t.startedAt));
    return `${mark} ${t.step.padEnd(width)}${host.padEnd(10)} ${time}`;
  }

  private plain(status: BootStatus): void {
    if (status.step !== this.toldStep) {
      this.toldStep = status.step;
      this.line(stateLine(status));
    }
    status.timings.forEach((t, i) => {
      if (i >= this.toldStarts) {
        this.toldStarts = i + 1;
        if (t.outcome === undefined) this.line(`  started ${t.step}${t.host ? ` on ${t.host}` : ''}`);
      }
      if (t.outcome !== undefined && !this.toldEnds.has(i)) {
        this.toldEnds.add(i);
        const host = t.host ? ` on ${t.host}` : '';
        this.line(`  ${t.outcome === 'ok' ? 'done' : t.outcome} ${t.step}${host} (${duration(t.ms ?? 0)})`);
      }
    });
    for (const c of status.compensations.slice(this.toldCompensations)) this.line(`  undo: ${c}`);
    this.toldCompensations = status.compensations.length;
    const error = status.lastError ? `${status.lastError.type}: ${status.lastError.message}` : '';
    if (error && error !== this.toldError) {
      this.toldError = error;
      const where = status.lastError?.host ? ` on ${status.lastError.host}` : '';
      this.line(`  error${where}: ${error}${status.lastError?.rescheduled ? ' (rescheduling)' : ''}`);
    }
  }

  private line(text: string): void {
    const elapsed = ((this.now() - this.started) / 1000).toFixed(1).padStart(5);
    this.write(`[${elapsed}s] ${escapeControls(text)}\n`);
  }

  private redraw(lines: string[]): void {
    const columns = this.out.columns ?? 120;
    const clipped = lines
      .map(escapeControls)
      .map((l) => (l.length > columns - 1 ? `${l.slice(0, columns - 2)}…` : l));
    const up = this.drawnLines > 0 ? `\x1b[${this.drawnLines}A` : '';
    this.write(`${up}\r\x1b[0J${clipped.join('\n')}\n`);
    this.drawnLines = clipped.length;
  }

  private write(text: string): void {
    this.out.write(text);
  }
}
