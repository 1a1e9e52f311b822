/**
 * Rebuild (`openstack server rebuild --image`, Nova's rebuild server action): a server operation
 * (server-operation.ts) on the server's own host that keeps its ports, IPs, MACs and volumes and starts it
 * again from the new image, as nova-api's rebuild and nova-compute's rebuild_instance do:
 *
 *   nova-api: checks, task_state rebuilding, the new image / name / metadata saved, action `rebuild` →
 *   nova-api: the image as the caller may see it, active, with its location →
 *   task_state rebuild_block_device_mapping → the image fetched to the host →
 *   task_state rebuild_spawning → the old guest and its disk destroyed, a new disk over the new image,
 *   the guest spawned with the instance's plugged VIFs and connected volumes →
 *   a server that was stopped is stopped again → vm_state active (or stopped), no task.
 *
 * A failure leaves the server ERROR with the fault (the operation rule's onFailure 'error'): its ports and
 * volume connections stay its own, so a later delete (or another rebuild) releases or reuses them.
 */
import { parseRebuildRequest } from './request-schema';
import { call, controller } from './proxies';
import { runServerOperation } from './server-operation';
import type { RebuildRequest, ServerOperationResult } from './types';

export async function rebuildInstance(input: RebuildRequest): Promise<ServerOperationResult> {
  const request = parseRebuildRequest(input);
  const { instanceUuid, requestId } = request;
  const step = { instanceUuid, requestId, operation: 'rebuild' as const };
  return runServerOperation(request, {
    name: 'rebuild',
    beginChanges: { rebuild: request.rebuild },
    run: async ({ session, instance, host, compute }) => {
      const plan = await call(controller.rebuildPlan, `nova-api: image ${request.rebuild.imageRef}`, {
        token: session.token,
        instanceUuid,
      });
      await call(controller.advanceOperation, 'nova-conductor: task_state=rebuild_block_device_mapping', {
        ...step,
        taskState: 'rebuild_block_device_mapping',
      });
      const fetch = (location: typeof plan.image.location, what: string) =>
        call(compute.fetch.fetchImage, `glance: fetch ${what} to ${host}`, location).then((f) => f.path);
      const baseImagePath = await fetch(plan.image.location, 'image');
      const kernelPath = plan.image.kernel ? await fetch(plan.image.kernel, 'kernel image') : undefined;
      const ramdiskPath = plan.image.ramdisk ? await fetch(plan.image.ramdisk, 'ramdisk image') : undefined;
      await call(controller.advanceOperation, 'nova-conductor: task_state=rebuild_spawning', {
        ...step,
        taskState: 'rebuild_spawning',
      });
      const spawned = await call(compute.ops.rebuildGuest, `nova-compute: rebuild on ${host}`, {
        uuid: instanceUuid,
        name: plan.name,
        flavor: plan.flavor,
        baseImagePath,
        ...(kernelPath ? { kernelPath } : {}),
        ...(ramdiskPath ? { ramdiskPath } : {}),
      });
      if (instance.vmState !== 'stopped') return { powerState: spawned.powerState };
      // The compute manager stops a server rebuilt from STOPPED again.
      const off = await call(compute.powerWaitingCancel.powerOff, `nova-compute: power off on ${host}`, {
        instanceUuid,
      });
      return { powerState: off.powerState, vmState: 'stopped' };
    },
  });
}
