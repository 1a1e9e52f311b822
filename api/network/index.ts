/**
 * Neutron v2.0 at /network: the version list, the v2.0 resource index, networks, subnets and ports (list with
 * filters and `fields`, show, create (one or bulk), update, delete), security groups and their rules (security-groups.ts) and the
 * extensions list. Visibility follows Neutron's defaults: a project sees its own resources and shared or
 * external networks, an admin everything; what a project may not see is 404.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { isCloudError } from '../../cloud/errors';
import type { RequestContext } from '../../cloud/keystone';
import {
  FLOATING_IP_OWNER,
  ROUTER_GATEWAY_OWNER,
  ROUTER_INTERFACE_OWNER,
  type Network,
  type Port,
  type Subnet,
} from '../../cloud/neutron';
import type { ServicePlugin } from '../app';
import { authOf, requireAuth } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { listResponse, showFields } from './collection';
import { isAdmin, ownerOf, parseBody, policyDenied, projectFields, readOnly } from './request';
import { l3Routes } from './routers';
import { securityGroupRoutes } from './security-groups';
import { tagRoutes, withTags } from './tags';
import { networkView, portView, subnetView } from './views';

const L3_OWNERS: readonly string[] = [ROUTER_GATEWAY_OWNER, ROUTER_INTERFACE_OWNER, FLOATING_IP_OWNER];

const notFound = (kind: 'Network' | 'Subnet' | 'Port', id: string) =>
  new ApiError(404, `${kind} ${id} could not be found.`, `${kind}NotFound`);

/** A create body: one resource, or Neutron's bulk form (`{"networks": [...]}`), each item checked. */
function parseCreate<S extends z.ZodType>(
  schema: S,
  body: unknown,
  resource: string,
  collection: string,
): { items: Array<z.infer<S>>; bulk: boolean } {
  if (typeof body === 'object' && body !== null && collection in body && !(resource in body)) {
    const list = (body as Record<string, unknown>)[collection];
    if (!Array.isArray(list) || list.length === 0)
      throw new ApiError(400, `Resources required`, 'HTTPBadRequest');
    return { items: list.map((item) => parseBody(schema, { [resource]: item }, resource)), bulk: true };
  }
  return { items: [parseBody(schema, body, resource)], bulk: false };
}

const description = z.string().max(255).optional();
const hostRoutes = z.array(z.strictObject({ destination: z.string(), nexthop: z.string() }));

const networkCreate = z.strictObject({
  name: z.string().max(255).optional(),
  admin_state_up: z.boolean().optional(),
  shared: z.boolean().optional(),
  'router:external': z.boolean().optional(),
  mtu: z.number().int().min(68).max(9000).optional(),
  description,
  port_security_enabled: z.literal(true).optional(),
  availability_zone_hints: z.array(z.string()).max(0).optional(),
  ...projectFields,
});

const subnetCreate = z.strictObject({
  network_id: z.string().min(1),
  cidr: z.string().min(1).max(64),
  ip_version: z.literal(4),
  name: z.string().max(255).optional(),
  gateway_ip: z.string().max(64).nullable().optional(),
  enable_dhcp: z.boolean().optional(),
  allocation_pools: z.array(z.strictObject({ start: z.string(), end: z.string() })).optional(),
  dns_nameservers: z.array(z.string()).optional(),
  host_routes: hostRoutes.optional(),
  description,
  ...projectFields,
});

const fixedIps = z.array(
  z.strictObject({ subnet_id: z.string().max(36).optional(), ip_address: z.string().max(64).optional() }),
);
const securityGroups = z.array(z.string().min(1).max(36));

const portCreate = z.strictObject({
  network_id: z.string().min(1),
  name: z.string().max(255).optional(),
  admin_state_up: z.boolean().optional(),
  device_id: z.string().max(255).optional(),
  device_owner: z.string().max(255).optional(),
  fixed_ips: fixedIps.optional(),
  mac_address: z.string().max(32).optional(),
  security_groups: securityGroups.optional(),
  /** Checked by the cloud as Neutron's allowed-address-pairs validator does. */
  allowed_address_pairs: z.unknown().optional(),
  description,
  'binding:vnic_type': z.literal('normal').optional(),
  ...projectFields,
});

const NETWORK_UPDATABLE = [
  'name',
  'admin_state_up',
  'shared',
  'router:external',
  'description',
  'port_security_enabled',
];
const networkUpdate = z.strictObject({
  name: z.string().max(255).optional(),
  admin_state_up: z.boolean().optional(),
  shared: z.boolean().optional(),
  'router:external': z.boolean().optional(),
  description,
  port_security_enabled: z.literal(true).optional(),
});
const SUBNET_UPDATABLE = [
  'name',
  'description',
  'gateway_ip',
  'enable_dhcp',
  'dns_nameservers',
  'host_routes',
  'allocation_pools',
];
const subnetUpdate = z.strictObject({
  allocation_pools: z.array(z.strictObject({ start: z.string(), end: z.string() })).optional(),
  name: z.string().max(255).optional(),
  description,
  gateway_ip: z.string().max(64).nullable().optional(),
  enable_dhcp: z.boolean().optional(),
  dns_nameservers: z.array(z.string()).optional(),
  host_routes: hostRoutes.optional(),
});
const PORT_UPDATABLE = [
  'name',
  'description',
  'admin_state_up',
  'fixed_ips',
  'security_groups',
  'allowed_address_pairs',
];
const portUpdate = z.strictObject({
  name: z.string().max(255).optional(),
  description,
  admin_state_up: z.boolean().optional(),
  fixed_ips: fixedIps.optional(),
  security_groups: securityGroups.optional(),
  allowed_address_pairs: z.unknown().optional(),
});

/** The API's fixed_ips entries as the cloud takes them. */
const toFixedIps = (ips: z.infer<typeof fixedIps>) =>
  ips.map((ip) => ({
    ...(ip.subnet_id ? { subnetId: ip.subnet_id } : {}),
    ...(ip.ip_address ? { ipAddress: ip.ip_address } : {}),
  }));

const EXTENSIONS = [
  ['binding', 'Port Binding', 'Expose port bindings of a virtual port to external application'],
  [
    'standard-attr-description',
    'standard-attr-description',
    'Extension to add descriptions to standard attributes',
  ],
  ['external-net', 'Neutron external network', 'Adds external network attribute to network resource.'],
  ['network-mtu', 'Network MTU', 'Provides MTU attribute for a network resource.'],
  ['project-id', 'project_id field enabled', 'Extension that indicates that project_id field is enabled.'],
  ['security-group', 'security-group', 'The security groups extension.'],
  [
    'ip-substring-filtering',
    'IP address substring filtering',
    'Provides IP address substring filtering when listing ports',
  ],
  [
    'standard-attr-timestamp',
    'Resource timestamps',
    'Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes.',
  ],
  ['allowed-address-pairs', 'Allowed Address Pairs', 'Provides allowed address pairs'],
  [
    'standard-attr-tag',
    'Tag support for resources with standard attribute: network, subnet, port, security_group, router, floatingip',
    'Enables to set tag on resources with standard attribute.',
  ],
  [
    'router',
    'Neutron L3 Router',
    'Router abstraction for basic L3 forwarding between L2 Neutron networks and access to external networks via a NAT gateway.',
  ],
  ['extraroute', 'Neutron Extra Route', 'Extra routes configuration for L3 router'],
  // The lists already refuse an unknown filter (collection.ts), which is what this extension announces.
  ['filter-validation', 'Filter parameters validation', 'Provides validation on filter parameters.'],
  [
    'ext-gw-mode',
    'Neutron L3 Configurable external gateway mode',
    'Extension of the router abstraction for specifying whether SNAT should occur on the external gateway',
  ],
] as const;

async function v20(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const neutron = deps.cloud.neutron;
  const base = `${deps.publicUrl}/network/v2.0`;
  app.addHook('preHandler', requireAuth(deps));
  const ctxOf = (request: FastifyRequest) => authOf(request).ctx;
  const param = (request: FastifyRequest, name: string) =>
    (request.params as Record<string, string>)[name] ?? '';

  app.get('/', async () => ({
    resources: [
      'network',
      'subnet',
      'port',
      'security_group',
      'security_group_rule',
      'router',
      'floatingip',
    ].map((name) => {
      const collection = `${name.replace(/_/g, '-')}s`;
      return { name, collection, links: [{ rel: 'self', href: `${base}/${collection}` }] };
    }),
  }));

  const extensionView = ([alias, name, description]: (typeof EXTENSIONS)[number]) => ({
    alias,
    name,
    description,
    updated: '2013-01-01T10:00:00-00:00',
    links: [],
  });
  app.get('/extensions', async () => ({ extensions: EXTENSIONS.map(extensionView) }));
  app.get('/extensions/:alias', async (request) => {
    const alias = param(request, 'alias');
    const extension = EXTENSIONS.find(([known]) => known === alias);
    if (!extension) throw new ApiError(404, `Extension with alias ${alias} does not exist`, 'HTTPNotFound');
    return { extension: extensionView(extension) };
  });

  // ---- networks ---------------------------------------------------------------------------------------------

  /** A network by id as the caller sees it (the cloud also resolves names; the API takes ids only). */
  async function visibleNetwork(ctx: RequestContext, id: string): Promise<Network> {
    try {
      const network = await neutron.getNetwork(id, ctx);
      if (network.id !== id) throw notFound('Network', id);
      return network;
    } catch (err) {
      if (isCloudError(err, 'NotFound') || isCloudError(err, 'BadRequest') || isCloudError(err, 'Conflict'))
        throw notFound('Network', id);
      throw err;
    }
  }

  const NETWORK_ATTRS = Object.keys(
    networkView({
      id: '',
      name: '',
      description: '',
      projectId: '',
      shared: false,
      external: false,
      adminStateUp: true,
      status: 'ACTIVE',
      mtu: 0,
      subnetIds: [],
      createdAt: 0,
      updatedAt: 0,
    }),
  );

  app.get('/networks', async (request) => {
    const networks = await withTags(
      neutron,
      'networks',
      (await neutron.listNetworks(ctxOf(request))).map(networkView),
    );
    return listResponse(request, 'networks', networks, NETWORK_ATTRS, `${base}/networks`);
  });

  const taggedNetwork = async (n: Network) => (await withTags(neutron, 'networks', [networkView(n)]))[0]!;

  app.get('/networks/:id', async (request) => ({
    network: showFields(
      request,
      await taggedNetwork(await visibleNetwork(ctxOf(request), param(request, 'id'))),
    ),
  }));

  /**
   * Runs the creates of a (possibly bulk) request; Neutron's bulk create is all or nothing, so a failed item
   * removes the ones made before it.
   */
  async function createAll<T extends { id: string }, I>(
    items: I[],
    create: (item: I) => Promise<T>,
    remove: (made: T) => Promise<unknown>,
  ): Promise<T[]> {
    const made: T[] = [];
    try {
      for (const item of items) made.push(await create(item));
    } catch (err) {
      for (const m of made.reverse()) await remove(m);
      throw err;
    }
    return made;
  }

  app.post('/networks', async (request, reply) => {
    const ctx = ctxOf(request);
    const { items, bulk } = parseCreate(networkCreate, request.body, 'network', 'networks');
    for (const body of items) {
      ownerOf(ctx, body, 'create_network');
      if (body.shared && !isAdmin(ctx)) throw policyDenied('create_network:shared');
      if (body['router:external'] && !isAdmin(ctx)) throw policyDenied('create_network:router:external');
    }
    const networks = await createAll(
      items,
      (body) =>
        neutron.createNetwork({
          name: body.name ?? '',
          ...(body.description !== undefined ? { description: body.description } : {}),
          ...(body.admin_state_up !== undefined ? { adminStateUp: body.admin_state_up } : {}),
          projectId: ownerOf(ctx, body, 'create_network'),
          ...(body.shared !== undefined ? { shared: body.shared } : {}),
          ...(body['router:external'] !== undefined ? { external: body['router:external'] } : {}),
          ...(body.mtu !== undefined ? { mtu: body.mtu } : {}),
        }),
      (n) => neutron.deleteNetwork(n.id),
    );
    return reply
      .code(201)
      .send(bulk ? { networks: networks.map(networkView) } : { network: networkView(networks[0]!) });
  });

  app.put('/networks/:id', async (request) => {
    const ctx = ctxOf(request);
    const network = await visibleNetwork(ctx, param(request, 'id'));
    readOnly(request.body, 'network', NETWORK_UPDATABLE, NETWORK_ATTRS);
    const body = parseBody(networkUpdate, request.body, 'network');
    // Neutron's update_network: admin or the owner; shared and router:external admin only.
    if (!isAdmin(ctx) && network.projectId !== ctx.projectId) throw policyDenied('update_network');
    if (body.shared !== undefined && !isAdmin(ctx)) throw policyDenied('update_network:shared');
    if (body['router:external'] !== undefined && !isAdmin(ctx))
      throw policyDenied('update_network:router:external');
    const updated = await neutron.updateNetwork({
      id: network.id,
      ...(body.name !== undefined ? { name: body.name } : {}),
      ...(body.description !== undefined ? { description: body.description } : {}),
      ...(body.admin_state_up !== undefined ? { adminStateUp: body.admin_state_up } : {}),
      ...(body.shared !== undefined ? { shared: body.shared } : {}),
      ...(body['router:external'] !== undefined ? { external: body['router:external'] } : {}),
    });
    return { network: await taggedNetwork(updated) };
  });

  app.delete('/networks/:id', async (request, reply) => {
    const id = param(request, 'id');
    await visibleNetwork(ctxOf(request), id);
    try {
      await neutron.deleteNetwork(id, ctxOf(request));
    } catch (err) {
      if (isCloudError(err, 'Forbidden')) throw policyDenied('delete_network');
      throw err;
    }
    return reply.code(204).send();
  });

  // ---- subnets: visible with their network ------------------------------------------------------------------

  const SUBNET_ATTRS = Object.keys(
    subnetView({
      id: '',
      name: '',
      description: '',
      networkId: '',
      projectId: '',
      cidr: '',
      ipVersion: 4,
      gatewayIp: null,
      enableDhcp: true,
      allocationPools: [],
      dnsNameservers: [],
      hostRoutes: [],
      createdAt: 0,
      updatedAt: 0,
    }),
  );

  async function visibleSubnets(ctx: RequestContext) {
    const networks = new Set((await neutron.listNetworks(ctx)).map((n) => n.id));
    return (await neutron.listSubnets()).filter(
      (s) => isAdmin(ctx) || s.projectId === ctx.projectId || networks.has(s.networkId),
    );
  }

  async function visibleSubnet(ctx: RequestContext, id: string) {
    const subnet = (await visibleSubnets(ctx)).find((s) => s.id === id);
    if (!subnet) throw notFound('Subnet', id);
    return subnet;
  }

  app.get('/subnets', async (request) => {
    const subnets = await withTags(
      neutron,
      'subnets',
      (await visibleSubnets(ctxOf(request))).map(subnetView),
    );
    return listResponse(request, 'subnets', subnets, SUBNET_ATTRS, `${base}/subnets`);
  });

  const taggedSubnet = async (sn: Subnet) => (await withTags(neutron, 'subnets', [subnetView(sn)]))[0]!;

  app.get('/subnets/:id', async (request) => ({
    subnet: showFields(
      request,
      await taggedSubnet(await visibleSubnet(ctxOf(request), param(request, 'id'))),
    ),
  }));

  app.post('/subnets', async (request, reply) => {
    const ctx = ctxOf(request);
    const { items, bulk } = parseCreate(subnetCreate, request.body, 'subnet', 'subnets');
    const targets = [];
    for (const body of items) {
      ownerOf(ctx, body, 'create_subnet');
      const network = await visibleNetwork(ctx, body.network_id);
      // Neutron's create_subnet: admin, or the network's owner.
      if (!isAdmin(ctx) && network.projectId !== ctx.projectId) throw policyDenied('create_subnet');
      targets.push({ body, network });
    }
    const subnets = await createAll(
      targets,
      ({ body, network }) =>
        neutron.createSubnet({
          networkId: network.id,
          cidr: body.cidr,
          ...(body.name !== undefined && body.name !== '' ? { name: body.name } : {}),
          ...(body.description !== undefined ? { description: body.description } : {}),
          ...(body.dns_nameservers ? { dnsNameservers: body.dns_nameservers } : {}),
          ...(body.host_routes ? { hostRoutes: body.host_routes } : {}),
          ...(body.gateway_ip !== undefined ? { gatewayIp: body.gateway_ip } : {}),
          ...(body.enable_dhcp !== undefined ? { enableDhcp: body.enable_dhcp } : {}),
          ...(body.allocation_pools ? { allocationPools: body.allocation_pools } : {}),
        }),
      (made) => neutron.deleteSubnet(made.id),
    );
    return reply
      .code(201)
      .send(bulk ? { subnets: subnets.map(subnetView) } : { subnet: subnetView(subnets[0]!) });
  });

  app.put('/subnets/:id', async (request) => {
    const ctx = ctxOf(request);
    const subnet = await visibleSubnet(ctx, param(request, 'id'));
    readOnly(request.body, 'subnet', SUBNET_UPDATABLE, SUBNET_ATTRS);
    const body = parseBody(subnetUpdate, request.body, 'subnet');
    if (!isAdmin(ctx) && subnet.projectId !== ctx.projectId) throw policyDenied('update_subnet');
    const updated = await neutron.updateSubnet({
      id: subnet.id,
      ...(body.name !== undefined ? { name: body.name } : {}),
      ...(body.description !== undefined ? { description: body.description } : {}),
      ...(body.gateway_ip !== undefined ? { gatewayIp: body.gateway_ip } : {}),
      ...(body.enable_dhcp !== undefined ? { enableDhcp: body.enable_dhcp } : {}),
      ...(body.dns_nameservers !== undefined ? { dnsNameservers: body.dns_nameservers } : {}),
      ...(body.host_routes !== undefined ? { hostRoutes: body.host_routes } : {}),
      ...(body.allocation_pools !== undefined ? { allocationPools: body.allocation_pools } : {}),
    });
    return { subnet: await taggedSubnet(updated) };
  });

  app.delete('/subnets/:id', async (request, reply) => {
    const ctx = ctxOf(request);
    const subnet = await visibleSubnet(ctx, param(request, 'id'));
    if (!isAdmin(ctx) && subnet.projectId !== ctx.projectId) throw policyDenied('delete_subnet');
    await neutron.deleteSubnet(subnet.id);
    return reply.code(204).send();
  });

  // ---- ports: the owner's or an admin's -----------------------------------------------------------------------

  const PORT_ATTRS = [
    ...Object.keys(
      portView(
        {
          id: '',
          name: '',
          description: '',
          networkId: '',
          projectId: '',
          macAddress: '',
          fixedIps: [],
          status: 'DOWN',
          adminStateUp: true,
          deviceId: '',
          deviceOwner: '',
          bindingHostId: null,
          bindingVifType: 'unbound',
          bindingVifDetails: {},
          bindingVnicType: 'normal',
          securityGroupIds: [],
          allowedAddressPairs: [],
          requestKey: null,
          createdAt: 0,
          updatedAt: 0,
        },
        true,
      ),
    ),
  ];
  const canSeePort = (ctx: RequestContext, port: Port) => isAdmin(ctx) || port.projectId === ctx.projectId;

  async function visiblePort(ctx: RequestContext, id: string): Promise<Port> {
    try {
      const port = await neutron.getPort(id);
      if (canSeePort(ctx, port)) return port;
    } catch (err) {
      if (!isCloudError(err, 'NotFound') && !isCloudError(err, 'BadRequest')) throw err;
    }
    throw notFound('Port', id);
  }

  app.get('/ports', async (request) => {
    const ctx = ctxOf(request);
    const ports = await neutron.listPorts(isAdmin(ctx) ? {} : { projectId: ctx.projectId });
    const views = await withTags(
      neutron,
      'ports',
      ports.map((p) => portView(p, isAdmin(ctx))),
    );
    return listResponse(request, 'ports', views, PORT_ATTRS, `${base}/ports`);
  });

  app.get('/ports/:id', async (request) => {
    const ctx = ctxOf(request);
    const port = await visiblePort(ctx, param(request, 'id'));
    return {
      port: showFields(request, (await withTags(neutron, 'ports', [portView(port, isAdmin(ctx))]))[0]!),
    };
  });

  app.post('/ports', async (request, reply) => {
    const ctx = ctxOf(request);
    const { items, bulk } = parseCreate(portCreate, request.body, 'port', 'ports');
    const targets = [];
    for (const body of items) {
      const network = await visibleNetwork(ctx, body.network_id);
      // Neutron's create_port:mac_address: the network's owner or an admin.
      if (body.mac_address !== undefined && !isAdmin(ctx) && network.projectId !== ctx.projectId)
        throw policyDenied('create_port:mac_address');
      targets.push({ body, projectId: ownerOf(ctx, body, 'create_port'), network });
    }
    const ports = await createAll(
      targets,
      ({ body, projectId, network }) =>
        neutron.createPort({
          // Each API create is its own request: a fresh key, never a retry of another.
          requestKey: `api:${randomUUID()}`,
          networkId: network.id,
          projectId,
          ...(body.name !== undefined ? { name: body.name } : {}),
          ...(body.description !== undefined ? { description: body.description } : {}),
          ...(body.admin_state_up !== undefined ? { adminStateUp: body.admin_state_up } : {}),
          ...(body.device_id !== undefined ? { deviceId: body.device_id } : {}),
          ...(body.device_owner !== undefined ? { deviceOwner: body.device_owner } : {}),
          ...(body.fixed_ips ? { fixedIps: toFixedIps(body.fixed_ips) } : {}),
          ...(body.mac_address !== undefined ? { macAddress: body.mac_address } : {}),
          ...(body.security_groups ? { securityGroupIds: body.security_groups } : {}),
          ...(body.allowed_address_pairs !== undefined
            ? { allowedAddressPairs: body.allowed_address_pairs }
            : {}),
        }),
      (made) => neutron.deletePort(made.id),
    );
    const view = (p: Port) => portView(p, isAdmin(ctx));
    return reply.code(201).send(bulk ? { ports: ports.map(view) } : { port: view(ports[0]!) });
  });

  app.put('/ports/:id', async (request) => {
    const ctx = ctxOf(request);
    const port = await visiblePort(ctx, param(request, 'id'));
    readOnly(request.body, 'port', PORT_UPDATABLE, PORT_ATTRS);
    const body = parseBody(portUpdate, request.body, 'port');
    const updated = await neutron.updatePort({
      id: port.id,
      ...(body.name !== undefined ? { name: body.name } : {}),
      ...(body.description !== undefined ? { description: body.description } : {}),
      ...(body.admin_state_up !== undefined ? { adminStateUp: body.admin_state_up } : {}),
      ...(body.fixed_ips ? { fixedIps: toFixedIps(body.fixed_ips) } : {}),
      ...(body.security_groups ? { securityGroupIds: body.security_groups } : {}),
      ...(body.allowed_address_pairs !== undefined
        ? { allowedAddressPairs: body.allowed_address_pairs }
        : {}),
    });
    return { port: (await withTags(neutron, 'ports', [portView(updated, isAdmin(ctx))]))[0]! };
  });

  app.delete('/ports/:id', async (request, reply) => {
    const port = await visiblePort(ctxOf(request), param(request, 'id'));
    // Neutron's prevent_l3_port_deletion: a live router's or floating IP's port goes only through the L3 API.
    if (L3_OWNERS.includes(port.deviceOwner) && (await neutron.l3.ownerExists(port)))
      throw new ApiError(
        409,
        `Port ${port.id} has owner ${port.deviceOwner} and therefore cannot be deleted directly via the port API.`,
        'L3PortInUse',
      );
    await neutron.deletePort(port.id);
    return reply.code(204).send();
  });

  await securityGroupRoutes(app, neutron, base);
  const l3Lookups = l3Routes(app, neutron, base);
  await tagRoutes(app, neutron, {
    ...l3Lookups,
    networks: visibleNetwork,
    subnets: visibleSubnet,
    ports: visiblePort,
    security_groups: async (ctx, id) => {
      await neutron.ensureDefaultSecurityGroup(ctx.projectId);
      return neutron.securityGroups.visibleGroup(id, isAdmin(ctx) ? 'all' : { projectId: ctx.projectId });
    },
  });
}

export const networkApi: ServicePlugin = async (app, deps) => {
  app.get('/', async () => ({
    versions: [
      { id: 'v2.0', status: 'CURRENT', links: [{ rel: 'self', href: `${deps.publicUrl}/network/v2.0/` }] },
    ],
  }));
  await app.register(async (scope) => v20(scope, deps), { prefix: '/v2.0' });
};
