/**
 * cinder-api on the controller: the boot volume created from the image, its status for the workflow's
 * bounded wait, attachments (the connector is the chosen host), and clean-up.
 */
import type { Cinder, Volume, VolumeAttachment } from '../cloud/cinder';
import { isCloudError } from '../cloud/errors';
import type {
  AttachedVolume,
  BootVolume,
  ImageLocation,
  ServerVolumeOutcome,
  VolumeConnectionInfo,
} from '../workflows/types';
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

/** One boot volume per instance: a retried create finds the first. */
export function bootVolumeRequestKey(instanceUuid: string): string {
  return `${instanceUuid}:root`;
}

export interface InstanceVolume {
  volumeId: string;
  attachmentId: string;
  connectionInfo: VolumeConnectionInfo | null;
  deleteOnTermination: boolean;
}

export function createVolumeActivities({ cinder, identity }: VolumeServices) {
  /** A detached attachment whose volume a server's delete detached and has yet to delete. */
  const leftByDelete = async (attachment: VolumeAttachment, volume: Volume | undefined): Promise<boolean> => {
    if (!volume?.deleteOnTermination) return false;
    const all = await cinder.listAttachments({ volumeId: volume.id, includeDetached: true });
    return all.every((a) => a.attachStatus === 'detached') && all.at(-1)?.id === attachment.id;
  };
  return adaptAll({
    /** Accepted in `creating`; Cinder copies and verifies the image in the background. Idempotent. */
    async createBootVolume(input: CreateBootVolumeInput): Promise<BootVolume> {
      await contextForOngoingWork(identity, input.token);
      const volume = await cinder.createVolume({
        requestKey: bootVolumeRequestKey(input.instanceUuid),
        projectId: input.projectId,
        userId: input.userId,
        sizeGb: input.sizeGb,
        name: `${input.name}-root`.slice(0, 255),
        imageSource: input.image,
        deleteOnTermination: input.deleteOnTermination,
      });
      return { volumeId: volume.id, sizeGb: volume.sizeGb, deleteOnTermination: input.deleteOnTermination };
    },

    async volumeStatus(input: {
      volumeId: string;
    }): Promise<{ status: string; errorMessage: string | null }> {
      const volume = await cinder.getVolume(input.volumeId);
      return { status: volume.status, errorMessage: volume.errorMessage };
    },

    /** Reserve + attachment with the host as connector: the connection info the host needs. */
    async attachVolume(input: {
      token: string;
      volume: BootVolume;
      instanceUuid: string;
      host: string;
    }): Promise<Omit<AttachedVolume, 'device'>> {
      const { token, volume, instanceUuid, host } = input;
      await contextForOngoingWork(identity, token);
      // The boot's delete_on_termination goes with the reserve: an existing volume booted becomes the server's.
      await cinder.reserveVolume(volume.volumeId, instanceUuid, {
        deleteOnTermination: volume.deleteOnTermination,
      });
      const attached = await cinder.createAttachment({ volumeId: volume.volumeId, instanceUuid, host });
      return { ...volume, attachmentId: attached.attachmentId, connectionInfo: attached.connectionInfo };
    },

    /** attachment-create without a connector (Nova's reserve): volume `reserved` for the instance. */
    async reserveVolume(input: {
      volumeId: string;
      instanceUuid: string;
      /** The instance's attachment to a host being replaced (evacuate): a second one is made beside it. */
      replacing?: string;
      /** Whether the volume goes with the instance (kept across a detach and a new reserve). */
      deleteOnTermination?: boolean;
    }): Promise<{ attachmentId: string }> {
      const { replacing, deleteOnTermination } = input;
      const attachment = await cinder.reserveVolume(input.volumeId, input.instanceUuid, {
        ...(replacing === undefined ? {} : { replacing }),
        ...(deleteOnTermination === undefined ? {} : { deleteOnTermination }),
      });
      return { attachmentId: attachment.id };
    },

    /** attachment-update with the host as connector: the connection info it needs (NotFound once deleted). */
    async connectAttachment(input: {
      attachmentId: string;
      host: string;
    }): Promise<{ connectionInfo: VolumeConnectionInfo }> {
      const { connectionInfo } = await cinder.updateAttachment(input.attachmentId, input.host);
      return { connectionInfo };
    },

    /** os-begin_detaching: `in-use` → `detaching` (a second detach or a delete is refused meanwhile). */
    async beginDetaching(input: { volumeId: string }): Promise<void> {
      await cinder.beginDetaching(input.volumeId);
    },

    /** os-roll_detaching: a detach that failed leaves the volume `in-use` again. */
    async rollDetaching(input: { volumeId: string }): Promise<void> {
      await ignoreNotFound(() => cinder.rollDetaching(input.volumeId));
    },

    async completeAttachment(input: { attachmentId: string; mountpoint?: string }): Promise<void> {
      await cinder.completeAttachment(input.attachmentId, input.mountpoint);
    },

    /**
     * attachment-delete: the volume goes back to `available` (kept for the next host or the user). A server
     * delete's detach keeps the volume's delete_on_termination, for a re-run of that delete to find it.
     */
    async detachVolume(input: { attachmentId: string; serverDelete?: boolean }): Promise<void> {
      const options = input.serverDelete === true ? { keepDeleteOnTermination: true } : {};
      await ignoreNotFound(() => cinder.detachVolume(input.attachmentId, options));
    },

    /**
     * Deletes the volume, forcing one stuck in `creating`; detaches it first. Idempotent. A volume the user
     * has snapshots of is kept (false), as Nova's _cleanup_volumes logs Cinder's refusal and goes on.
     */
    async deleteVolume({ volumeId }: { volumeId: string }): Promise<boolean> {
      for (const attachment of await cinder.listAttachments({ volumeId })) {
        await ignoreNotFound(() => cinder.detachVolume(attachment.id));
      }
      try {
        return (await ignoreNotFound(() => cinder.deleteVolume(volumeId, { force: true }))) ?? false;
      } catch (err) {
        if (isCloudError(err, 'InvalidVolume') && Array.isArray(err.details.snapshots)) return false;
        throw err;
      }
    },

    /**
     * A server's delete_on_termination volume, deleted as Nova's _cleanup_volumes does (a server's delete,
     * a failed build): what happened to it. Only while it is still the instance's: attached to it, last
     * attached to it and to nothing else since, or never attached at all (a volume the user booted from,
     * given back by the build's detach, that another server has taken meanwhile is that server's: kept).
     * The instance's own attachments are detached first; the delete is forced past a status stuck in
     * `creating`. Snapshots of it make Cinder refuse, which Nova logs and goes past: kept, with the reason.
     * Idempotent (`gone`).
     */
    async deleteServerVolume({
      volumeId,
      instanceUuid,
    }: {
      volumeId: string;
      instanceUuid: string;
    }): Promise<ServerVolumeOutcome> {
      const volume = await ignoreNotFound(() => cinder.getVolume(volumeId));
      if (!volume) return { outcome: 'gone' };
      const all = await cinder.listAttachments({ volumeId, includeDetached: true });
      const others = all.filter((a) => a.instanceUuid !== instanceUuid);
      const last = all.at(-1);
      if (others.some((a) => a.attachStatus !== 'detached') || (last && last.instanceUuid !== instanceUuid)) {
        return { outcome: 'kept', reason: `Volume ${volumeId} is no longer this server's.` };
      }
      for (const attachment of all.filter((a) => a.attachStatus !== 'detached')) {
        await ignoreNotFound(() => cinder.detachVolume(attachment.id));
      }
      try {
        const deleted = await ignoreNotFound(() => cinder.deleteVolume(volumeId, { force: true }));
        return { outcome: deleted === true ? 'deleted' : 'gone' };
      } catch (err) {
        if (isCloudError(err, 'InvalidVolume') && Array.isArray(err.details.snapshots)) {
          const ids = err.details.snapshots as string[];
          return { outcome: 'kept', reason: `Volume ${volumeId} has snapshots (${ids.join(', ')}).` };
        }
        throw err;
      }
    },

    /** The boot volume made for an instance (attached or not), if it still exists. */
    async bootVolumeOf({ instanceUuid }: { instanceUuid: string }): Promise<{ volumeId: string } | null> {
      const key = bootVolumeRequestKey(instanceUuid);
      const volume = (await cinder.listVolumes({})).find((v) => v.requestKey === key);
      return volume ? { volumeId: volume.id } : null;
    },

    /**
     * The live attachments of an instance, with whether each volume goes when the instance goes.
     *
     * `serverDelete` (the server's delete): also the volumes an earlier run of that delete detached but did
     * not delete (interrupted in between: a reset or terminated run, a volume delete failing for good), as
     * Nova's block device mappings outlive the detach until the instance is destroyed: this instance's
     * detached attachment that is its volume's latest, the volume live, not attached again, still
     * delete_on_termination (a user's detach clears it). Detaching again is a no-op; the volume is deleted.
     */
    async listInstanceVolumes({
      instanceUuid,
      serverDelete,
    }: {
      instanceUuid: string;
      serverDelete?: boolean;
    }): Promise<InstanceVolume[]> {
      const out: InstanceVolume[] = [];
      const includeDetached = serverDelete === true;
      for (const attachment of await cinder.listAttachments({ instanceUuid, includeDetached })) {
        const volume = await ignoreNotFound(() => cinder.getVolume(attachment.volumeId));
        if (attachment.attachStatus === 'detached' && !(await leftByDelete(attachment, volume))) continue;
        out.push({
          volumeId: attachment.volumeId,
          attachmentId: attachment.id,
          connectionInfo: attachment.connectionInfo,
          deleteOnTermination: volume?.deleteOnTermination ?? false,
        });
      }
      return out;
    },
  });
}

export type VolumeActivities = ReturnType<typeof createVolumeActivities>;
