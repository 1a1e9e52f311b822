/**
 * A server snapshot's controller half (Nova's glance image API as the compute manager and its libvirt
 * driver call it): the host's snapshot file uploaded into the image nova-api created (queued → saving →
 * active, with the driver's disk format and its properties), and the image deleted when the snapshot
 * fails (the compute manager's delete_image_on_error). The host only hands over the file's path.
 */
import { createReadStream } from 'node:fs';
import type { Glance, Image } from '../cloud/glance';
import { CloudError } from '../cloud/errors';
import { adaptAll, ignoreNotFound } from './failures';

/** nova-compute's elevated context (the compute manager's context.elevated()). */
const ADMIN = { projectId: 'nova', roles: ['admin'] } as const;

export interface UploadSnapshotInput {
  imageId: string;
  instanceUuid: string;
  projectId: string;
  /** The file the host's snapshotDisk made, and its format. */
  path: string;
  diskFormat: 'raw' | 'qcow2';
}

export interface UploadedSnapshot {
  imageId: string;
  status: string;
  size: number | null;
  checksum: string | null;
}

export function createSnapshotActivities({ glance }: { glance: Glance }) {
  return adaptAll({
    /**
     * The libvirt driver's snapshot upload: the metadata it adds (disk and container format,
     * image_location=snapshot, image_state=available, owner_id), then the data. An image already active
     * (a retry after the upload committed) is answered as it is.
     */
    async uploadSnapshot(input: UploadSnapshotInput): Promise<UploadedSnapshot> {
      const answer = (image: Image): UploadedSnapshot => ({
        imageId: image.id,
        status: image.status,
        size: image.size,
        checksum: image.checksum,
      });
      const image = await glance.getImage(input.imageId, ADMIN);
      if (image.status === 'active') return answer(image);
      if (image.status === 'saving') {
        throw new CloudError('ServiceUnavailable', `Image ${input.imageId} is already being uploaded`);
      }
      if (image.status !== 'queued') {
        throw new CloudError(
          'NotFound',
          `Image ${input.imageId} is ${image.status}: the snapshot has nowhere to go`,
        );
      }
      await glance.updateImage(input.imageId, {
        diskFormat: input.diskFormat,
        containerFormat: 'bare',
        properties: { image_location: 'snapshot', image_state: 'available', owner_id: input.projectId },
      });
      return answer(await glance.uploadImageData(input.imageId, createReadStream(input.path)));
    },

    /** delete_image_on_error: the snapshot's image removed (already gone: nothing to do). */
    async deleteSnapshotImage(input: { imageId: string }): Promise<void> {
      await ignoreNotFound(() => glance.deleteImage(input.imageId));
    },
  });
}
