/**
 * cinder-api on the controller: the boot volume created from the image, its status for the workflow's
 * bounded wait, attachments (the connector is the chosen host), and clean-up.
 *
 * Nova keeps delete_on_termination in its block_device_mapping table, which the embedded Nova does not
 * have yet; until it does, the flag travels in the volume's request key (`<instance>:root:delete` or
 * `<instance>:root:keep`), which only this module writes and reads.
 */
import type { Cinder } from '../cloud/cinder';
import type { AttachedVolume, BootVolume, ImageLocation, VolumeConnectionInfo } from '../workflows/types';
import { adaptAll, ignoreNotFound } from './failures';
import { contextForOngoingWork, type TokenValidator } from './identity';

export interface VolumeServices {
  cinder: Cinder;
  identity: TokenValidator;
}

export interface CreateBootVolumeInput {
  token: string;
  instanceUuid: string;
  name: string;
  projectId: string;
  userId: string;
  sizeGb: number;
  image: ImageLocation;
  deleteOnTermination: boolean;
}

export function bootVolumeRequestKey(instanceUuid: string, deleteOnTermination: boolean): string {
  return `${instanceUuid}:root:${deleteOnTermination ? 'delete' : 'keep'}`;
}

export function deleteOnTerminationOf(requestKey: string): boolean {
  return requestKey.endsWith(':root:delete');
}

export interface InstanceVolume {
  volumeId: string;
  attachmentId: string;
  connectionInfo: VolumeConnectionInfo | null;
  deleteOnTermination: boolean;
}

export function createVolumeActivities({ cinder, identity }: VolumeServices) {
  return adaptAll({
    /** Accepted in `creating`; Cinder copies and verifies the image in the background. Idempotent. */
    async createBootVolume(input: CreateBootVolumeInput): Promise<BootVolume> {
      await contextForOngoingWork(identity, input.token);
      const volume = await cinder.createVolume({
        requestKey: bootVolumeRequestKey(input.instanceUuid, input.deleteOnTermination),
        projectId: input.projectId,
        userId: input.userId,
        sizeGb: input.sizeGb,
        name: `${input.name}-root`.slice(0, 255),
        imageSource: input.image,
      });
      return { volumeId: volume.id, sizeGb: volume.sizeGb, deleteOnTermination: input.deleteOnTermination };
    },

    async volumeStatus(volumeId: string): Promise<{ status: string; errorMessage: string | null }> {
      const volume = await cinder.getVolume(volumeId);
      return { status: volume.status, errorMessage: volume.errorMessage };
    },

    /** Reserve + attachment with the host as connector: the connection info the host needs. */
    async attachVolume(
      token: string,
      volume: BootVolume,
      instanceUuid: string,
      host: string,
    ): Promise<Omit<AttachedVolume, 'device'>> {
      await contextForOngoingWork(identity, token);
      await cinder.reserveVolume(volume.volumeId, instanceUuid);
      const attached = await cinder.createAttachment({ volumeId: volume.volumeId, instanceUuid, host });
      return { ...volume, attachmentId: attached.attachmentId, connectionInfo: attached.connectionInfo };
    },

    async completeAttachment(attachmentId: string): Promise<void> {
      await cinder.completeAttachment(attachmentId);
    },

    /** attachment-delete: the volume goes back to `available` (kept for the next host or the user). */
    async detachVolume(attachmentId: string): Promise<void> {
      await ignoreNotFound(() => cinder.detachVolume(attachmentId));
    },

    /** Deletes the volume, forcing one stuck in `creating`; detaches it first. Idempotent. */
    async deleteVolume(volumeId: string): Promise<boolean> {
      for (const attachment of await cinder.listAttachments({ volumeId })) {
        await ignoreNotFound(() => cinder.detachVolume(attachment.id));
      }
      return (await ignoreNotFound(() => cinder.deleteVolume(volumeId, { force: true }))) ?? false;
    },

    /** The live attachments of an instance, with whether each volume goes when the instance goes. */
    async listInstanceVolumes(instanceUuid: string): Promise<InstanceVolume[]> {
      const out: InstanceVolume[] = [];
      for (const attachment of await cinder.listAttachments({ instanceUuid })) {
        const volume = await ignoreNotFound(() => cinder.getVolume(attachment.volumeId));
        out.push({
          volumeId: attachment.volumeId,
          attachmentId: attachment.id,
          connectionInfo: attachment.connectionInfo,
          deleteOnTermination: volume ? deleteOnTerminationOf(volume.requestKey) : false,
        });
      }
      return out;
    },
  });
}

export type VolumeActivities = ReturnType<typeof createVolumeActivities>;
