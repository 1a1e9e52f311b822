/**
 * The chaos plan, all of it drawn from the seed before anything runs: which boots are submitted (and which
 * must fail, and how), which finished servers are deleted, and at which point of the submission each fault
 * or kill happens (with the seeds by which a workflow reset or terminate picks among the running boots).
 * Two runs with the same seed and size submit the same requests and inject the same faults at the same
 * submission counts; only the timing of the machine differs.
 */
import { Rng } from './rng';

export const COMPUTE_HOSTS = ['compute1', 'compute2', 'compute3'] as const;
export type ComputeHostName = (typeof COMPUTE_HOSTS)[number];

/**
 * image / volume: ordinary boots (ACTIVE, unless chaos made them fail with a fault).
 * The rest must fail: quota (a project with a tiny quota: refused, no server), missing-image (refused),
 * corrupt-image (its data fails verification on the host: ERROR), full-subnet (no IP left: ERROR).
 */
export type RequestKind = 'image' | 'volume' | 'quota' | 'missing-image' | 'corrupt-image' | 'full-subnet';
export const MUST_FAIL: readonly RequestKind[] = ['quota', 'missing-image', 'corrupt-image', 'full-subnet'];

export interface PlannedRequest {
  index: number;
  requestId: string;
  kind: RequestKind;
  /** For volume boots: keep the volume when the server is deleted. */
  keepVolume: boolean;
  /** Delete the server once it is ACTIVE. */
  deleteWhenActive: boolean;
  /** Submit the same request id again right after the first start (a client's retry). */
  resubmit: boolean;
  /** Pause before submitting this one (ms). */
  gapMs: number;
}

export type ChaosEvent =
  | { type: 'kill-controller'; pauseMs: number }
  | { type: 'kill-network'; pauseMs: number }
  | { type: 'kill-compute'; host: ComputeHostName; pauseMs: number }
  | { type: 'lose-compute'; host: ComputeHostName }
  | { type: 'restart-server'; pauseMs: number }
  | { type: 'spawn-fail'; host: ComputeHostName; times: number }
  | { type: 'spawn-slow'; host: ComputeHostName; ms: number; times: number }
  | { type: 'corrupt-cache'; host: ComputeHostName; how: 'truncate' | 'scribble' }
  | { type: 'fetch-fail'; host: ComputeHostName; times: number }
  | { type: 'volume-slow'; delayMs: number; forMs: number }
  | { type: 'volume-fail'; forMs: number }
  | { type: 'db-busy'; service: 'nova' | 'placement' | 'neutron' | 'cinder'; holdMs: number }
  /** `temporal workflow reset` of `count` running boots, each to one of its workflow-task-completed events. */
  | { type: 'reset-boots'; count: number; seed: number }
  /** `temporal workflow terminate` of one boot already working on a host (the reconciler finishes it). */
  | { type: 'terminate-boot'; seed: number };

export type ChaosEventType = ChaosEvent['type'];

export interface ScheduledEvent {
  /** Fired when this many boots have been submitted, */
  atBoot: number;
  /** or when this fraction of the submission window has passed, whichever comes first. */
  atFraction: number;
  event: ChaosEvent;
}

export interface ChaosPlan {
  seed: number;
  requests: PlannedRequest[];
  events: ScheduledEvent[];
  /** The compute host killed for good. */
  lostHost: ComputeHostName;
}

export interface PlanOptions {
  seed: number;
  boots: number;
  short: boolean;
  /** No boots from volume (the real-guest preset: its AMI guest boots from its kernel and ramdisk). */
  noVolumeBoots?: boolean;
}

const KIND_WEIGHTS: Record<RequestKind, number> = {
  image: 55,
  volume: 23,
  quota: 6,
  'missing-image': 5,
  'corrupt-image': 5,
  'full-subnet': 6,
};

function planRequests(rng: Rng, options: PlanOptions): PlannedRequest[] {
  const weights = options.noVolumeBoots ? { ...KIND_WEIGHTS, volume: 0 } : KIND_WEIGHTS;
  const kinds: RequestKind[] = [];
  for (let i = 0; i < options.boots; i++) kinds.push(rng.weighted(weights));
  // Every kind at least once, at seeded places, however small the run.
  const every: RequestKind[] = options.noVolumeBoots
    ? ['image', ...MUST_FAIL]
    : ['image', 'volume', ...MUST_FAIL];
  if (options.boots >= every.length * 2) {
    for (const kind of every) {
      if (kinds.includes(kind)) continue;
      let at = rng.int(0, options.boots - 1);
      // Take the place of a kind that occurs more than once, so no other kind disappears.
      while (kinds.filter((k) => k === kinds[at]).length < 2) at = (at + 1) % options.boots;
      kinds[at] = kind;
    }
  }
  return kinds.map((kind, index) => ({
    index,
    requestId: `chaos-${options.seed}-${String(index).padStart(4, '0')}`,
    kind,
    keepVolume: kind === 'volume' && rng.chance(0.25),
    deleteWhenActive: (kind === 'image' || kind === 'volume') && rng.chance(0.35),
    resubmit: rng.chance(0.05),
    gapMs: rng.int(0, options.short ? 150 : 250),
  }));
}

function planEvents(rng: Rng, boots: number, short: boolean, lostHost: ComputeHostName): ScheduledEvent[] {
  const alive = COMPUTE_HOSTS.filter((h) => h !== lostHost);
  const events: ScheduledEvent[] = [];
  // A point of the submission, as a fraction of it between lo and hi.
  const add = (lo: number, hi: number, event: ChaosEvent) => {
    const atFraction = lo + rng.next() * (hi - lo);
    events.push({ atBoot: Math.max(1, Math.round(boots * atFraction)), atFraction, event });
  };

  // Early and overlapping in the short run, so that its outages fit its few minutes; the host is lost once
  // servers stand on it (day two evacuates them).
  const w = short
    ? { controller: [0.05, 0.15], lose: [0.75, 0.9], network: [0.2, 0.35], server: [0.3, 0.5] }
    : { controller: [0.1, 0.35], lose: [0.35, 0.6], network: [0.3, 0.55], server: [0.45, 0.75] };
  const pause = (lo: number, hi: number) => rng.int(lo, short ? Math.min(hi, 4_000) : hi);
  add(w.controller[0]!, w.controller[1]!, { type: 'kill-controller', pauseMs: pause(2_000, 10_000) });
  add(w.lose[0]!, w.lose[1]!, { type: 'lose-compute', host: lostHost });
  add(w.network[0]!, w.network[1]!, { type: 'kill-network', pauseMs: pause(1_000, 10_000) });
  add(w.server[0]!, w.server[1]!, { type: 'restart-server', pauseMs: rng.int(1_000, 5_000) });
  add(0.05, 0.8, { type: 'spawn-fail', host: rng.pick(alive), times: rng.int(2, 4) });
  add(0.3, 0.8, { type: 'corrupt-cache', host: rng.pick(alive), how: rng.pick(['truncate', 'scribble']) });
  add(0.05, 0.8, { type: 'volume-slow', delayMs: rng.int(3_000, 8_000), forMs: rng.int(10_000, 20_000) });
  add(0.05, 0.8, {
    type: 'db-busy',
    service: rng.pick(['nova', 'placement', 'neutron', 'cinder']),
    holdMs: rng.int(2_000, 6_000),
  });
  if (!short) {
    add(0.1, 0.3, { type: 'kill-compute', host: rng.pick(alive), pauseMs: rng.int(5_000, 25_000) });
    add(0.6, 0.85, { type: 'kill-controller', pauseMs: rng.int(2_000, 10_000) });
    add(0.65, 0.9, { type: 'kill-compute', host: rng.pick(alive), pauseMs: rng.int(5_000, 25_000) });
    add(0.7, 0.9, { type: 'kill-network', pauseMs: rng.int(2_000, 10_000) });
    add(0.1, 0.9, { type: 'spawn-fail', host: rng.pick(alive), times: rng.int(2, 5) });
    add(0.1, 0.9, {
      type: 'spawn-slow',
      host: rng.pick(alive),
      ms: rng.int(2_000, 6_000),
      times: rng.int(2, 6),
    });
    add(0.1, 0.9, { type: 'corrupt-cache', host: rng.pick(alive), how: rng.pick(['truncate', 'scribble']) });
    add(0.1, 0.9, { type: 'fetch-fail', host: rng.pick(alive), times: rng.int(1, 3) });
    add(0.1, 0.9, { type: 'volume-fail', forMs: rng.int(4_000, 10_000) });
    add(0.1, 0.9, { type: 'volume-slow', delayMs: rng.int(3_000, 8_000), forMs: rng.int(10_000, 20_000) });
    for (let i = 0; i < 3; i++) {
      add(0.05, 0.95, {
        type: 'db-busy',
        service: rng.pick(['nova', 'placement', 'neutron', 'cinder']),
        holdMs: rng.int(2_000, 7_000),
      });
    }
  }
  // Operators' hands on Temporal itself, drawn last so the plans of the faults above stay as they were.
  // Early enough that the reconciler (a minute's grace, every minute) finishes the terminated build before
  // the run's bound.
  add(0.15, short ? 0.45 : 0.6, { type: 'reset-boots', count: short ? 2 : 4, seed: rng.int(1, 2 ** 30) });
  add(0.15, short ? 0.45 : 0.6, { type: 'terminate-boot', seed: rng.int(1, 2 ** 30) });
  if (!short) add(0.3, 0.7, { type: 'terminate-boot', seed: rng.int(1, 2 ** 30) });
  return events.sort((a, b) => a.atFraction - b.atFraction);
}

export function makePlan(options: PlanOptions): ChaosPlan {
  const root = new Rng(options.seed);
  // One of the two hosts the RAM weigher fills first, so that builds are caught on it when it dies.
  const lostHost = root.fork('lost-host').pick(['compute1', 'compute2'] as const);
  return {
    seed: options.seed,
    requests: planRequests(root.fork('requests'), options),
    events: planEvents(root.fork('events'), options.boots, options.short, lostHost),
    lostHost,
  };
}
