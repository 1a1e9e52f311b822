/**
 * The compute host's network agent, in one of two modes chosen per host (`networkAgent`):
 *
 * - `fake`: records a hybrid-plug bridge `qbr<port[:11]>` and a tap `tap<port[:11]>` per port and creates
 *   nothing (the fake virt driver's fast tests and the benchmarks' control-plane figures);
 * - `linux-bridge`: Neutron's Linux-bridge agent and DHCP agent on this machine (see linux-bridge.ts): per
 *   network a bridge `brq<network[:11]>` and a `qdhcp-<network>` namespace with dnsmasq serving the subnet
 *   from a hosts file of the ports of the cloud's hosts on this machine (shared by them, reference-counted);
 *   per port a persistent tap on the bridge. A plug returns only once
 *   the kernel reports the tap on the bridge and up, so the port's ACTIVE status is a fact. As Neutron's
 *   DHCP agent, a network stays served (namespace, dnsmasq) while it has a DHCP subnet, not only while it
 *   has ports here: unplugging its last port removes only the tap and the port's line; the network goes
 *   when neutron-server no longer lists it (`syncNetworks`), or with the host's clean-up.
 *
 * Both keep what is plugged in `<hostDir>/state/network-agent.json`; plugging and unplugging are idempotent.
 * Security groups are recorded by neutron-server only: no filtering happens on the tap.
 */
import path from 'node:path';
import { z } from 'zod';
import type { Clock } from '../clock';
import { CloudError } from '../errors';
import { uuidSchema } from '../validation';
import {
  bridgeName,
  ensureNetwork,
  isPlugged,
  readLink,
  reloadHosts,
  removeNetwork,
  removeTap,
  tapName,
  type DhcpNetwork,
  type HostsEntry,
} from './linux-bridge';
import { JsonStateFile } from './state-file';
import { timedStep } from './step-timings';
import type { VifRecord } from './types';

export const NETWORK_AGENTS = ['fake', 'linux-bridge'] as const;
export type NetworkAgentKind = (typeof NETWORK_AGENTS)[number];

const vifRecordSchema = z.object({
  portId: z.string(),
  macAddress: z.string(),
  bridge: z.string(),
  tap: z.string(),
  instanceUuid: z.string().nullable(),
  networkId: z.string().nullable(),
  ipAddress: z.string().nullable().default(null),
  vifType: z.string(),
  pluggedAt: z.number(),
});
export const dhcpNetworkSchema = z.object({
  networkId: uuidSchema,
  subnetId: uuidSchema,
  cidr: z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, 'must be an IPv4 CIDR'),
  gatewayIp: z.string().max(64).nullable(),
  mtu: z.number().int().min(68).max(9000),
  dhcpPortId: uuidSchema,
  dhcpMacAddress: z.string().regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/),
  dhcpIpAddress: z.string().regex(/^\d{1,3}(\.\d{1,3}){3}$/),
});
const agentStateSchema = z.object({
  vifs: z.record(z.string(), vifRecordSchema),
  /** linux-bridge mode: the networks whose bridge, namespace and dnsmasq exist on this host. */
  networks: z.record(z.string(), dhcpNetworkSchema).default({}),
});
type AgentState = z.infer<typeof agentStateSchema>;

/**
 * A Neutron port as the agent needs it. Not strict: the caller may pass the whole Port Neutron returned;
 * only these fields are read. `dhcp` (the network's subnet and DHCP port, from neutron-server) is required
 * by the linux-bridge mode.
 */
export const plugPortSchema = z.object({
  id: uuidSchema,
  macAddress: z
    .string()
    .regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/, 'must be a MAC address like fa:16:3e:00:00:01'),
  deviceId: z.string().max(255).nullish(),
  networkId: z.string().max(255).nullish(),
  bindingHostId: z.string().max(255).nullish(),
  bindingVifType: z.string().max(64).nullish(),
  fixedIps: z
    .array(z.object({ subnetId: z.string().max(255), ipAddress: z.string().max(64) }))
    .max(16)
    .nullish(),
  dhcp: dhcpNetworkSchema.nullish(),
});
export type PlugPort = z.input<typeof plugPortSchema>;
export type { DhcpNetwork };

/** The fake mode's names (the hybrid plug); the tap is named the same in both modes. */
export function deviceNames(portId: string): { bridge: string; tap: string } {
  return { bridge: `qbr${portId.slice(0, 11)}`, tap: tapName(portId) };
}

export class NetworkAgent {
  private readonly file: JsonStateFile<AgentState>;

  constructor(
    private readonly hostDir: string,
    private readonly host: string,
    private readonly clock: Clock,
    readonly kind: NetworkAgentKind = 'fake',
  ) {
    this.file = new JsonStateFile(
      path.join(hostDir, 'state', 'network-agent.json'),
      agentStateSchema,
      () => ({ vifs: {}, networks: {} }),
    );
  }

  async plug(port: z.infer<typeof plugPortSchema>, signal?: AbortSignal): Promise<VifRecord> {
    if (port.bindingVifType === 'binding_failed' || port.bindingVifType === 'unbound')
      throw new CloudError(
        'PortBindingFailed',
        `Port ${port.id} is not bound (vif_type ${port.bindingVifType})`,
        { port: port.id },
      );
    if (port.bindingHostId && port.bindingHostId !== this.host)
      throw new CloudError(
        'PortBindingFailed',
        `Port ${port.id} is bound to host ${port.bindingHostId}, not ${this.host}`,
        { port: port.id },
      );
    const dhcp = this.kind === 'linux-bridge' ? requireDhcp(port) : undefined;
    const tap = tapName(port.id);
    let newNetwork = false;
    // Recorded before the kernel is touched: a worker that dies half way leaves a record, which the saga's
    // unplug (or the instance's destroy) finds and removes with everything made for it.
    const { record, fresh } = await this.file.update(
      (state) => {
        const existing = state.vifs[port.id];
        if (existing && existing.macAddress !== port.macAddress)
          throw new CloudError(
            'VirtualInterfaceCreateException',
            `Port ${port.id} is plugged with another MAC address`,
          );
        const clash = Object.values(state.vifs).find((v) => v.tap === tap && v.portId !== port.id);
        if (clash)
          throw new CloudError(
            'VirtualInterfaceCreateException',
            `Device ${tap} is already used by port ${clash.portId}`,
          );
        if (dhcp) {
          const known = state.networks[dhcp.networkId];
          if (known && (known.dhcpPortId !== dhcp.dhcpPortId || known.subnetId !== dhcp.subnetId))
            throw new CloudError(
              'VirtualInterfaceCreateException',
              `Network ${dhcp.networkId} is wired on ${this.host} with DHCP port ${known.dhcpPortId}, not ${dhcp.dhcpPortId}`,
            );
          newNetwork = known === undefined;
          state.networks[dhcp.networkId] = dhcp;
        }
        const vif: VifRecord = existing ?? {
          portId: port.id,
          macAddress: port.macAddress,
          bridge: dhcp ? bridgeName(dhcp.networkId) : deviceNames(port.id).bridge,
          tap,
          instanceUuid: port.deviceId ?? null,
          networkId: dhcp?.networkId ?? port.networkId ?? null,
          ipAddress:
            (dhcp ? port.fixedIps?.find((ip) => ip.subnetId === dhcp.subnetId) : port.fixedIps?.[0])
              ?.ipAddress ?? null,
          vifType: port.bindingVifType ?? 'ovs',
          pluggedAt: this.clock.now(),
        };
        state.vifs[port.id] = vif;
        return { record: vif, fresh: existing === undefined };
      },
      { signal },
    );
    if (!dhcp) return record;
    // A repeat re-checks the kernel too: it heals what a crash left half done.
    try {
      await this.file.update((state) => this.wire(state, record, dhcp), { signal });
    } catch (err) {
      // Leave nothing behind a failed plug: its tap, host line and the network when this plug wired it.
      if (fresh) await this.unplug(port.id).catch(() => undefined);
      if (newNetwork) await this.disableNetwork(dhcp.networkId).catch(() => undefined);
      if (err instanceof CloudError) throw err;
      throw new CloudError(
        'VirtualInterfaceCreateException',
        `Plugging port ${port.id} on ${this.host} failed: ${(err as Error).message}`,
        { port: port.id },
      );
    }
    return record;
  }

  /** Removes the port's tap (and host entry); false if it was not plugged. */
  async unplug(portId: string): Promise<boolean> {
    return this.file.update(async (state) => {
      const removed = state.vifs[portId] !== undefined;
      await this.release(state, [portId]);
      return removed;
    });
  }

  /** Unplugs every port of an instance (as the driver's destroy does with the instance's network_info). */
  async unplugInstance(instanceUuid: string): Promise<string[]> {
    return this.file.update(async (state) => {
      const ports = Object.values(state.vifs)
        .filter((v) => v.instanceUuid === instanceUuid)
        .map((v) => v.portId);
      await this.release(state, ports);
      return ports;
    });
  }

  async list(): Promise<VifRecord[]> {
    const state = await this.file.read();
    return Object.values(state.vifs).sort(
      (a, b) => a.pluggedAt - b.pluggedAt || a.portId.localeCompare(b.portId),
    );
  }

  /** linux-bridge mode: the networks wired on this host (bridge, namespace, dnsmasq). */
  async listNetworks(): Promise<DhcpNetwork[]> {
    return Object.values((await this.file.read()).networks).sort((a, b) =>
      a.networkId.localeCompare(b.networkId),
    );
  }

  /**
   * The DHCP agent's sync_state: serves each of `networks` (neutron-server's DHCP networks for this host:
   * bridge, namespace, dnsmasq, this host's lines), and stops serving the networks wired here that are not
   * among them (deleted, or their DHCP subnet gone). A network that still has ports plugged here is kept.
   * Returns the network ids served and removed.
   */
  async syncNetworks(networks: DhcpNetwork[]): Promise<{ served: string[]; removed: string[] }> {
    if (this.kind !== 'linux-bridge') return { served: [], removed: [] };
    const wanted = new Map(networks.map((n) => [n.networkId, n]));
    return this.file.update(async (state) => {
      const removed: string[] = [];
      for (const [networkId, network] of Object.entries(state.networks)) {
        const next = wanted.get(networkId);
        const inUse = Object.values(state.vifs).some((v) => v.networkId === networkId);
        const changed = next !== undefined && next.dhcpPortId !== network.dhcpPortId;
        if ((next === undefined || changed) && !inUse) {
          await removeNetwork(this.hostDir, network);
          delete state.networks[networkId];
          removed.push(networkId);
        }
      }
      for (const network of wanted.values()) {
        if (state.networks[network.networkId] !== undefined) continue;
        await ensureNetwork(this.hostDir, network, hostsOf(state.vifs, network.networkId));
        state.networks[network.networkId] = network;
      }
      return { served: [...wanted.keys()].sort(), removed: removed.sort() };
    });
  }

  /**
   * At agent start: every network wired here serves again with this host's lines rewritten from its records
   * (the hosts files are not fsynced; after a machine restart the devices and dnsmasq come back too). A
   * network that cannot be wired now is left to the next plug, which heals it.
   */
  async initHost(): Promise<string[]> {
    if (this.kind !== 'linux-bridge') return [];
    const state = await this.file.read();
    const failed: string[] = [];
    for (const network of Object.values(state.networks)) {
      try {
        await ensureNetwork(this.hostDir, network, hostsOf(state.vifs, network.networkId));
      } catch {
        failed.push(network.networkId);
      }
    }
    return failed;
  }

  /** Stops serving one network on this host (the last host of the cloud here removes its devices). */
  private async disableNetwork(networkId: string): Promise<void> {
    await this.file.update(async (state) => {
      const network = state.networks[networkId];
      if (!network || Object.values(state.vifs).some((v) => v.networkId === networkId)) return;
      await removeNetwork(this.hostDir, network);
      delete state.networks[networkId];
    });
  }

  // ---- linux-bridge mode --------------------------------------------------------------------------------

  /** Network up with the port's host entry, tap on the bridge and up, read back from the kernel. */
  private async wire(state: AgentState, record: VifRecord, dhcp: DhcpNetwork): Promise<void> {
    await timedStep('plug: network and tap (bridge, qdhcp namespace, tap, dnsmasq)', () =>
      ensureNetwork(this.hostDir, dhcp, hostsOf(state.vifs, dhcp.networkId), {
        portId: record.portId,
        macAddress: record.macAddress,
      }),
    );
    const link = await timedStep('plug: tap read back', () => readLink(record.tap));
    if (!isPlugged(link, record.bridge))
      throw new CloudError(
        'VirtualInterfaceCreateException',
        `${record.tap} is not up on ${record.bridge} (kernel reports master ${link?.master ?? 'none'}, flags ${(link?.flags ?? []).join(',') || 'none'})`,
        { port: record.portId },
      );
  }

  /**
   * Drops the ports' records; in linux-bridge mode removes their taps and host entries (their leases
   * released). The network stays served without them, as Neutron's DHCP agent keeps a network's dnsmasq
   * while the network has a DHCP subnet: the next port on it is only a tap and a line.
   */
  private async release(state: AgentState, portIds: string[]): Promise<void> {
    const released = new Map<string, string[]>();
    for (const portId of portIds) {
      const record = state.vifs[portId];
      if (this.kind === 'linux-bridge') await removeTap(this.hostDir, portId);
      if (record?.networkId)
        released.set(record.networkId, [...(released.get(record.networkId) ?? []), record.macAddress]);
      delete state.vifs[portId];
    }
    for (const [networkId, macs] of released) {
      const network = state.networks[networkId];
      if (network) await reloadHosts(this.hostDir, network, hostsOf(state.vifs, networkId), macs);
    }
  }
}

function requireDhcp(port: z.infer<typeof plugPortSchema>): DhcpNetwork {
  if (!port.dhcp)
    throw new CloudError(
      'VirtualInterfaceCreateException',
      `Port ${port.id}: network ${port.networkId ?? '?'} has no DHCP-enabled subnet with a DHCP port, which the linux-bridge agent needs`,
      { port: port.id },
    );
  if (port.networkId && port.networkId !== port.dhcp.networkId)
    throw new CloudError('BadRequest', `Port ${port.id}'s DHCP details are for another network`);
  if (!port.fixedIps?.some((ip) => ip.subnetId === port.dhcp?.subnetId))
    throw new CloudError(
      'VirtualInterfaceCreateException',
      `Port ${port.id} has no fixed IP on subnet ${port.dhcp.subnetId}`,
      { port: port.id },
    );
  return { ...port.dhcp, gatewayIp: port.dhcp.gatewayIp ?? null };
}

function hostsOf(vifs: Record<string, VifRecord>, networkId: string): HostsEntry[] {
  return Object.values(vifs)
    .filter((v) => v.networkId === networkId && v.ipAddress)
    .map((v) => ({ macAddress: v.macAddress, ipAddress: v.ipAddress as string }));
}
