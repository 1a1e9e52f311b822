/**
 * The server body, field by field as nova/api/openstack/compute/views/servers.py builds it for each
 * microversion up to the one served. What Nova reads from other services is read here from their
 * databases: addresses from Neutron's ports, attached volumes from Cinder's attachments, the host's zone
 * and state from Nova's service records.
 */
import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { RequestContext } from '../../cloud/keystone';
import type { ComputeHost, Instance, InstanceFault } from '../../cloud/nova';
import type { ApiDeps } from '../deps';
import { bookmarkLink, can, isotime, naiveTime, resourceLinks } from './common';
import { atLeast } from './microversion';

export interface ServerAddressView {
  version: 4;
  addr: string;
  'OS-EXT-IPS:type': 'fixed';
  'OS-EXT-IPS-MAC:mac_addr': string;
}

/** What the views need beyond the instance rows, read once for a whole list. */
export interface ServerExtras {
  addresses: Map<string, Record<string, ServerAddressView[]>>;
  volumes: Map<string, Array<{ id: string; deleteOnTermination: boolean }>>;
  faults: Map<string, InstanceFault>;
  hosts: Map<string, ComputeHost>;
  /** Instance uuid → the uuid of its server group (2.71's server_groups). */
  groups: Map<string, string>;
  /** The groups of each server's ports, port by port (a group's name, its id when unnamed). */
  securityGroups: Map<string, Array<{ name: string }>>;
}

/** Reads addresses, volumes, latest faults and hosts for these instances (bulk when they are many). */
export async function loadServerExtras(deps: ApiDeps, instances: Instance[]): Promise<ServerExtras> {
  const { neutron, cinder, nova } = deps.cloud;
  const wanted = new Set(instances.map((i) => i.uuid));
  const bulk = instances.length > 8;
  const ports = bulk
    ? (await neutron.listPorts()).filter((p) => wanted.has(p.deviceId))
    : (await Promise.all(instances.map((i) => neutron.listPorts({ deviceId: i.uuid })))).flat();
  const networkNames = new Map<string, string>();
  if (ports.length > 0) {
    for (const network of await neutron.listNetworks({
      projectId: instances[0]!.projectId,
      roles: ['admin'],
    })) {
      networkNames.set(network.id, network.name);
    }
  }
  const addresses = new Map<string, Record<string, ServerAddressView[]>>();
  for (const port of ports) {
    const byNetwork = addresses.get(port.deviceId) ?? {};
    const list = (byNetwork[networkNames.get(port.networkId) ?? port.networkId] ??= []);
    for (const ip of port.fixedIps) {
      list.push({
        version: 4,
        addr: ip.ipAddress,
        'OS-EXT-IPS:type': 'fixed',
        'OS-EXT-IPS-MAC:mac_addr': port.macAddress,
      });
    }
    addresses.set(port.deviceId, byNetwork);
  }
  // security_group_api.get_instances_security_groups_bindings: each port's groups, in port order.
  const groupNames = await neutron.securityGroupNames(ports.flatMap((p) => p.securityGroupIds));
  const securityGroups = new Map<string, Array<{ name: string }>>();
  for (const port of ports) {
    const list = securityGroups.get(port.deviceId) ?? [];
    for (const id of port.securityGroupIds) {
      const name = groupNames.get(id);
      if (name !== undefined) list.push({ name: name || id });
    }
    securityGroups.set(port.deviceId, list);
  }
  const attachments = bulk
    ? (await cinder.listAttachments()).filter((a) => wanted.has(a.instanceUuid))
    : (await Promise.all(instances.map((i) => cinder.listAttachments({ instanceUuid: i.uuid })))).flat();
  const volumes = new Map<string, Array<{ id: string; deleteOnTermination: boolean }>>();
  for (const attachment of attachments) {
    const volume = await cinder.getVolume(attachment.volumeId).catch(() => undefined);
    const list = volumes.get(attachment.instanceUuid) ?? [];
    list.push({
      id: attachment.volumeId,
      deleteOnTermination: volume?.deleteOnTermination ?? false,
    });
    volumes.set(attachment.instanceUuid, list);
  }
  const faults = new Map<string, InstanceFault>();
  for (const instance of instances) {
    if (instance.vmState !== 'error' && !instance.deleted) continue;
    const latest = (await nova.listFaults(instance.uuid)).reduce<InstanceFault | undefined>(
      (last, f) => (!last || f.createdAt >= last.createdAt ? f : last),
      undefined,
    );
    if (latest) faults.set(instance.uuid, latest);
  }
  const hosts = new Map<string, ComputeHost>();
  if (instances.some((i) => i.host !== null)) {
    for (const host of await nova.listComputeHosts()) hosts.set(host.host, host);
  }
  const groups = instances.length > 0 ? await nova.serverGroupsOf(instances.map((i) => i.uuid)) : new Map();
  return { addresses, volumes, faults, hosts, groups, securityGroups };
}

/** utils.generate_hostid: sha224 of project id + host, '' without a host. */
export function hostIdOf(host: string | null, projectId: string): string {
  return host
    ? createHash('sha224')
        .update(projectId + host)
        .digest('hex')
    : '';
}

/** compute API get_instance_host_status, as far as bootflow's host records go. */
function hostStatus(instance: Instance, hosts: Map<string, ComputeHost>): string {
  if (!instance.host) return '';
  const host = hosts.get(instance.host);
  if (!host) return 'UNKNOWN';
  if (host.forcedDown || !host.up) return 'DOWN';
  return host.disabled ? 'MAINTENANCE' : 'UP';
}

function apiStatusOf(deps: ApiDeps, instance: Instance): string {
  return instance.deleted ? 'DELETED' : deps.cloud.nova.apiStatus(instance);
}

/** The statuses that carry `progress` and `fault` (ViewBuilder._progress_statuses, _fault_statuses). */
const PROGRESS_STATUSES = new Set(['ACTIVE', 'BUILD', 'REBUILD', 'RESIZE', 'VERIFY_RESIZE', 'MIGRATING']);
const FAULT_STATUSES = new Set(['ERROR', 'DELETED']);

export interface ViewOptions {
  /** The show view (not detail): server_groups from 2.71. */
  show?: boolean;
  /**
   * PUT's view before 2.75 (servers.py update): no zone, config drive, key name, usage times, security
   * groups, extended attributes, host status, extended status or volumes; plain addresses.
   */
  update?: boolean;
}

/** The index view: id, name, links. */
export function serverBasic(deps: ApiDeps, instance: Instance) {
  return { id: instance.uuid, name: instance.name, links: resourceLinks(deps, 'servers', instance.uuid) };
}

export function serverDetail(
  deps: ApiDeps,
  request: FastifyRequest,
  ctx: RequestContext,
  instance: Instance,
  extras: ServerExtras,
  options: ViewOptions = {},
): Record<string, unknown> {
  const status = apiStatusOf(deps, instance);
  const flavor = instance.flavor;
  const server: Record<string, unknown> = {
    accessIPv4: instance.accessIPv4 ?? '',
    accessIPv6: instance.accessIPv6 ?? '',
    // Addresses are hidden while the server builds (ViewBuilder._get_addresses).
    addresses:
      instance.vmState === 'building'
        ? {}
        : plainAddresses(extras.addresses.get(instance.uuid) ?? {}, options.update === true),
    created: isotime(instance.createdAt),
    flavor: atLeast(request, 2, 47)
      ? {
          vcpus: flavor.vcpus,
          ram: flavor.memoryMb,
          disk: flavor.rootGb,
          ephemeral: flavor.ephemeralGb,
          swap: flavor.swapMb,
          original_name: flavor.name,
          ...(can(ctx, 'os_compute_api:servers:show:flavor-extra-specs', instance.projectId)
            ? { extra_specs: {} }
            : {}),
        }
      : { id: flavor.id, links: [bookmarkLink(deps, 'flavors', flavor.id)] },
    hostId: hostIdOf(instance.host, instance.projectId),
    id: instance.uuid,
    image: instance.imageRef
      ? { id: instance.imageRef, links: [bookmarkLink(deps, 'images', instance.imageRef)] }
      : '',
    links: resourceLinks(deps, 'servers', instance.uuid),
    metadata: instance.metadata,
    name: instance.name,
    status,
    tenant_id: instance.projectId,
    user_id: instance.userId,
    updated: isotime(instance.updatedAt),
    // Nova's disk_config view: AUTO when the instance's auto_disk_config is set.
    'OS-DCF:diskConfig': instance.autoDiskConfig ? 'AUTO' : 'MANUAL',
  };
  const fault = extras.faults.get(instance.uuid);
  if (FAULT_STATUSES.has(status) && fault) {
    server.fault = {
      code: fault.code,
      created: isotime(fault.createdAt),
      message: fault.message,
      // Details (Nova: the traceback) only for an admin, or when the fault is not a 500.
      ...(fault.details && (ctx.roles.includes('admin') || fault.code !== 500)
        ? { details: fault.details }
        : {}),
    };
  }
  if (PROGRESS_STATUSES.has(status)) server.progress = 0;
  if (options.update) {
    return withMicroversionFields(server, request, ctx, instance, extras, {
      serverGroups: true,
      hostStatus: false,
    });
  }
  const host = instance.host ? extras.hosts.get(instance.host) : undefined;
  server['OS-EXT-AZ:availability_zone'] = host?.availabilityZone ?? instance.availabilityZone ?? '';
  server.config_drive = '';
  server.key_name = instance.keyName;
  server['OS-SRV-USG:launched_at'] = naiveTime(instance.launchedAt);
  server['OS-SRV-USG:terminated_at'] = naiveTime(instance.terminatedAt);
  // ViewBuilder._add_security_grps: only when the server's ports have groups.
  const groups = extras.securityGroups.get(instance.uuid) ?? [];
  if (groups.length > 0) server.security_groups = groups;
  if (can(ctx, 'os_compute_api:os-extended-server-attributes', instance.projectId)) {
    server['OS-EXT-SRV-ATTR:host'] = instance.host;
    server['OS-EXT-SRV-ATTR:instance_name'] = `instance-${instance.uuid}`;
    server['OS-EXT-SRV-ATTR:hypervisor_hostname'] = instance.node;
    if (atLeast(request, 2, 3)) {
      server['OS-EXT-SRV-ATTR:hostname'] = hostnameOf(instance.name);
      server['OS-EXT-SRV-ATTR:kernel_id'] = '';
      server['OS-EXT-SRV-ATTR:launch_index'] = 0;
      server['OS-EXT-SRV-ATTR:ramdisk_id'] = '';
      server['OS-EXT-SRV-ATTR:reservation_id'] = instance.reservationId;
      server['OS-EXT-SRV-ATTR:root_device_name'] = instance.vmState === 'building' ? null : '/dev/vda';
      server['OS-EXT-SRV-ATTR:user_data'] = instance.userData;
    }
  }
  server['OS-EXT-STS:task_state'] = instance.taskState;
  server['OS-EXT-STS:vm_state'] = instance.vmState;
  server['OS-EXT-STS:power_state'] = instance.powerState;
  server['os-extended-volumes:volumes_attached'] = (extras.volumes.get(instance.uuid) ?? []).map((v) =>
    atLeast(request, 2, 3) ? { id: v.id, delete_on_termination: v.deleteOnTermination } : { id: v.id },
  );
  return withMicroversionFields(server, request, ctx, instance, extras, {
    serverGroups: options.show === true,
    hostStatus: true,
  });
}

/** The fields each microversion adds to every server view (the update view of PUT too). */
function withMicroversionFields(
  server: Record<string, unknown>,
  request: FastifyRequest,
  ctx: RequestContext,
  instance: Instance,
  extras: ServerExtras,
  show: { serverGroups: boolean; hostStatus: boolean },
): Record<string, unknown> {
  if (atLeast(request, 2, 9)) server.locked = instance.locked;
  const hostStatusAllowed = can(ctx, 'os_compute_api:servers:show:host_status', instance.projectId);
  if (show.hostStatus && atLeast(request, 2, 16) && hostStatusAllowed) {
    server.host_status = hostStatus(instance, extras.hosts);
  }
  if (atLeast(request, 2, 19)) server.description = null;
  if (atLeast(request, 2, 26)) server.tags = instance.tags;
  if (atLeast(request, 2, 63)) server.trusted_image_certificates = null;
  if (show.serverGroups && atLeast(request, 2, 71)) {
    const group = extras.groups.get(instance.uuid);
    server.server_groups = group === undefined ? [] : [group];
  }
  if (atLeast(request, 2, 73)) server.locked_reason = instance.lockedReason;
  return server;
}

/** Without extend_address (PUT before 2.75) an address is only its version and addr. */
function plainAddresses<A extends { version: number; addr: string }>(
  addresses: Record<string, A[]>,
  plain: boolean,
): Record<string, Array<A | { version: number; addr: string }>> {
  if (!plain) return addresses;
  return Object.fromEntries(
    Object.entries(addresses).map(([name, list]) => [
      name,
      list.map((a) => ({ version: a.version, addr: a.addr })),
    ]),
  );
}

/** Nova's sanitize_hostname of the display name: letters, digits and '-', at most 63, lower case. */
export function hostnameOf(name: string): string {
  const cleaned = name
    .toLowerCase()
    .replace(/[ _]/g, '-')
    .replace(/[^a-z0-9.-]/g, '')
    .replace(/^[.-]+|[.-]+$/g, '')
    .slice(0, 63);
  return cleaned || 'server';
}
