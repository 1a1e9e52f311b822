/**
 * The compute host's half of the leak audit, run on the host itself (its `compute@<host>` queue): given the
 * instances the controller says live here, it lists what this host holds for nobody — domains, instance
 * directories, VIFs, volume connections, and on the machine QEMU processes, taps, bridges, DHCP namespaces
 * and dnsmasq processes with no instance or port behind them. Only what carries this host's marks is
 * looked at (its directory in a process's command line, its alias on a device), so another cloud's devices
 * on the same machine are never reported.
 */
import path from 'node:path';
import { listHostDevices, unaccountedNetworks, type HostDevices } from './linux-bridge';
import { listQemuProcesses } from './qemu-driver';
import type { DhcpNetwork } from './network-agent';
import type { DomainInfo, VifRecord, VolumeConnection } from './types';

export type HostLeakKind =
  | 'domain'
  | 'instance-dir'
  | 'vif'
  | 'volume-connection'
  | 'qemu'
  | 'tap'
  | 'bridge'
  | 'namespace'
  | 'dnsmasq';

export interface HostLeakFinding {
  kind: HostLeakKind;
  id: string;
  host: string;
  detail: string;
  instanceUuid?: string;
}

/** What the audit reads of the host (ComputeHost provides it). */
export interface AuditableHost {
  readonly host: string;
  readonly hostDir: string;
  readonly networkAgent: string;
  listDomains(): Promise<DomainInfo[]>;
  listInstanceDirs(): Promise<string[]>;
  listVifs(): Promise<VifRecord[]>;
  listWiredNetworks(): Promise<DhcpNetwork[]>;
  listVolumeConnections(): Promise<VolumeConnection[]>;
}

/** QEMU guests started for this host: their pid file is in one of its instance directories. */
export async function listHostQemuProcesses(
  hostDir: string,
): Promise<Array<{ pid: number; instanceUuid: string }>> {
  const instances = `${path.join(path.resolve(hostDir), 'instances')}/`;
  return (await listQemuProcesses())
    .filter((p) => p.instanceDir?.startsWith(instances))
    .map((p) => ({ pid: p.pid, instanceUuid: p.uuid }));
}

export async function auditHost(
  host: AuditableHost,
  liveHere: ReadonlySet<string>,
  existingNetworks?: ReadonlySet<string>,
): Promise<HostLeakFinding[]> {
  const findings: HostLeakFinding[] = [];
  const at = host.host;
  const live = (uuid: string | null | undefined) => (uuid ? liveHere.has(uuid) : false);

  for (const domain of await host.listDomains()) {
    if (!live(domain.uuid))
      findings.push({
        kind: 'domain',
        id: domain.uuid,
        host: at,
        instanceUuid: domain.uuid,
        detail: `domain ${domain.uuid} on ${at} has no live instance there`,
      });
  }
  for (const uuid of await host.listInstanceDirs()) {
    if (!live(uuid))
      findings.push({
        kind: 'instance-dir',
        id: uuid,
        host: at,
        instanceUuid: uuid,
        detail: `instances/${uuid} on ${at} has no live instance there`,
      });
  }
  const vifs = await host.listVifs();
  for (const vif of vifs) {
    if (!live(vif.instanceUuid))
      findings.push({
        kind: 'vif',
        id: vif.portId,
        host: at,
        detail: `${vif.tap} on ${vif.bridge} (${at}) is plugged for no live instance`,
      });
  }
  for (const connection of await host.listVolumeConnections()) {
    if (!live(connection.instanceUuid))
      findings.push({
        kind: 'volume-connection',
        id: connection.path,
        host: at,
        detail: `volume ${connection.volumeId} is connected on ${at} for no live instance`,
      });
  }
  for (const qemu of await listHostQemuProcesses(host.hostDir)) {
    if (!live(qemu.instanceUuid))
      findings.push({
        kind: 'qemu',
        id: String(qemu.pid),
        host: at,
        instanceUuid: qemu.instanceUuid,
        detail: `QEMU process ${qemu.pid} on ${at} runs instance ${qemu.instanceUuid}, which is not live there`,
      });
  }
  if (host.networkAgent === 'linux-bridge')
    findings.push(
      ...strayDevices(
        at,
        await listHostDevices(host.hostDir),
        vifs,
        await host.listWiredNetworks(),
        existingNetworks,
      ),
    );
  return findings;
}

/**
 * Devices and processes with this host's marks that no plugged port accounts for, and the devices the
 * cloud's hosts share on this machine that neither this host's wired networks nor another host account for
 * (or, given neutron-server's networks, that serve a network which no longer exists).
 */
function strayDevices(
  at: string,
  found: HostDevices,
  vifs: VifRecord[],
  networks: DhcpNetwork[],
  existingNetworks: ReadonlySet<string> | undefined,
): HostLeakFinding[] {
  const findings: HostLeakFinding[] = [];
  const taps = new Set(vifs.map((v) => v.tap));
  for (const link of found.links) {
    if (link.ifname.startsWith('brq'))
      findings.push({
        kind: 'bridge',
        id: link.ifname,
        host: at,
        detail: `bridge ${link.ifname} on ${at} carries this host's own mark (bridges are shared by the cloud's hosts)`,
      });
    else if (!taps.has(link.ifname))
      findings.push({
        kind: 'tap',
        id: link.ifname,
        host: at,
        detail: `${link.ifname} on ${at} (on ${link.master ?? 'no bridge'}) belongs to no plugged port`,
      });
  }
  const stray = unaccountedNetworks(found, new Set(networks.map((n) => n.networkId)), existingNetworks);
  for (const link of stray.bridges)
    findings.push({
      kind: 'bridge',
      id: link.ifname,
      host: at,
      detail: `bridge ${link.ifname} on ${at}'s machine belongs to no network a host of this cloud wires`,
    });
  for (const link of stray.vethEnds)
    findings.push({
      kind: 'tap',
      id: link.ifname,
      host: at,
      detail: `DHCP veth end ${link.ifname} on ${at}'s machine (on ${link.master ?? 'no bridge'}) belongs to no wired network`,
    });
  for (const namespace of stray.namespaces)
    findings.push({
      kind: 'namespace',
      id: namespace,
      host: at,
      detail: `namespace ${namespace} on ${at}'s machine serves no network a host of this cloud wires`,
    });
  for (const dnsmasq of stray.dnsmasq)
    findings.push({
      kind: 'dnsmasq',
      id: String(dnsmasq.pid),
      host: at,
      detail: `dnsmasq ${dnsmasq.pid} on ${at}'s machine serves network ${dnsmasq.networkId}, which no host of this cloud wires`,
    });
  return findings;
}
