/**
 * nova-compute and the network agent on one host, served on `compute@<host>`. Everything comes in as
 * arguments (the image location, port descriptions, connection info): these activities never open a
 * controller database. Results go back to the workflow, which hands them to the conductor.
 */
import { Context } from '@temporalio/activity';
import type { LeakFinding } from '../cloud/audit';
import type { DhcpDetails } from '../common/dhcp';
import type { ComputeHost, PowerState, RebootType } from '../cloud/compute';
import type {
  ImageLocation,
  PluggedVif,
  PortDescription,
  SpawnResult,
  SpawnSpec,
  VolumeConnectionInfo,
} from '../workflows/types';
import { timedStep } from '../cloud/compute/step-timings';
import { adaptAll } from './failures';

export interface FetchProgressDetails {
  bytesDone: number;
  bytesTotal: number;
}

/** Heartbeats at most this often while a download runs (its progress is the heartbeat's details). */
const HEARTBEAT_EVERY_MS = 1_000;

function signal(): AbortSignal {
  return Context.current().cancellationSignal;
}

/**
 * Heartbeats while host work runs, so a cancellation reaches it (a hung spawn is aborted through the
 * signal) and a dead worker is noticed within the heartbeat timeout instead of the whole start-to-close.
 */
async function beating<T>(work: () => Promise<T>, details: () => unknown = () => undefined): Promise<T> {
  const ctx = Context.current();
  ctx.heartbeat(details());
  const timer = setInterval(() => ctx.heartbeat(details()), HEARTBEAT_EVERY_MS);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}

/** A volume's connection on the host, as Cinder's attachment handed it out. */
export interface VolumeConnection {
  instanceUuid: string;
  volumeId: string;
  connectionInfo: VolumeConnectionInfo;
}

/** What a rebuild spawns: the instance, its (unchanged) flavor and the new image's cached files. */
export type RebuildGuestSpec = Omit<SpawnSpec, 'ports' | 'volumes'>;

/**
 * The instance directory (sparse root disk over the cached base image; a blank local disk when the root
 * is a volume) and the guest started with the given plugged ports (all of the instance's when undefined)
 * and its connected volumes. Idempotent.
 */
function spawnGuest(
  compute: ComputeHost,
  spec: SpawnSpec,
  portIds: string[] | undefined,
): Promise<SpawnResult> {
  const work = async () => {
    const dir = await compute.createInstanceDir(
      spec.uuid,
      {
        rootGb: spec.baseImagePath ? spec.flavor.rootGb : Math.max(1, spec.flavor.rootGb),
        ...(spec.baseImagePath ? { baseImagePath: spec.baseImagePath } : {}),
        name: spec.name,
        vcpus: spec.flavor.vcpus,
        memoryMb: spec.flavor.memoryMb,
      },
      { signal: signal() },
    );
    const domain = await compute.spawn(
      spec.uuid,
      {
        name: spec.name,
        vcpus: spec.flavor.vcpus,
        memoryMb: spec.flavor.memoryMb,
        ...(portIds ? { portIds } : {}),
        ...(spec.kernelPath ? { kernelPath: spec.kernelPath } : {}),
        ...(spec.ramdiskPath ? { ramdiskPath: spec.ramdiskPath } : {}),
      },
      { signal: signal() },
    );
    return { powerState: domain.powerState, diskPath: dir.diskPath };
  };
  // The benchmark's breakdown: the host's part of the step, apart from the activity's round trip.
  return beating(() => timedStep('spawn: the host in all (instance directory, checks, driver)', work));
}

export function createComputeActivities(compute: ComputeHost) {
  return adaptAll({
    /**
     * Downloads the image into the host's cache (`_base/`), verifying its hashes; a cached image is a hit.
     * Progress goes into the heartbeat so a retry can report where the last attempt got to.
     */
    async fetchImage(location: ImageLocation): Promise<{ path: string; bytes: number; cacheHit: boolean }> {
      const ctx = Context.current();
      const previous = ctx.info.heartbeatDetails as FetchProgressDetails | undefined;
      if (previous) ctx.log.info('retrying an interrupted image download', { ...previous });
      let progress: FetchProgressDetails = { bytesDone: 0, bytesTotal: location.size };
      const result = await beating(
        () =>
          compute.fetchImage(location, {
            signal: ctx.cancellationSignal,
            onProgress: (p) => {
              progress = { bytesDone: p.bytesDone, bytesTotal: p.bytesTotal };
            },
          }),
        () => progress,
      );
      return { path: result.path, bytes: result.bytes, cacheHit: result.cacheHit };
    },

    /**
     * The L2 agent's plug of each port (idempotent): recorded only, or with the linux-bridge agent the tap on
     * the network's bridge, up (read back from the kernel), and the DHCP agent serving the port's address.
     */
    async plugVifs(input: {
      instanceUuid: string;
      host: string;
      ports: PortDescription[];
    }): Promise<PluggedVif[]> {
      const { instanceUuid, host, ports } = input;
      return beating(async () => {
        const plugged: PluggedVif[] = [];
        for (const port of ports) {
          const vif = await compute.plugVif(
            {
              id: port.portId,
              macAddress: port.macAddress,
              deviceId: instanceUuid,
              networkId: port.networkId,
              bindingHostId: host,
              bindingVifType: port.vifType,
              fixedIps: port.fixedIps,
              dhcp: port.dhcp ?? null,
            },
            { signal: signal() },
          );
          plugged.push({ portId: vif.portId, bridge: vif.bridge, tap: vif.tap });
        }
        return plugged;
      });
    },

    async unplugVifs(input: { portIds: string[] }): Promise<void> {
      await beating(async () => {
        for (const portId of input.portIds) await compute.unplugVif(portId, { signal: signal() });
      });
    },

    /** Connects the volume's backing file for the guest; returns its device (vdb, ...). */
    async connectVolume(input: VolumeConnection): Promise<{ device: string; path: string }> {
      const { instanceUuid, volumeId, connectionInfo } = input;
      const connection = await beating(() =>
        compute.connectVolume(connectionInfo, { instanceUuid, volumeId }, { signal: signal() }),
      );
      return { device: connection.device, path: connection.path };
    },

    async disconnectVolume(input: VolumeConnection): Promise<void> {
      const { instanceUuid, volumeId, connectionInfo } = input;
      await beating(() =>
        compute.disconnectVolume(connectionInfo, { instanceUuid, volumeId }, { signal: signal() }),
      );
    },

    /** init_host: the instances this host has a directory for (its local guests, running or not). */
    async listLocalInstances(_input: Record<string, never>): Promise<string[]> {
      return compute.listInstanceDirs();
    },

    /** An attach's host step on a running server: the volume connected, the guest's next device. */
    async attachGuestVolume(input: VolumeConnection): Promise<{ device: string; path: string }> {
      const { instanceUuid, volumeId, connectionInfo } = input;
      const connection = await beating(() =>
        compute.connectVolume(connectionInfo, { instanceUuid, volumeId }, { signal: signal() }),
      );
      return { device: connection.device, path: connection.path };
    },

    /** A detach's host step (bounded, unlike the undo `disconnectVolume`): the guest's device removed. */
    async disconnectGuestVolume(input: VolumeConnection): Promise<void> {
      const { instanceUuid, volumeId, connectionInfo } = input;
      await beating(() =>
        compute.disconnectVolume(connectionInfo, { instanceUuid, volumeId }, { signal: signal() }),
      );
    },

    /**
     * The instance directory (sparse root disk over the cached base image; a blank local disk when the root
     * is a volume) and the guest started with its plugged ports and connected volumes. Idempotent.
     */
    async spawn(spec: SpawnSpec): Promise<SpawnResult> {
      return spawnGuest(
        compute,
        spec,
        spec.ports.map((p) => p.portId),
      );
    },

    /**
     * nova-compute's rebuild on the same host: the old guest and its disk destroyed, then a new directory
     * over the new image and the guest spawned with the instance's plugged VIFs and connected volumes.
     */
    async rebuildGuest(spec: RebuildGuestSpec): Promise<SpawnResult> {
      await beating(() => compute.destroyGuestForRebuild(spec.uuid, { signal: signal() }));
      return spawnGuest(compute, { ...spec, ports: [], volumes: [] }, undefined);
    },

    /**
     * The driver's snapshot on this host (nova-compute's snapshot_instance): the root disk as an image file
     * (fake: the raw disk; qemu: the overlay flattened), whose path the controller's upload reads.
     */
    async snapshotDisk(input: {
      instanceUuid: string;
      imageId: string;
    }): Promise<{ path: string; diskFormat: 'raw' | 'qcow2'; bytes: number }> {
      return beating(() => compute.snapshotDisk(input.instanceUuid, input.imageId, { signal: signal() }));
    },

    /** The snapshot's file removed once uploaded, or when the snapshot is given up. Idempotent. */
    async removeSnapshotFile(input: { imageId: string }): Promise<void> {
      await compute.removeSnapshotFile(input.imageId);
    },

    /**
     * The driver's power state of every guest it knows on this host (QMP for real guests): the host's half
     * of the periodic power-state sync, which the controller applies (syncPowerStates).
     */
    async readPowerStates(): Promise<Array<{ instanceUuid: string; powerState: PowerState }>> {
      return (await compute.listDomains()).map((d) => ({ instanceUuid: d.uuid, powerState: d.powerState }));
    },

    /** The DHCP agent's half of its periodic sync: the networks it serves here (none with the fake agent). */
    async readDhcpNetworks(): Promise<string[]> {
      return (await compute.listWiredNetworks()).map((n) => n.networkId);
    },

    /** The DHCP agent's sync_state: serves these networks, stops serving the wired ones not among them. */
    async syncDhcpNetworks(networks: DhcpDetails[]): Promise<{ served: string[]; removed: string[] }> {
      return compute.syncDhcpNetworks(networks);
    },

    /** nova-compute's get_console_output: the guest's serial log, its last `lines` lines when given. */
    async getConsoleOutput(input: { instanceUuid: string; lines?: number }): Promise<{ output: string }> {
      return { output: await compute.getConsoleOutput(input.instanceUuid, input.lines) };
    },

    /**
     * This host's half of the leak audit: what it holds (files, domains, taps, bridges, namespaces, dnsmasq
     * and QEMU processes) for none of the instances the controller says live here.
     */
    async auditHost(liveInstanceUuids: string[], dhcpNetworks?: string[]): Promise<LeakFinding[]> {
      return beating(() => compute.auditLeaks(liveInstanceUuids, dhcpNetworks));
    },

    /** nova-compute's stop_instance: the driver's power off; the power state read back from the driver. */
    async powerOff(input: { instanceUuid: string }): Promise<{ powerState: number }> {
      const domain = await beating(() => compute.powerOff(input.instanceUuid, { signal: signal() }));
      return { powerState: domain.powerState };
    },

    /** nova-compute's start_instance: the driver's power on; the power state read back. */
    async powerOn(input: { instanceUuid: string }): Promise<{ powerState: number }> {
      const domain = await beating(() => compute.powerOn(input.instanceUuid, { signal: signal() }));
      return { powerState: domain.powerState };
    },

    /** nova-compute's reboot_instance, SOFT (ACPI, then a reset after the driver's timeout) or HARD. */
    async reboot(input: { instanceUuid: string; type: RebootType }): Promise<{ powerState: number }> {
      const domain = await beating(() =>
        compute.reboot(input.instanceUuid, input.type, { signal: signal() }),
      );
      return { powerState: domain.powerState };
    },

    /** nova-compute's pause_instance: the driver's pause; the power state read back (PAUSED). */
    async pause(input: { instanceUuid: string }): Promise<{ powerState: number }> {
      const domain = await beating(() => compute.pause(input.instanceUuid, { signal: signal() }));
      return { powerState: domain.powerState };
    },

    /** nova-compute's unpause_instance: the driver's unpause; the power state read back. */
    async unpause(input: { instanceUuid: string }): Promise<{ powerState: number }> {
      const domain = await beating(() => compute.unpause(input.instanceUuid, { signal: signal() }));
      return { powerState: domain.powerState };
    },

    /** nova-compute's suspend_instance: the driver's managed save; the power state read back (SHUTDOWN). */
    async suspend(input: { instanceUuid: string }): Promise<{ powerState: number }> {
      const domain = await beating(() => compute.suspend(input.instanceUuid, { signal: signal() }));
      return { powerState: domain.powerState };
    },

    /** nova-compute's resume_instance: the guest restored from its saved state; the power state read back. */
    async resume(input: { instanceUuid: string }): Promise<{ powerState: number }> {
      const domain = await beating(() => compute.resume(input.instanceUuid, { signal: signal() }));
      return { powerState: domain.powerState };
    },

    /** nova-compute's _get_power_state: what the driver says now (NOSTATE without a domain). */
    async getPowerState(input: { instanceUuid: string }): Promise<{ powerState: number }> {
      return { powerState: await compute.getPowerState(input.instanceUuid) };
    },

    /** The driver's destroy: domain, bridges and taps, volume connections and the instance directory. */
    async destroyInstance(input: { instanceUuid: string }): Promise<void> {
      await beating(() => compute.destroy(input.instanceUuid, { signal: signal() }));
    },
  });
}

export type ComputeActivities = ReturnType<typeof createComputeActivities>;
