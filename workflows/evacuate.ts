/**
 * Evacuate: a server whose host's nova-compute is down for good is rebuilt on another host, keeping its
 * ports (and so its IPs and MACs) and its volumes (nova/compute/api.py evacuate → conductor
 * rebuild_instance(recreate=True) → the destination's rebuild_instance):
 *
 *   nova-api: checks (admin, source down, target) + task_state rebuilding + action `evacuate` →
 *   placement: the dead host's allocation released, the scheduler picks a host (not the source) and claims →
 *   neutron: the ports rebound to it (binding:host_id) → the host plugs them →
 *   cinder: for each volume a new attachment for the new host, beside the one to the dead host, connected →
 *   the image fetched (a server booted from an image starts from it again: the dead host's disk is lost) →
 *   task_state rebuild_spawning → spawn → the attachments to the dead host deleted →
 *   the conductor records the new host, active, no task.
 *
 * A failure undoes what was made on the destination (guest, VIFs, new attachments, allocation) and leaves
 * the server ERROR with the fault, as Nova's rebuild does, still attached to its volumes (through the
 * attachments to the dead host), so a later delete releases them. The dead host's leftovers are its own to clean
 * when it comes back: destroyEvacuatedInstances, which a compute worker starts at start (init_host).
 * evacuateHost runs one child evacuateServer per server of a host.
 */
import {
  CancellationScope,
  executeChild,
  isCancellation,
  patched,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import { bootFailure, classify, faultOf, type Classified } from './failures';
import { DEFAULT_TIMEOUTS } from './limits';
import { evacuateWorkflowId } from './names';
import {
  call,
  computeStubs,
  controller,
  controllerCleanup,
  network,
  networkPoll,
  volumeApi,
} from './proxies';
import { Saga } from './saga';
import { ComputeHostKey, InstanceIdKey, ProjectIdKey, VmStateKey } from './search-attributes';
import type { BootAuth } from './types';

export interface EvacuateRequest {
  requestId: string;
  auth: BootAuth;
  instanceUuid: string;
  /** The destination the operator asked for; otherwise the scheduler chooses (never the source). */
  host?: string;
  timeouts?: { hostPickupMs?: number };
}

export interface EvacuateResult {
  instanceUuid: string;
  sourceHost: string;
  host: string;
  ports: string[];
  volumes: Array<{ volumeId: string; device: string }>;
}

export interface EvacuateHostRequest {
  requestId: string;
  auth: BootAuth;
  host: string;
  timeouts?: { hostPickupMs?: number };
}

export interface EvacuateHostResult {
  host: string;
  evacuated: EvacuateResult[];
  failed: Array<{ instanceUuid: string; type: string; message: string }>;
}

function typed(request: EvacuateRequest, failure: Classified, err: unknown) {
  return bootFailure(failure, { instanceUuid: request.instanceUuid, requestId: request.requestId }, err);
}

export async function evacuateServer(request: EvacuateRequest): Promise<EvacuateResult> {
  const { instanceUuid, requestId } = request;
  const pickup = request.timeouts?.hostPickupMs ?? DEFAULT_TIMEOUTS.hostPickupMs;
  let plan: Awaited<ReturnType<typeof controller.beginEvacuate>>;
  let token: string;
  try {
    const session = await call(controller.authenticate, 'keystone: authenticate', request.auth);
    token = session.token;
    plan = await call(controller.beginEvacuate, `nova-api: evacuate ${instanceUuid}`, {
      token,
      requestId,
      instanceUuid,
      ...(request.host === undefined ? {} : { targetHost: request.host }),
    });
  } catch (err) {
    if (isCancellation(err)) throw err;
    throw typed(request, classify(err), err);
  }
  upsertSearchAttributes([
    { key: InstanceIdKey, value: instanceUuid },
    { key: ProjectIdKey, value: plan.projectId },
  ]);
  const saga = new Saga();
  let host: string | undefined;
  try {
    // Nova keeps the dead host's allocation until that host comes back; bootflow moves it (README).
    await call(controllerCleanup.releaseAllocation, `placement: release allocation on ${plan.sourceHost}`, {
      instanceUuid,
    });
    const { selected } = await call(controller.selectDestinations, 'nova-scheduler: select destination', {
      instanceUuid,
      projectId: plan.projectId,
      userId: plan.userId,
      flavor: plan.flavor,
      imageProperties: plan.image?.properties ?? {},
      bootFromVolume: plan.image === null,
      availabilityZone: plan.availabilityZone,
      excludedHosts: plan.excludedHosts,
      maxAttempts: 1,
    });
    host = selected.host;
    const target = host;
    saga.addCall(controllerCleanup.releaseAllocation, `placement: release allocation on ${target}`, {
      instanceUuid,
    });
    const compute = computeStubs(target, pickup);

    const ports = await call(network.listInstancePorts, 'neutron: ports of the server', { instanceUuid });
    const bound = await call(network.bindPorts, `neutron: bind ports to ${target}`, { ports, host: target });
    saga.addCall(
      compute.cleanup.unplugVifs,
      `neutron: unplug ports on ${target}`,
      { portIds: bound.map((p) => p.portId) },
      target,
    );
    const vifs = await call(compute.ops.plugVifs, `nova-compute: plug vifs on ${target}`, {
      instanceUuid,
      host: target,
      ports: bound,
    });
    await call(network.reportDevicesUp, `neutron: ports up on ${target}`, {
      portIds: bound.map((p) => p.portId),
      host: target,
    });
    await call(networkPoll.portStatuses, 'neutron: port status', { portIds: bound.map((p) => p.portId) });

    // Nova's order: the new attachment made first, the dead host's deleted once the guest runs here, so a
    // failed evacuation leaves the server (ERROR) still owning its volumes. Earlier runs deleted it first.
    const keepOld = patched('evacuate-keeps-old-attachment');
    const volumes: Array<{ volumeId: string; path: string; device: string }> = [];
    const replaced: Array<{ volumeId: string; attachmentId: string }> = [];
    for (const old of await call(volumeApi.listInstanceVolumes, 'cinder: volumes of the server', {
      instanceUuid,
    })) {
      const { volumeId } = old;
      if (keepOld) replaced.push({ volumeId, attachmentId: old.attachmentId });
      else
        await call(
          controllerCleanup.detachVolume,
          `cinder: delete attachment of ${volumeId} to the dead host`,
          {
            attachmentId: old.attachmentId,
          },
        );
      const { attachmentId } = await call(volumeApi.reserveVolume, `cinder: reserve volume ${volumeId}`, {
        volumeId,
        instanceUuid,
        // Earlier runs detached first: the volume's last detach cleared its delete_on_termination.
        ...(keepOld ? { replacing: old.attachmentId } : { deleteOnTermination: old.deleteOnTermination }),
      });
      saga.addCall(controllerCleanup.detachVolume, `cinder: delete attachment of ${volumeId}`, {
        attachmentId,
      });
      const { connectionInfo } = await call(volumeApi.connectAttachment, `cinder: connector ${target}`, {
        attachmentId,
        host: target,
      });
      // Registered before the call, as attachServerVolume does: a connect that timed out may have connected,
      // and a failure before the guest exists there (a delete taking over, a failing image fetch) must not
      // leave the volume connected on the destination. Earlier runs' compensations did not disconnect.
      if (patched('evacuate-undo-volume-connect'))
        saga.addCall(
          compute.cleanup.disconnectVolume,
          `nova-compute: disconnect volume ${volumeId} on ${target}`,
          { instanceUuid, volumeId, connectionInfo },
          target,
        );
      const { device } = await call(
        compute.volumes.attachGuestVolume,
        `nova-compute: connect volume ${volumeId} on ${target}`,
        { instanceUuid, volumeId, connectionInfo },
      );
      await call(volumeApi.completeAttachment, `cinder: attachment complete, ${volumeId} in-use`, {
        attachmentId,
        mountpoint: `/dev/${device}`,
      });
      volumes.push({ volumeId, path: connectionInfo.path, device });
    }

    let cached: { basePath: string; kernelPath?: string; ramdiskPath?: string } | null = null;
    if (plan.image) {
      const fetch = (location: typeof plan.image.location, what: string) =>
        call(compute.fetch.fetchImage, `glance: fetch ${what} to ${target}`, location).then((f) => f.path);
      const basePath = await fetch(plan.image.location, 'image');
      const kernelPath = plan.image.kernel ? await fetch(plan.image.kernel, 'kernel image') : undefined;
      const ramdiskPath = plan.image.ramdisk ? await fetch(plan.image.ramdisk, 'ramdisk image') : undefined;
      cached = {
        basePath,
        ...(kernelPath ? { kernelPath } : {}),
        ...(ramdiskPath ? { ramdiskPath } : {}),
      };
    }

    await call(controller.evacuateSpawning, 'nova-conductor: task_state=rebuild_spawning', {
      instanceUuid,
      requestId,
      host: target,
    });
    saga.addCall(
      compute.ops.destroyInstance,
      `nova-compute: destroy instance on ${target}`,
      { instanceUuid },
      target,
    );
    await call(compute.ops.spawn, `nova-compute: spawn on ${target}`, {
      uuid: instanceUuid,
      name: plan.name,
      flavor: plan.flavor,
      baseImagePath: cached?.basePath ?? null,
      ...(cached?.kernelPath ? { kernelPath: cached.kernelPath } : {}),
      ...(cached?.ramdiskPath ? { ramdiskPath: cached.ramdiskPath } : {}),
      ports: bound.map((p) => {
        const vif = vifs.find((v) => v.portId === p.portId);
        return { ...p, bridge: vif?.bridge ?? '', tap: vif?.tap ?? '' };
      }),
      volumes,
    });
    for (const old of replaced) {
      await call(
        controllerCleanup.detachVolume,
        `cinder: delete attachment of ${old.volumeId} to the dead host`,
        { attachmentId: old.attachmentId },
      );
    }
    await call(controller.finishEvacuate, `nova-conductor: host=${target}, vm_state=active`, {
      instanceUuid,
      requestId,
      host: target,
      node: selected.nodeUuid,
    });
    upsertSearchAttributes([
      { key: ComputeHostKey, value: target },
      { key: VmStateKey, value: 'active' },
    ]);
    return {
      instanceUuid,
      sourceHost: plan.sourceHost,
      host: target,
      ports: bound.map((p) => p.portId),
      volumes: volumes.map((v) => ({ volumeId: v.volumeId, device: v.device })),
    };
  } catch (err) {
    const failure = classify(err, host);
    await CancellationScope.nonCancellable(async () => {
      await saga.compensate(failure.hostDown && host ? { unreachableHost: host } : {});
      await call(controllerCleanup.failEvacuate, 'nova-conductor: evacuate failed, vm_state=error', {
        instanceUuid,
        requestId,
        fault: faultOf(failure, `Evacuate failed: ${failure.message}`, host),
      });
    });
    upsertSearchAttributes([{ key: VmStateKey, value: 'error' }]);
    throw typed(request, failure, err);
  }
}

/** `bootflow host evacuate <host>`: one child evacuateServer per server of the host, side by side. */
export async function evacuateHost(request: EvacuateHostRequest): Promise<EvacuateHostResult> {
  const session = await call(controller.authenticate, 'keystone: authenticate', request.auth);
  const servers = await call(controller.listHostServers, `nova-api: servers on ${request.host}`, {
    token: session.token,
    host: request.host,
  });
  const outcomes = await Promise.allSettled(
    servers.map((instanceUuid) =>
      executeChild(evacuateServer, {
        workflowId: evacuateWorkflowId(instanceUuid, request.requestId),
        args: [
          {
            requestId: `${request.requestId}-${instanceUuid}`,
            // The host-wide grant: each child's activities accept it as the child of the workflow it names.
            auth: { grant: session.token },
            instanceUuid,
            ...(request.timeouts ? { timeouts: request.timeouts } : {}),
          },
        ],
      }),
    ),
  );
  const result: EvacuateHostResult = { host: request.host, evacuated: [], failed: [] };
  outcomes.forEach((outcome, i) => {
    if (outcome.status === 'fulfilled') result.evacuated.push(outcome.value);
    else {
      const failure = classify(outcome.reason);
      result.failed.push({ instanceUuid: servers[i] ?? '', type: failure.type, message: failure.message });
    }
  });
  return result;
}

/**
 * init_host's _destroy_evacuated_instances, for a compute host coming back: its local guests that the
 * controller says were evacuated elsewhere are destroyed here (domain, VIFs, volume connections, disk).
 */
export async function destroyEvacuatedInstances(input: {
  host: string;
  hostPickupMs?: number;
}): Promise<string[]> {
  const compute = computeStubs(input.host, input.hostPickupMs ?? DEFAULT_TIMEOUTS.hostPickupMs);
  const local = await call(compute.volumes.listLocalInstances, `nova-compute: guests on ${input.host}`, {});
  if (local.length === 0) return [];
  const evacuated = await call(controller.evacuatedInstances, 'nova-conductor: which were evacuated', {
    host: input.host,
    localInstanceUuids: local,
  });
  for (const instanceUuid of evacuated) {
    await call(compute.ops.destroyInstance, `nova-compute: destroy evacuated ${instanceUuid}`, {
      instanceUuid,
    });
  }
  return evacuated;
}
