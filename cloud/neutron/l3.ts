/**
 * Neutron's L3 plugin (neutron/db/l3_db.py, l3_gwmode_db.py, extraroute_db.py), recorded only: routers with
 * an external gateway (a network:router_gateway port on a router:external network), interfaces
 * (network:router_interface ports holding their subnet's gateway address), extra routes, and floating IPs
 * (a network:floatingip port on the external network, associated with a fixed IP of a port whose subnet a
 * router with a gateway on that network reaches). No L3 agent builds namespaces or NAT from these rows.
 * Errors carry Neutron's exception names and messages; who may see or change what is the API's.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { ServiceDb } from '../db';
import { CloudError } from '../errors';
import { cidrContains, parseCidr, parseIpv4 } from './ipv4';
import type { NeutronDb, FloatingIpsTable, RoutersTable } from './schema';
import { parseSubnetCidr } from './subnet-plan';
import type { FixedIp, HostRoute, Port, Subnet } from './types';

export const ROUTER_GATEWAY_OWNER = 'network:router_gateway';
export const ROUTER_INTERFACE_OWNER = 'network:router_interface';
export const FLOATING_IP_OWNER = 'network:floatingip';

/** Neutron's default quotas (quota_router, quota_floatingip). */
export const ROUTER_QUOTA = 10;
export const FLOATING_IP_QUOTA = 50;
/** extraroute's max_routes default. */
export const MAX_ROUTES = 30;

export interface RouterGateway {
  networkId: string;
  enableSnat: boolean;
  externalFixedIps: FixedIp[];
}

export interface Router {
  id: string;
  name: string;
  description: string;
  projectId: string;
  status: 'ACTIVE';
  adminStateUp: boolean;
  gateway: RouterGateway | null;
  routes: HostRoute[];
  createdAt: number;
  updatedAt: number;
}

export interface FloatingIp {
  id: string;
  description: string;
  projectId: string;
  floatingIpAddress: string;
  floatingNetworkId: string;
  floatingPortId: string;
  portId: string | null;
  fixedIpAddress: string | null;
  routerId: string | null;
  /** ACTIVE while associated (what the L3 agent would report once it set up the NAT), else DOWN. */
  status: 'ACTIVE' | 'DOWN';
  createdAt: number;
  updatedAt: number;
}

/** add_router_interface / remove_router_interface's answer. */
export interface RouterInterfaceInfo {
  routerId: string;
  projectId: string;
  portId: string;
  subnetId: string;
  subnetIds: string[];
  networkId: string;
}

export interface GatewayRequest {
  networkId: string;
  enableSnat?: boolean;
  externalFixedIps?: Array<{ subnetId?: string; ipAddress?: string }>;
}

export interface CreateRouterRequest {
  name?: string;
  description?: string;
  projectId: string;
  adminStateUp?: boolean;
  gateway?: GatewayRequest | null;
}

export interface UpdateRouterRequest {
  name?: string;
  description?: string;
  adminStateUp?: boolean;
  /** null clears the gateway. */
  gateway?: GatewayRequest | null;
  routes?: HostRoute[];
}

export interface CreateFloatingIpRequest {
  projectId: string;
  floatingNetworkId: string;
  description?: string;
  subnetId?: string;
  floatingIpAddress?: string;
  portId?: string | null;
  fixedIpAddress?: string;
}

/** What the L3 plugin asks of the core plugin (neutron.ts): its ports. */
export interface CorePorts {
  createPort(request: {
    requestKey: string;
    networkId: string;
    projectId: string;
    internal: true;
    deviceId: string;
    deviceOwner: string;
    securityGroupIds: string[];
    fixedIps?: Array<{ subnetId?: string; ipAddress?: string; allowGateway?: boolean }>;
  }): Promise<Port>;
  updatePort(request: {
    id: string;
    fixedIps: Array<{ subnetId?: string; ipAddress?: string }>;
  }): Promise<Port>;
  deletePort(id: string): Promise<boolean>;
  getPort(id: string): Promise<Port>;
  getSubnet(id: string): Promise<Subnet>;
}

const bad = (resource: string, msg: string, type = 'BadRequest') =>
  new CloudError('BadRequest', `Bad ${resource} request: ${msg}.`, { neutronType: type });

export function routerNotFound(id: string): CloudError {
  return new CloudError('NotFound', `Router ${id} could not be found.`, { neutronType: 'RouterNotFound' });
}

export function floatingIpNotFound(id: string): CloudError {
  return new CloudError('NotFound', `Floating IP ${id} could not be found`, {
    neutronType: 'FloatingIPNotFound',
  });
}

function overQuota(resource: string): CloudError {
  return new CloudError('Conflict', `Quota exceeded for resources: ['${resource}'].`, {
    neutronType: 'OverQuota',
  });
}

export class L3 {
  constructor(
    private readonly store: ServiceDb<NeutronDb>,
    private readonly now: () => number,
    private readonly core: CorePorts,
  ) {}

  private get db(): Kysely<NeutronDb> {
    return this.store.db;
  }

  // ---- routers ---------------------------------------------------------------------------------------

  async listRouters(projectId?: string): Promise<Router[]> {
    let query = this.db.selectFrom('routers').selectAll().orderBy('created_at').orderBy('id');
    if (projectId !== undefined) query = query.where('project_id', '=', projectId);
    return Promise.all((await query.execute()).map((row) => this.toRouter(row)));
  }

  async getRouter(id: string): Promise<Router> {
    const row = await this.db.selectFrom('routers').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw routerNotFound(id);
    return this.toRouter(row);
  }

  private async toRouter(row: RoutersTable): Promise<Router> {
    let gateway: RouterGateway | null = null;
    if (row.gw_port_id) {
      const port = await this.core.getPort(row.gw_port_id).catch(() => undefined);
      if (port)
        gateway = {
          networkId: port.networkId,
          enableSnat: row.enable_snat === 1,
          externalFixedIps: port.fixedIps,
        };
    }
    const routes = await this.db
      .selectFrom('routerroutes')
      .select(['destination', 'nexthop'])
      .where('router_id', '=', row.id)
      .orderBy('destination')
      .orderBy('nexthop')
      .execute();
    return {
      id: row.id,
      name: row.name,
      description: row.description,
      projectId: row.project_id,
      status: 'ACTIVE',
      adminStateUp: row.admin_state_up === 1,
      gateway,
      routes,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
    };
  }

  /** Neutron's create_router: quota `router`, then the gateway if asked (undone with the router on failure). */
  async createRouter(request: CreateRouterRequest): Promise<Router> {
    const id = randomUUID();
    const now = this.now();
    await this.store.transaction(async (trx) => {
      const count = await trx
        .selectFrom('routers')
        .select((eb) => eb.fn.countAll().as('n'))
        .where('project_id', '=', request.projectId)
        .executeTakeFirst();
      if (Number(count?.n ?? 0) >= ROUTER_QUOTA) throw overQuota('router');
      await trx
        .insertInto('routers')
        .values({
          id,
          name: request.name ?? '',
          description: request.description ?? '',
          project_id: request.projectId,
          status: 'ACTIVE',
          admin_state_up: request.adminStateUp === false ? 0 : 1,
          gw_port_id: null,
          enable_snat: 1,
          created_at: now,
          updated_at: now,
        })
        .execute();
    });
    if (request.gateway) {
      try {
        await this.setGateway(id, request.gateway);
      } catch (err) {
        await this.db.deleteFrom('routers').where('id', '=', id).execute();
        throw err;
      }
    }
    return this.getRouter(id);
  }

  async updateRouter(id: string, request: UpdateRouterRequest): Promise<Router> {
    const current = await this.getRouter(id);
    if (request.gateway !== undefined) {
      if (request.gateway === null) await this.clearGateway(current);
      else await this.setGateway(id, request.gateway);
    }
    if (request.routes !== undefined) await this.setRoutes(id, request.routes);
    await this.db
      .updateTable('routers')
      .set({
        ...(request.name !== undefined ? { name: request.name } : {}),
        ...(request.description !== undefined ? { description: request.description } : {}),
        ...(request.adminStateUp !== undefined ? { admin_state_up: request.adminStateUp ? 1 : 0 } : {}),
        updated_at: this.now(),
      })
      .where('id', '=', id)
      .execute();
    return this.getRouter(id);
  }

  /** Neutron's delete_router: RouterInUse while it has interfaces; its gateway port goes with it. */
  async deleteRouter(id: string): Promise<void> {
    const router = await this.getRouter(id);
    const ports = await this.routerPorts(id);
    if (ports.some((p) => p.port_type === ROUTER_INTERFACE_OWNER))
      throw new CloudError('Conflict', `Router ${id} still has ports`, { neutronType: 'RouterInUse' });
    if (router.gateway) await this.clearGateway(router);
    await this.db.deleteFrom('routers').where('id', '=', id).execute();
  }

  private routerPorts(routerId: string) {
    return this.db.selectFrom('routerports').selectAll().where('router_id', '=', routerId).execute();
  }

  /** _validate_gw_info: the network must exist (NetworkNotFound) and be router:external. */
  private async externalNetwork(networkId: string, resource: string): Promise<void> {
    const network = await this.db
      .selectFrom('networks')
      .select(['id', 'router_external'])
      .where('id', '=', networkId)
      .executeTakeFirst();
    if (!network)
      throw new CloudError('NotFound', `Network ${networkId} could not be found.`, {
        neutronType: 'NetworkNotFound',
      });
    if (network.router_external !== 1)
      throw resource === 'router'
        ? bad('router', `Network ${networkId} is not an external network`)
        : bad('floatingip', `Network ${networkId} is not a valid external network`);
  }

  private async setGateway(routerId: string, gw: GatewayRequest): Promise<void> {
    await this.externalNetwork(gw.networkId, 'router');
    const router = await this.getRouter(routerId);
    const row = await this.db
      .selectFrom('routers')
      .selectAll()
      .where('id', '=', routerId)
      .executeTakeFirstOrThrow();
    if (router.gateway && router.gateway.networkId === gw.networkId) {
      // Same network: ext-gw-mode's enable_snat and (admin) new external fixed IPs on the same port.
      if (gw.externalFixedIps && row.gw_port_id)
        await this.core.updatePort({ id: row.gw_port_id, fixedIps: gw.externalFixedIps });
      await this.db
        .updateTable('routers')
        .set({ enable_snat: gw.enableSnat === false ? 0 : 1, updated_at: this.now() })
        .where('id', '=', routerId)
        .execute();
      return;
    }
    if (router.gateway) await this.clearGateway(router);
    const port = await this.core.createPort({
      requestKey: `router-gw:${routerId}:${randomUUID()}`,
      networkId: gw.networkId,
      projectId: '',
      internal: true,
      deviceId: routerId,
      deviceOwner: ROUTER_GATEWAY_OWNER,
      securityGroupIds: [],
      ...(gw.externalFixedIps?.length ? { fixedIps: gw.externalFixedIps } : {}),
    });
    if (port.fixedIps.length === 0) {
      await this.core.deletePort(port.id);
      throw bad('router', `No IPs available for external network ${gw.networkId}`);
    }
    await this.store.transaction(async (trx) => {
      await trx
        .insertInto('routerports')
        .values({ port_id: port.id, router_id: routerId, port_type: ROUTER_GATEWAY_OWNER })
        .execute();
      await markActive(trx, port.id, this.now());
      await trx
        .updateTable('routers')
        .set({ gw_port_id: port.id, enable_snat: gw.enableSnat === false ? 0 : 1, updated_at: this.now() })
        .where('id', '=', routerId)
        .execute();
    });
  }

  /** _delete_current_gw_port: refused while floating IPs go through this gateway. */
  private async clearGateway(router: Router): Promise<void> {
    if (!router.gateway) return;
    const fip = await this.db
      .selectFrom('floatingips')
      .select('id')
      .where('router_id', '=', router.id)
      .where('floating_network_id', '=', router.gateway.networkId)
      .executeTakeFirst();
    if (fip)
      throw new CloudError(
        'Conflict',
        `Gateway cannot be updated for router ${router.id}, since a gateway to external network ` +
          `${router.gateway.networkId} is required by one or more floating IPs.`,
        { neutronType: 'RouterExternalGatewayInUseByFloatingIp' },
      );
    const row = await this.db
      .selectFrom('routers')
      .select('gw_port_id')
      .where('id', '=', router.id)
      .executeTakeFirst();
    await this.db
      .updateTable('routers')
      .set({ gw_port_id: null, enable_snat: 1, updated_at: this.now() })
      .where('id', '=', router.id)
      .execute();
    if (row?.gw_port_id) await this.core.deletePort(row.gw_port_id);
  }

  /** The subnets of the router's interfaces, with the port holding each. */
  private async interfaceSubnets(
    routerId: string,
  ): Promise<Array<{ portId: string; subnet: Subnet; ipAddress: string }>> {
    const rows = await this.db
      .selectFrom('routerports')
      .innerJoin('ipallocations', 'ipallocations.port_id', 'routerports.port_id')
      .select(['routerports.port_id', 'ipallocations.subnet_id', 'ipallocations.ip_address'])
      .where('routerports.router_id', '=', routerId)
      .where('routerports.port_type', '=', ROUTER_INTERFACE_OWNER)
      .execute();
    return Promise.all(
      rows.map(async (r) => ({
        portId: r.port_id,
        subnet: await this.core.getSubnet(r.subnet_id),
        ipAddress: r.ip_address,
      })),
    );
  }

  /** _check_for_dup_router_subnets: one port per subnet, and no overlapping CIDRs on one router. */
  private async checkNewSubnets(routerId: string, subnets: Subnet[]): Promise<void> {
    const existing = await this.interfaceSubnets(routerId);
    for (const subnet of subnets) {
      const cidr = parseSubnetCidr(subnet.cidr);
      for (const { subnet: other } of existing) {
        if (other.id === subnet.id) throw bad('router', `Router already has a port on subnet ${subnet.id}`);
        const o = parseSubnetCidr(other.cidr);
        if (cidr.network <= o.broadcast && o.network <= cidr.broadcast)
          throw bad(
            'router',
            `Cidr ${subnet.cidr} of subnet ${subnet.id} overlaps with cidr ${other.cidr} of subnet ${other.id}`,
          );
      }
    }
  }

  /** add_router_interface by subnet (a new port with the subnet's gateway address) or by port. */
  async addInterface(
    routerId: string,
    by: { subnetId?: string; portId?: string },
  ): Promise<RouterInterfaceInfo> {
    const router = await this.getRouter(routerId);
    if (by.subnetId !== undefined && by.portId !== undefined)
      throw bad('router', 'Cannot specify both subnet-id and port-id');
    if (by.portId !== undefined) {
      const port = await this.core.getPort(by.portId);
      if (port.deviceId !== '')
        throw new CloudError(
          'Conflict',
          `Unable to complete operation on port ${port.id} for network ${port.networkId}. Port already has an attached device ${port.deviceId}.`,
          { neutronType: 'PortInUse' },
        );
      if (port.fixedIps.length === 0) throw bad('router', 'Router port must have at least one fixed IP');
      if (port.fixedIps.length > 1) throw bad('router', 'Cannot have multiple IPv4 subnets on router port');
      const subnets = await Promise.all(port.fixedIps.map((ip) => this.core.getSubnet(ip.subnetId)));
      await this.checkNewSubnets(routerId, subnets);
      await this.store.transaction(async (trx) => {
        await trx
          .updateTable('ports')
          .set({
            device_id: routerId,
            device_owner: ROUTER_INTERFACE_OWNER,
            status: 'ACTIVE',
            updated_at: this.now(),
          })
          .where('id', '=', port.id)
          .execute();
        await trx
          .insertInto('routerports')
          .values({ port_id: port.id, router_id: routerId, port_type: ROUTER_INTERFACE_OWNER })
          .execute();
      });
      return this.interfaceInfo(
        router,
        port.id,
        port.networkId,
        subnets.map((s) => s.id),
      );
    }
    if (by.subnetId === undefined) throw bad('router', 'Either subnet_id or port_id must be specified');
    const subnet = await this.core.getSubnet(by.subnetId);
    if (!subnet.gatewayIp) throw bad('router', 'Subnet for router interface must have a gateway IP');
    await this.checkNewSubnets(routerId, [subnet]);
    const port = await this.core.createPort({
      requestKey: `router-if:${routerId}:${randomUUID()}`,
      networkId: subnet.networkId,
      projectId: subnet.projectId,
      internal: true,
      deviceId: routerId,
      deviceOwner: ROUTER_INTERFACE_OWNER,
      securityGroupIds: [],
      fixedIps: [{ subnetId: subnet.id, ipAddress: subnet.gatewayIp, allowGateway: true }],
    });
    try {
      await this.store.transaction(async (trx) => {
        await trx
          .insertInto('routerports')
          .values({ port_id: port.id, router_id: routerId, port_type: ROUTER_INTERFACE_OWNER })
          .execute();
        await markActive(trx, port.id, this.now());
      });
    } catch (err) {
      await this.core.deletePort(port.id);
      throw err;
    }
    return this.interfaceInfo(router, port.id, subnet.networkId, [subnet.id]);
  }

  private interfaceInfo(
    router: Router,
    portId: string,
    networkId: string,
    subnetIds: string[],
  ): RouterInterfaceInfo {
    return {
      routerId: router.id,
      projectId: router.projectId,
      portId,
      subnetId: subnetIds[0] ?? '',
      subnetIds,
      networkId,
    };
  }

  /** remove_router_interface: the interface port is deleted; refused while routes or floating IPs need it. */
  async removeInterface(
    routerId: string,
    by: { subnetId?: string; portId?: string },
  ): Promise<RouterInterfaceInfo> {
    const router = await this.getRouter(routerId);
    const interfaces = await this.interfaceSubnets(routerId);
    let found: Array<{ portId: string; subnet: Subnet; ipAddress: string }>;
    if (by.portId !== undefined) {
      found = interfaces.filter((i) => i.portId === by.portId);
      if (!found.length)
        throw new CloudError(
          'NotFound',
          `Router ${routerId} does not have an interface with id ${by.portId}`,
          {
            neutronType: 'RouterInterfaceNotFound',
          },
        );
      if (by.subnetId !== undefined && !found.some((i) => i.subnet.id === by.subnetId))
        throw new CloudError(
          'Conflict',
          `Subnet ${by.subnetId} on router ${routerId} does not match port ${by.portId}`,
          {
            neutronType: 'SubnetMismatchForPort',
          },
        );
    } else if (by.subnetId !== undefined) {
      await this.core.getSubnet(by.subnetId);
      found = interfaces.filter((i) => i.subnet.id === by.subnetId);
      if (!found.length)
        throw new CloudError('NotFound', `Router ${routerId} has no interface on subnet ${by.subnetId}`, {
          neutronType: 'RouterInterfaceNotFoundForSubnet',
        });
    } else throw bad('router', 'Either subnet_id or port_id must be specified');
    const first = found[0]!;
    await this.confirmNotInUse(
      routerId,
      found.map((f) => f.subnet),
    );
    await this.core.deletePort(first.portId);
    return this.interfaceInfo(
      router,
      first.portId,
      first.subnet.networkId,
      found.map((f) => f.subnet.id),
    );
  }

  /** _confirm_router_interface_not_in_use: no extra route's nexthop nor floating IP's fixed IP on it. */
  private async confirmNotInUse(routerId: string, subnets: Subnet[]): Promise<void> {
    const routes = await this.db
      .selectFrom('routerroutes')
      .select('nexthop')
      .where('router_id', '=', routerId)
      .execute();
    const fips = await this.db
      .selectFrom('floatingips')
      .select('fixed_ip_address')
      .where('router_id', '=', routerId)
      .execute();
    for (const subnet of subnets) {
      const cidr = parseSubnetCidr(subnet.cidr);
      const inside = (ip: string | null) => ip !== null && cidrContains(cidr, parseIpv4(ip) ?? -1);
      if (routes.some((r) => inside(r.nexthop)))
        throw new CloudError(
          'Conflict',
          `Router interface for subnet ${subnet.id} on router ${routerId} cannot be deleted, as it is required by one or more routes.`,
          { neutronType: 'RouterInterfaceInUseByRoute' },
        );
      if (fips.some((f) => inside(f.fixed_ip_address)))
        throw new CloudError(
          'Conflict',
          `Router interface for subnet ${subnet.id} on router ${routerId} cannot be deleted, as it is required by one or more floating IPs.`,
          { neutronType: 'RouterInterfaceInUseByFloatingIP' },
        );
    }
  }

  /** extraroute's routes: each nexthop on a subnet of the router's interfaces, replaced whole. */
  private async setRoutes(routerId: string, routes: HostRoute[]): Promise<void> {
    if (routes.length > MAX_ROUTES)
      throw new CloudError('BadRequest', `Number of routes exceeds the maximum ${MAX_ROUTES}`, {
        neutronType: 'RoutesExhausted',
      });
    const interfaces = await this.interfaceSubnets(routerId);
    const invalid = (route: HostRoute, reason: string) =>
      new CloudError('BadRequest', `Invalid format for routes: ${JSON.stringify(route)}, ${reason}`, {
        neutronType: 'InvalidRoutes',
      });
    const seen = new Set<string>();
    for (const route of routes) {
      if (!parseCidr(route.destination).ok)
        throw new CloudError(
          'BadRequest',
          `Invalid input for routes. Reason: '${route.destination}' is not a valid IP subnet.`,
          {
            neutronType: 'HTTPBadRequest',
          },
        );
      const nexthop = parseIpv4(route.nexthop);
      if (nexthop === undefined)
        throw new CloudError(
          'BadRequest',
          `Invalid input for routes. Reason: '${route.nexthop}' is not a valid IP address.`,
          {
            neutronType: 'HTTPBadRequest',
          },
        );
      if (interfaces.some((i) => i.ipAddress === route.nexthop))
        throw invalid(route, 'the nexthop is used by router');
      if (!interfaces.some((i) => cidrContains(parseSubnetCidr(i.subnet.cidr), nexthop)))
        throw invalid(route, 'the nexthop is not connected with router');
      seen.add(`${route.destination} ${route.nexthop}`);
    }
    await this.store.transaction(async (trx) => {
      await trx.deleteFrom('routerroutes').where('router_id', '=', routerId).execute();
      const rows = [...seen].map((key) => {
        const [destination, nexthop] = key.split(' ') as [string, string];
        return { destination, nexthop, router_id: routerId };
      });
      if (rows.length) await trx.insertInto('routerroutes').values(rows).execute();
    });
  }

  // ---- floating IPs ---------------------------------------------------------------------------------

  async listFloatingIps(projectId?: string): Promise<FloatingIp[]> {
    let query = this.db.selectFrom('floatingips').selectAll().orderBy('created_at').orderBy('id');
    if (projectId !== undefined) query = query.where('project_id', '=', projectId);
    return (await query.execute()).map(toFloatingIp);
  }

  async getFloatingIp(id: string): Promise<FloatingIp> {
    const row = await this.db.selectFrom('floatingips').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw floatingIpNotFound(id);
    return toFloatingIp(row);
  }

  /** Neutron's create_floatingip: quota `floatingip`, an address on the external network, then the association. */
  async createFloatingIp(request: CreateFloatingIpRequest): Promise<FloatingIp> {
    await this.externalNetwork(request.floatingNetworkId, 'floatingip');
    const count = await this.db
      .selectFrom('floatingips')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('project_id', '=', request.projectId)
      .executeTakeFirst();
    if (Number(count?.n ?? 0) >= FLOATING_IP_QUOTA) throw overQuota('floatingip');
    const subnets = await this.db
      .selectFrom('subnets')
      .select('id')
      .where('network_id', '=', request.floatingNetworkId)
      .execute();
    if (!subnets.length)
      throw bad('floatingip', `Network ${request.floatingNetworkId} does not contain any IPv4 subnet`);
    const id = randomUUID();
    const wanted =
      request.floatingIpAddress !== undefined || request.subnetId !== undefined
        ? [
            {
              ...(request.subnetId ? { subnetId: request.subnetId } : {}),
              ...(request.floatingIpAddress ? { ipAddress: request.floatingIpAddress } : {}),
            },
          ]
        : undefined;
    const port = await this.core.createPort({
      requestKey: `fip:${id}`,
      networkId: request.floatingNetworkId,
      projectId: '',
      internal: true,
      deviceId: id,
      deviceOwner: FLOATING_IP_OWNER,
      securityGroupIds: [],
      ...(wanted ? { fixedIps: wanted } : {}),
    });
    const address = port.fixedIps[0];
    if (!address) {
      await this.core.deletePort(port.id);
      throw new CloudError(
        'Conflict',
        `No more IP addresses available on network ${request.floatingNetworkId}.`,
        {
          neutronType: 'IpAddressGenerationFailure',
        },
      );
    }
    const now = this.now();
    try {
      const assoc = request.portId
        ? await this.association(
            id,
            request.floatingNetworkId,
            address.ipAddress,
            request.portId,
            request.fixedIpAddress,
          )
        : null;
      await this.db
        .insertInto('floatingips')
        .values({
          id,
          description: request.description ?? '',
          project_id: request.projectId,
          floating_ip_address: address.ipAddress,
          floating_network_id: request.floatingNetworkId,
          floating_port_id: port.id,
          fixed_port_id: assoc?.portId ?? null,
          fixed_ip_address: assoc?.fixedIp ?? null,
          router_id: assoc?.routerId ?? null,
          status: assoc ? 'ACTIVE' : 'DOWN',
          created_at: now,
          updated_at: now,
        })
        .execute();
    } catch (err) {
      await this.core.deletePort(port.id);
      throw err;
    }
    return this.getFloatingIp(id);
  }

  /** update_floatingip: associate with (port_id, fixed_ip_address) or, with port_id null, disassociate. */
  async updateFloatingIp(
    id: string,
    request: { portId?: string | null; fixedIpAddress?: string; description?: string },
  ): Promise<FloatingIp> {
    const fip = await this.getFloatingIp(id);
    const set: Partial<FloatingIpsTable> = { updated_at: this.now() };
    if (request.description !== undefined) set.description = request.description;
    if (request.portId === null) {
      Object.assign(set, { fixed_port_id: null, fixed_ip_address: null, router_id: null, status: 'DOWN' });
    } else if (request.portId !== undefined) {
      const assoc = await this.association(
        id,
        fip.floatingNetworkId,
        fip.floatingIpAddress,
        request.portId,
        request.fixedIpAddress,
      );
      Object.assign(set, {
        fixed_port_id: assoc.portId,
        fixed_ip_address: assoc.fixedIp,
        router_id: assoc.routerId,
        status: 'ACTIVE',
      });
    }
    await this.db.updateTable('floatingips').set(set).where('id', '=', id).execute();
    return this.getFloatingIp(id);
  }

  async deleteFloatingIp(id: string): Promise<void> {
    const fip = await this.getFloatingIp(id);
    await this.db.deleteFrom('floatingips').where('id', '=', id).execute();
    await this.core.deletePort(fip.floatingPortId);
  }

  /**
   * _get_assoc_data: the port's fixed IP (the one asked, or its only IPv4 address) and the router that
   * reaches its subnet with a gateway on the floating IP's network (ExternalGatewayForFloatingIPNotFound).
   */
  private async association(
    fipId: string,
    floatingNetworkId: string,
    floatingAddress: string,
    portId: string,
    fixedIpAddress: string | undefined,
  ): Promise<{ portId: string; fixedIp: string; routerId: string }> {
    const port = await this.core.getPort(portId);
    let fixed: FixedIp | undefined;
    if (fixedIpAddress !== undefined) {
      fixed = port.fixedIps.find((ip) => ip.ipAddress === fixedIpAddress);
      if (!fixed) throw bad('floatingip', `Port ${port.id} does not have fixed ip ${fixedIpAddress}`);
    } else {
      if (port.fixedIps.length === 0)
        throw bad('floatingip', `Cannot add floating IP to port ${port.id} that has no fixed IPv4 addresses`);
      if (port.fixedIps.length > 1)
        throw bad(
          'floatingip',
          `Port ${port.id} has multiple fixed IPv4 addresses. Must provide a specific IPv4 address when assigning a floating IP`,
        );
      fixed = port.fixedIps[0]!;
    }
    const taken = await this.db
      .selectFrom('floatingips')
      .select('id')
      .where('fixed_port_id', '=', port.id)
      .where('fixed_ip_address', '=', fixed.ipAddress)
      .where('floating_network_id', '=', floatingNetworkId)
      .where('id', '!=', fipId)
      .executeTakeFirst();
    if (taken)
      throw new CloudError(
        'Conflict',
        `Cannot associate floating IP ${floatingAddress} (${fipId}) with port ${port.id} using fixed IP ` +
          `${fixed.ipAddress}, as that fixed IP already has a floating IP on external network ${floatingNetworkId}.`,
        { neutronType: 'FloatingIPPortAlreadyAssociated' },
      );
    const candidates = await this.db
      .selectFrom('routerports as i')
      .innerJoin('ipallocations as a', 'a.port_id', 'i.port_id')
      .innerJoin('routers as r', 'r.id', 'i.router_id')
      .innerJoin('ports as g', 'g.id', 'r.gw_port_id')
      .select('r.id')
      .where('i.port_type', '=', ROUTER_INTERFACE_OWNER)
      .where('a.subnet_id', '=', fixed.subnetId)
      .where('g.network_id', '=', floatingNetworkId)
      .orderBy('r.created_at')
      .execute();
    const router = candidates[0];
    if (!router)
      throw new CloudError(
        'NotFound',
        `External network ${floatingNetworkId} is not reachable from subnet ${fixed.subnetId}.  Therefore, ` +
          `cannot associate Port ${port.id} with a Floating IP.`,
        { neutronType: 'ExternalGatewayForFloatingIPNotFound' },
      );
    return { portId: port.id, fixedIp: fixed.ipAddress, routerId: router.id };
  }

  /** The router or floating IP a port's device_id names, if it still exists (the leak audit's question). */
  async ownerExists(port: Pick<Port, 'deviceId' | 'deviceOwner'>): Promise<boolean> {
    if (port.deviceOwner === FLOATING_IP_OWNER)
      return (
        (await this.db
          .selectFrom('floatingips')
          .select('id')
          .where('id', '=', port.deviceId)
          .executeTakeFirst()) !== undefined
      );
    return (
      (await this.db
        .selectFrom('routers')
        .select('id')
        .where('id', '=', port.deviceId)
        .executeTakeFirst()) !== undefined
    );
  }
}

/**
 * A router's gateway and interface ports are ACTIVE at once: what the L3 agent reports once it has plugged
 * them into the router's namespace (recorded only: there is no namespace).
 */
async function markActive(trx: Kysely<NeutronDb>, portId: string, now: number): Promise<void> {
  await trx
    .updateTable('ports')
    .set({ status: 'ACTIVE', updated_at: now })
    .where('id', '=', portId)
    .execute();
}

function toFloatingIp(row: FloatingIpsTable): FloatingIp {
  return {
    id: row.id,
    description: row.description,
    projectId: row.project_id,
    floatingIpAddress: row.floating_ip_address,
    floatingNetworkId: row.floating_network_id,
    floatingPortId: row.floating_port_id,
    portId: row.fixed_port_id,
    fixedIpAddress: row.fixed_ip_address,
    routerId: row.router_id,
    status: row.fixed_port_id ? 'ACTIVE' : 'DOWN',
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
