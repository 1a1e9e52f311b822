/**
 * Neutron v2.0 over HTTP (inject): the L3 API. Routers with an external gateway (a network:router_gateway
 * port on the router:external network), interfaces by subnet (a network:router_interface port with the
 * subnet's gateway address) and by port, extra routes, floating IPs associated through a router that reaches
 * the port's subnet; Neutron's errors (RouterInUse, NetworkInUse, L3PortInUse, overlapping subnets,
 * ExternalGatewayForFloatingIPNotFound, OverQuota). Each check reads the rows back.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { auditLeaks } from '../cloud/audit';
import { openApiTestEnv, seedUserToken, type ApiTestEnv } from './helpers/api';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Body = Record<string, any>;

describe('Neutron v2.0 API: routers and floating IPs', () => {
  let env: ApiTestEnv;
  let alice: { token: string; projectId: string };
  let bob: { token: string; projectId: string };
  let admin: { token: string; projectId: string };
  let extNetId: string;
  let extSubnetId: string;
  let netId: string;
  let subnetId: string;

  const call = async (
    token: string,
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    url: string,
    payload?: unknown,
  ) => {
    const res = await env.app.inject({
      method,
      url: `/network/v2.0${url}`,
      headers: {
        'x-auth-token': token,
        ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(payload !== undefined ? { payload: JSON.stringify(payload) } : {}),
    });
    return { status: res.statusCode, body: res.body ? (JSON.parse(res.body) as Body) : {} };
  };
  const network = async (token: string, name: string, cidr: string, extra: Body = {}) => {
    const n = (await call(token, 'POST', '/networks', { network: { name, ...extra } })).body.network;
    const s = (await call(token, 'POST', '/subnets', { subnet: { network_id: n.id, cidr, ip_version: 4 } }))
      .body.subnet;
    return { networkId: n.id as string, subnetId: s.id as string };
  };

  before(async () => {
    env = await openApiTestEnv({ services: ['identity', 'network'], label: 'api-network-routers' });
    alice = await seedUserToken(env, 'alice', 'p-alice');
    bob = await seedUserToken(env, 'bob', 'p-bob');
    admin = await seedUserToken(env, 'root', 'p-admin', 'admin');
    ({ networkId: extNetId, subnetId: extSubnetId } = await network(admin.token, 'ext', '172.30.0.0/24', {
      'router:external': true,
    }));
    ({ networkId: netId, subnetId } = await network(alice.token, 'n1', '10.40.0.0/24'));
  });
  after(async () => {
    await env?.close();
  });

  test('the extensions list and the resource index name the L3 API', async () => {
    const aliases = (await call(alice.token, 'GET', '/extensions')).body.extensions.map(
      (e: { alias: string }) => e.alias,
    );
    for (const alias of ['router', 'extraroute', 'ext-gw-mode', 'external-net'])
      assert.ok(aliases.includes(alias), alias);
    const index = (await call(alice.token, 'GET', '/')).body.resources.map((r: Body) => r.collection);
    assert.ok(index.includes('routers') && index.includes('floatingips'), index.join());
  });

  test('a router with a gateway: a network:router_gateway port on the external subnet', async () => {
    const created = await call(alice.token, 'POST', '/routers', {
      router: { name: 'r-gw', external_gateway_info: { network_id: extNetId } },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const router = created.body.router;
    assert.equal(router.status, 'ACTIVE');
    assert.equal(router.project_id, alice.projectId);
    assert.equal(router.external_gateway_info.network_id, extNetId);
    assert.equal(router.external_gateway_info.enable_snat, true);
    const [fixed] = router.external_gateway_info.external_fixed_ips;
    assert.equal(fixed.subnet_id, extSubnetId);
    const ports = await env.cloud.neutron.listPorts({ deviceId: router.id });
    assert.equal(ports.length, 1);
    assert.equal(ports[0]!.deviceOwner, 'network:router_gateway');
    assert.equal(ports[0]!.status, 'ACTIVE');
    assert.equal(ports[0]!.networkId, extNetId);
    assert.equal(ports[0]!.fixedIps[0]!.ipAddress, fixed.ip_address);
    // The admin sees the gateway port by device_id (it has no project, as in Neutron).
    const listed = await call(admin.token, 'GET', `/ports?device_id=${router.id}`);
    assert.deepEqual(
      listed.body.ports.map((p: Body) => p.device_owner),
      ['network:router_gateway'],
    );

    // enable_snat is admin only; the admin may turn it off; clearing the gateway deletes its port.
    const snat = await call(alice.token, 'PUT', `/routers/${router.id}`, {
      router: { external_gateway_info: { network_id: extNetId, enable_snat: false } },
    });
    assert.equal(snat.status, 403);
    const off = await call(admin.token, 'PUT', `/routers/${router.id}`, {
      router: { external_gateway_info: { network_id: extNetId, enable_snat: false } },
    });
    assert.equal(off.body.router.external_gateway_info.enable_snat, false);
    const cleared = await call(alice.token, 'PUT', `/routers/${router.id}`, {
      router: { external_gateway_info: {} },
    });
    assert.equal(cleared.status, 200);
    assert.equal(cleared.body.router.external_gateway_info, null);
    assert.deepEqual(await env.cloud.neutron.listPorts({ deviceId: router.id }), []);
    assert.equal((await call(alice.token, 'DELETE', `/routers/${router.id}`)).status, 204);
    assert.equal((await call(alice.token, 'GET', `/routers/${router.id}`)).status, 404);
  });

  test('a gateway on a network that is not router:external is 400; an unknown one 404', async () => {
    const r1 = await call(alice.token, 'POST', '/routers', {
      router: { external_gateway_info: { network_id: netId } },
    });
    assert.equal(r1.status, 400);
    assert.equal(r1.body.NeutronError.type, 'BadRequest');
    assert.match(r1.body.NeutronError.message, /is not an external network/);
    const r2 = await call(alice.token, 'POST', '/routers', {
      router: { external_gateway_info: { network_id: '00000000-0000-0000-0000-000000000000' } },
    });
    assert.equal(r2.status, 404);
    assert.equal((await env.cloud.neutron.l3.listRouters(alice.projectId)).length, 0);
  });

  test('interfaces: by subnet (the gateway address), by port, duplicates and overlaps refused', async () => {
    const router = (await call(alice.token, 'POST', '/routers', { router: { name: 'r-if' } })).body.router;
    const added = await call(alice.token, 'PUT', `/routers/${router.id}/add_router_interface`, {
      subnet_id: subnetId,
    });
    assert.equal(added.status, 200, JSON.stringify(added.body));
    assert.equal(added.body.id, router.id);
    assert.equal(added.body.subnet_id, subnetId);
    assert.deepEqual(added.body.subnet_ids, [subnetId]);
    assert.equal(added.body.network_id, netId);
    const port = await env.cloud.neutron.getPort(added.body.port_id);
    assert.equal(port.deviceOwner, 'network:router_interface');
    assert.equal(port.status, 'ACTIVE');
    assert.equal(port.deviceId, router.id);
    assert.deepEqual(
      port.fixedIps.map((ip) => ip.ipAddress),
      ['10.40.0.1'],
    );

    const again = await call(alice.token, 'PUT', `/routers/${router.id}/add_router_interface`, {
      subnet_id: subnetId,
    });
    assert.equal(again.status, 400);
    assert.match(again.body.NeutronError.message, /already has a port on subnet/);
    const overlapping = await network(alice.token, 'n-overlap', '10.40.0.0/25');
    const overlap = await call(alice.token, 'PUT', `/routers/${router.id}/add_router_interface`, {
      subnet_id: overlapping.subnetId,
    });
    assert.equal(overlap.status, 400);
    assert.match(overlap.body.NeutronError.message, /overlaps with cidr 10\.40\.0\.0\/24/);

    // By port: the port becomes the router's, and GET /ports?device_id= finds it (tempest's router_id filter).
    const other = await network(alice.token, 'n2', '10.41.0.0/24');
    const own = (await call(alice.token, 'POST', '/ports', { port: { network_id: other.networkId } })).body
      .port;
    const byPort = await call(alice.token, 'PUT', `/routers/${router.id}/add_router_interface`, {
      port_id: own.id,
    });
    assert.equal(byPort.status, 200);
    assert.equal(byPort.body.port_id, own.id);
    const mine = await call(alice.token, 'GET', `/ports?device_id=${router.id}`);
    assert.deepEqual(mine.body.ports.map((p: Body) => p.id).sort(), [added.body.port_id, own.id].sort());
    const taken = await call(alice.token, 'PUT', `/routers/${router.id}/add_router_interface`, {
      port_id: own.id,
    });
    assert.equal(taken.status, 409);
    assert.equal(taken.body.NeutronError.type, 'PortInUse');

    // Bob sees neither the router nor its interface.
    assert.equal((await call(bob.token, 'GET', `/routers/${router.id}`)).status, 404);
    const bobs = await call(bob.token, 'PUT', `/routers/${router.id}/add_router_interface`, {
      subnet_id: subnetId,
    });
    assert.equal(bobs.status, 404);

    // In use: the router, the network, the interface port are refused as Neutron refuses them.
    const del = await call(alice.token, 'DELETE', `/routers/${router.id}`);
    assert.equal(del.status, 409);
    assert.equal(del.body.NeutronError.type, 'RouterInUse');
    const delNet = await call(alice.token, 'DELETE', `/networks/${other.networkId}`);
    assert.equal(delNet.status, 409);
    assert.equal(delNet.body.NeutronError.type, 'NetworkInUse');
    const delPort = await call(alice.token, 'DELETE', `/ports/${own.id}`);
    assert.equal(delPort.status, 409);
    assert.equal(delPort.body.NeutronError.type, 'L3PortInUse');

    // extraroute: a nexthop must be on one of the router's subnets.
    const far = await call(alice.token, 'PUT', `/routers/${router.id}`, {
      router: { routes: [{ destination: '192.168.9.0/24', nexthop: '10.99.0.5' }] },
    });
    assert.equal(far.status, 400);
    assert.equal(far.body.NeutronError.type, 'InvalidRoutes');
    const near = await call(alice.token, 'PUT', `/routers/${router.id}`, {
      router: { routes: [{ destination: '192.168.9.0/24', nexthop: '10.40.0.5' }] },
    });
    assert.equal(near.status, 200);
    assert.deepEqual(near.body.router.routes, [{ destination: '192.168.9.0/24', nexthop: '10.40.0.5' }]);
    const needed = await call(alice.token, 'PUT', `/routers/${router.id}/remove_router_interface`, {
      subnet_id: subnetId,
    });
    assert.equal(needed.status, 409);
    assert.equal(needed.body.NeutronError.type, 'RouterInterfaceInUseByRoute');
    await call(alice.token, 'PUT', `/routers/${router.id}`, { router: { routes: [] } });

    // Removal deletes the interface ports; a second removal is 404.
    for (const body of [{ subnet_id: subnetId }, { port_id: own.id }]) {
      const removed = await call(alice.token, 'PUT', `/routers/${router.id}/remove_router_interface`, body);
      assert.equal(removed.status, 200, JSON.stringify(removed.body));
    }
    assert.deepEqual(await env.cloud.neutron.listPorts({ deviceId: router.id }), []);
    const gone = await call(alice.token, 'PUT', `/routers/${router.id}/remove_router_interface`, {
      subnet_id: subnetId,
    });
    assert.equal(gone.status, 404);
    assert.equal(gone.body.NeutronError.type, 'RouterInterfaceNotFoundForSubnet');
    assert.equal((await call(alice.token, 'DELETE', `/routers/${router.id}`)).status, 204);
    await call(alice.token, 'DELETE', `/networks/${other.networkId}`);
    await call(alice.token, 'DELETE', `/networks/${overlapping.networkId}`);
  });

  test('floating IPs: reachable only through a router with a gateway; associate, disassociate, delete', async () => {
    const target = (await call(alice.token, 'POST', '/ports', { port: { network_id: netId } })).body.port;
    const inPrivate = await call(alice.token, 'POST', '/floatingips', {
      floatingip: { floating_network_id: netId },
    });
    assert.equal(inPrivate.status, 400);
    const unreachable = await call(alice.token, 'POST', '/floatingips', {
      floatingip: { floating_network_id: extNetId, port_id: target.id },
    });
    assert.equal(unreachable.status, 404);
    assert.equal(unreachable.body.NeutronError.type, 'ExternalGatewayForFloatingIPNotFound');
    assert.deepEqual(await env.cloud.neutron.l3.listFloatingIps(), []);
    assert.deepEqual(
      (await env.cloud.neutron.listPorts({ networkId: extNetId })).map((p) => p.deviceOwner),
      [],
    );

    const router = (
      await call(alice.token, 'POST', '/routers', {
        router: { name: 'r-fip', external_gateway_info: { network_id: extNetId } },
      })
    ).body.router;
    await call(alice.token, 'PUT', `/routers/${router.id}/add_router_interface`, { subnet_id: subnetId });
    const created = await call(alice.token, 'POST', '/floatingips', {
      floatingip: { floating_network_id: extNetId, port_id: target.id, description: 'web' },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const fip = created.body.floatingip;
    assert.equal(fip.router_id, router.id);
    assert.equal(fip.port_id, target.id);
    assert.equal(fip.fixed_ip_address, target.fixed_ips[0].ip_address);
    assert.equal(fip.status, 'ACTIVE');
    assert.equal(fip.description, 'web');
    assert.match(fip.floating_ip_address, /^172\.30\.0\./);
    const fipPorts = await env.cloud.neutron.listPorts({ deviceId: fip.id });
    assert.deepEqual(
      fipPorts.map((p) => [p.deviceOwner, p.fixedIps[0]!.ipAddress]),
      [['network:floatingip', fip.floating_ip_address]],
    );
    const filtered = await call(alice.token, 'GET', `/floatingips?port_id=${target.id}`);
    assert.deepEqual(
      filtered.body.floatingips.map((f: Body) => f.id),
      [fip.id],
    );
    assert.deepEqual((await call(bob.token, 'GET', '/floatingips')).body.floatingips, []);

    // The router interface and gateway are needed while the floating IP is associated.
    const ifInUse = await call(alice.token, 'PUT', `/routers/${router.id}/remove_router_interface`, {
      subnet_id: subnetId,
    });
    assert.equal(ifInUse.status, 409);
    assert.equal(ifInUse.body.NeutronError.type, 'RouterInterfaceInUseByFloatingIP');
    const gwInUse = await call(alice.token, 'PUT', `/routers/${router.id}`, {
      router: { external_gateway_info: null },
    });
    assert.equal(gwInUse.status, 409);
    assert.equal(gwInUse.body.NeutronError.type, 'RouterExternalGatewayInUseByFloatingIp');

    const off = await call(alice.token, 'PUT', `/floatingips/${fip.id}`, { floatingip: { port_id: null } });
    assert.equal(off.status, 200);
    assert.equal(off.body.floatingip.port_id, null);
    assert.equal(off.body.floatingip.router_id, null);
    assert.equal(off.body.floatingip.status, 'DOWN');
    const on = await call(alice.token, 'PUT', `/floatingips/${fip.id}`, {
      floatingip: { port_id: target.id },
    });
    assert.equal(on.body.floatingip.router_id, router.id);

    // Deleting the associated port disassociates the floating IP (Neutron's disassociate_floatingips).
    assert.equal((await call(alice.token, 'DELETE', `/ports/${target.id}`)).status, 204);
    const after = await env.cloud.neutron.l3.getFloatingIp(fip.id);
    assert.deepEqual([after.portId, after.fixedIpAddress, after.routerId], [null, null, null]);

    // The audit knows router and floating IP ports: live ones are no leak.
    assert.deepEqual(
      (await auditLeaks(env.cloud)).filter((f) => f.kind === 'port'),
      [],
    );
    assert.equal((await call(alice.token, 'DELETE', `/floatingips/${fip.id}`)).status, 204);
    assert.deepEqual(await env.cloud.neutron.listPorts({ deviceId: fip.id }), []);
    await call(alice.token, 'PUT', `/routers/${router.id}/remove_router_interface`, { subnet_id: subnetId });
    assert.equal((await call(alice.token, 'DELETE', `/routers/${router.id}`)).status, 204);
    assert.deepEqual(
      (await env.cloud.neutron.listPorts({ networkId: extNetId })).map((p) => p.deviceOwner),
      [],
    );
  });

  test('an external network is deleted with its unassociated floating IPs', async () => {
    const ext = await network(admin.token, 'ext2', '172.31.0.0/24', { 'router:external': true });
    const fip = (
      await call(admin.token, 'POST', '/floatingips', { floatingip: { floating_network_id: ext.networkId } })
    ).body.floatingip;
    const listed = await call(admin.token, 'GET', `/floatingips?floating_network_id=${ext.networkId}`);
    assert.deepEqual(
      listed.body.floatingips.map((f: Body) => f.id),
      [fip.id],
    );
    assert.equal((await call(admin.token, 'DELETE', `/networks/${ext.networkId}`)).status, 204);
    assert.equal((await call(admin.token, 'GET', `/floatingips/${fip.id}`)).status, 404);
    assert.deepEqual(await env.cloud.neutron.listPorts({ deviceId: fip.id }), []);
  });

  test('quota: a project has at most 10 routers (409 OverQuota)', async () => {
    for (let i = 0; i < 10; i++)
      assert.equal((await call(bob.token, 'POST', '/routers', { router: { name: `q${i}` } })).status, 201);
    const over = await call(bob.token, 'POST', '/routers', { router: { name: 'q10' } });
    assert.equal(over.status, 409);
    assert.equal(over.body.NeutronError.type, 'OverQuota');
    assert.match(over.body.NeutronError.message, /Quota exceeded for resources: \['router'\]/);
    assert.equal((await env.cloud.neutron.l3.listRouters(bob.projectId)).length, 10);
  });

  test('router tags: the standard-attr-tag API and the tags filter', async () => {
    const router = (await call(alice.token, 'POST', '/routers', { router: { name: 'r-tag' } })).body.router;
    assert.equal((await call(alice.token, 'PUT', `/routers/${router.id}/tags/blue`)).status, 201);
    const shown = await call(alice.token, 'GET', `/routers/${router.id}`);
    assert.deepEqual(shown.body.router.tags, ['blue']);
    const listed = await call(alice.token, 'GET', '/routers?tags=blue');
    assert.deepEqual(
      listed.body.routers.map((r: Body) => r.id),
      [router.id],
    );
    await call(alice.token, 'DELETE', `/routers/${router.id}`);
  });
});
