/**
 * Everything an instance holds, released by the instance's uuid rather than by what one run remembers it
 * created: the guest on its host (the driver's destroy also unplugs its VIFs and disconnects its volumes),
 * volume attachments and the build's boot volume, its ports and fixed IPs, its placement allocation and
 * its quota. Each step is idempotent, so it is safe after a partial clean-up, a terminated workflow or a
 * reset run that met resources an earlier run made. A host that is down is skipped (Nova's local delete:
 * its leftovers are the host audit's to report).
 */
import { patched } from '@temporalio/workflow';
import { FAILED_BUILD_DELETES_EXISTING_VOLUME } from './build-on-host';
import { classify } from './failures';
import { DEFAULT_TIMEOUTS } from './limits';
import { call, computeStubs, controllerCleanup, networkCleanup, volumeApi } from './proxies';

export interface InstanceHolding {
  uuid: string;
  /** Hosts that may hold the guest (its recorded host, and any the workflow knows it tried). */
  hosts: string[];
  /**
   * A failed build's release: delete the boot volume made for the instance, and any attached volume with
   * delete_on_termination (an existing one the user booted from), not only detach them.
   */
  deleteBootVolume: boolean;
}

export async function releaseInstance(holding: InstanceHolding, onStep?: (line: string) => void) {
  const { uuid } = holding;
  const instanceUuid = uuid;
  const step = <T>(line: string, work: () => Promise<T>): Promise<T> => {
    onStep?.(line);
    return work();
  };
  for (const host of [...new Set(holding.hosts)]) {
    const compute = computeStubs(host, DEFAULT_TIMEOUTS.hostPickupMs);
    const summary = `nova-compute: destroy instance on ${host}`;
    try {
      await step(summary, () => call(compute.ops.destroyInstance, summary, { instanceUuid }));
    } catch (err) {
      if (!classify(err, host).hostDown) throw err;
    }
  }
  const volumes = await call(volumeApi.listInstanceVolumes, 'cinder: volumes of the server', {
    instanceUuid,
  });
  let deletesFlagged: boolean | undefined;
  for (const { volumeId, attachmentId, deleteOnTermination } of volumes) {
    const summary = `cinder: detach volume ${volumeId}`;
    await step(summary, () => call(controllerCleanup.detachVolume, summary, { attachmentId }));
    if (!holding.deleteBootVolume || !deleteOnTermination) continue;
    // A failed build's delete_on_termination volume goes, whoever made it (Nova's _cleanup_volumes): one
    // the user booted from included (runs before the patch only detached it).
    deletesFlagged ??= patched(FAILED_BUILD_DELETES_EXISTING_VOLUME);
    if (!deletesFlagged) continue;
    const deleting = `cinder: delete volume ${volumeId}`;
    await step(deleting, () =>
      call(controllerCleanup.deleteServerVolume, deleting, { volumeId, instanceUuid }),
    );
  }
  if (holding.deleteBootVolume) {
    const boot = await call(volumeApi.bootVolumeOf, 'cinder: boot volume of the server', { instanceUuid });
    if (boot) {
      const summary = `cinder: delete volume ${boot.volumeId}`;
      await step(summary, () => call(controllerCleanup.deleteVolume, summary, { volumeId: boot.volumeId }));
    }
  }
  const ports = `neutron: delete ports of ${uuid}`;
  await step(ports, () => call(networkCleanup.deleteInstancePorts, ports, { instanceUuid }));
  const allocation = `placement: release allocations of ${uuid}`;
  await step(allocation, () => call(controllerCleanup.releaseAllocation, allocation, { instanceUuid }));
  const quota = `nova: release quota of ${uuid}`;
  await step(quota, () => call(controllerCleanup.releaseQuota, quota, { instanceUuid }));
}
