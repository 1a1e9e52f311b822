/** The summary of a chaos run: outcomes per kind of request, then what was done to the cloud and the verdict. */
import Table from 'cli-table3';
import type { ChaosEventType } from './plan';
import type { RequestKind } from './plan';
import type { Outcome, Verification } from './verify';

export interface RunFacts {
  seed: number;
  boots: number;
  /** Boots in the plan; those not submitted within the submission window are left out. */
  planned: number;
  windowSeconds: number;
  seconds: number;
  lostHost: string;
  /** Chaos events that ran, by type. */
  events: Partial<Record<ChaosEventType, number>>;
  /** Events that could not be carried out (e.g. no cached image to damage yet). */
  skippedEvents: string[];
  workerCrashes: number;
  /** Worker starts that found the dev server down, exited 3, and were started again. */
  startsRetried: number;
  resubmissions: { total: number; answeredAlreadyStarted: number };
  deletes: { asked: number; deleted: number };
  reschedules: number;
  compensations: number;
  gracefulStop: Array<{ name: string; code: number | null; signal: string | null }>;
}

const OUTCOMES: Outcome[] = ['ACTIVE', 'DELETED', 'ERROR', 'REFUSED', 'LOST', 'UNFINISHED'];
const KINDS: RequestKind[] = ['image', 'volume', 'quota', 'missing-image', 'corrupt-image', 'full-subnet'];

function table(head: string[], colWidths?: number[]): Table.Table {
  return new Table({
    head,
    style: { head: [], border: [] },
    ...(colWidths ? { colWidths, wordWrap: true, wrapOnWordBoundary: true } : {}),
  });
}

function countBy<T>(items: T[], key: (item: T) => string | undefined): string {
  const counts = new Map<string, number>();
  for (const item of items) {
    const k = key(item);
    if (k) counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
}

export function outcomeTable(v: Verification): string {
  const t = table(['request kind', ...OUTCOMES, 'failure types']);
  for (const kind of KINDS) {
    const mine = v.verdicts.filter((x) => x.kind === kind);
    if (mine.length === 0) continue;
    t.push([
      `${kind} (${mine.length})`,
      ...OUTCOMES.map((o) => mine.filter((x) => x.outcome === o).length || ''),
      countBy(mine, (x) => x.failureType) || '',
    ]);
  }
  t.push([
    `all (${v.verdicts.length})`,
    ...OUTCOMES.map((o) => v.verdicts.filter((x) => x.outcome === o).length),
    '',
  ]);
  return t.toString();
}

export function summaryTable(facts: RunFacts, v: Verification): string {
  const e = facts.events;
  const kills = [
    `controller ${e['kill-controller'] ?? 0}`,
    `network ${e['kill-network'] ?? 0}`,
    `compute ${e['kill-compute'] ?? 0} (restarted)`,
    `${facts.lostHost} lost for good ${e['lose-compute'] ?? 0}`,
  ].join(', ');
  const faults = [
    `spawn fail ${e['spawn-fail'] ?? 0}`,
    `spawn slow ${e['spawn-slow'] ?? 0}`,
    `image download fail ${e['fetch-fail'] ?? 0}`,
    `cached image damaged ${e['corrupt-cache'] ?? 0}`,
    `volume create slow ${e['volume-slow'] ?? 0}`,
    `volume create fail ${e['volume-fail'] ?? 0}`,
    `database busy ${e['db-busy'] ?? 0}`,
  ].join(', ');
  const outcomesOf = (workflow: 'reset' | 'terminated') => {
    const mine = v.verdicts.filter((x) => x.workflow === workflow);
    return `${mine.length}${mine.length ? ` (${countBy(mine, (x) => x.outcome)})` : ''}`;
  };
  const clean = facts.gracefulStop.filter((w) => w.code === 0).length;
  const t = table([`chaos seed ${facts.seed}`, 'result'], [21, 96]);
  t.push(
    [
      'requests',
      `${facts.boots} of ${facts.planned} planned boots submitted in the ${facts.windowSeconds} s window; submission and drain took ${facts.seconds} s; ${facts.resubmissions.total} submitted twice (${facts.resubmissions.answeredAlreadyStarted} answered "already started")`,
    ],
    ['outcomes', OUTCOMES.map((o) => `${o} ${v.verdicts.filter((x) => x.outcome === o).length}`).join(', ')],
    ['deletes', `${facts.deletes.deleted} of ${facts.deletes.asked} asked`],
    ['kills (SIGKILL)', kills],
    ['dev server restarts', String(e['restart-server'] ?? 0)],
    ['resets', `${outcomesOf('reset')} boots reset mid-flight to a workflow-task event`],
    [
      'terminations',
      `${outcomesOf('terminated')} boots terminated mid-flight (the reconciler finishes them)`,
    ],
    [
      'faults injected',
      faults + (facts.skippedEvents.length ? `; skipped: ${facts.skippedEvents.join(', ')}` : ''),
    ],
    [
      'worker crashes',
      `${facts.workerCrashes} (starts retried while the dev server was down: ${facts.startsRetried})`,
    ],
    ['reschedules', `${facts.reschedules} (${v.movedOffLostHost} boots moved off ${facts.lostHost})`],
    ['compensations', `${facts.compensations} undo steps run`],
    ['graceful stop', `${clean} of ${facts.gracefulStop.length} workers exited 0 on SIGTERM`],
    ['leaks', `${v.leaks.length} (left on lost ${facts.lostHost}: ${v.lostHostLeftovers.length})`],
    ['violations', String(v.violations.length)],
  );
  return t.toString();
}
