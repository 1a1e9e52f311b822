/**
 * The workflows' hand-kept lists checked against the real activity objects and a real boot's history:
 * every activity has exactly one proxy group (one retry policy), the compute groups are exactly what a
 * compute worker serves (failures.ts reads a compute failure by them), and the skeleton boot stands for
 * exactly the steps the real boot runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  createComputeActivities,
  createControllerActivities,
  createNetworkActivities,
  type ControllerServices,
} from '../activities';
import type { ComputeHost } from '../cloud/compute';
import {
  COMPUTE_CLEANUPS,
  COMPUTE_FETCHES,
  COMPUTE_OPS,
  COMPUTE_VOLUME_OPS,
  COMPUTE_POWER,
  COMPUTE_READS,
  COMPUTE_SNAPSHOTS,
  CONTROLLER_CLEANUPS,
  CONTROLLER_PERIODIC,
  CONTROLLER_POLLS,
  CONTROLLER_STEPS,
  CONTROLLER_UPLOADS,
  NETWORK_CLEANUPS,
  NETWORK_POLLS,
  NETWORK_STEPS,
  VOLUME_STEPS,
} from '../workflows/proxies';
import { SKELETON_PLAN, type SkeletonPlanStep } from '../workflows/skeleton';

// The factories only close over their services: building the objects touches none of them.
const controller = createControllerActivities({} as ControllerServices);
const network = createNetworkActivities({} as Parameters<typeof createNetworkActivities>[0]);
const compute = createComputeActivities({} as ComputeHost);

function checkGroups(all: object, groups: ReadonlyArray<readonly string[]>, unused: string[]) {
  const grouped = groups.flat();
  assert.equal(new Set(grouped).size, grouped.length, `an activity in two groups: ${grouped.join(', ')}`);
  const names = Object.keys(all).sort();
  assert.deepEqual([...grouped, ...unused].sort(), names);
}

test('each controller activity has exactly one proxy group; nothing unused', () => {
  checkGroups(
    controller,
    [
      CONTROLLER_STEPS,
      VOLUME_STEPS,
      CONTROLLER_POLLS,
      CONTROLLER_CLEANUPS,
      CONTROLLER_PERIODIC,
      CONTROLLER_UPLOADS,
    ],
    [],
  );
});

test('each network activity has exactly one proxy group', () => {
  // dhcpNetworks is the DHCP sync's, with its own read policy (workflows/compute-service.ts).
  checkGroups(network, [NETWORK_STEPS, NETWORK_POLLS, NETWORK_CLEANUPS], ['dhcpNetworks']);
});

test('the compute groups are exactly the activities a compute worker serves', () => {
  // auditHost is the leak audit's, getConsoleOutput the console log's, readPowerStates the power-state
  // sync's and readDhcpNetworks / syncDhcpNetworks the DHCP sync's, each with its own read policy
  // (workflows/operator.ts, console-output.ts, compute-service.ts).
  checkGroups(
    compute,
    [
      COMPUTE_OPS,
      COMPUTE_FETCHES,
      COMPUTE_CLEANUPS,
      COMPUTE_POWER,
      COMPUTE_READS,
      COMPUTE_VOLUME_OPS,
      COMPUTE_SNAPSHOTS,
    ],
    ['auditHost', 'getConsoleOutput', 'readPowerStates', 'readDhcpNetworks', 'syncDhcpNetworks'],
  );
});

interface HistoryEvent {
  activityTaskScheduledEventAttributes?: { activityType: { name: string }; taskQueue: { name: string } };
  markerRecordedEventAttributes?: {
    markerName: string;
    details?: { data?: { payloads?: Array<{ data: string }> } };
  };
}

test('the skeleton boot stands for the real boot from an image, step by step and queue by queue', () => {
  // Recorded after the controller's steps became local activities (run by the controller's worker).
  const file = path.join(__dirname, 'histories', 'local-steps', 'sequential-from-image.json');
  const history = JSON.parse(readFileSync(file, 'utf8')) as { events: HistoryEvent[] };
  const real = history.events.flatMap((e) => {
    const marker = e.markerRecordedEventAttributes;
    const local =
      marker?.markerName === 'core_local_activity' ? marker.details?.data?.payloads?.[0] : undefined;
    if (local) {
      const data = JSON.parse(Buffer.from(local.data, 'base64').toString('utf8')) as {
        activity_type: string;
      };
      return [`${data.activity_type}@controller`];
    }
    const a = e.activityTaskScheduledEventAttributes;
    if (!a) return [];
    const queue = a.taskQueue.name.startsWith('compute@') ? 'compute' : a.taskQueue.name;
    return [`${a.activityType.name}@${queue}`];
  });
  const flat = (steps: readonly SkeletonPlanStep[]) => steps.map((s) => `${s.activity}@${s.role}`);
  const skeleton = SKELETON_PLAN.flatMap((section) =>
    'branches' in section ? section.branches.flatMap(flat) : flat([section]),
  );
  assert.equal(real.length, 19);
  assert.deepEqual(skeleton, real);
});
