/**
 * The boot's skeleton (benchmarks only): the same shape as createInstance's happy path, booting from an
 * image — the same 19 activities on the same task queues (controller, network, compute@<host>), the same
 * two parallel sections — but every activity does nothing. Its latency is the floor Temporal itself sets
 * for a boot on this machine. `sequential: true` runs the same activities one after the other, which is
 * what the parallel sections save.
 *
 *   authenticate, authorize                                         controller
 *   validate request | validate networks                            controller | network
 *   reserve quota, instance record, select destination, set host,  controller
 *   task_state=networking
 *   network:  create ports, bind, plug (compute), device up, status  network, compute@<host>
 *   | block devices: task_state=block_device_mapping               controller
 *   | image: fetch                                                  compute@<host>
 *   task_state=spawning, spawn, finish                              controller, compute@<host>
 */
import { proxyActivities } from '@temporalio/workflow';
import type { SkeletonActivities, SkeletonStep } from '../activities/skeleton';
import { runBranches } from './branches';
import { computeQueue, CONTROLLER_QUEUE, NETWORK_QUEUE } from './names';

export interface SkeletonBootInput {
  /** The host the skeleton "schedules" to (its compute@<host> queue must have a worker). */
  host: string;
  sequential?: boolean;
}

export interface SkeletonBootResult {
  host: string;
  steps: number;
}

const options = { startToCloseTimeout: '30 seconds', retry: { maximumAttempts: 3 } } as const;
const controller = proxyActivities<SkeletonActivities>({ taskQueue: CONTROLLER_QUEUE, ...options });
const network = proxyActivities<SkeletonActivities>({ taskQueue: NETWORK_QUEUE, ...options });

export async function skeletonBoot(input: SkeletonBootInput): Promise<SkeletonBootResult> {
  const parallel = !(input.sequential ?? false);
  const { host } = input;
  const compute = proxyActivities<SkeletonActivities>({ taskQueue: computeQueue(host), ...options });
  let steps = 0;
  const counted = (run: () => Promise<SkeletonStep>) => {
    steps++;
    return run();
  };
  // With the step as the activity's summary, as the real workflow's `call` does (Web UI, histories).
  const ctl = (step: string) =>
    counted(() => controller.skeletonController.executeWithOptions({ summary: step }, [{ step }]));
  const net = (step: string) =>
    counted(() => network.skeletonNetwork.executeWithOptions({ summary: step }, [{ step }]));
  const cmp = (step: string) =>
    counted(() =>
      compute.skeletonCompute.executeWithOptions({ summary: `${step} on ${host}` }, [{ step, host }]),
    );

  await ctl('keystone: authenticate');
  await ctl('keystone: authorize');
  await runBranches(parallel, [() => ctl('nova-api: validate'), () => net('neutron: validate networks')]);
  await ctl('nova-api: reserve quota');
  await ctl('nova-conductor: instance record');
  await ctl('nova-scheduler: select destination');
  await ctl('nova-conductor: host');
  await ctl('nova-conductor: task_state=networking');
  await runBranches(parallel, [
    async () => {
      await net('neutron: create ports');
      await net('neutron: bind ports');
      await cmp('neutron: plug ports');
      await net('neutron-agent: device up');
      return net('neutron: port status');
    },
    () => ctl('nova-conductor: task_state=block_device_mapping'),
    () => cmp('glance: fetch image'),
  ]);
  await ctl('nova-conductor: task_state=spawning');
  await cmp('nova-compute: spawn');
  await ctl('nova-conductor: vm_state=active');
  return { host, steps };
}
