/**
 * The leak audit: cross-checks every service's database and lists what no live instance owns — ports, IPs,
 * volumes, attachments, placement allocations, quota usage — or no live volume (snapshots), and host by host, what each compute host
 * holds for nobody (cloud/compute/host-audit.ts: domains, instance directories, VIFs, volume connections,
 * QEMU processes, taps, bridges, DHCP namespaces, dnsmasq). An empty list means nothing leaked.
 *
 * Deployed, the controller never reads a host's directory: the `auditCloud` workflow runs `auditController`
 * on the controller, then asks each registered host on its own queue with the live instances the controller
 * knows there; a host that does not answer is reported `host-unreachable`, never clean. `auditLeaks` does
 * both halves in one process, for harnesses that hold every host (tests, chaos, benchmarks).
 *
 * "Live" is an instance that is not deleted and not in ERROR: a failed build releases everything (the
 * saga's promise), so an ERROR instance owns nothing but its database row and faults.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Cloud } from './index';
import { hostDirOf } from './index';
import { ComputeHost, type HostCapabilities } from './compute';
import type { HostLeakKind } from './compute/host-audit';
import type { Instance } from './nova';
import { FLOATING_IP_OWNER, ROUTER_GATEWAY_OWNER, ROUTER_INTERFACE_OWNER } from './neutron';

const L3_PORT_OWNERS: ReadonlySet<string> = new Set([
  ROUTER_GATEWAY_OWNER,
  ROUTER_INTERFACE_OWNER,
  FLOATING_IP_OWNER,
]);

export type LeakKind =
  | 'allocation'
  | 'allocation-usage'
  | 'quota'
  | 'port'
  | 'ip'
  | 'volume'
  | 'snapshot'
  | 'attachment'
  | 'stuck-build'
  | HostLeakKind
  /** A registered compute host that did not answer the audit: not audited, so not known to be clean. */
  | 'host-unreachable';

export interface LeakFinding {
  kind: LeakKind;
  id: string;
  detail: string;
  host?: string;
  instanceUuid?: string;
}

export interface AuditOptions {
  /** The compute hosts to inspect in this process; default every host directory under `<dataDir>/hosts`. */
  hosts?: ComputeHost[];
  /** Builds may still be running (an audit during a demo): do not report BUILD instances as stuck. */
  buildsInFlight?: boolean;
}

/** The controller's half: its findings, and for each registered compute host the instances live there. */
export interface ControllerAudit {
  findings: LeakFinding[];
  hosts: Array<{ host: string; liveInstances: string[] }>;
  /**
   * Networks with a DHCP-enabled subnet (what a DHCP agent serves): a host's namespace or dnsmasq for any
   * other network is a stray. Absent in audits planned before it was added.
   */
  dhcpNetworks?: string[];
}

const RESOURCE_HOLDING_STATES = new Set(['building', 'active', 'stopped']);

/**
 * A failed build releases everything and leaves its instance in error with no host; an instance in error
 * that keeps its host (a delete that failed part-way) still holds what it has there until deleted again.
 */
function ownsResources(instance: Instance | undefined): boolean {
  if (instance === undefined || instance.deleted) return false;
  return (
    RESOURCE_HOLDING_STATES.has(instance.vmState) || (instance.vmState === 'error' && instance.host !== null)
  );
}

/** Request keys of per-instance resources start with the instance uuid (`<uuid>:…`). */
function instanceOfRequestKey(requestKey: string): string | undefined {
  const match = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}):/.exec(requestKey);
  return match?.[1];
}

/** Opens every compute host directory under `<dataDir>/hosts` with the capabilities it recorded. */
export async function openRecordedHosts(dataDir: string): Promise<ComputeHost[]> {
  const root = path.join(dataDir, 'hosts');
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return [];
  }
  const hosts: ComputeHost[] = [];
  for (const host of names.sort()) {
    try {
      const recorded = JSON.parse(await readFile(path.join(root, host, 'host.json'), 'utf8')) as {
        capabilities: HostCapabilities;
        driver?: string;
        networkAgent?: string;
      };
      hosts.push(
        await ComputeHost.open({
          host,
          hostDir: hostDirOf(dataDir, host),
          capabilities: recorded.capabilities,
          // The host's own driver, so its real guests are seen; the audit only reads (no init_host).
          driver: recorded.driver === 'qemu' ? 'qemu' : 'fake',
          networkAgent: recorded.networkAgent === 'linux-bridge' ? 'linux-bridge' : 'fake',
          initHost: false,
        }),
      );
    } catch {
      // Not a host directory (no host.json yet): nothing of an instance can be in it.
    }
  }
  return hosts;
}

export async function auditLeaks(cloud: Cloud, options: AuditOptions = {}): Promise<LeakFinding[]> {
  const controller = await auditController(cloud, options);
  const liveOn = new Map(controller.hosts.map((h) => [h.host, h.liveInstances]));
  const findings = [...controller.findings];
  const hosts = options.hosts ?? (await openRecordedHosts(cloud.dataDir));
  for (const host of hosts)
    findings.push(...(await host.auditLeaks(liveOn.get(host.host) ?? [], controller.dhcpNetworks)));
  return findings;
}

/** The controller's half of the audit: the services' databases, and what lives on which host. */
export async function auditController(
  cloud: Cloud,
  options: Pick<AuditOptions, 'buildsInFlight'> = {},
): Promise<ControllerAudit> {
  const findings: LeakFinding[] = [];
  const instances = await cloud.nova.listInstances({ allProjects: true, includeDeleted: true });
  const byUuid = new Map(instances.map((i) => [i.uuid, i]));
  const live = (uuid: string | null | undefined) => (uuid ? ownsResources(byUuid.get(uuid)) : false);

  for (const instance of instances) {
    if (!instance.deleted && instance.vmState === 'building' && !options.buildsInFlight) {
      findings.push({
        kind: 'stuck-build',
        id: instance.uuid,
        instanceUuid: instance.uuid,
        detail: `instance ${instance.uuid} is still BUILD (task_state ${instance.taskState}) with no build running`,
      });
    }
  }

  for (const allocation of await cloud.placement.listAllocations()) {
    if (!live(allocation.consumerUuid)) {
      findings.push({
        kind: 'allocation',
        id: allocation.consumerUuid,
        instanceUuid: allocation.consumerUuid,
        detail: `placement allocation of ${allocation.consumerUuid} on provider ${allocation.providerUuid} has no live instance`,
      });
    }
  }
  for (const mismatch of await cloud.placement.auditUsage()) {
    findings.push({
      kind: 'allocation-usage',
      id: `${mismatch.providerUuid}/${mismatch.resourceClass}`,
      detail: `provider usage of ${mismatch.resourceClass} disagrees with its allocations`,
    });
  }

  // A snapshot holds Cinder's quota under its own id: { snapshots: 1, gigabytes: its size }.
  const snapshots = await cloud.cinder.snapshots.list({});
  const snapshotClaims = new Map(
    snapshots.map((s) => [s.id, JSON.stringify({ snapshots: 1, gigabytes: s.sizeGb })]),
  );
  const claims = await cloud.nova.listQuotaClaims();
  const claimed = new Set(claims.map((c) => c.consumerUuid));
  for (const snapshot of snapshots) {
    if (!claimed.has(snapshot.id))
      findings.push({
        kind: 'quota',
        id: snapshot.id,
        detail: `snapshot ${snapshot.id} (${snapshot.status}) holds no snapshots/gigabytes quota`,
      });
  }
  for (const claim of claims) {
    const ofSnapshot = snapshotClaims.get(claim.consumerUuid);
    if (ofSnapshot !== undefined) {
      const held = JSON.stringify({
        snapshots: claim.resources.snapshots,
        gigabytes: claim.resources.gigabytes,
      });
      if (held !== ofSnapshot || Object.keys(claim.resources).length !== 2)
        findings.push({
          kind: 'quota',
          id: claim.consumerUuid,
          detail: `snapshot ${claim.consumerUuid} holds ${JSON.stringify(claim.resources)}, not ${ofSnapshot}`,
        });
      continue;
    }
    if (!live(claim.consumerUuid)) {
      findings.push({
        kind: 'quota',
        id: claim.consumerUuid,
        instanceUuid: claim.consumerUuid,
        detail: `quota held by ${claim.consumerUuid} (${JSON.stringify(claim.resources)}) has no live instance`,
      });
    }
  }

  const ports = await cloud.neutron.listPorts({});
  const portIds = new Set(ports.map((p) => p.id));
  for (const port of ports) {
    if (port.deviceOwner.startsWith('compute:') && !live(port.deviceId)) {
      findings.push({
        kind: 'port',
        id: port.id,
        instanceUuid: port.deviceId,
        detail: `port ${port.id} (${port.fixedIps.map((ip) => ip.ipAddress).join(', ')}) belongs to no live instance`,
      });
    }
    // A router's gateway or interface port, or a floating IP's port, is the L3 plugin's: a leak only once
    // its router or floating IP is gone.
    if (L3_PORT_OWNERS.has(port.deviceOwner) && !(await cloud.neutron.l3.ownerExists(port))) {
      findings.push({
        kind: 'port',
        id: port.id,
        detail: `port ${port.id} (${port.deviceOwner}) belongs to no router or floating IP (${port.deviceId})`,
      });
    }
  }
  for (const allocation of await cloud.neutron.listIpAllocations()) {
    if (!portIds.has(allocation.portId)) {
      findings.push({
        kind: 'ip',
        id: `${allocation.subnetId}/${allocation.ipAddress}`,
        detail: `IP ${allocation.ipAddress} is allocated to a port that does not exist`,
      });
    }
  }

  const attachments = await cloud.cinder.listAttachments({});
  for (const attachment of attachments) {
    if (!live(attachment.instanceUuid)) {
      findings.push({
        kind: 'attachment',
        id: attachment.id,
        instanceUuid: attachment.instanceUuid,
        detail: `volume ${attachment.volumeId} is ${attachment.attachStatus} to ${attachment.instanceUuid}, which is not live`,
      });
    }
  }
  const volumes = await cloud.cinder.listVolumes({});
  const liveVolumes = new Set(volumes.map((v) => v.id));
  const snapshotted = new Set(snapshots.map((s) => s.volumeId));
  for (const snapshot of snapshots) {
    // A volume is deleted only with its snapshots (cascade), so a snapshot of a gone volume was left behind.
    if (!liveVolumes.has(snapshot.volumeId))
      findings.push({
        kind: 'snapshot',
        id: snapshot.id,
        detail: `snapshot ${snapshot.id} (${snapshot.status}) of volume ${snapshot.volumeId}, which is gone`,
      });
  }
  for (const volume of volumes) {
    const owner = instanceOfRequestKey(volume.requestKey);
    if (!owner) continue;
    const instance = byUuid.get(owner);
    if (ownsResources(instance)) continue;
    // A volume kept after delete (delete_on_termination false) is the user's; anything else of a dead or
    // failed instance should have been removed by its delete or its saga.
    // One with snapshots is kept too, as Nova keeps a volume Cinder refuses to delete.
    const keptAfterDelete =
      instance?.deleted === true && (!volume.deleteOnTermination || snapshotted.has(volume.id));
    if (keptAfterDelete && volume.status === 'available') continue;
    findings.push({
      kind: 'volume',
      id: volume.id,
      instanceUuid: owner,
      detail: `volume ${volume.id} (${volume.status}) of instance ${owner} outlived it`,
    });
  }

  const liveOn = new Map<string, string[]>();
  for (const host of await cloud.nova.listComputeHosts()) liveOn.set(host.host, []);
  for (const instance of instances) {
    if (instance.host && ownsResources(instance)) {
      const list = liveOn.get(instance.host) ?? [];
      list.push(instance.uuid);
      liveOn.set(instance.host, list);
    }
  }
  const subnets = await cloud.neutron.listSubnets();
  return {
    findings,
    hosts: [...liveOn]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([host, liveInstances]) => ({ host, liveInstances })),
    dhcpNetworks: [...new Set(subnets.filter((s) => s.enableDhcp).map((s) => s.networkId))].sort(),
  };
}
