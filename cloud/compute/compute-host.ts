/**
 * A compute host: nova-compute's local side. Everything it knows lives in its own directory, never in a
 * controller database, so any worker process on the machine can pick up where another left off:
 *
 *   <hostDir>/host.json                     who the host is and what it offers
 *   <hostDir>/_base/<imageId>               image cache, one verified download per image
 *   <hostDir>/instances/<uuid>/disk         root disk (fake: sparse raw; qemu: qcow2 overlay on _base)
 *   <hostDir>/instances/<uuid>/libvirt.xml  the domain definition; qemu also keeps domain.json, qemu.pid,
 *                                           qmp.sock and console.log there (./qemu-driver.ts)
 *   <hostDir>/state/domains.json            the fake virt driver's domains and power states
 *   <hostDir>/state/network-agent.json      bridges and taps of plugged ports, wired networks
 *   <hostDir>/../_network/<network id>/     linux-bridge agent, shared by the cloud's hosts on this machine:
 *                                           dnsmasq's hosts file (and each host's part), pid file, leases
 *   <hostDir>/state/volume-connections.json volumes connected for guests
 *   <hostDir>/faults.json                   injected faults (tests, chaos tool)
 */
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { systemClock, type Clock } from '../clock';
import { CloudError } from '../errors';
import type { ImageLocation } from '../glance/types';
import { parseRequest } from '../validation';
import { domainXml } from './domain-xml';
import { auditHost, type HostLeakFinding } from './host-audit';
import { FaultInjector, type FaultOperation, type FaultSpec } from './faults';
import { ImageCache, processAlive, type FetchOptions } from './image-cache';
import { createSparseDisk, inspectBaseImage } from './instance-disk';
import {
  dhcpNetworkSchema,
  NETWORK_AGENTS,
  NetworkAgent,
  plugPortSchema,
  type DhcpNetwork,
  type NetworkAgentKind,
  type PlugPort,
} from './network-agent';
import {
  consoleLengthSchema,
  createInstanceDirSchema,
  hostNameSchema,
  instanceUuidSchema,
  portIdSchema,
  spawnSchema,
  type CreateInstanceDirInput,
  type SpawnInput,
} from './requests';
import { runCommand } from './host-commands';
import { writeFileAtomic } from './state-file';
import { timedStep } from './step-timings';
import {
  hostCapabilitiesSchema,
  POWER_STATE,
  type DomainDefinition,
  type DomainInfo,
  type DomainSpec,
  type FetchImageResult,
  type HostCapabilities,
  type InstanceDir,
  type PowerState,
  type VifRecord,
  type VolumeConnection,
} from './types';
import { createQcow2Overlay, QemuDriver, type QemuDriverOptions } from './qemu-driver';
import { FakeDriver, REBOOT_TYPES, type RebootType, type VirtDriver } from './virt-driver';
import {
  connectionInfoSchema,
  connectTargetSchema,
  VolumeConnector,
  type ConnectionInfo,
  type ConnectTarget,
} from './volume-connector';

const GiB = 1024 ** 3;

export interface ComputeHostOptions {
  host: string;
  /** `<dataDir>/hosts/<host>` by convention. */
  hostDir: string;
  capabilities: HostCapabilities;
  /** `fake` records bridges and taps only; `linux-bridge` creates them (root, iproute2, dnsmasq). */
  networkAgent?: NetworkAgentKind;
  /** The virt driver: `fake` (no guest runs, the default) or `qemu` (real guests, ./qemu-driver.ts). */
  driver?: VirtDriverType;
  /** Settings of the qemu driver (timeouts, accelerator). */
  qemu?: QemuDriverOptions;
  /** Nova's init_host (find the guests again, kill strays); false for a reader such as the leak audit. */
  initHost?: boolean;
  clock?: Clock;
  /** How long fetchImage waits for another process's download of the same image (default 10 min). */
  imageLockWaitMs?: number;
}

export interface OperationOptions {
  /** Aborts a wait (a hang or slow fault, a lock, a download): an activity's cancellation signal. */
  signal?: AbortSignal;
}

export interface DestroyResult {
  domainRemoved: boolean;
  instanceDirRemoved: boolean;
  unpluggedPorts: string[];
  disconnectedVolumes: VolumeConnection[];
}

export const VIRT_DRIVER_TYPES = ['fake', 'qemu'] as const;
export type VirtDriverType = (typeof VIRT_DRIVER_TYPES)[number];

const hostIdentitySchema = z.object({ host: z.string(), driver: z.string() });

export class ComputeHost {
  private constructor(
    readonly host: string,
    readonly hostDir: string,
    readonly capabilities: HostCapabilities,
    readonly driver: VirtDriver,
    /** Stray guests init_host removed when this host was opened (their instance directory was gone). */
    readonly reapedAtStart: readonly string[],
    private readonly faults: FaultInjector,
    private readonly cache: ImageCache,
    private readonly network: NetworkAgent,
    private readonly volumes: VolumeConnector,
  ) {}

  static async open(options: ComputeHostOptions): Promise<ComputeHost> {
    const parsed = parseRequest(
      z.strictObject({
        host: hostNameSchema,
        hostDir: z.string().min(1).max(4096),
        capabilities: hostCapabilitiesSchema,
        networkAgent: z.enum(NETWORK_AGENTS).default('fake'),
        driver: z.enum(VIRT_DRIVER_TYPES).default('fake'),
        qemu: z.custom<QemuDriverOptions>((o) => typeof o === 'object' && o !== null).optional(),
        initHost: z.boolean().default(true),
        clock: z.custom<Clock>((c) => typeof (c as Clock | undefined)?.now === 'function').optional(),
        imageLockWaitMs: z
          .number()
          .int()
          .min(0)
          .max(24 * 3600_000)
          .optional(),
      }),
      options,
      'compute host options',
    );
    const hostDir = path.resolve(parsed.hostDir);
    const clock = parsed.clock ?? systemClock;
    for (const sub of ['_base', 'instances', 'state'])
      await mkdir(path.join(hostDir, sub), { recursive: true });
    await claimHostDir(hostDir, parsed.host, parsed.capabilities, parsed.driver, parsed.networkAgent, clock);
    const faults = new FaultInjector(hostDir, parsed.host);
    const cache = new ImageCache(path.join(hostDir, '_base'), faults, parsed.imageLockWaitMs ?? 600_000);
    await cache.removeAbandonedParts();
    const driver =
      parsed.driver === 'qemu' ? new QemuDriver(hostDir, clock, parsed.qemu) : new FakeDriver(hostDir, clock);
    const reaped = parsed.initHost ? await driver.initHost() : [];
    const network = new NetworkAgent(hostDir, parsed.host, clock, parsed.networkAgent);
    if (parsed.initHost) await network.initHost();
    return new ComputeHost(
      parsed.host,
      hostDir,
      parsed.capabilities,
      driver,
      reaped,
      faults,
      cache,
      network,
      new VolumeConnector(hostDir, clock),
    );
  }

  /** Nothing is held open between calls; here for symmetry with the services. */
  async close(): Promise<void> {}

  // ---- image cache --------------------------------------------------------------------------------------

  /** Downloads the image into `_base/` once (verified), or returns the cached copy. */
  async fetchImage(location: ImageLocation, options: FetchOptions = {}): Promise<FetchImageResult> {
    return this.cache.fetch(location, options);
  }

  async listCachedImages(): Promise<Array<{ imageId: string; path: string; bytes: number }>> {
    return this.cache.list();
  }

  // ---- instance directories -----------------------------------------------------------------------------

  /**
   * `instances/<uuid>/` with a sparse root disk of `rootGb` holding the base image at its start, and the
   * domain definition. A repeat returns the existing directory.
   */
  async createInstanceDir(
    instanceUuid: string,
    input: CreateInstanceDirInput,
    options: OperationOptions = {},
  ): Promise<InstanceDir> {
    const uuid = parseRequest(instanceUuidSchema, instanceUuid, 'instance uuid');
    const req = parseRequest(createInstanceDirSchema(this.capabilities.diskGb), input, 'instance directory');
    const basePath =
      req.baseImagePath === undefined ? undefined : await this.cachedBaseImage(req.baseImagePath);
    await this.faults.apply('createInstanceDir', options.signal);
    const dir = this.instanceDir(uuid);
    const existing = await fileSize(dir.diskPath);
    let diskSizeBytes = existing ?? 0;
    if (existing === undefined) {
      const base = basePath ? await inspectBaseImage(basePath) : undefined;
      const imageBytes = Math.max(base?.bytes ?? 0, base?.virtualSize ?? 0);
      if (req.rootGb === 0 && !base)
        throw new CloudError(
          'BadRequest',
          'A root disk of 0 GB takes the image size, but no base image was given',
        );
      diskSizeBytes = req.rootGb === 0 ? imageBytes : req.rootGb * GiB;
      if (imageBytes > diskSizeBytes)
        throw new CloudError(
          'FlavorDiskTooSmall',
          `Flavor's disk is too small for requested image. Flavor disk is ${diskSizeBytes} bytes, image is ${imageBytes} bytes.`,
          { flavorDiskBytes: diskSizeBytes, imageBytes },
        );
      await mkdir(dir.path, { recursive: true });
      if (this.driver.diskFormat === 'qcow2')
        await timedStep('spawn: qcow2 overlay (written directly)', () =>
          createQcow2Overlay(
            dir.diskPath,
            diskSizeBytes,
            basePath && base
              ? { path: basePath, format: base.virtualSize === null ? 'raw' : 'qcow2' }
              : undefined,
          ),
        );
      else await createSparseDisk(dir.diskPath, diskSizeBytes, basePath);
    } else if (this.driver.diskFormat === 'qcow2') {
      diskSizeBytes = (await inspectBaseImage(dir.diskPath)).virtualSize ?? diskSizeBytes;
    }
    if ((await fileSize(dir.domainDefinitionPath)) === undefined) {
      await this.writeDomainDefinition({
        uuid,
        name: req.name ?? domainName(uuid),
        vcpus: req.vcpus ?? null,
        memoryMb: req.memoryMb ?? null,
        cpuArch: this.capabilities.cpuArch,
        diskPath: dir.diskPath,
        diskFormat: this.driver.diskFormat,
        kernelPath: null,
        ramdiskPath: null,
        consoleLogPath: dir.consoleLogPath,
        interfaces: [],
        volumes: [],
      });
    }
    return { uuid, ...dir, diskSizeBytes, created: existing === undefined };
  }

  /** Instance uuids that have a directory on this host (for the leak audit). */
  async listInstanceDirs(): Promise<string[]> {
    const entries = await readdir(path.join(this.hostDir, 'instances'), { withFileTypes: true });
    return entries
      .filter((e) => e.isDirectory() && instanceUuidSchema.safeParse(e.name).success)
      .map((e) => e.name)
      .sort();
  }

  async readDomainDefinition(instanceUuid: string): Promise<string> {
    const uuid = parseRequest(instanceUuidSchema, instanceUuid, 'instance uuid');
    try {
      return await readFile(this.instanceDir(uuid).domainDefinitionPath, 'utf8');
    } catch {
      throw new CloudError('NotFound', `No domain definition for instance ${uuid} on host ${this.host}`);
    }
  }

  // ---- network agent ------------------------------------------------------------------------------------

  /** Creates the port's bridge and tap (idempotent). Accepts the Port object Neutron returned. */
  async plugVif(port: PlugPort, options: OperationOptions = {}): Promise<VifRecord> {
    const parsed = parseRequest(plugPortSchema, port, 'port');
    await this.faults.apply('plugVif', options.signal);
    return this.network.plug(parsed, options.signal);
  }

  /** Removes the port's bridge and tap; false when it was not plugged (a repeat). */
  async unplugVif(portId: string, options: OperationOptions = {}): Promise<boolean> {
    const id = parseRequest(portIdSchema, portId, 'port id');
    await this.faults.apply('unplugVif', options.signal);
    return this.network.unplug(id);
  }

  async listVifs(): Promise<VifRecord[]> {
    return this.network.list();
  }

  /** The network agent's mode on this host. */
  get networkAgent(): NetworkAgentKind {
    return this.network.kind;
  }

  /** linux-bridge mode: the networks wired here (bridge, DHCP namespace, dnsmasq). */
  async listWiredNetworks(): Promise<DhcpNetwork[]> {
    return this.network.listNetworks();
  }

  /**
   * The DHCP agent's sync with neutron-server's DHCP networks for this host: each served, and the networks
   * wired here that are no longer among them (deleted, DHCP subnet gone) removed. No-op for the fake agent.
   */
  async syncDhcpNetworks(networks: DhcpNetwork[]): Promise<{ served: string[]; removed: string[] }> {
    const parsed = parseRequest(z.array(dhcpNetworkSchema).max(1000), networks, 'DHCP networks');
    return this.network.syncNetworks(parsed.map((n) => ({ ...n, gatewayIp: n.gatewayIp ?? null })));
  }

  // ---- volumes ------------------------------------------------------------------------------------------

  /** Connects a Cinder volume's backing file and gives it the guest's next device (idempotent). */
  async connectVolume(
    connectionInfo: ConnectionInfo,
    target: ConnectTarget = {},
    options: OperationOptions = {},
  ): Promise<VolumeConnection> {
    const info = parseRequest(connectionInfoSchema, connectionInfo, 'connection info');
    const to = parseRequest(connectTargetSchema, target, 'volume target');
    await this.faults.apply('connectVolume', options.signal);
    return this.volumes.connect(info, to, options.signal);
  }

  /** False when it was not connected (a repeat). */
  async disconnectVolume(
    connectionInfo: ConnectionInfo,
    target: ConnectTarget = {},
    options: OperationOptions = {},
  ): Promise<boolean> {
    const info = parseRequest(connectionInfoSchema, connectionInfo, 'connection info');
    const to = parseRequest(connectTargetSchema, target, 'volume target');
    await this.faults.apply('disconnectVolume', options.signal);
    return this.volumes.disconnect(info, to);
  }

  async listVolumeConnections(): Promise<VolumeConnection[]> {
    return this.volumes.list();
  }

  // ---- guests -------------------------------------------------------------------------------------------

  /**
   * Defines and starts the guest (power state RUNNING) from its instance directory, plugged ports and
   * connected volumes. A repeat returns the running domain.
   */
  async spawn(instanceUuid: string, spec: SpawnInput, options: OperationOptions = {}): Promise<DomainInfo> {
    const uuid = parseRequest(instanceUuidSchema, instanceUuid, 'instance uuid');
    const req = parseRequest(spawnSchema, spec, 'spawn request');
    const dir = this.instanceDir(uuid);
    if ((await fileSize(dir.diskPath)) === undefined)
      throw new CloudError(
        'NotFound',
        `Instance ${uuid} has no directory with a root disk on host ${this.host}`,
        {
          instance: uuid,
          host: this.host,
        },
      );
    const kernelPath = req.kernelPath === undefined ? null : await this.cachedBaseImage(req.kernelPath);
    const ramdiskPath = req.ramdiskPath === undefined ? null : await this.cachedBaseImage(req.ramdiskPath);
    await this.faults.apply('spawn', options.signal);
    const vifs = await this.network.list();
    const chosen = req.portIds
      ? req.portIds.map((portId) => {
          const vif = vifs.find((v) => v.portId === portId);
          if (!vif)
            throw new CloudError(
              'VirtualInterfaceCreateException',
              `Port ${portId} is not plugged on host ${this.host}`,
              {
                port: portId,
                host: this.host,
              },
            );
          return vif;
        })
      : vifs.filter((v) => v.instanceUuid === uuid);
    const volumes = (await this.volumes.list()).filter((c) => c.instanceUuid === uuid);
    const domain: DomainSpec = {
      uuid,
      name: req.name ?? domainName(uuid),
      vcpus: req.vcpus,
      memoryMb: req.memoryMb,
      cpuArch: this.capabilities.cpuArch,
      diskPath: dir.diskPath,
      diskFormat: this.driver.diskFormat,
      kernelPath,
      ramdiskPath,
      consoleLogPath: dir.consoleLogPath,
      interfaces: chosen.map((v) => ({
        portId: v.portId,
        macAddress: v.macAddress,
        bridge: v.bridge,
        tap: v.tap,
      })),
      volumes: volumes.map((c) => ({ device: c.device, path: c.path, volumeId: c.volumeId })),
    };
    await this.writeDomainDefinition(domain);
    return timedStep('spawn: the driver (lock, definition, start)', () =>
      this.driver.spawn(domain, options.signal),
    );
  }

  async powerOff(instanceUuid: string, options: OperationOptions = {}): Promise<DomainInfo> {
    const uuid = parseRequest(instanceUuidSchema, instanceUuid, 'instance uuid');
    await this.faults.apply('powerOff', options.signal);
    return this.driver.powerOff(uuid);
  }

  async powerOn(instanceUuid: string, options: OperationOptions = {}): Promise<DomainInfo> {
    const uuid = parseRequest(instanceUuidSchema, instanceUuid, 'instance uuid');
    await this.faults.apply('powerOn', options.signal);
    return this.driver.powerOn(uuid);
  }

  /** Nova's pause, unpause, suspend (managed save) and resume of the host's guest. */
  async pause(instanceUuid: string, options: OperationOptions = {}): Promise<DomainInfo> {
    const uuid = parseRequest(instanceUuidSchema, instanceUuid, 'instance uuid');
    await this.faults.apply('pause', options.signal);
    return this.driver.pause(uuid);
  }

  async unpause(instanceUuid: string, options: OperationOptions = {}): Promise<DomainInfo> {
    const uuid = parseRequest(instanceUuidSchema, instanceUuid, 'instance uuid');
    await this.faults.apply('unpause', options.signal);
    return this.driver.unpause(uuid);
  }

  async suspend(instanceUuid: string, options: OperationOptions = {}): Promise<DomainInfo> {
    const uuid = parseRequest(instanceUuidSchema, instanceUuid, 'instance uuid');
    await this.faults.apply('suspend', options.signal);
    return this.driver.suspend(uuid);
  }

  async resume(instanceUuid: string, options: OperationOptions = {}): Promise<DomainInfo> {
    const uuid = parseRequest(instanceUuidSchema, instanceUuid, 'instance uuid');
    await this.faults.apply('resume', options.signal);
    return this.driver.resume(uuid);
  }

  /** Nova's reboot: SOFT through ACPI (HARD after the driver's shutdown timeout), HARD a reset. */
  async reboot(
    instanceUuid: string,
    type: RebootType = 'SOFT',
    options: OperationOptions = {},
  ): Promise<DomainInfo> {
    const uuid = parseRequest(instanceUuidSchema, instanceUuid, 'instance uuid');
    const how = parseRequest(z.enum(REBOOT_TYPES), type, 'reboot type');
    await this.faults.apply('reboot', options.signal);
    return this.driver.reboot(uuid, how);
  }

  /**
   * nova-compute's get_console_output: the guest's serial console (the driver's last 100 KiB), the last
   * `lengthLines` lines of it when given (Nova's `length`).
   */
  async getConsoleOutput(instanceUuid: string, lengthLines?: number): Promise<string> {
    const uuid = parseRequest(instanceUuidSchema, instanceUuid, 'instance uuid');
    const lines = parseRequest(consoleLengthSchema, lengthLines, 'console length');
    const output = await this.driver.getConsoleOutput(uuid);
    return lines === undefined ? output : tailLines(output, lines);
  }

  async getDomain(instanceUuid: string): Promise<DomainInfo | undefined> {
    return this.driver.getInfo(parseRequest(instanceUuidSchema, instanceUuid, 'instance uuid'));
  }

  /** Nova's power_state of the guest: NOSTATE (0) when there is no domain. */
  async getPowerState(instanceUuid: string): Promise<PowerState> {
    return (await this.getDomain(instanceUuid))?.powerState ?? POWER_STATE.NOSTATE;
  }

  async listDomains(): Promise<DomainInfo[]> {
    return this.driver.listDomains();
  }

  /**
   * Removes everything the host has for the instance, as the driver's destroy does: the domain, its ports'
   * bridges and taps, its volume connections and its directory. Idempotent.
   */
  async destroy(instanceUuid: string, options: OperationOptions = {}): Promise<DestroyResult> {
    const uuid = parseRequest(instanceUuidSchema, instanceUuid, 'instance uuid');
    await this.faults.apply('destroy', options.signal);
    const domainRemoved = await this.driver.destroy(uuid);
    const unpluggedPorts = await this.network.unplugInstance(uuid);
    const disconnectedVolumes = await this.volumes.disconnectInstance(uuid);
    const dir = this.instanceDir(uuid).path;
    const instanceDirRemoved = (await fileSize(dir)) !== undefined;
    await rm(dir, { recursive: true, force: true });
    return { domainRemoved, instanceDirRemoved, unpluggedPorts, disconnectedVolumes };
  }

  /**
   * A rebuild's first host step (the driver's destroy with destroy_disks, keeping the network and the
   * volumes): the domain and the instance directory go, the instance's VIFs and volume connections stay
   * for the new guest. Idempotent.
   */
  async destroyGuestForRebuild(instanceUuid: string, options: OperationOptions = {}): Promise<void> {
    const uuid = parseRequest(instanceUuidSchema, instanceUuid, 'instance uuid');
    await this.faults.apply('destroy', options.signal);
    await this.driver.destroy(uuid);
    await rm(this.instanceDir(uuid).path, { recursive: true, force: true });
  }

  /**
   * The driver's snapshot (Nova's libvirt snapshot): the root disk as an image file in `snapshots/`, for
   * the controller to upload to Glance. fake: a sparse copy of the raw disk as the host keeps it; qemu: the
   * overlay flattened with its backing file (`qemu-img convert -O qcow2`). A repeat makes it again.
   */
  async snapshotDisk(
    instanceUuid: string,
    imageId: string,
    options: OperationOptions = {},
  ): Promise<{ path: string; diskFormat: 'raw' | 'qcow2'; bytes: number }> {
    const uuid = parseRequest(instanceUuidSchema, instanceUuid, 'instance uuid');
    const id = parseRequest(instanceUuidSchema, imageId, 'image id');
    await this.faults.apply('snapshot', options.signal);
    const dir = this.instanceDir(uuid);
    const size = await fileSize(dir.diskPath);
    if (size === undefined)
      throw new CloudError('NotFound', `Instance ${uuid} has no root disk on host ${this.host}`, {
        instanceUuid: uuid,
      });
    const out = this.snapshotPath(id);
    await mkdir(path.dirname(out), { recursive: true });
    await rm(out, { force: true });
    if (this.driver.diskFormat === 'qcow2') {
      await runCommand('qemu-img', ['convert', '-U', '-f', 'qcow2', '-O', 'qcow2', dir.diskPath, out], {
        timeoutMs: 30 * 60_000,
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } else {
      await runCommand('cp', ['--sparse=always', '--no-preserve=all', '--', dir.diskPath, out], {
        timeoutMs: 30 * 60_000,
        ...(options.signal ? { signal: options.signal } : {}),
      });
    }
    // The fake driver's raw disk holds the base image's bytes at its start: a qcow2 base makes it read as
    // qcow2 (what Glance's format check and a later boot from the snapshot see), as the guest would.
    const diskFormat =
      this.driver.diskFormat === 'raw' && (await inspectBaseImage(out)).virtualSize !== null
        ? 'qcow2'
        : this.driver.diskFormat;
    return { path: out, diskFormat, bytes: (await fileSize(out)) ?? 0 };
  }

  /** Removes a snapshot's file once uploaded (or given up). Idempotent. */
  async removeSnapshotFile(imageId: string): Promise<void> {
    const id = parseRequest(instanceUuidSchema, imageId, 'image id');
    await rm(this.snapshotPath(id), { force: true });
  }

  private snapshotPath(imageId: string): string {
    return path.join(this.hostDir, 'snapshots', imageId);
  }

  // ---- leak audit ---------------------------------------------------------------------------------------

  /** This host's half of the leak audit, given the instances the controller says live here. */
  /**
   * `existingNetworks`: neutron-server's networks (ids), when the caller has them: a network wired here that
   * is not among them is a stray (its namespace, dnsmasq, bridge).
   */
  async auditLeaks(
    liveInstanceUuids: readonly string[],
    existingNetworks?: readonly string[],
  ): Promise<HostLeakFinding[]> {
    return auditHost(this, new Set(liveInstanceUuids), existingNetworks && new Set(existingNetworks));
  }

  // ---- faults -------------------------------------------------------------------------------------------

  /** Makes the next calls of `operation` fail, hang or be slow, for every process on this host. */
  async setFault(operation: FaultOperation, spec: FaultSpec): Promise<void> {
    await this.faults.set(operation, spec);
  }

  async clearFaults(operation?: FaultOperation): Promise<void> {
    await this.faults.clear(operation);
  }

  async listFaults(): Promise<Partial<Record<FaultOperation, FaultSpec>>> {
    return this.faults.list();
  }

  // ---- internals ----------------------------------------------------------------------------------------

  private instanceDir(uuid: string): {
    path: string;
    diskPath: string;
    domainDefinitionPath: string;
    consoleLogPath: string;
  } {
    const dir = path.join(this.hostDir, 'instances', uuid);
    return {
      path: dir,
      diskPath: path.join(dir, 'disk'),
      domainDefinitionPath: path.join(dir, 'libvirt.xml'),
      consoleLogPath: path.join(dir, 'console.log'),
    };
  }

  private async writeDomainDefinition(definition: DomainDefinition): Promise<void> {
    const file = this.instanceDir(definition.uuid).domainDefinitionPath;
    await writeFileAtomic(file, domainXml(definition, this.driver.type));
  }

  /** Only files of this host's own image cache may back a root disk. */
  private async cachedBaseImage(baseImagePath: string): Promise<string> {
    const resolved = path.resolve(baseImagePath);
    const baseDir = path.join(this.hostDir, '_base');
    if (path.dirname(resolved) !== baseDir)
      throw new CloudError('BadRequest', `The base image must be in this host's image cache (${baseDir})`);
    if ((await fileSize(resolved)) === undefined)
      throw new CloudError(
        'NotFound',
        `Base image ${path.basename(resolved)} is not in the image cache of ${this.host}`,
      );
    await this.cache.assertIntact(resolved);
    return resolved;
  }
}

/**
 * Nova's _tail_log exactly: the last `lines` pieces of the text split on newlines, so a log ending in a
 * newline gives its last `lines - 1` lines and that newline (what tempest's test_get_console_output counts).
 */
function tailLines(text: string, lines: number): string {
  if (lines === 0) return '';
  return text.split('\n').slice(-lines).join('\n');
}

function domainName(uuid: string): string {
  return `instance-${uuid}`;
}

async function fileSize(file: string): Promise<number | undefined> {
  try {
    return (await stat(file)).size;
  } catch {
    return undefined;
  }
}

/** A host directory belongs to one host: opening it under another name is a configuration mistake. */
async function claimHostDir(
  hostDir: string,
  host: string,
  capabilities: HostCapabilities,
  driver: string,
  networkAgent: NetworkAgentKind,
  clock: Clock,
): Promise<void> {
  const file = path.join(hostDir, 'host.json');
  try {
    const known = hostIdentitySchema.parse(JSON.parse(await readFile(file, 'utf8')));
    if (known.host !== host)
      throw new CloudError(
        'BadRequest',
        `Host directory ${hostDir} belongs to host ${known.host}, not ${host}`,
      );
  } catch (err) {
    if (
      (err as NodeJS.ErrnoException).code !== 'ENOENT' &&
      !(err instanceof z.ZodError) &&
      !(err instanceof SyntaxError)
    )
      throw err;
  }
  await writeFileAtomic(
    file,
    `${JSON.stringify({ host, driver, networkAgent, capabilities, updatedAt: clock.now() }, null, 2)}\n`,
  );
  await removeAbandonedTemps(path.join(hostDir, 'state'));
}

/** Temp files of state writes by processes that are gone. */
async function removeAbandonedTemps(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    if (!name.endsWith('.tmp')) continue;
    const pid = Number(name.split('.').at(-3));
    if (Number.isInteger(pid) && pid > 0 && !processAlive(pid))
      await rm(path.join(dir, name), { force: true });
  }
}
