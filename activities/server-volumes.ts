/**
 * nova-api and nova-conductor on the controller for `os-volume_attachments` (attach and detach a volume on a
 * running server): the API's checks (policy, the volume visible to the caller, the instance state, the host
 * up), the instance action and its compute event, and the check that the server still lives before an
 * attach is reported done. The Cinder steps are activities/volume.ts's; the host's are compute-host.ts's.
 */
import { CloudError, isCloudError } from '../cloud/errors';
import type { Cinder, Volume } from '../cloud/cinder';
import { enforceVisible, type Keystone, type PolicyRule, type RequestContext } from '../cloud/keystone';
import type { FinishVolumeActionInput, Instance, Nova } from '../cloud/nova';
import type { VolumeConnectionInfo } from '../workflows/types';
import { adaptAll } from './failures';
import { contextForOngoingWork } from './identity';
import { bootVolumeRequestKey } from './volume';

export interface ServerVolumeServices {
  keystone: Keystone;
  nova: Nova;
  cinder: Cinder;
}

export interface VolumeActionRequest {
  token: string;
  requestId: string;
  instanceUuid: string;
  volumeId: string;
}

export interface PreparedAttach {
  host: string;
  projectId: string;
}

export interface PreparedDetach {
  host: string;
  projectId: string;
  attachmentId: string;
  connectionInfo: VolumeConnectionInfo;
}

const instanceNotFound = (uuid: string) =>
  new CloudError('NotFound', `Instance ${uuid} could not be found.`, { instanceUuid: uuid });

export function createServerVolumeActivities({ keystone, nova, cinder }: ServerVolumeServices) {
  /** The instance as the caller may act on it: another project's is NotFound, as Nova's lookup answers. */
  async function instanceFor(ctx: RequestContext, uuid: string, rule: PolicyRule): Promise<Instance> {
    const instance = await nova.getInstance(uuid).catch((err: unknown) => {
      if (isCloudError(err, 'NotFound') || isCloudError(err, 'BadRequest')) throw instanceNotFound(uuid);
      throw err;
    });
    enforceVisible(ctx, rule, { projectId: instance.projectId }, `Instance ${uuid} could not be found.`);
    return instance;
  }

  /** The volume as the caller's Cinder sees it (another project's is NotFound, Cinder's message). */
  function volumeFor(ctx: RequestContext, volumeId: string): Promise<Volume> {
    return cinder
      .getVolume(volumeId, { projectId: ctx.projectId, roles: ctx.roles })
      .catch((err: unknown) => {
        if (isCloudError(err, 'BadRequest'))
          throw new CloudError('NotFound', `Volume ${volumeId} could not be found.`, { volumeId });
        throw err;
      });
  }

  return adaptAll({
    /**
     * compute/api.py attach_volume: the policy, the volume (404 when the caller cannot see it), not already
     * attached to this server (_check_volume_already_attached), the instance state and host, then the
     * `attach_volume` action. Cinder's reserve is the workflow's next step.
     */
    async prepareVolumeAttach(input: VolumeActionRequest): Promise<PreparedAttach> {
      const ctx = await contextForOngoingWork(keystone, input.token);
      const instance = await instanceFor(
        ctx,
        input.instanceUuid,
        'os_compute_api:os-volumes-attachments:create',
      );
      const volume = await volumeFor(ctx, input.volumeId);
      if (volume.attachments.some((a) => a.instanceUuid === instance.uuid)) {
        throw new CloudError('InvalidVolume', `Invalid volume: volume ${volume.id} already attached`, {
          volumeId: volume.id,
        });
      }
      const { host } = await nova.volumeActions.begin({
        kind: 'attach',
        instanceUuid: instance.uuid,
        requestId: input.requestId,
        userId: ctx.userId,
        projectId: instance.projectId,
      });
      return { host, projectId: instance.projectId };
    },

    /**
     * volume_attachments.py delete + compute/api.py detach_volume: the policy, the volume, its attachment to
     * this server (404 "Instance ... is not attached to volume ..."), not the root volume (400), the
     * instance state and host, then the `detach_volume` action. Cinder's begin_detaching is the next step.
     */
    async prepareVolumeDetach(input: VolumeActionRequest): Promise<PreparedDetach> {
      const ctx = await contextForOngoingWork(keystone, input.token);
      const instance = await instanceFor(
        ctx,
        input.instanceUuid,
        'os_compute_api:os-volumes-attachments:delete',
      );
      const volume = await volumeFor(ctx, input.volumeId);
      const attachment = volume.attachments.find(
        (a) => a.instanceUuid === instance.uuid && a.attachStatus === 'attached',
      );
      if (!attachment || !attachment.connectionInfo) {
        throw new CloudError('NotFound', `Instance ${instance.uuid} is not attached to volume ${volume.id}`, {
          instanceUuid: instance.uuid,
          volumeId: volume.id,
        });
      }
      if (volume.requestKey === bootVolumeRequestKey(instance.uuid)) {
        throw new CloudError('BadRequest', 'Cannot detach a root device volume', { volumeId: volume.id });
      }
      const { host } = await nova.volumeActions.begin({
        kind: 'detach',
        instanceUuid: instance.uuid,
        requestId: input.requestId,
        userId: ctx.userId,
        projectId: instance.projectId,
      });
      return {
        host,
        projectId: instance.projectId,
        attachmentId: attachment.id,
        connectionInfo: attachment.connectionInfo,
      };
    },

    /** The server still lives and is not being deleted: else Conflict, and the attach undoes itself. */
    async confirmVolumeAttach(input: { instanceUuid: string }): Promise<void> {
      await nova.volumeActions.confirmAttach(input);
    },

    /** The compute event and the action closed, with the error when the operation failed. */
    async finishVolumeAction(input: FinishVolumeActionInput): Promise<void> {
      await nova.volumeActions.finish(input);
    },
  });
}

export type ServerVolumeActivities = ReturnType<typeof createServerVolumeActivities>;
