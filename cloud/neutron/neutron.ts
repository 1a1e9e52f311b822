/**
 * neutron-server with the ML2/OVS plugin, embedded: networks, subnets with IPAM, ports and their bindings,
 * default security groups. The agent side (bridges and taps on the compute host) lives with the compute
 * host; it reports back through markPortActive, the network-vif-plugged event.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { systemClock, type Clock } from '../clock';
import { openServiceDb, type DbConfig, type ServiceDb } from '../db';
import { CloudError } from '../errors';
import { idSchema, nameSchema, parseRequest } from '../validation';
import { formatCidr, formatIpv4, parseIpv4, rangeSize } from './ipv4';
import { normalizeMac, randomMac } from './mac';
import { neutronMigrations } from './migrations';
import { parseAddressPairs, setAddressPairs } from './address-pairs';
import { addDeviceSecurityGroup, removeDeviceSecurityGroup, setPortSecurityGroups } from './port-groups';
import { allocatePortIps, replacePortIps } from './port-ips';
import { OVS_VIF_DETAILS, toNetwork, toPorts, toSubnet } from './rows';
import type { NeutronDb, NetworksTable, PortsTable } from './schema';
import { SecurityGroupChanges } from './security-group-changes';
import { findDefaultSecurityGroupId, insertDefaultSecurityGroup, loadSecurityGroup } from './security-groups';
import { checkHostRoutes, checkNameservers, writeSubnetExtras } from './subnet-extras';
import { checkGatewayUpdate, planSubnet } from './subnet-plan';
import { ResourceTags } from './tags';
import { L3 } from './l3';
import type {
  AddressPair,
  DhcpDetails,
  IpAllocation,
  Network,
  NetworkViewer,
  Port,
  SecurityGroup,
  Subnet,
  VifDetails,
} from './types';
import { isUniqueViolation } from '../db';
import type { WriteGenerations } from '../db-writes';

export interface NeutronOptions {
  db: DbConfig;
  clock?: Clock;
  /** Hosts where port binding fails (vif_type binding_failed), to exercise Nova's PortBindingFailed path. */
  bindingFailHosts?: string[];
}

const projectIdSchema = z.string().min(1).max(64);
const requestKeySchema = z.string().min(1).max(255);
const hostSchema = z.string().min(1).max(255);
/** Port names and device fields may be empty in Neutron. */
const optionalTextSchema = z.string().max(255);
const hostRoutesSchema = z.array(
  z.strictObject({ destination: z.string().max(64), nexthop: z.string().max(64) }),
);
const nameserversSchema = z.array(z.string().max(128));

const createNetworkSchema = z.strictObject({
  /** Neutron's network name may be empty (tempest creates networks without one). */
  name: optionalTextSchema,
  description: optionalTextSchema.default(''),
  adminStateUp: z.boolean().default(true),
  projectId: projectIdSchema,
  shared: z.boolean().default(false),
  external: z.boolean().default(false),
  mtu: z.number().int().min(68).max(9000).default(1450),
  requestKey: requestKeySchema.optional(),
});

const allocationPoolsSchema = z
  .array(z.strictObject({ start: z.string().max(64), end: z.string().max(64) }))
  .max(64);

const createSubnetSchema = z.strictObject({
  networkId: idSchema,
  cidr: z.string().min(1).max(64),
  name: nameSchema.optional(),
  description: optionalTextSchema.default(''),
  ipVersion: z.literal(4).default(4),
  gatewayIp: z.string().max(64).nullable().optional(),
  allocationPools: allocationPoolsSchema.optional(),
  enableDhcp: z.boolean().default(true),
  dnsNameservers: nameserversSchema.default([]),
  hostRoutes: hostRoutesSchema.default([]),
  requestKey: requestKeySchema.optional(),
});

const fixedIpsSchema = z
  .array(
    z.strictObject({
      subnetId: idSchema.optional(),
      ipAddress: z.string().max(64).optional(),
      allowGateway: z.boolean().optional(),
    }),
  )
  .max(64);
const groupIdsSchema = z.array(idSchema).max(64);

const createPortSchema = z.strictObject({
  requestKey: requestKeySchema,
  networkId: idSchema,
  /** '' for a router gateway or floating IP port, which Neutron makes without a project. */
  projectId: z.string().max(64),
  /** The L3 plugin's own ports (gateway, interface, floating IP): on any network, as Neutron's admin context. */
  internal: z.boolean().default(false),
  name: optionalTextSchema.default(''),
  description: optionalTextSchema.default(''),
  adminStateUp: z.boolean().default(true),
  deviceId: optionalTextSchema.default(''),
  deviceOwner: optionalTextSchema.default(''),
  fixedIps: fixedIpsSchema.optional(),
  /** Unset: a fresh fa:16:3e MAC. */
  macAddress: z.string().max(32).optional(),
  /** Unset: the project's default group; [] none. */
  securityGroupIds: groupIdsSchema.optional(),
  /** Neutron's allowed_address_pairs, as the API gives them (checked by address-pairs.ts). */
  allowedAddressPairs: z.unknown().optional(),
});

/** Neutron's PUT: only the attributes bootflow can change in place (the others are fixed at create). */
const updateNetworkSchema = z.strictObject({
  id: idSchema,
  name: optionalTextSchema.optional(),
  description: optionalTextSchema.optional(),
  adminStateUp: z.boolean().optional(),
  shared: z.boolean().optional(),
  external: z.boolean().optional(),
});
const updateSubnetSchema = z.strictObject({
  id: idSchema,
  name: optionalTextSchema.optional(),
  description: optionalTextSchema.optional(),
  /** null removes the gateway. */
  gatewayIp: z.string().max(64).nullable().optional(),
  enableDhcp: z.boolean().optional(),
  dnsNameservers: nameserversSchema.optional(),
  hostRoutes: hostRoutesSchema.optional(),
  /** Replaces the pools; addresses already allocated outside them stay with their ports, as in Neutron. */
  allocationPools: allocationPoolsSchema.optional(),
});
const updatePortSchema = z.strictObject({
  id: idSchema,
  name: optionalTextSchema.optional(),
  description: optionalTextSchema.optional(),
  adminStateUp: z.boolean().optional(),
  /** Replaces the port's addresses as Neutron does (port-ips.ts). */
  fixedIps: fixedIpsSchema.optional(),
  /** Replaces the port's groups. */
  securityGroupIds: groupIdsSchema.optional(),
  /** Replaces the port's allowed address pairs (wire form, checked by address-pairs.ts). */
  allowedAddressPairs: z.unknown().optional(),
});

const listPortsSchema = z.strictObject({
  deviceId: optionalTextSchema.optional(),
  networkId: idSchema.optional(),
  projectId: projectIdSchema.optional(),
});

const viewerSchema = z.object({ projectId: projectIdSchema, roles: z.array(z.string()).readonly() });

export type CreateNetworkRequest = z.input<typeof createNetworkSchema>;
export type CreateSubnetRequest = z.input<typeof createSubnetSchema>;
export type CreatePortRequest = z.input<typeof createPortSchema>;
export type ListPortsFilter = z.input<typeof listPortsSchema>;
export type UpdateNetworkRequest = z.input<typeof updateNetworkSchema>;
export type UpdateSubnetRequest = z.input<typeof updateSubnetSchema>;
export type UpdatePortRequest = z.input<typeof updatePortSchema>;

export interface PortBinding {
  vifType: 'ovs';
  vifDetails: VifDetails;
  port: Port;
}

export interface SubnetIpAvailability {
  subnetId: string;
  cidr: string;
  totalIps: number;
  usedIps: number;
}

/** Attempts of a port creation that lost a race on a unique key (MAC, address, default group). */
const CREATE_PORT_ATTEMPTS = 5;
/** The DHCP agent's port: owned by its network, not by an instance. */
export const DHCP_DEVICE_OWNER = 'network:dhcp';
/** MACs tried per port before giving up; 2^24 addresses per network make a second try already rare. */
const MAC_ATTEMPTS = 16;

function portNotFound(portId: string): CloudError {
  return new CloudError('NotFound', `Port ${portId} could not be found.`, { portId });
}

function networkNotFound(network: string): CloudError {
  return new CloudError('NotFound', `Network ${network} could not be found.`, { network });
}

function canSee(network: NetworksTable, viewer: NetworkViewer): boolean {
  return (
    network.project_id === viewer.projectId ||
    network.shared === 1 ||
    network.router_external === 1 ||
    viewer.roles.includes('admin')
  );
}

function canDelete(network: NetworksTable, viewer: NetworkViewer): boolean {
  return (
    viewer.roles.includes('admin') ||
    (network.project_id === viewer.projectId && viewer.roles.includes('member'))
  );
}

export class Neutron {
  /** Security group and rule writes (the API's create, update, delete). */
  readonly securityGroups: SecurityGroupChanges;
  /** Standard-attr tags of networks, subnets, ports and security groups. */
  readonly tags: ResourceTags;
  /** Routers and floating IPs (l3.ts), recorded only. */
  readonly l3: L3;

  private constructor(
    private readonly store: ServiceDb<NeutronDb>,
    private readonly clock: Clock,
    private readonly bindingFailHosts: ReadonlySet<string>,
  ) {
    this.securityGroups = new SecurityGroupChanges(store, () => clock.now());
    this.tags = new ResourceTags(store, () => clock.now());
    this.l3 = new L3(store, () => clock.now(), this);
  }

  /** The tables this process has written (cloud/db-writes.ts), for readers that keep what they read. */
  get writes(): WriteGenerations {
    return this.store.writes;
  }

  static async open(options: NeutronOptions): Promise<Neutron> {
    const store = await openServiceDb<NeutronDb>('neutron', neutronMigrations, options.db);
    return new Neutron(store, options.clock ?? systemClock, new Set(options.bindingFailHosts ?? []));
  }

  async close(): Promise<void> {
    await this.store.close();
  }

  private get db(): Kysely<NeutronDb> {
    return this.store.db;
  }

  // ---- networks ------------------------------------------------------------------------------------

  /** Creates a network; with a requestKey a retry returns the network the first call created. */
  async createNetwork(input: CreateNetworkRequest): Promise<Network> {
    const request = parseRequest(createNetworkSchema, input, 'network');
    if (request.requestKey) {
      const existing = await this.networkIdByRequestKey(request.requestKey);
      if (existing) return this.loadNetwork(existing);
    }
    const now = this.clock.now();
    const id = randomUUID();
    try {
      await this.db
        .insertInto('networks')
        .values({
          id,
          name: request.name,
          description: request.description,
          project_id: request.projectId,
          shared: request.shared ? 1 : 0,
          router_external: request.external ? 1 : 0,
          admin_state_up: request.adminStateUp ? 1 : 0,
          status: 'ACTIVE',
          mtu: request.mtu,
          request_key: request.requestKey ?? null,
          created_at: now,
          updated_at: now,
        })
        .execute();
    } catch (err) {
      // A concurrent retry with the same request key won: return its network.
      if (!request.requestKey || !isUniqueViolation(err)) throw err;
      const winner = await this.networkIdByRequestKey(request.requestKey);
      if (!winner) throw err;
      return this.loadNetwork(winner);
    }
    return this.loadNetwork(id);
  }

  /** Neutron's update_network: the name, and (the caller checks the policy) shared and router:external. */
  async updateNetwork(input: UpdateNetworkRequest): Promise<Network> {
    const r = parseRequest(updateNetworkSchema, input, 'network update');
    const res = await this.db
      .updateTable('networks')
      .set({
        ...(r.name !== undefined ? { name: r.name } : {}),
        ...(r.description !== undefined ? { description: r.description } : {}),
        ...(r.adminStateUp !== undefined ? { admin_state_up: r.adminStateUp ? 1 : 0 } : {}),
        ...(r.shared !== undefined ? { shared: r.shared ? 1 : 0 } : {}),
        ...(r.external !== undefined ? { router_external: r.external ? 1 : 0 } : {}),
        updated_at: this.clock.now(),
      })
      .where('id', '=', r.id)
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) === 0) throw networkNotFound(r.id);
    return this.loadNetwork(r.id);
  }

  /**
   * Neutron's update_subnet: name, description, gateway (inside the CIDR, outside the pools), DHCP, DNS
   * servers, host routes and allocation pools (each list replaced whole; the pools checked as on create).
   * The CIDR stays as created.
   */
  async updateSubnet(input: UpdateSubnetRequest): Promise<Subnet> {
    const r = parseRequest(updateSubnetSchema, input, 'subnet update');
    const current = await this.getSubnet(r.id);
    const dnsNameservers = r.dnsNameservers && checkNameservers(r.id, r.dnsNameservers);
    const hostRoutes = r.hostRoutes && checkHostRoutes(r.id, r.hostRoutes);
    const gatewayIp = r.gatewayIp === undefined ? current.gatewayIp : r.gatewayIp;
    const pools =
      r.allocationPools &&
      planSubnet({ cidr: current.cidr, gatewayIp, allocationPools: r.allocationPools }).pools;
    if (gatewayIp !== current.gatewayIp)
      checkGatewayUpdate(current.cidr, pools ? [] : current.allocationPools, gatewayIp);
    await this.store.transaction(async (trx) => {
      if (pools) {
        await trx.deleteFrom('ip_allocation_pools').where('subnet_id', '=', r.id).execute();
        if (pools.length)
          await trx
            .insertInto('ip_allocation_pools')
            .values(
              pools.map((pool) => ({
                id: randomUUID(),
                subnet_id: r.id,
                first_ip: formatIpv4(pool.first),
                last_ip: formatIpv4(pool.last),
              })),
            )
            .execute();
      }
      await trx
        .updateTable('subnets')
        .set({
          ...(r.name !== undefined ? { name: r.name } : {}),
          ...(r.description !== undefined ? { description: r.description } : {}),
          ...(r.gatewayIp !== undefined ? { gateway_ip: r.gatewayIp } : {}),
          ...(r.enableDhcp !== undefined ? { enable_dhcp: r.enableDhcp ? 1 : 0 } : {}),
          updated_at: this.clock.now(),
        })
        .where('id', '=', r.id)
        .execute();
      await writeSubnetExtras(trx, r.id, { dnsNameservers, hostRoutes });
    });
    return this.getSubnet(r.id);
  }

  /**
   * Neutron's update_port: name, description, admin_state_up (stored and reported; no agent acts on it),
   * fixed IPs (released ones go back to the pools; the network is locked as for a create) and security
   * groups. All or nothing: a refused address or group changes nothing.
   */
  async updatePort(input: UpdatePortRequest): Promise<Port> {
    const r = parseRequest(updatePortSchema, input, 'port update');
    const pairs = r.allowedAddressPairs === undefined ? undefined : parseAddressPairs(r.allowedAddressPairs);
    await this.store.transaction(async (trx) => {
      const current = await trx.selectFrom('ports').selectAll().where('id', '=', r.id).executeTakeFirst();
      if (!current) throw portNotFound(r.id);
      if (r.fixedIps !== undefined) {
        await this.store
          .forUpdate(trx.selectFrom('networks').select('id').where('id', '=', current.network_id))
          .executeTakeFirst();
        await replacePortIps(trx, current.network_id, current.id, r.fixedIps);
      }
      if (r.securityGroupIds !== undefined)
        await setPortSecurityGroups(
          trx,
          { id: current.id, projectId: current.project_id },
          r.securityGroupIds,
        );
      if (pairs !== undefined)
        await setAddressPairs(trx, { id: current.id, macAddress: current.mac_address }, pairs);
      await trx
        .updateTable('ports')
        .set({
          ...(r.name !== undefined ? { name: r.name } : {}),
          ...(r.description !== undefined ? { description: r.description } : {}),
          ...(r.adminStateUp !== undefined ? { admin_state_up: r.adminStateUp ? 1 : 0 } : {}),
          updated_at: this.clock.now(),
        })
        .where('id', '=', r.id)
        .execute();
    });
    return this.getPort(r.id);
  }

  private async networkIdByRequestKey(requestKey: string): Promise<string | undefined> {
    const row = await this.db
      .selectFrom('networks')
      .select('id')
      .where('request_key', '=', requestKey)
      .executeTakeFirst();
    return row?.id;
  }

  private async loadNetwork(id: string): Promise<Network> {
    const row = await this.db.selectFrom('networks').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw networkNotFound(id);
    return this.withSubnets(row);
  }

  private async withSubnets(row: NetworksTable): Promise<Network> {
    const subnets = await this.db
      .selectFrom('subnets')
      .select('id')
      .where('network_id', '=', row.id)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return toNetwork(
      row,
      subnets.map((s) => s.id),
    );
  }

  /**
   * A network by id or name as the viewer sees it: their own project's, shared and external networks (admin
   * sees all). Anything else is NotFound, as Neutron hides what a project may not see.
   */
  async getNetwork(idOrName: string, viewer: NetworkViewer): Promise<Network> {
    const key = parseRequest(idSchema, idOrName, 'network id or name');
    const who = parseRequest(viewerSchema, viewer, 'token context');
    const byId = await this.db.selectFrom('networks').selectAll().where('id', '=', key).executeTakeFirst();
    if (byId && canSee(byId, who)) return this.withSubnets(byId);
    const byName = (
      await this.db.selectFrom('networks').selectAll().where('name', '=', key).execute()
    ).filter((n) => canSee(n, who));
    // Prefer the viewer's own network when a shared one has the same name, as the CLI's lookup would.
    const own = byName.filter((n) => n.project_id === who.projectId);
    const matches = own.length ? own : byName;
    if (matches.length > 1) {
      throw new CloudError('Conflict', `More than one network exists with the name '${key}'; use its ID.`, {
        network: key,
      });
    }
    const [match] = matches;
    if (!match) throw networkNotFound(key);
    return this.withSubnets(match);
  }

  async listNetworks(viewer: NetworkViewer): Promise<Network[]> {
    const who = parseRequest(viewerSchema, viewer, 'token context');
    const rows = await this.db
      .selectFrom('networks')
      .selectAll()
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return Promise.all(rows.filter((n) => canSee(n, who)).map((n) => this.withSubnets(n)));
  }

  /**
   * Deletes a network and its subnets; idempotent; refused while ports remain (NetworkInUse). With a
   * viewer, Neutron's delete_network default applies: admin, or member of the owning project; a network the
   * viewer cannot see (or none) is NotFound, one it can see but not delete (shared, external) Forbidden.
   */
  async deleteNetwork(networkId: string, viewer?: NetworkViewer): Promise<boolean> {
    const id = parseRequest(idSchema, networkId, 'network id');
    const who = viewer === undefined ? undefined : parseRequest(viewerSchema, viewer, 'token context');
    return this.store.transaction(async (trx) => {
      const network = await this.store
        .forUpdate(trx.selectFrom('networks').selectAll().where('id', '=', id))
        .executeTakeFirst();
      if (who && (!network || !canSee(network, who))) throw networkNotFound(id);
      if (!network) return false;
      if (who && !canDelete(network, who)) {
        throw new CloudError('Forbidden', `Policy doesn't allow delete_network to be performed.`, {
          networkId: id,
        });
      }
      // An external network goes with its unassociated floating IPs and their ports, as in Neutron.
      const idle = await trx
        .selectFrom('floatingips')
        .select(['id', 'floating_port_id'])
        .where('floating_network_id', '=', id)
        .where('fixed_port_id', 'is', null)
        .execute();
      if (idle.length) {
        const idlePorts = idle.map((f) => f.floating_port_id);
        await trx
          .deleteFrom('floatingips')
          .where(
            'id',
            'in',
            idle.map((f) => f.id),
          )
          .execute();
        await trx.deleteFrom('ipallocations').where('port_id', 'in', idlePorts).execute();
        await trx.deleteFrom('ports').where('id', 'in', idlePorts).execute();
      }
      const port = await trx
        .selectFrom('ports')
        .select('id')
        .where('network_id', '=', id)
        .where('device_owner', '!=', DHCP_DEVICE_OWNER)
        .executeTakeFirst();
      if (port) {
        throw new CloudError(
          'Conflict',
          `Unable to complete operation on network ${id}. There are one or more ports still in use on the network.`,
          { networkId: id, neutronType: 'NetworkInUse' },
        );
      }
      // The network's own DHCP port goes with it (Neutron auto-deletes network:dhcp ports).
      const dhcpPorts = trx.selectFrom('ports').select('id').where('network_id', '=', id);
      await trx.deleteFrom('ipallocations').where('port_id', 'in', dhcpPorts).execute();
      await trx.deleteFrom('securitygroupportbindings').where('port_id', 'in', dhcpPorts).execute();
      await trx.deleteFrom('ports').where('network_id', '=', id).execute();
      await trx.deleteFrom('networks').where('id', '=', id).execute();
      return true;
    });
  }

  // ---- subnets -------------------------------------------------------------------------------------

  /**
   * Creates an IPv4 subnet. Default gateway: the first host address; default pools: every host address
   * but the gateway. Overlapping CIDRs on one network are refused, as in Neutron.
   */
  async createSubnet(input: CreateSubnetRequest): Promise<Subnet> {
    const request = parseRequest(createSubnetSchema, input, 'subnet');
    const plan = planSubnet(request);
    const dnsNameservers = checkNameservers(undefined, request.dnsNameservers);
    const hostRoutes = checkHostRoutes(undefined, request.hostRoutes);
    const now = this.clock.now();
    const id = randomUUID();
    const cidrText = formatCidr(plan.cidr);
    const createdId = await this.store.transaction(async (trx) => {
      const network = await this.store
        .forUpdate(trx.selectFrom('networks').selectAll().where('id', '=', request.networkId))
        .executeTakeFirst();
      if (!network) throw networkNotFound(request.networkId);
      if (request.requestKey) {
        const existing = await trx
          .selectFrom('subnets')
          .select('id')
          .where('request_key', '=', request.requestKey)
          .executeTakeFirst();
        if (existing) return existing.id;
      }
      const siblings = await trx
        .selectFrom('subnets')
        .select(['id', 'cidr'])
        .where('network_id', '=', network.id)
        .execute();
      for (const sibling of siblings) {
        const other = planSubnet({ cidr: sibling.cidr, gatewayIp: null });
        if (plan.cidr.network <= other.cidr.broadcast && other.cidr.network <= plan.cidr.broadcast) {
          throw new CloudError(
            'BadRequest',
            `Invalid input for operation: Requested subnet with cidr: ${cidrText} for network: ${network.id} ` +
              `overlaps with another subnet (${sibling.id}, ${sibling.cidr}).`,
          );
        }
      }
      await trx
        .insertInto('subnets')
        .values({
          id,
          name: request.name ?? '',
          description: request.description,
          network_id: network.id,
          project_id: network.project_id,
          cidr: cidrText,
          ip_version: 4,
          gateway_ip: plan.gateway === undefined ? null : formatIpv4(plan.gateway),
          enable_dhcp: request.enableDhcp ? 1 : 0,
          request_key: request.requestKey ?? null,
          created_at: now,
          updated_at: now,
        })
        .execute();
      if (plan.pools.length) {
        await trx
          .insertInto('ip_allocation_pools')
          .values(
            plan.pools.map((pool) => ({
              id: randomUUID(),
              subnet_id: id,
              first_ip: formatIpv4(pool.first),
              last_ip: formatIpv4(pool.last),
            })),
          )
          .execute();
      }
      await writeSubnetExtras(trx, id, { dnsNameservers, hostRoutes });
      await trx.updateTable('networks').set({ updated_at: now }).where('id', '=', network.id).execute();
      return id;
    });
    return this.getSubnet(createdId);
  }

  async getSubnet(subnetId: string): Promise<Subnet> {
    const id = parseRequest(idSchema, subnetId, 'subnet id');
    const row = await this.db.selectFrom('subnets').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new CloudError('NotFound', `Subnet ${id} could not be found.`, { subnetId: id });
    return toSubnet(this.db, row);
  }

  async listSubnets(networkId?: string): Promise<Subnet[]> {
    let query = this.db.selectFrom('subnets').selectAll().orderBy('created_at').orderBy('id');
    if (networkId !== undefined)
      query = query.where('network_id', '=', parseRequest(idSchema, networkId, 'network id'));
    const rows = await query.execute();
    return Promise.all(rows.map((row) => toSubnet(this.db, row)));
  }

  /**
   * The network's DHCP port and what the DHCP agent serves with it, for the network's first DHCP-enabled
   * subnet; null when it has none. Created on first use (when neutron-server schedules the network to a DHCP
   * agent) from the subnet's pool, so the IPAM stays exact; owned by the network (device_owner
   * network:dhcp, deleted with it). Idempotent. Null too when the pool has no address left for it.
   */
  async ensureDhcpPort(networkId: string): Promise<DhcpDetails | null> {
    const id = parseRequest(idSchema, networkId, 'network id');
    const network = await this.db.selectFrom('networks').selectAll().where('id', '=', id).executeTakeFirst();
    if (!network) throw networkNotFound(id);
    const subnet = (await this.listSubnets(id)).find((s) => s.enableDhcp);
    if (!subnet) return null;
    let port: Port;
    try {
      port = await this.createPort({
        requestKey: `dhcp:${subnet.id}`,
        networkId: id,
        projectId: network.project_id,
        deviceId: `dhcp-${id}`,
        deviceOwner: DHCP_DEVICE_OWNER,
        fixedIps: [{ subnetId: subnet.id }],
      });
    } catch (err) {
      if (err instanceof CloudError && err.type === 'IpAddressGenerationFailure') return null;
      throw err;
    }
    const ip = port.fixedIps.find((f) => f.subnetId === subnet.id);
    if (!ip) return null;
    return {
      networkId: id,
      subnetId: subnet.id,
      cidr: subnet.cidr,
      gatewayIp: subnet.gatewayIp,
      mtu: network.mtu,
      dhcpPortId: port.id,
      dhcpMacAddress: port.macAddress,
      dhcpIpAddress: ip.ipAddress,
    };
  }

  /** Like Neutron's network-ip-availability: pool size and allocated addresses per subnet of a network. */
  async ipAvailability(networkId: string): Promise<SubnetIpAvailability[]> {
    const subnets = await this.listSubnets(networkId);
    return Promise.all(
      subnets.map(async (subnet) => {
        const used = await this.db
          .selectFrom('ipallocations')
          .select((eb) => eb.fn.countAll().as('n'))
          .where('subnet_id', '=', subnet.id)
          .executeTakeFirst();
        const totalIps = subnet.allocationPools.reduce(
          (sum, pool) => sum + rangeSize({ first: ipNumber(pool.start), last: ipNumber(pool.end) }),
          0,
        );
        return { subnetId: subnet.id, cidr: subnet.cidr, totalIps, usedIps: Number(used?.n ?? 0) };
      }),
    );
  }

  // ---- security groups -----------------------------------------------------------------------------

  /** The project's default security group, created with Neutron's default rules on first use. */
  async ensureDefaultSecurityGroup(projectId: string): Promise<SecurityGroup> {
    const project = parseRequest(projectIdSchema, projectId, 'project id');
    let id = await findDefaultSecurityGroupId(this.db, project);
    if (!id) {
      try {
        id = await this.store.transaction(
          async (trx) =>
            (await findDefaultSecurityGroupId(trx, project)) ??
            insertDefaultSecurityGroup(trx, project, this.clock.now()),
        );
      } catch (err) {
        // Another request created it first: the default_security_groups primary key kept it single.
        if (!isUniqueViolation(err)) throw err;
        id = await findDefaultSecurityGroupId(this.db, project);
      }
    }
    const group = id && (await loadSecurityGroup(this.db, id));
    if (!group)
      throw new CloudError('ServiceUnavailable', `Default security group of ${project} vanished; retry`);
    return group;
  }

  // ---- ports ---------------------------------------------------------------------------------------

  /**
   * Creates a port with a fixed IP and a fresh MAC on a network the project may use, bound to the project's
   * default security group. Idempotent by requestKey: a retry returns the port the first call created.
   * IpAddressGenerationFailure when no subnet of the network has a free address.
   */
  async createPort(input: CreatePortRequest): Promise<Port> {
    const request = parseRequest(createPortSchema, input, 'port');
    const pairs =
      request.allowedAddressPairs === undefined ? [] : parseAddressPairs(request.allowedAddressPairs);
    const first = await this.portIdByRequestKey(this.db, request.requestKey);
    if (first) return this.getPort(first);
    const groupIds = request.securityGroupIds ?? [
      (await this.ensureDefaultSecurityGroup(request.projectId)).id,
    ];
    for (let attempt = 1; ; attempt++) {
      try {
        const id = await this.store.transaction((trx) => this.insertPort(trx, request, groupIds, pairs));
        return await this.getPort(id);
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
        // Either a concurrent retry of the same request won (return its port), or a MAC/address race.
        const winner = await this.portIdByRequestKey(this.db, request.requestKey);
        if (winner) return this.getPort(winner);
        if (attempt >= CREATE_PORT_ATTEMPTS) {
          throw new CloudError(
            'DatabaseBusy',
            `Port creation on network ${request.networkId} kept colliding; retry`,
          );
        }
      }
    }
  }

  private async insertPort(
    trx: Kysely<NeutronDb>,
    request: z.output<typeof createPortSchema>,
    securityGroupIds: readonly string[],
    addressPairs: readonly AddressPair[] = [],
  ): Promise<string> {
    // Lock the network first: it serializes IPAM on this network, and on MySQL the reads below then see
    // every allocation committed before the lock was granted.
    const network = await this.store
      .forUpdate(trx.selectFrom('networks').selectAll().where('id', '=', request.networkId))
      .executeTakeFirst();
    if (!network || !(request.internal || network.project_id === request.projectId || network.shared === 1)) {
      throw networkNotFound(request.networkId);
    }
    const existing = await this.portIdByRequestKey(trx, request.requestKey);
    if (existing) return existing;

    const macAddress =
      request.macAddress === undefined
        ? await this.freeMac(trx, network.id)
        : await this.askedMac(trx, network.id, request.macAddress);
    const now = this.clock.now();
    const id = randomUUID();
    await trx
      .insertInto('ports')
      .values({
        id,
        name: request.name,
        description: request.description,
        network_id: network.id,
        project_id: request.projectId,
        mac_address: macAddress,
        admin_state_up: request.adminStateUp ? 1 : 0,
        status: 'DOWN',
        device_id: request.deviceId,
        device_owner: request.deviceOwner,
        binding_host_id: null,
        binding_vif_type: 'unbound',
        binding_vif_details: '{}',
        binding_vnic_type: 'normal',
        request_key: request.requestKey,
        created_at: now,
        updated_at: now,
      })
      .execute();
    await allocatePortIps(trx, network.id, id, request.fixedIps);
    await setPortSecurityGroups(trx, { id, projectId: request.projectId }, securityGroupIds);
    await setAddressPairs(trx, { id, macAddress }, addressPairs);
    return id;
  }

  /** A MAC the caller chose: Neutron's format check, and MacAddressInUse (409) if the network has it. */
  private async askedMac(trx: Kysely<NeutronDb>, networkId: string, asked: string): Promise<string> {
    const mac = normalizeMac(asked);
    if (mac === undefined)
      throw new CloudError(
        'BadRequest',
        `Invalid input for mac_address. Reason: '${asked}' is not a valid MAC address.`,
        { neutronType: 'HTTPBadRequest' },
      );
    const taken = await trx
      .selectFrom('ports')
      .select('id')
      .where('network_id', '=', networkId)
      .where('mac_address', '=', mac)
      .executeTakeFirst();
    if (taken)
      throw new CloudError(
        'Conflict',
        `Unable to complete operation for network ${networkId}. The mac address ${mac} is in use.`,
        { neutronType: 'MacAddressInUse' },
      );
    return mac;
  }

  private async freeMac(trx: Kysely<NeutronDb>, networkId: string): Promise<string> {
    for (let i = 0; i < MAC_ATTEMPTS; i++) {
      const mac = randomMac();
      const taken = await trx
        .selectFrom('ports')
        .select('id')
        .where('network_id', '=', networkId)
        .where('mac_address', '=', mac)
        .executeTakeFirst();
      if (!taken) return mac;
    }
    throw new CloudError(
      'Conflict',
      `Unable to generate a unique MAC address on network ${networkId}; retry`,
    );
  }

  private async portIdByRequestKey(db: Kysely<NeutronDb>, requestKey: string): Promise<string | undefined> {
    const row = await db
      .selectFrom('ports')
      .select('id')
      .where('request_key', '=', requestKey)
      .executeTakeFirst();
    return row?.id;
  }

  async getPort(portId: string): Promise<Port> {
    const id = parseRequest(idSchema, portId, 'port id');
    const row = await this.db.selectFrom('ports').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw portNotFound(id);
    const [port] = await toPorts(this.db, [row]);
    if (!port) throw portNotFound(id);
    return port;
  }

  async listPorts(filter: ListPortsFilter = {}): Promise<Port[]> {
    const f = parseRequest(listPortsSchema, filter, 'port filter');
    let query = this.db.selectFrom('ports').selectAll().orderBy('created_at').orderBy('id');
    if (f.deviceId !== undefined) query = query.where('device_id', '=', f.deviceId);
    if (f.networkId !== undefined) query = query.where('network_id', '=', f.networkId);
    if (f.projectId !== undefined) query = query.where('project_id', '=', f.projectId);
    return toPorts(this.db, await query.execute());
  }

  /** Security groups with their rules, oldest first; only the project's when one is given. */
  async listSecurityGroups(projectId?: string): Promise<SecurityGroup[]> {
    let query = this.db.selectFrom('security_groups').select('id').orderBy('created_at').orderBy('id');
    if (projectId !== undefined)
      query = query.where('project_id', '=', parseRequest(projectIdSchema, projectId, 'project id'));
    const groups = await Promise.all((await query.execute()).map((g) => loadSecurityGroup(this.db, g.id)));
    return groups.filter((g): g is SecurityGroup => g !== undefined);
  }

  /** The names of these security groups, by id (a server's `security_groups` in Nova's view). */
  async securityGroupNames(ids: readonly string[]): Promise<Map<string, string>> {
    const wanted = [...new Set(ids)];
    if (wanted.length === 0) return new Map();
    const rows = await this.db
      .selectFrom('security_groups')
      .select(['id', 'name'])
      .where('id', 'in', wanted)
      .execute();
    return new Map(rows.map((r) => [r.id, r.name]));
  }

  /**
   * Adds a security group to, or removes it from, every port of a device (Nova's add_to_instance and
   * remove_from_instance), in one transaction with the ports locked. Answers how many ports changed (for a
   * remove: how many had the group).
   */
  async changeDeviceSecurityGroup(
    deviceId: string,
    groupId: string,
    change: 'add' | 'remove',
  ): Promise<number> {
    const device = parseRequest(idSchema, deviceId, 'device id');
    const group = parseRequest(idSchema, groupId, 'security group id');
    return this.store.transaction(async (trx) => {
      const ports = await this.store
        .forUpdate(trx.selectFrom('ports').select(['id', 'project_id']).where('device_id', '=', device))
        .execute();
      const ids = ports.map((p) => p.id);
      const changed =
        change === 'add'
          ? (await addDeviceSecurityGroup(trx, ports, group), ports.length)
          : await removeDeviceSecurityGroup(trx, ids, group);
      if (changed > 0)
        await trx.updateTable('ports').set({ updated_at: this.clock.now() }).where('id', 'in', ids).execute();
      return changed;
    });
  }

  /**
   * Deletes a subnet and its allocation pools; idempotent. Refused (SubnetInUse, 409) while a port other
   * than the network's DHCP port holds an address on it; the DHCP port's address goes with the subnet.
   */
  async deleteSubnet(subnetId: string): Promise<boolean> {
    const id = parseRequest(idSchema, subnetId, 'subnet id');
    return this.store.transaction(async (trx) => {
      const subnet = await this.store
        .forUpdate(trx.selectFrom('subnets').selectAll().where('id', '=', id))
        .executeTakeFirst();
      if (!subnet) return false;
      const users = await trx
        .selectFrom('ipallocations')
        .innerJoin('ports', 'ports.id', 'ipallocations.port_id')
        .select(['ports.id', 'ports.device_owner'])
        .where('ipallocations.subnet_id', '=', id)
        .execute();
      if (users.some((u) => u.device_owner !== 'network:dhcp'))
        throw new CloudError(
          'Conflict',
          `Unable to complete operation on subnet ${id}: One or more ports have an IP allocation from this subnet.`,
          { subnetId: id, neutronType: 'SubnetInUse' },
        );
      await trx.deleteFrom('ipallocations').where('subnet_id', '=', id).execute();
      await trx.deleteFrom('ip_allocation_pools').where('subnet_id', '=', id).execute();
      await trx.deleteFrom('subnets').where('id', '=', id).execute();
      await trx
        .updateTable('networks')
        .set({ updated_at: this.clock.now() })
        .where('id', '=', subnet.network_id)
        .execute();
      return true;
    });
  }

  /** Every IP allocation (the leak audit compares them with live ports and instances). */
  async listIpAllocations(networkId?: string): Promise<IpAllocation[]> {
    let query = this.db.selectFrom('ipallocations').selectAll().orderBy('subnet_id').orderBy('ip_address');
    if (networkId !== undefined)
      query = query.where('network_id', '=', parseRequest(idSchema, networkId, 'network id'));
    const rows = await query.execute();
    return rows.map((r) => ({
      ipAddress: r.ip_address,
      subnetId: r.subnet_id,
      networkId: r.network_id,
      portId: r.port_id,
    }));
  }

  private async updateLockedPort(
    portId: string,
    change: (row: PortsTable) => Partial<PortsTable> | CloudError | undefined,
  ): Promise<PortsTable | undefined> {
    const id = parseRequest(idSchema, portId, 'port id');
    const outcome = await this.store.transaction(async (trx) => {
      const row = await this.store
        .forUpdate(trx.selectFrom('ports').selectAll().where('id', '=', id))
        .executeTakeFirst();
      if (!row) return undefined;
      const patch = change(row);
      if (patch instanceof CloudError) return patch;
      if (patch) {
        const updated = { ...patch, updated_at: this.clock.now() };
        await trx.updateTable('ports').set(updated).where('id', '=', id).execute();
        return { ...row, ...updated };
      }
      return row;
    });
    if (outcome instanceof CloudError) throw outcome;
    return outcome;
  }

  /**
   * Binds the port to a compute host (ML2 port binding): vif_type 'ovs' with the OVS details. A port moved
   * to another host goes DOWN until that host's agent plugs it. Binding on a failing host records
   * vif_type 'binding_failed' and raises PortBindingFailed, as Nova sees it.
   */
  async bindPort(portId: string, host: string): Promise<PortBinding> {
    const target = parseRequest(hostSchema, host, 'host');
    const failing = this.bindingFailHosts.has(target);
    const row = await this.updateLockedPort(portId, (port) => ({
      binding_host_id: target,
      binding_vif_type: failing ? 'binding_failed' : 'ovs',
      binding_vif_details: failing ? '{}' : JSON.stringify(OVS_VIF_DETAILS),
      status: port.binding_host_id === target && !failing ? port.status : 'DOWN',
    }));
    if (!row) throw portNotFound(portId);
    if (failing) {
      throw new CloudError(
        'PortBindingFailed',
        `Binding failed for port ${row.id}, please check neutron logs for more information.`,
        { portId: row.id, host: target },
      );
    }
    return { vifType: 'ovs', vifDetails: { ...OVS_VIF_DETAILS }, port: await this.getPort(row.id) };
  }

  /**
   * The network-vif-plugged event: the agent on the bound host wired the port, so it goes ACTIVE.
   * Idempotent; Conflict for an unbound port or a report from another host than the bound one.
   */
  async markPortActive(portId: string, host?: string): Promise<Port> {
    const reporter = host === undefined ? undefined : parseRequest(hostSchema, host, 'host');
    const row = await this.updateLockedPort(portId, (port) => {
      if (port.binding_vif_type !== 'ovs' || port.binding_host_id === null) {
        return new CloudError(
          'Conflict',
          `Port ${port.id} is not bound to a host; bind it before plugging it.`,
          {
            portId: port.id,
          },
        );
      }
      if (reporter !== undefined && reporter !== port.binding_host_id) {
        return new CloudError(
          'Conflict',
          `Port ${port.id} is bound to host ${port.binding_host_id}, not to ${reporter}.`,
          { portId: port.id, host: reporter },
        );
      }
      return port.status === 'ACTIVE' ? undefined : { status: 'ACTIVE' };
    });
    if (!row) throw portNotFound(portId);
    return this.getPort(row.id);
  }

  /** The agent unplugged the port (network-vif-unplugged): DOWN, binding kept. */
  async markPortDown(portId: string): Promise<Port> {
    const row = await this.updateLockedPort(portId, (port) =>
      port.status === 'DOWN' ? undefined : { status: 'DOWN' },
    );
    if (!row) throw portNotFound(portId);
    return this.getPort(row.id);
  }

  /** Clears the binding (before a reschedule or on clean-up): DOWN and 'unbound'. Missing port: null. */
  async unbindPort(portId: string): Promise<Port | null> {
    const row = await this.updateLockedPort(portId, () => ({
      binding_host_id: null,
      binding_vif_type: 'unbound',
      binding_vif_details: '{}',
      status: 'DOWN',
    }));
    return row ? this.getPort(row.id) : null;
  }

  /** Deletes the port, its fixed IPs and security-group bindings. Idempotent: false if it was already gone. */
  async deletePort(portId: string): Promise<boolean> {
    const id = parseRequest(idSchema, portId, 'port id');
    return this.store.transaction(async (trx) => {
      // Neutron's disassociate_floatingips and the router's port row go with the port.
      await trx
        .updateTable('floatingips')
        .set({ fixed_port_id: null, fixed_ip_address: null, router_id: null, status: 'DOWN' })
        .where('fixed_port_id', '=', id)
        .execute();
      await trx.deleteFrom('routerports').where('port_id', '=', id).execute();
      await trx.deleteFrom('ipallocations').where('port_id', '=', id).execute();
      await trx.deleteFrom('securitygroupportbindings').where('port_id', '=', id).execute();
      const result = await trx.deleteFrom('ports').where('id', '=', id).executeTakeFirst();
      return Number(result.numDeletedRows) > 0;
    });
  }
}

function ipNumber(text: string): number {
  return parseIpv4(text) ?? 0;
}
