/**
 * The boot's skeleton (benchmarks only): the same shape as createInstance's happy path, booting from an
 * image — the same 19 activities, the controller's 11 as local activities and the other 8 on the same task
 * queues (network, compute@<host>), the same two parallel sections — but every activity does nothing. Its latency is the floor Temporal itself sets
 * for a boot on this machine. `sequential: true` runs the same activities one after the other, which is
 * what the parallel sections save.
 *
 *   authenticate, authorize                                         controller (local)
 *   validate request | validate networks                            controller | network
 *   reserve quota, instance record, select destination, set host,  controller
 *   task_state=networking
 *   network:  create ports, bind, plug (compute), device up, status  network, compute@<host>
 *   | block devices: task_state=block_device_mapping               controller
 *   | image: fetch                                                  compute@<host>
 *   task_state=spawning, spawn, finish                              controller, compute@<host>
 */
import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { SkeletonActivities, SkeletonStep } from '../activities/skeleton';
import { runBranches } from './branches';
import { computeQueue, NETWORK_QUEUE } from './names';

export interface SkeletonBootInput {
  /** The host the skeleton "schedules" to (its compute@<host> queue must have a worker). */
  host: string;
  sequential?: boolean;
}

export interface SkeletonBootResult {
  host: string;
  steps: number;
}

/** One stand-in: the real activity it stands for, its worker role and its Web UI summary. */
export interface SkeletonPlanStep {
  activity: string;
  role: 'controller' | 'network' | 'compute';
  summary: string;
}
/** Steps one after the other, or branches side by side (each branch a sequence). */
export type SkeletonSection = SkeletonPlanStep | { branches: SkeletonPlanStep[][] };

const ctl = (activity: string, summary: string): SkeletonPlanStep => ({
  activity,
  role: 'controller',
  summary,
});
const net = (activity: string, summary: string): SkeletonPlanStep => ({ activity, role: 'network', summary });
const cmp = (activity: string, summary: string): SkeletonPlanStep => ({ activity, role: 'compute', summary });

/**
 * The boot's happy path from an image, step by step. test/workflow-proxies.test.ts checks it against the
 * real boot's stored history (test/histories/local-steps/sequential-from-image.json), so it cannot drift.
 */
export const SKELETON_PLAN: readonly SkeletonSection[] = [
  ctl('authenticate', 'keystone: authenticate'),
  ctl('authorize', 'keystone: authorize'),
  {
    branches: [
      [ctl('validateBootRequest', 'nova-api: validate')],
      [net('validateNetworks', 'neutron: validate networks')],
    ],
  },
  ctl('reserveQuota', 'nova-api: reserve quota'),
  ctl('createInstanceRecord', 'nova-conductor: instance record'),
  ctl('selectDestinations', 'nova-scheduler: select destination'),
  ctl('setHost', 'nova-conductor: host'),
  ctl('setTaskState', 'nova-conductor: task_state=networking'),
  {
    branches: [
      [
        net('createPorts', 'neutron: create ports'),
        net('bindPorts', 'neutron: bind ports'),
        cmp('plugVifs', 'neutron: plug ports'),
        net('reportDevicesUp', 'neutron-agent: device up'),
        net('portStatuses', 'neutron: port status'),
      ],
      [ctl('setTaskState', 'nova-conductor: task_state=block_device_mapping')],
      [cmp('fetchImage', 'glance: fetch image')],
    ],
  },
  ctl('setTaskState', 'nova-conductor: task_state=spawning'),
  cmp('spawn', 'nova-compute: spawn'),
  ctl('finishBuild', 'nova-conductor: vm_state=active'),
];

const options = { startToCloseTimeout: '30 seconds', retry: { maximumAttempts: 3 } } as const;
// The controller's steps run as createInstance runs them: local activities in the workflow's worker.
const controller = proxyLocalActivities<Pick<SkeletonActivities, 'skeletonController'>>(options);
const network = proxyActivities<Pick<SkeletonActivities, 'skeletonNetwork'>>({
  taskQueue: NETWORK_QUEUE,
  ...options,
});

export async function skeletonBoot(input: SkeletonBootInput): Promise<SkeletonBootResult> {
  const parallel = !(input.sequential ?? false);
  const { host } = input;
  const compute = proxyActivities<Pick<SkeletonActivities, 'skeletonCompute'>>({
    taskQueue: computeQueue(host),
    ...options,
  });
  let steps = 0;
  // With the step as the activity's summary, as the real workflow's `call` does (Web UI, histories).
  const run = (step: SkeletonPlanStep): Promise<SkeletonStep> => {
    steps++;
    const { summary } = step;
    if (step.role === 'controller') {
      return controller.skeletonController.executeWithOptions({ summary }, [{ step: summary }]);
    }
    if (step.role === 'network') {
      return network.skeletonNetwork.executeWithOptions({ summary }, [{ step: summary }]);
    }
    return compute.skeletonCompute.executeWithOptions({ summary: `${summary} on ${host}` }, [
      { step: summary, host },
    ]);
  };
  const sequence = async (list: readonly SkeletonPlanStep[]) => {
    for (const step of list) await run(step);
  };
  for (const section of SKELETON_PLAN) {
    if ('branches' in section)
      await runBranches(
        parallel,
        section.branches.map((b) => () => sequence(b)),
      );
    else await run(section);
  }
  return { host, steps };
}
