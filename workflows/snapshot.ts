/**
 * createImage of an image-backed server (`openstack server image create`, Nova's compute/api.py snapshot
 * and the compute manager's snapshot_instance): a server operation (server-operation.ts) on the server's
 * own host, the image nova-api created (queued, with Nova's properties) filled from the guest's disk:
 *
 *   nova-api: checks, the image created, task_state image_snapshot_pending, action `createImage` →
 *   nova-compute: task_state image_snapshot → image_pending_upload → the driver's snapshot of the root
 *   disk on the host (fake: the raw disk; qemu: the overlay flattened) → image_uploading → the file
 *   uploaded into the image by the controller (Glance: saving → active, size and checksum) →
 *   the host's file removed → task_state None, vm_state unchanged.
 *
 * A failure deletes the image (delete_image_on_error) and the host's file, puts task_state back and keeps
 * the fault (reverts_task_state, wrap_instance_fault); the server stays as it was.
 */
import { call, controller, controllerCleanup, controllerUpload } from './proxies';
import { parseSnapshotRequest } from './request-schema';
import { runServerOperation } from './server-operation';
import type { ServerOperationResult, SnapshotRequest } from './types';

export async function snapshotInstance(input: SnapshotRequest): Promise<ServerOperationResult> {
  const request = parseSnapshotRequest(input);
  const { instanceUuid, requestId } = request;
  const { imageId } = request.snapshot;
  const step = { instanceUuid, requestId, operation: 'snapshot' as const };
  return runServerOperation(request, {
    name: 'snapshot',
    run: async ({ instance, host, compute, saga }) => {
      const keepImage = saga.addCall(
        controllerCleanup.deleteSnapshotImage,
        `glance: delete image ${imageId}`,
        { imageId },
      );
      await call(controller.advanceOperation, 'nova-compute: task_state=image_snapshot', {
        ...step,
        taskState: 'image_snapshot',
      });
      await call(controller.advanceOperation, 'nova-compute: task_state=image_pending_upload', {
        ...step,
        taskState: 'image_pending_upload',
      });
      saga.addCall(
        compute.cleanup.removeSnapshotFile,
        `nova-compute: remove snapshot file on ${host}`,
        { imageId },
        host,
      );
      const file = await call(compute.snapshot.snapshotDisk, `nova-compute: snapshot disk on ${host}`, {
        instanceUuid,
        imageId,
      });
      await call(controller.advanceOperation, 'nova-compute: task_state=image_uploading', {
        ...step,
        taskState: 'image_uploading',
      });
      await call(controllerUpload.uploadSnapshot, `glance: upload image ${imageId}`, {
        imageId,
        instanceUuid,
        projectId: instance.projectId,
        path: file.path,
        diskFormat: file.diskFormat,
      });
      // The image is active: from here on it stays, whatever happens to the server (Nova deletes only an
      // image that is not active yet).
      keepImage();
      await call(compute.cleanup.removeSnapshotFile, `nova-compute: remove snapshot file on ${host}`, {
        imageId,
      });
      return {};
    },
  });
}
