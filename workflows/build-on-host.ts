/**
 * One build attempt on one compute host, as nova-compute's _build_and_run_instance does it: network,
 * block devices and the image in parallel, then spawn, then the conductor marks the instance active.
 * Everything created on the way registers its undo: host work in `hostSaga` (undone before a reschedule),
 * the boot volume in the build's saga (kept across reschedules, only detached).
 */
import { ApplicationFailure, patched } from '@temporalio/workflow';
import type { Abort } from './abort';
import { nextPollDelay, POLL_INITIAL_MS } from './limits';
import {
  computeStubs,
  controllerPoll,
  controllerCleanup,
  network,
  networkPoll,
  networkCleanup,
  volumeApi,
  type ComputeStubs,
  type ControllerSteps,
} from './proxies';
import type { Saga } from './saga';
import type { BootTracker } from './tracker';
import type {
  AttachedVolume,
  BootPlan,
  BootRequest,
  BootResult,
  BootVolume,
  HostTarget,
  ImageLocation,
  NetworkRef,
  PluggedVif,
  PortDescription,
  ServerAddress,
  Session,
} from './types';

/**
 * Boot from an existing volume (the request's bootVolume.volumeId): attached as the root disk instead of
 * a volume created from the image. Deleted by the build's undo only with delete_on_termination (below).
 */
export const BOOT_FROM_EXISTING_VOLUME = 'boot-from-existing-volume';

/**
 * Patch id: a build that fails for good deletes the existing volume it boots from when the boot asked for
 * delete_on_termination, as Nova's _cleanup_volumes does on a failed build (its block device mapping says
 * so, whoever made the volume); a reschedule only detaches it. Before, the build gave it back available.
 */
export const FAILED_BUILD_DELETES_EXISTING_VOLUME = 'failed-build-deletes-existing-volume';

/** What every attempt shares. */
export interface BuildContext {
  request: BootRequest;
  session: Session;
  plan: BootPlan;
  networks: NetworkRef[];
  uuid: string;
  timeouts: { hostPickupMs: number; vifPluggedMs: number; volumeAvailableMs: number };
  tracker: BootTracker;
  /** Undos that outlive an attempt (quota, the boot volume). */
  buildSaga: Saga;
  /** The boot volume once created, and whether it reached `available`. */
  bootVolume: { volume: BootVolume | null; ready: boolean };
  /** Stops the build cooperatively (the workflow's cancellation). */
  abort: Abort;
  /** Parallel sections side by side (createInstance), or one after the other (the benchmarks' variant). */
  parallel: boolean;
  /** The controller's steps: local activities, or (histories from before the patch) on its task queue. */
  steps: ControllerSteps;
}

type Port = PortDescription & PluggedVif;

/** network-vif-plugged: every port ACTIVE before the deadline, or VirtualInterfaceCreateException (abort). */
async function waitForVifPlugged(
  ctx: BuildContext,
  abort: Abort,
  portIds: string[],
  host: string,
): Promise<void> {
  const deadline = Date.now() + ctx.timeouts.vifPluggedMs;
  let delay = POLL_INITIAL_MS;
  for (;;) {
    const statuses = await abort.call(networkPoll.portStatuses, `neutron: port status for ${host}`, {
      portIds,
    });
    if (portIds.every((id) => statuses[id] === 'ACTIVE')) return;
    const left = deadline - Date.now();
    if (left <= 0) {
      throw ApplicationFailure.create({
        type: 'VirtualInterfaceCreateException',
        message: `Virtual Interface creation failed: no network-vif-plugged event for ${portIds.join(', ')} within ${Math.round(ctx.timeouts.vifPluggedMs / 1000)} s`,
        nonRetryable: true,
      });
    }
    await abort.sleep(Math.min(delay, left));
    delay = nextPollDelay(delay, ctx.timeouts.vifPluggedMs);
  }
}

async function networkBranch(
  ctx: BuildContext,
  abort: Abort,
  target: HostTarget,
  attempt: number,
  hostSaga: Saga,
  compute: ComputeStubs,
): Promise<Port[]> {
  const { uuid, session, plan, tracker } = ctx;
  const host = target.host;
  return tracker.time(
    'network',
    async () => {
      // Registered first: deleting by device id also finds ports of a call whose answer was lost.
      hostSaga.addCall(networkCleanup.deleteInstancePorts, `neutron: delete ports of ${uuid}`, {
        instanceUuid: uuid,
      });
      const created = await abort.call(network.createPorts, 'neutron: create ports and fixed IPs', {
        token: session.token,
        instanceUuid: uuid,
        attempt,
        projectId: plan.projectId,
        networks: ctx.networks,
      });
      const bound = await abort.call(network.bindPorts, `neutron: bind ports to ${host}`, {
        ports: created,
        host,
      });
      const portIds = bound.map((p) => p.portId);
      hostSaga.addCall(compute.cleanup.unplugVifs, `neutron: unplug ports on ${host}`, { portIds }, host);
      const vifs = await abort.call(compute.ops.plugVifs, `neutron: plug port on ${host}`, {
        instanceUuid: uuid,
        host,
        ports: bound,
      });
      await abort.call(network.reportDevicesUp, `neutron-agent: device up on ${host}`, { portIds, host });
      await waitForVifPlugged(ctx, abort, portIds, host);
      return bound.map((port) => {
        const vif = vifs.find((v) => v.portId === port.portId);
        return { ...port, bridge: vif?.bridge ?? '', tap: vif?.tap ?? '' };
      });
    },
    host,
  );
}

/** Nova's _await_block_device_map_created: a bounded wait for `available`, else VolumeNotCreated. */
async function waitForVolume(ctx: BuildContext, abort: Abort, volume: BootVolume): Promise<void> {
  const started = Date.now();
  const deadline = started + ctx.timeouts.volumeAvailableMs;
  let delay = POLL_INITIAL_MS;
  for (let attempts = 1; ; attempts++) {
    const { status, errorMessage } = await abort.call(
      controllerPoll.volumeStatus,
      `cinder: volume ${volume.volumeId} status`,
      { volumeId: volume.volumeId },
    );
    if (status === 'available') return;
    const left = deadline - Date.now();
    if (status !== 'creating' || left <= 0) {
      const waited = Math.round((Date.now() - started) / 1000);
      throw ApplicationFailure.create({
        type: 'VolumeNotCreated',
        message:
          `Volume ${volume.volumeId} did not finish being created even after we waited ${waited} seconds or ` +
          `${attempts} attempts. And its status is ${status}.` +
          (errorMessage ? ` (${errorMessage})` : ''),
        nonRetryable: true,
        details: [{ volumeId: volume.volumeId, status }],
      });
    }
    await abort.sleep(Math.min(delay, left));
    delay = nextPollDelay(delay, ctx.timeouts.volumeAvailableMs);
  }
}

async function blockDeviceBranch(
  ctx: BuildContext,
  abort: Abort,
  target: HostTarget,
  hostSaga: Saga,
  compute: ComputeStubs,
): Promise<AttachedVolume[]> {
  const { uuid, session, plan, tracker } = ctx;
  const host = target.host;
  await abort.call(ctx.steps.setTaskState, 'nova-conductor: task_state=block_device_mapping', {
    instanceUuid: uuid,
    taskState: 'block_device_mapping',
    expected: 'networking',
  });
  tracker.states({ taskState: 'block_device_mapping' });
  if (!plan.bootVolume) return [];
  const wanted = plan.bootVolume;
  return tracker.time(
    'block-devices',
    async () => {
      let volume = ctx.bootVolume.volume;
      if (!volume && wanted.volumeId !== undefined && patched(BOOT_FROM_EXISTING_VOLUME)) {
        // nova-api checked it is available and bootable; its attach below reserves it for this server.
        volume = {
          volumeId: wanted.volumeId,
          sizeGb: wanted.sizeGb,
          deleteOnTermination: wanted.deleteOnTermination,
        };
        ctx.bootVolume.volume = volume;
        if (wanted.deleteOnTermination && patched(FAILED_BUILD_DELETES_EXISTING_VOLUME)) {
          // Only while it is still this server's: one another server has taken since is kept.
          const id = wanted.volumeId;
          ctx.buildSaga.addCall(controllerCleanup.deleteServerVolume, `cinder: delete volume ${id}`, {
            volumeId: id,
            instanceUuid: uuid,
          });
        }
      }
      if (!volume) {
        volume = await abort.call(
          volumeApi.createBootVolume,
          `cinder: create ${wanted.sizeGb} GB volume from image`,
          {
            token: session.token,
            instanceUuid: uuid,
            name: plan.name,
            projectId: plan.projectId,
            userId: plan.userId,
            sizeGb: wanted.sizeGb,
            image: plan.image.location,
            deleteOnTermination: wanted.deleteOnTermination,
          },
        );
        ctx.bootVolume.volume = volume;
        // Created by this request: deleted if the build fails (a reschedule only detaches it).
        const id = volume.volumeId;
        ctx.buildSaga.addCall(controllerCleanup.deleteVolume, `cinder: delete volume ${id}`, {
          volumeId: id,
        });
      }
      if (!ctx.bootVolume.ready) {
        await waitForVolume(ctx, abort, volume);
        ctx.bootVolume.ready = true;
      }
      const attached = await abort.call(volumeApi.attachVolume, `cinder: attach volume on ${host}`, {
        token: session.token,
        volume,
        instanceUuid: uuid,
        host,
      });
      const { attachmentId } = attached;
      hostSaga.addCall(controllerCleanup.detachVolume, `cinder: detach volume ${attached.volumeId}`, {
        attachmentId,
      });
      const connection = {
        instanceUuid: uuid,
        volumeId: attached.volumeId,
        connectionInfo: attached.connectionInfo,
      };
      hostSaga.addCall(
        compute.cleanup.disconnectVolume,
        `nova-compute: disconnect volume on ${host}`,
        connection,
        host,
      );
      const connected = await abort.call(
        compute.ops.connectVolume,
        `cinder: connect volume on ${host}`,
        connection,
      );
      await abort.call(volumeApi.completeAttachment, `cinder: attachment complete on ${host}`, {
        attachmentId,
      });
      return [{ ...attached, device: connected.device }];
    },
    host,
  );
}

/** The image in the host's cache; an AMI also brings its kernel and ramdisk (fetched side by side). */
interface CachedImage {
  basePath: string;
  kernelPath?: string;
  ramdiskPath?: string;
}

async function imageBranch(
  ctx: BuildContext,
  abort: Abort,
  target: HostTarget,
  compute: ComputeStubs,
): Promise<CachedImage | null> {
  if (ctx.plan.bootVolume) return null; // Cinder copied the image into the boot volume
  const { image } = ctx.plan;
  const fetch = (location: ImageLocation, what: string): Promise<string> =>
    abort
      .call(compute.fetch.fetchImage, `glance: fetch ${what} to ${target.host}`, location)
      .then((fetched) => fetched.path);
  return ctx.tracker.time(
    'image',
    async () => {
      // Images without kernel_id/ramdisk_id schedule exactly the one fetch they always did.
      const [basePath, kernelPath, ramdiskPath] = await Promise.all([
        fetch(image.location, 'image'),
        image.kernel ? fetch(image.kernel, 'kernel image') : undefined,
        image.ramdisk ? fetch(image.ramdisk, 'ramdisk image') : undefined,
      ]);
      return {
        basePath,
        ...(kernelPath ? { kernelPath } : {}),
        ...(ramdiskPath ? { ramdiskPath } : {}),
      };
    },
    target.host,
  );
}

function addressesOf(ports: Port[]): Record<string, ServerAddress[]> {
  const addresses: Record<string, ServerAddress[]> = {};
  for (const port of ports) {
    const list = (addresses[port.networkName] ??= []);
    for (const ip of port.fixedIps) {
      list.push({ addr: ip.ipAddress, macAddress: port.macAddress, version: 4, portId: port.portId });
    }
  }
  return addresses;
}

/** One attempt on `target`; throws on failure, leaving the undos of its work in `hostSaga`. */
export async function buildOnHost(
  ctx: BuildContext,
  target: HostTarget,
  attempt: number,
  hostSaga: Saga,
): Promise<BootResult> {
  const { uuid, request, tracker } = ctx;
  const abort = ctx.abort.child();
  const host = target.host;
  const compute = computeStubs(host, ctx.timeouts.hostPickupMs);
  tracker.onHost(host, attempt);
  tracker.setStep('building');
  await abort.call(ctx.steps.setHost, `nova-conductor: host=${host}`, {
    instanceUuid: uuid,
    requestId: request.requestId,
    host,
    nodeUuid: target.nodeUuid,
  });
  await abort.call(ctx.steps.setTaskState, 'nova-conductor: task_state=networking', {
    instanceUuid: uuid,
    taskState: 'networking',
    expected: 'scheduling',
  });
  tracker.states({ taskState: 'networking' });

  const [ports, volumes, cached] = await abort.all<[Port[], AttachedVolume[], CachedImage | null]>(
    [
      (branch) => networkBranch(ctx, branch, target, attempt, hostSaga, compute),
      (branch) => blockDeviceBranch(ctx, branch, target, hostSaga, compute),
      (branch) => imageBranch(ctx, branch, target, compute),
    ],
    ctx.parallel,
  );

  await abort.call(ctx.steps.setTaskState, 'nova-conductor: task_state=spawning', {
    instanceUuid: uuid,
    taskState: 'spawning',
    expected: 'block_device_mapping',
  });
  tracker.states({ taskState: 'spawning' });
  tracker.setStep('spawning');
  hostSaga.addCall(
    compute.ops.destroyInstance,
    `nova-compute: destroy instance on ${host}`,
    { instanceUuid: uuid },
    host,
  );
  const spawned = await tracker.time(
    'spawn',
    () =>
      abort.call(compute.ops.spawn, `nova-compute: spawn on ${host}`, {
        uuid,
        name: ctx.plan.name,
        flavor: ctx.plan.flavor,
        baseImagePath: cached?.basePath ?? null,
        ...(cached?.kernelPath ? { kernelPath: cached.kernelPath } : {}),
        ...(cached?.ramdiskPath ? { ramdiskPath: cached.ramdiskPath } : {}),
        ports,
        volumes: volumes.map((v) => ({
          volumeId: v.volumeId,
          path: v.connectionInfo.path,
          device: v.device,
        })),
      }),
    host,
  );

  const finished = await tracker.time('finish', () =>
    abort.call(ctx.steps.finishBuild, 'nova-conductor: vm_state=active', {
      instanceUuid: uuid,
      requestId: request.requestId,
      host,
    }),
  );
  tracker.states({ vmState: 'active', taskState: null, powerState: spawned.powerState });
  return {
    id: uuid,
    name: ctx.plan.name,
    status: 'ACTIVE',
    host,
    vmState: 'active',
    powerState: finished.powerState,
    launchedAt: finished.launchedAt,
    addresses: addressesOf(ports),
    volumes: volumes.map((v) => ({
      id: v.volumeId,
      device: v.device,
      deleteOnTermination: v.deleteOnTermination,
    })),
    attempts: attempt,
    triedHosts: tracker.triedHosts,
    timings: tracker.timings,
  };
}
