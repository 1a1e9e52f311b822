/**
 * Neutron's L3 API (neutron-lib api/definitions l3, extraroute, l3_ext_gw_mode): routers (list, show, create,
 * update, delete, `add_router_interface` / `remove_router_interface`) and floating IPs (list, show, create,
 * update to associate or disassociate, delete). Visibility is the owner's or an admin's; the policies are
 * Neutron's defaults (policies/router.py, floatingip.py): a member of the project writes, and
 * `enable_snat`, `external_fixed_ips` and a chosen `floating_ip_address` are admin only. The rows and
 * Neutron's checks are cloud/neutron/l3.ts's; nothing is wired (no L3 agent).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { isCloudError } from '../../cloud/errors';
import type { RequestContext } from '../../cloud/keystone';
import type { FloatingIp, GatewayRequest, Neutron, Router, RouterInterfaceInfo } from '../../cloud/neutron';
import { authOf } from '../auth';
import { ApiError } from '../errors';
import { listResponse, showFields } from './collection';
import { isAdmin, ownerOf, parseBody, policyDenied, projectFields, readOnly } from './request';
import { withTags } from './tags';
import { neutronTime } from './views';

const project = (id: string) => ({ tenant_id: id, project_id: id });

export function routerView(r: Router) {
  return {
    id: r.id,
    name: r.name,
    description: r.description,
    ...project(r.projectId),
    status: r.status,
    admin_state_up: r.adminStateUp,
    external_gateway_info: r.gateway
      ? {
          network_id: r.gateway.networkId,
          enable_snat: r.gateway.enableSnat,
          external_fixed_ips: r.gateway.externalFixedIps.map((ip) => ({
            subnet_id: ip.subnetId,
            ip_address: ip.ipAddress,
          })),
        }
      : null,
    routes: r.routes.map((route) => ({ destination: route.destination, nexthop: route.nexthop })),
    tags: [] as string[],
    created_at: neutronTime(r.createdAt),
    updated_at: neutronTime(r.updatedAt),
    revision_number: 1,
  };
}

export function floatingIpView(f: FloatingIp) {
  return {
    id: f.id,
    ...project(f.projectId),
    floating_network_id: f.floatingNetworkId,
    floating_ip_address: f.floatingIpAddress,
    router_id: f.routerId,
    port_id: f.portId,
    fixed_ip_address: f.fixedIpAddress,
    status: f.status,
    description: f.description,
    tags: [] as string[],
    created_at: neutronTime(f.createdAt),
    updated_at: neutronTime(f.updatedAt),
    revision_number: 1,
  };
}

const interfaceView = (i: RouterInterfaceInfo) => ({
  id: i.routerId,
  ...project(i.projectId),
  port_id: i.portId,
  subnet_id: i.subnetId,
  subnet_ids: i.subnetIds,
  network_id: i.networkId,
});

const ROUTER_ATTRS = Object.keys(
  routerView({
    id: '',
    name: '',
    description: '',
    projectId: '',
    status: 'ACTIVE',
    adminStateUp: true,
    gateway: null,
    routes: [],
    createdAt: 0,
    updatedAt: 0,
  }),
);
const FIP_ATTRS = Object.keys(
  floatingIpView({
    id: '',
    description: '',
    projectId: '',
    floatingIpAddress: '',
    floatingNetworkId: '',
    floatingPortId: '',
    portId: null,
    fixedIpAddress: null,
    routerId: null,
    status: 'DOWN',
    createdAt: 0,
    updatedAt: 0,
  }),
);

const text = z.string().max(255);
const gatewayInfo = z.strictObject({
  network_id: z.string().min(1).max(36),
  enable_snat: z.boolean().optional(),
  external_fixed_ips: z
    .array(
      z.strictObject({ subnet_id: z.string().max(36).optional(), ip_address: z.string().max(64).optional() }),
    )
    .optional(),
});
const routes = z.array(z.strictObject({ destination: z.string().max(64), nexthop: z.string().max(64) }));

const routerCreate = z.strictObject({
  name: text.optional(),
  description: text.optional(),
  admin_state_up: z.boolean().optional(),
  // An empty object means no gateway, as in Neutron.
  external_gateway_info: z.union([gatewayInfo, z.strictObject({}), z.null()]).optional(),
  ...projectFields,
});
const ROUTER_UPDATABLE = ['name', 'description', 'admin_state_up', 'external_gateway_info', 'routes'];
const routerUpdate = z.strictObject({
  name: text.optional(),
  description: text.optional(),
  admin_state_up: z.boolean().optional(),
  external_gateway_info: z.union([gatewayInfo, z.strictObject({}), z.null()]).optional(),
  routes: routes.nullable().optional(),
});
const interfaceBody = z.object({
  subnet_id: z.string().min(1).max(36).optional(),
  port_id: z.string().min(1).max(36).optional(),
});

const fipCreate = z.strictObject({
  floating_network_id: z.string().min(1).max(36),
  port_id: z.string().min(1).max(36).nullable().optional(),
  fixed_ip_address: z.string().max(64).nullable().optional(),
  floating_ip_address: z.string().max(64).optional(),
  subnet_id: z.string().min(1).max(36).optional(),
  description: text.optional(),
  ...projectFields,
});
const FIP_UPDATABLE = ['port_id', 'fixed_ip_address', 'description'];
const fipUpdate = z.strictObject({
  port_id: z.string().min(1).max(36).nullable().optional(),
  fixed_ip_address: z.string().max(64).nullable().optional(),
  description: text.optional(),
});

type GatewayBody = z.infer<typeof routerCreate>['external_gateway_info'];

/** The body's gateway as the cloud takes it (undefined: unchanged; null: none), with its admin-only parts. */
function toGateway(
  ctx: RequestContext,
  body: GatewayBody,
  action: string,
): GatewayRequest | null | undefined {
  if (body === undefined) return undefined;
  if (body === null || !('network_id' in body)) return null;
  if (body.enable_snat !== undefined && !isAdmin(ctx))
    throw policyDenied(`${action}:external_gateway_info:enable_snat`);
  if (body.external_fixed_ips !== undefined && !isAdmin(ctx))
    throw policyDenied(`${action}:external_gateway_info:external_fixed_ips`);
  return {
    networkId: body.network_id,
    ...(body.enable_snat !== undefined ? { enableSnat: body.enable_snat } : {}),
    ...(body.external_fixed_ips
      ? {
          externalFixedIps: body.external_fixed_ips.map((ip) => ({
            ...(ip.subnet_id ? { subnetId: ip.subnet_id } : {}),
            ...(ip.ip_address ? { ipAddress: ip.ip_address } : {}),
          })),
        }
      : {}),
  };
}

/** Registers the routes; answers the lookups the tag routes need for routers and floating IPs. */
export function l3Routes(
  app: FastifyInstance,
  neutron: Neutron,
  base: string,
): Record<'routers' | 'floatingips', (ctx: RequestContext, id: string) => Promise<{ projectId: string }>> {
  const l3 = neutron.l3;
  const ctxOf = (request: FastifyRequest) => authOf(request).ctx;
  const idOf = (request: FastifyRequest) => (request.params as { id: string }).id;
  const owns = (ctx: RequestContext, projectId: string) => isAdmin(ctx) || projectId === ctx.projectId;

  async function visibleRouter(ctx: RequestContext, id: string): Promise<Router> {
    try {
      const router = await l3.getRouter(id);
      if (owns(ctx, router.projectId)) return router;
    } catch (err) {
      if (!isCloudError(err, 'NotFound')) throw err;
    }
    throw new ApiError(404, `Router ${id} could not be found.`, 'RouterNotFound');
  }

  async function visibleFloatingIp(ctx: RequestContext, id: string): Promise<FloatingIp> {
    try {
      const fip = await l3.getFloatingIp(id);
      if (owns(ctx, fip.projectId)) return fip;
    } catch (err) {
      if (!isCloudError(err, 'NotFound')) throw err;
    }
    throw new ApiError(404, `Floating IP ${id} could not be found`, 'FloatingIPNotFound');
  }

  /** A port the caller may use for an interface or an association: its own (an admin's: any), else 404. */
  async function visiblePort(ctx: RequestContext, id: string): Promise<void> {
    try {
      const port = await neutron.getPort(id);
      if (owns(ctx, port.projectId)) return;
    } catch (err) {
      if (!isCloudError(err, 'NotFound') && !isCloudError(err, 'BadRequest')) throw err;
    }
    throw new ApiError(404, `Port ${id} could not be found.`, 'PortNotFound');
  }

  /** A subnet the caller sees (its own or on a network it sees), else 404. */
  async function visibleSubnet(ctx: RequestContext, id: string): Promise<void> {
    try {
      const subnet = await neutron.getSubnet(id);
      if (owns(ctx, subnet.projectId)) return;
      if ((await neutron.listNetworks(ctx)).some((n) => n.id === subnet.networkId)) return;
    } catch (err) {
      if (!isCloudError(err, 'NotFound') && !isCloudError(err, 'BadRequest')) throw err;
    }
    throw new ApiError(404, `Subnet ${id} could not be found.`, 'SubnetNotFound');
  }

  /** A gateway network the caller may not see is NetworkNotFound, as Neutron's get_network answers. */
  async function checkGatewayNetwork(ctx: RequestContext, gateway: GatewayRequest | null | undefined) {
    if (!gateway) return;
    if (!(await neutron.listNetworks(ctx)).some((n) => n.id === gateway.networkId))
      throw new ApiError(404, `Network ${gateway.networkId} could not be found.`, 'NetworkNotFound');
  }

  const taggedRouter = async (r: Router) => (await withTags(neutron, 'routers', [routerView(r)]))[0]!;
  const taggedFip = async (f: FloatingIp) =>
    (await withTags(neutron, 'floatingips', [floatingIpView(f)]))[0]!;

  // ---- routers ----------------------------------------------------------------------------------------------

  app.get('/routers', async (request) => {
    const ctx = ctxOf(request);
    const routers = await l3.listRouters(isAdmin(ctx) ? undefined : ctx.projectId);
    const views = await withTags(neutron, 'routers', routers.map(routerView));
    return listResponse(request, 'routers', views, ROUTER_ATTRS, `${base}/routers`);
  });

  app.get('/routers/:id', async (request) => ({
    router: showFields(request, await taggedRouter(await visibleRouter(ctxOf(request), idOf(request)))),
  }));

  app.post('/routers', async (request, reply) => {
    const ctx = ctxOf(request);
    const body = parseBody(routerCreate, request.body, 'router');
    const projectId = ownerOf(ctx, body, 'create_router');
    const gateway = toGateway(ctx, body.external_gateway_info, 'create_router');
    await checkGatewayNetwork(ctx, gateway);
    const router = await l3.createRouter({
      projectId,
      ...(body.name !== undefined ? { name: body.name } : {}),
      ...(body.description !== undefined ? { description: body.description } : {}),
      ...(body.admin_state_up !== undefined ? { adminStateUp: body.admin_state_up } : {}),
      ...(gateway ? { gateway } : {}),
    });
    return reply.code(201).send({ router: routerView(router) });
  });

  app.put('/routers/:id', async (request) => {
    const ctx = ctxOf(request);
    const router = await visibleRouter(ctx, idOf(request));
    readOnly(request.body, 'router', ROUTER_UPDATABLE, ROUTER_ATTRS);
    const body = parseBody(routerUpdate, request.body, 'router');
    const gateway = toGateway(ctx, body.external_gateway_info, 'update_router');
    await checkGatewayNetwork(ctx, gateway);
    const updated = await l3.updateRouter(router.id, {
      ...(body.name !== undefined ? { name: body.name } : {}),
      ...(body.description !== undefined ? { description: body.description } : {}),
      ...(body.admin_state_up !== undefined ? { adminStateUp: body.admin_state_up } : {}),
      ...(gateway !== undefined ? { gateway } : {}),
      ...(body.routes !== undefined ? { routes: body.routes ?? [] } : {}),
    });
    return { router: await taggedRouter(updated) };
  });

  app.delete('/routers/:id', async (request, reply) => {
    const router = await visibleRouter(ctxOf(request), idOf(request));
    await l3.deleteRouter(router.id);
    return reply.code(204).send();
  });

  for (const action of ['add_router_interface', 'remove_router_interface'] as const) {
    app.put(`/routers/:id/${action}`, async (request) => {
      const ctx = ctxOf(request);
      const router = await visibleRouter(ctx, idOf(request));
      const parsed = interfaceBody.safeParse(request.body ?? {});
      if (!parsed.success) throw new ApiError(400, `Invalid input for ${action}`, 'HTTPBadRequest');
      const by = {
        ...(parsed.data.subnet_id !== undefined ? { subnetId: parsed.data.subnet_id } : {}),
        ...(parsed.data.port_id !== undefined ? { portId: parsed.data.port_id } : {}),
      };
      if (by.portId !== undefined && action === 'add_router_interface') await visiblePort(ctx, by.portId);
      if (by.subnetId !== undefined) await visibleSubnet(ctx, by.subnetId);
      const info =
        action === 'add_router_interface'
          ? await l3.addInterface(router.id, by)
          : await l3.removeInterface(router.id, by);
      return interfaceView(info);
    });
  }

  // ---- floating IPs ---------------------------------------------------------------------------------------

  app.get('/floatingips', async (request) => {
    const ctx = ctxOf(request);
    const fips = await l3.listFloatingIps(isAdmin(ctx) ? undefined : ctx.projectId);
    const views = await withTags(neutron, 'floatingips', fips.map(floatingIpView));
    return listResponse(request, 'floatingips', views, FIP_ATTRS, `${base}/floatingips`);
  });

  app.get('/floatingips/:id', async (request) => ({
    floatingip: showFields(request, await taggedFip(await visibleFloatingIp(ctxOf(request), idOf(request)))),
  }));

  app.post('/floatingips', async (request, reply) => {
    const ctx = ctxOf(request);
    const body = parseBody(fipCreate, request.body, 'floatingip');
    const projectId = ownerOf(ctx, body, 'create_floatingip');
    if (body.floating_ip_address !== undefined && !isAdmin(ctx))
      throw policyDenied('create_floatingip:floating_ip_address');
    if (!(await neutron.listNetworks(ctx)).some((n) => n.id === body.floating_network_id))
      throw new ApiError(404, `Network ${body.floating_network_id} could not be found.`, 'NetworkNotFound');
    if (body.port_id) await visiblePort(ctx, body.port_id);
    const fip = await l3.createFloatingIp({
      projectId,
      floatingNetworkId: body.floating_network_id,
      ...(body.description !== undefined ? { description: body.description } : {}),
      ...(body.subnet_id !== undefined ? { subnetId: body.subnet_id } : {}),
      ...(body.floating_ip_address !== undefined ? { floatingIpAddress: body.floating_ip_address } : {}),
      ...(body.port_id ? { portId: body.port_id } : {}),
      ...(body.fixed_ip_address ? { fixedIpAddress: body.fixed_ip_address } : {}),
    });
    return reply.code(201).send({ floatingip: floatingIpView(fip) });
  });

  app.put('/floatingips/:id', async (request) => {
    const ctx = ctxOf(request);
    const fip = await visibleFloatingIp(ctx, idOf(request));
    readOnly(request.body, 'floatingip', FIP_UPDATABLE, FIP_ATTRS);
    const body = parseBody(fipUpdate, request.body, 'floatingip');
    if (body.port_id) await visiblePort(ctx, body.port_id);
    const updated = await l3.updateFloatingIp(fip.id, {
      ...(body.port_id !== undefined ? { portId: body.port_id } : {}),
      ...(body.fixed_ip_address ? { fixedIpAddress: body.fixed_ip_address } : {}),
      ...(body.description !== undefined ? { description: body.description } : {}),
    });
    return { floatingip: await taggedFip(updated) };
  });

  app.delete('/floatingips/:id', async (request, reply) => {
    const fip = await visibleFloatingIp(ctxOf(request), idOf(request));
    await l3.deleteFloatingIp(fip.id);
    return reply.code(204).send();
  });

  return { routers: visibleRouter, floatingips: visibleFloatingIp };
}
