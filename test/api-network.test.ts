/**
 * Neutron v2.0 over HTTP (inject): versions, networks/subnets/ports create, list with filters and fields,
 * show, delete, with Neutron's visibility (another project's port is 404), NeutronError bodies and status
 * codes (201, 204, 400, 404, 409); security groups and rules; extensions. Refused requests change no row.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openApiTestEnv, seedUserToken, type ApiTestEnv } from './helpers/api';

// Response bodies are read field by field as Neutron documents them; each assertion checks the shape it uses.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Body = Record<string, any>;

describe('Neutron v2.0 API', () => {
  let env: ApiTestEnv;
  let alice: { token: string; projectId: string };
  let bob: { token: string; projectId: string };
  let admin: { token: string; projectId: string };

  before(async () => {
    env = await openApiTestEnv({ services: ['identity', 'network'], label: 'api-network' });
    alice = await seedUserToken(env, 'alice', 'p-alice');
    bob = await seedUserToken(env, 'bob', 'p-bob');
    admin = await seedUserToken(env, 'root', 'p-admin', 'admin');
  });
  after(async () => {
    await env?.close();
  });

  const call = async (
    token: string,
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    url: string,
    payload?: unknown,
  ) => {
    const res = await env.app.inject({
      method,
      url: `/network${url}`,
      headers: {
        'x-auth-token': token,
        ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(payload !== undefined
        ? { payload: typeof payload === 'string' ? payload : JSON.stringify(payload) }
        : {}),
    });
    return { status: res.statusCode, body: res.body ? (JSON.parse(res.body) as Body) : {} };
  };
  const rows = async () => ({
    networks: (await env.cloud.neutron.listNetworks({ projectId: 'x', roles: ['admin'] })).length,
    subnets: (await env.cloud.neutron.listSubnets()).length,
    ports: (await env.cloud.neutron.listPorts()).length,
  });

  test('version list and the v2.0 resource index', async () => {
    const versions = await env.app.inject({ method: 'GET', url: '/network' });
    assert.equal(versions.statusCode, 200);
    assert.equal((versions.json() as { versions: Array<{ id: string }> }).versions[0]?.id, 'v2.0');
    const index = await call(alice.token, 'GET', '/v2.0');
    assert.ok(index.body.resources.some((r: { collection: string }) => r.collection === 'networks'));
    const ext = await call(alice.token, 'GET', '/v2.0/extensions');
    assert.ok(ext.body.extensions.some((e: { alias: string }) => e.alias === 'security-group'));
    const shown = await call(alice.token, 'GET', '/v2.0/extensions/security-group');
    assert.deepEqual(
      shown.body.extension,
      ext.body.extensions.find((e: { alias: string }) => e.alias === 'security-group'),
    );
    const missing = await call(alice.token, 'GET', '/v2.0/extensions/l3-ha');
    assert.deepEqual([missing.status, missing.body.NeutronError.type], [404, 'HTTPNotFound']);
  });

  test('network, subnet, port: create, list with filters and fields, show, delete in order', async () => {
    const net = await call(alice.token, 'POST', '/v2.0/networks', {
      network: { name: 'net-a', admin_state_up: true },
    });
    assert.equal(net.status, 201, JSON.stringify(net.body));
    assert.equal(net.body.network.project_id, alice.projectId);
    const netId = net.body.network.id as string;
    const sub = await call(alice.token, 'POST', '/v2.0/subnets', {
      subnet: { network_id: netId, cidr: '10.20.0.0/29', ip_version: 4, name: 'sub-a', enable_dhcp: false },
    });
    assert.equal(sub.status, 201, JSON.stringify(sub.body));
    assert.equal(sub.body.subnet.gateway_ip, '10.20.0.1');
    const subId = sub.body.subnet.id as string;

    const port = await call(alice.token, 'POST', '/v2.0/ports', { port: { network_id: netId, name: 'p1' } });
    assert.equal(port.status, 201, JSON.stringify(port.body));
    const portId = port.body.port.id as string;
    const ip = port.body.port.fixed_ips[0].ip_address as string;
    assert.match(ip, /^10\.20\.0\.[2-6]$/);
    assert.equal(port.body.port['binding:host_id'], undefined, 'binding details are admin only');
    const ipRows = await env.cloud.neutron.listIpAllocations(netId);
    assert.deepEqual(
      ipRows.map((a) => [a.portId, a.ipAddress]),
      [[portId, ip]],
    );

    const filtered = await call(alice.token, 'GET', `/v2.0/ports?network_id=${netId}&fields=id&fields=name`);
    assert.deepEqual(filtered.body.ports, [{ id: portId, name: 'p1' }]);
    const byIp = await call(alice.token, 'GET', `/v2.0/ports?fixed_ips=ip_address%3D${ip}`);
    assert.deepEqual(
      byIp.body.ports.map((p: { id: string }) => p.id),
      [portId],
    );
    const byName = await call(alice.token, 'GET', '/v2.0/networks?name=net-a&name=nothing');
    assert.deepEqual(
      byName.body.networks.map((n: { id: string }) => n.id),
      [netId],
    );
    const badFilter = await call(alice.token, 'GET', '/v2.0/networks?colour=blue');
    assert.equal(badFilter.status, 400);
    assert.equal(badFilter.body.NeutronError.type, 'HTTPBadRequest');

    // bob sees none of it: 404 with Neutron's types, and empty lists.
    const hidden = await call(bob.token, 'GET', `/v2.0/ports/${portId}`);
    assert.equal(hidden.status, 404);
    assert.deepEqual(hidden.body, {
      NeutronError: { type: 'PortNotFound', message: `Port ${portId} could not be found.`, detail: '' },
    });
    assert.equal((await call(bob.token, 'DELETE', `/v2.0/ports/${portId}`)).status, 404);
    assert.equal((await call(bob.token, 'GET', `/v2.0/networks/${netId}`)).status, 404);
    assert.deepEqual((await call(bob.token, 'GET', '/v2.0/subnets')).body.subnets, []);
    // The admin sees the binding attributes.
    const asAdmin = await call(admin.token, 'GET', `/v2.0/ports/${portId}`);
    assert.equal(asAdmin.body.port['binding:vif_type'], 'unbound');

    // In use: 409 NetworkInUse / SubnetInUse, nothing removed.
    const inUse = await call(alice.token, 'DELETE', `/v2.0/networks/${netId}`);
    assert.equal(inUse.status, 409);
    assert.equal(inUse.body.NeutronError.type, 'NetworkInUse');
    const subnetInUse = await call(alice.token, 'DELETE', `/v2.0/subnets/${subId}`);
    assert.equal(subnetInUse.status, 409);
    assert.equal(subnetInUse.body.NeutronError.type, 'SubnetInUse');

    assert.equal((await call(alice.token, 'DELETE', `/v2.0/ports/${portId}`)).status, 204);
    assert.deepEqual(await env.cloud.neutron.listIpAllocations(netId), []);
    assert.equal((await call(alice.token, 'DELETE', `/v2.0/subnets/${subId}`)).status, 204);
    assert.equal((await call(alice.token, 'DELETE', `/v2.0/networks/${netId}`)).status, 204);
    assert.equal((await call(alice.token, 'GET', `/v2.0/networks/${netId}`)).status, 404);
  });

  test('a full subnet: 409 IpAddressGenerationFailure, no port row', async () => {
    const net = await call(alice.token, 'POST', '/v2.0/networks', { network: { name: 'tiny' } });
    const netId = net.body.network.id as string;
    await call(alice.token, 'POST', '/v2.0/subnets', {
      subnet: { network_id: netId, cidr: '10.30.0.0/30', ip_version: 4, enable_dhcp: false },
    });
    const first = await call(alice.token, 'POST', '/v2.0/ports', { port: { network_id: netId } });
    assert.equal(first.status, 201);
    const before = await rows();
    const second = await call(alice.token, 'POST', '/v2.0/ports', { port: { network_id: netId } });
    assert.equal(second.status, 409);
    assert.equal(second.body.NeutronError.type, 'IpAddressGenerationFailure');
    assert.deepEqual(await rows(), before);
  });

  test('port fixed_ips: two subnets, PUT to drop, change and add addresses (released to IPAM); refusals change nothing', async () => {
    const net = await call(alice.token, 'POST', '/v2.0/networks', { network: { name: 'n-ips' } });
    const netId = net.body.network.id as string;
    const subnet = async (cidr: string) =>
      (
        await call(alice.token, 'POST', '/v2.0/subnets', {
          subnet: { network_id: netId, cidr, ip_version: 4, enable_dhcp: false },
        })
      ).body.subnet.id as string;
    const s1 = await subnet('10.60.0.0/29');
    const s2 = await subnet('10.61.0.0/29');
    const held = async () =>
      (await env.cloud.neutron.listIpAllocations(netId)).map((a) => `${a.portId}:${a.ipAddress}`).sort();

    const created = await call(alice.token, 'POST', '/v2.0/ports', {
      port: { network_id: netId, fixed_ips: [{ subnet_id: s1 }, { subnet_id: s2 }] },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const portId = created.body.port.id as string;
    assert.deepEqual(
      created.body.port.fixed_ips.map((ip: Body) => [ip.subnet_id, ip.ip_address]).sort(),
      [
        [s1, '10.60.0.2'],
        [s2, '10.61.0.2'],
      ].sort(),
    );
    assert.deepEqual(await held(), [`${portId}:10.60.0.2`, `${portId}:10.61.0.2`]);

    // Back to one address: the subnet-only entry keeps the one the port has; the other is released.
    const one = await call(alice.token, 'PUT', `/v2.0/ports/${portId}`, {
      port: { fixed_ips: [{ subnet_id: s1 }] },
    });
    assert.equal(one.status, 200, JSON.stringify(one.body));
    assert.deepEqual(one.body.port.fixed_ips, [{ subnet_id: s1, ip_address: '10.60.0.2' }]);
    assert.deepEqual(await held(), [`${portId}:10.60.0.2`]);

    // Change the address, and add a second one from the other subnet: the old address goes back to IPAM.
    const changed = await call(alice.token, 'PUT', `/v2.0/ports/${portId}`, {
      port: { fixed_ips: [{ subnet_id: s1, ip_address: '10.60.0.5' }, { subnet_id: s2 }] },
    });
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    assert.deepEqual(await held(), [`${portId}:10.60.0.5`, `${portId}:10.61.0.2`]);
    const other = await call(alice.token, 'POST', '/v2.0/ports', {
      port: { network_id: netId, fixed_ips: [{ subnet_id: s1 }] },
    });
    assert.deepEqual(other.body.port.fixed_ips, [{ subnet_id: s1, ip_address: '10.60.0.2' }]);
    const otherId = other.body.port.id as string;

    // ip_address_substr (ip-substring-filtering) and the exact filter.
    const bySubstr = await call(alice.token, 'GET', '/v2.0/ports?fixed_ips=ip_address_substr%3D10.60.0');
    assert.deepEqual(bySubstr.body.ports.map((p: Body) => p.id).sort(), [portId, otherId].sort());
    const byExact = await call(alice.token, 'GET', '/v2.0/ports?fixed_ips=ip_address_substr%3D10.61');
    assert.deepEqual(
      byExact.body.ports.map((p: Body) => p.id),
      [portId],
    );

    // Refused, nothing changed: an address another port holds (409), outside the subnet, a foreign subnet,
    // more than 5 addresses; a create with a taken address leaves no port.
    const before = await held();
    const portsBefore = await rows();
    for (const [fixed, status, type] of [
      [[{ subnet_id: s1, ip_address: '10.60.0.2' }], 409, 'IpAddressAlreadyAllocated'],
      [[{ subnet_id: s1, ip_address: '10.61.0.3' }], 400, 'InvalidIpForSubnet'],
      [[{ ip_address: '192.168.9.9' }], 400, 'InvalidIpForNetwork'],
      [[{ subnet_id: '00000000-0000-0000-0000-000000000000' }], 400, 'InvalidInput'],
      [Array.from({ length: 6 }, () => ({ subnet_id: s2 })), 400, 'InvalidInput'],
    ] as const) {
      const res = await call(alice.token, 'PUT', `/v2.0/ports/${portId}`, {
        port: { fixed_ips: fixed, name: 'x' },
      });
      assert.equal(res.status, status, JSON.stringify([fixed, res.body]));
      assert.equal(res.body.NeutronError.type, type);
      assert.equal(res.body.NeutronError.detail, '');
    }
    const taken = await call(alice.token, 'POST', '/v2.0/ports', {
      port: { network_id: netId, fixed_ips: [{ subnet_id: s2 }, { subnet_id: s1, ip_address: '10.60.0.5' }] },
    });
    assert.equal(taken.status, 409);
    assert.equal(taken.body.NeutronError.message, `IP address 10.60.0.5 already allocated in subnet ${s1}`);
    assert.deepEqual(await held(), before);
    assert.deepEqual(await rows(), portsBefore);
    assert.equal((await env.cloud.neutron.getPort(portId)).name, '');

    // Releasing every address: fixed_ips [].
    const none = await call(alice.token, 'PUT', `/v2.0/ports/${portId}`, { port: { fixed_ips: [] } });
    assert.deepEqual(none.body.port.fixed_ips, []);
    assert.deepEqual(await held(), [`${otherId}:10.60.0.2`]);

    // Subnet allocation pools replaced: the next port takes the new pool's first free address.
    const pools = await call(alice.token, 'PUT', `/v2.0/subnets/${s2}`, {
      subnet: { allocation_pools: [{ start: '10.61.0.4', end: '10.61.0.6' }] },
    });
    assert.equal(pools.status, 200, JSON.stringify(pools.body));
    assert.deepEqual((await env.cloud.neutron.getSubnet(s2)).allocationPools, [
      { start: '10.61.0.4', end: '10.61.0.6' },
    ]);
    const inPool = await call(alice.token, 'POST', '/v2.0/ports', {
      port: { network_id: netId, fixed_ips: [{ subnet_id: s2 }] },
    });
    assert.deepEqual(inPool.body.port.fixed_ips, [{ subnet_id: s2, ip_address: '10.61.0.4' }]);
    for (const id of [portId, otherId, inPool.body.port.id as string])
      await call(alice.token, 'DELETE', `/v2.0/ports/${id}`);
    assert.deepEqual(await held(), []);
    assert.equal((await call(alice.token, 'DELETE', `/v2.0/networks/${netId}`)).status, 204);
  });

  test('port security_groups (none, chosen, replaced) and a chosen mac_address; refusals change nothing', async () => {
    const net = await call(alice.token, 'POST', '/v2.0/networks', { network: { name: 'n-sg' } });
    const netId = net.body.network.id as string;
    const group = async (name: string, token = alice.token) =>
      (await call(token, 'POST', '/v2.0/security-groups', { security_group: { name } })).body.security_group
        .id as string;
    const [g1, g2, g3] = [await group('g1'), await group('g2'), await group('g3')];
    const bobGroup = await group('bob-g', bob.token);
    const bindings = async (portId: string) =>
      (await env.cloud.neutron.getPort(portId)).securityGroupIds.sort();

    const bare = await call(alice.token, 'POST', '/v2.0/ports', {
      port: { network_id: netId, security_groups: [] },
    });
    assert.equal(bare.status, 201, JSON.stringify(bare.body));
    assert.deepEqual(bare.body.port.security_groups, []);
    assert.deepEqual(await bindings(bare.body.port.id as string), []);

    const port = await call(alice.token, 'POST', '/v2.0/ports', {
      port: { network_id: netId, security_groups: [g1] },
    });
    const portId = port.body.port.id as string;
    assert.deepEqual(port.body.port.security_groups, [g1]);
    const updated = await call(alice.token, 'PUT', `/v2.0/ports/${portId}`, {
      port: { security_groups: [g2, g3], admin_state_up: false },
    });
    assert.equal(updated.status, 200, JSON.stringify(updated.body));
    assert.deepEqual(updated.body.port.security_groups.sort(), [g2, g3].sort());
    assert.deepEqual(await bindings(portId), [g2, g3].sort());
    // A group in use by the port cannot go; the one it left can.
    assert.equal((await call(alice.token, 'DELETE', `/v2.0/security-groups/${g2}`)).status, 409);
    assert.equal((await call(alice.token, 'DELETE', `/v2.0/security-groups/${g1}`)).status, 204);

    // Another project's group, or none such: 404 SecurityGroupNotFound, bindings and the port as they were.
    for (const groups of [[bobGroup], [g2, '00000000-0000-0000-0000-000000000000']]) {
      const res = await call(alice.token, 'PUT', `/v2.0/ports/${portId}`, {
        port: { security_groups: groups, admin_state_up: true },
      });
      assert.equal(res.status, 404, JSON.stringify(res.body));
      assert.equal(res.body.NeutronError.type, 'SecurityGroupNotFound');
    }
    assert.deepEqual(await bindings(portId), [g2, g3].sort());
    assert.equal((await env.cloud.neutron.getPort(portId)).adminStateUp, false);
    const before = await rows();
    const foreign = await call(alice.token, 'POST', '/v2.0/ports', {
      port: { network_id: netId, security_groups: [bobGroup] },
    });
    assert.equal(foreign.status, 404);
    assert.deepEqual(await rows(), before);

    // A MAC of the caller's choosing: stored; the same MAC again is 409 MacAddressInUse; a multicast one 400.
    const mac = 'fa:16:3e:12:34:56';
    const withMac = await call(alice.token, 'POST', '/v2.0/ports', {
      port: { network_id: netId, mac_address: mac },
    });
    assert.equal(withMac.status, 201, JSON.stringify(withMac.body));
    assert.equal((await env.cloud.neutron.getPort(withMac.body.port.id as string)).macAddress, mac);
    const again = await call(alice.token, 'POST', '/v2.0/ports', {
      port: { network_id: netId, mac_address: 'FA-16-3E-12-34-56' },
    });
    assert.equal(again.status, 409);
    assert.equal(again.body.NeutronError.type, 'MacAddressInUse');
    const multicast = await call(alice.token, 'POST', '/v2.0/ports', {
      port: { network_id: netId, mac_address: '01:00:5e:00:00:01' },
    });
    assert.equal(multicast.status, 400);
    // On a network of another project (shared), only an admin picks the MAC.
    const shared = await call(admin.token, 'POST', '/v2.0/networks', {
      network: { name: 'n-shared', shared: true },
    });
    const sharedId = shared.body.network.id as string;
    const denied = await call(alice.token, 'POST', '/v2.0/ports', {
      port: { network_id: sharedId, mac_address: 'fa:16:3e:00:00:01' },
    });
    assert.equal(denied.status, 403);
    assert.equal(denied.body.NeutronError.type, 'PolicyNotAuthorized');
    assert.deepEqual(await rows(), { ...before, networks: before.networks + 1, ports: before.ports + 1 });

    for (const id of [bare.body.port.id, portId, withMac.body.port.id] as string[])
      await call(alice.token, 'DELETE', `/v2.0/ports/${id}`);
    for (const g of [g2, g3])
      assert.equal((await call(alice.token, 'DELETE', `/v2.0/security-groups/${g}`)).status, 204);
    await call(bob.token, 'DELETE', `/v2.0/security-groups/${bobGroup}`);
    await call(alice.token, 'DELETE', `/v2.0/networks/${netId}`);
    await call(admin.token, 'DELETE', `/v2.0/networks/${sharedId}`);
  });

  test('bad bodies and policy: 400/403/401, nothing stored', async () => {
    const before = await rows();
    for (const payload of [
      '{"network": ',
      { network: { name: 'x', colour: 'blue' } },
      { network: { name: 42 } },
      { nothing: {} },
      { network: { name: 'x', admin_state_up: 'yes' } },
    ]) {
      const res = await call(alice.token, 'POST', '/v2.0/networks', payload);
      assert.equal(res.status, 400, JSON.stringify(payload));
      assert.ok(res.body.NeutronError, JSON.stringify(res.body));
    }
    const unknownAttr = await call(alice.token, 'POST', '/v2.0/networks', {
      network: { name: 'x', colour: 'blue' },
    });
    assert.equal(unknownAttr.body.NeutronError.message, "Unrecognized attribute(s) 'colour'");
    const shared = await call(alice.token, 'POST', '/v2.0/networks', {
      network: { name: 'x', shared: true },
    });
    assert.equal(shared.status, 403);
    assert.equal(shared.body.NeutronError.type, 'PolicyNotAuthorized');
    const otherProject = await call(alice.token, 'POST', '/v2.0/networks', {
      network: { name: 'x', project_id: bob.projectId },
    });
    assert.equal(otherProject.status, 403);
    for (const token of ['', 'forged']) {
      const res = await env.app.inject({
        method: 'GET',
        url: '/network/v2.0/networks',
        headers: token ? { 'x-auth-token': token } : {},
      });
      assert.equal(res.statusCode, 401);
      assert.match(String(res.headers['www-authenticate']), /^Keystone uri=/);
    }
    assert.deepEqual(await rows(), before);
  });

  test('PUT network, subnet, port: the name changes in the rows; fixed attributes and policy refused', async () => {
    const net = await call(alice.token, 'POST', '/v2.0/networks', { network: { name: 'n-put' } });
    const netId = net.body.network.id as string;
    const sub = await call(alice.token, 'POST', '/v2.0/subnets', {
      subnet: { network_id: netId, cidr: '10.40.0.0/28', ip_version: 4, enable_dhcp: false },
    });
    const subId = sub.body.subnet.id as string;
    const port = await call(alice.token, 'POST', '/v2.0/ports', { port: { network_id: netId } });
    const portId = port.body.port.id as string;

    const n = await call(alice.token, 'PUT', `/v2.0/networks/${netId}`, { network: { name: 'n-renamed' } });
    assert.equal(n.status, 200, JSON.stringify(n.body));
    assert.equal(n.body.network.name, 'n-renamed');
    const s = await call(alice.token, 'PUT', `/v2.0/subnets/${subId}`, { subnet: { name: 's-renamed' } });
    assert.equal(s.status, 200, JSON.stringify(s.body));
    const p = await call(alice.token, 'PUT', `/v2.0/ports/${portId}`, { port: { name: 'p-renamed' } });
    assert.equal(p.status, 200, JSON.stringify(p.body));
    assert.equal(p.body.port.name, 'p-renamed');
    const ctx = { projectId: alice.projectId, roles: ['member'] };
    assert.equal((await env.cloud.neutron.getNetwork(netId, ctx)).name, 'n-renamed');
    assert.equal((await env.cloud.neutron.getSubnet(subId)).name, 's-renamed');
    assert.equal((await env.cloud.neutron.getPort(portId)).name, 'p-renamed');

    // Refused: a fixed attribute, an unknown one, shared by a member, another project's network (404).
    for (const [token, url, payload, status, type] of [
      [alice.token, `/v2.0/subnets/${subId}`, { subnet: { cidr: '10.41.0.0/28' } }, 400, 'HTTPBadRequest'],
      [alice.token, `/v2.0/networks/${netId}`, { network: { colour: 'red' } }, 400, 'HTTPBadRequest'],
      [alice.token, `/v2.0/networks/${netId}`, { network: { shared: true } }, 403, 'PolicyNotAuthorized'],
      [bob.token, `/v2.0/networks/${netId}`, { network: { name: 'mine' } }, 404, 'NetworkNotFound'],
      [bob.token, `/v2.0/ports/${portId}`, { port: { name: 'mine' } }, 404, 'PortNotFound'],
    ] as const) {
      const res = await call(token, 'PUT', url, payload);
      assert.equal(res.status, status, `${url} ${JSON.stringify(payload)}`);
      assert.equal(res.body.NeutronError.type, type);
    }
    const after = await env.cloud.neutron.getNetwork(netId, ctx);
    assert.deepEqual([after.name, after.shared], ['n-renamed', false]);
    assert.equal((await env.cloud.neutron.getSubnet(subId)).cidr, '10.40.0.0/28');
    assert.equal((await env.cloud.neutron.getPort(portId)).name, 'p-renamed');
    await call(alice.token, 'DELETE', `/v2.0/ports/${portId}`);
    await call(alice.token, 'DELETE', `/v2.0/networks/${netId}`);
  });

  test('descriptions, admin_state_up false, DNS servers and host routes: stored, shown, updated, checked', async () => {
    const net = await call(alice.token, 'POST', '/v2.0/networks', {
      network: { name: 'n-attrs', description: 'd1', admin_state_up: false },
    });
    assert.equal(net.status, 201, JSON.stringify(net.body));
    assert.deepEqual([net.body.network.description, net.body.network.admin_state_up], ['d1', false]);
    const netId = net.body.network.id as string;
    const sub = await call(alice.token, 'POST', '/v2.0/subnets', {
      subnet: {
        network_id: netId,
        cidr: '10.50.0.0/28',
        ip_version: 4,
        gateway_ip: '10.50.0.1',
        allocation_pools: [{ start: '10.50.0.3', end: '10.50.0.7' }],
        description: 'sd',
        dns_nameservers: ['8.8.4.4', '8.8.8.8'],
        host_routes: [{ destination: '10.20.0.0/32', nexthop: '10.100.1.1' }],
      },
    });
    assert.equal(sub.status, 201, JSON.stringify(sub.body));
    assert.deepEqual(sub.body.subnet.dns_nameservers, ['8.8.4.4', '8.8.8.8']);
    assert.deepEqual(sub.body.subnet.host_routes, [{ destination: '10.20.0.0/32', nexthop: '10.100.1.1' }]);
    assert.equal(sub.body.subnet.description, 'sd');
    const subId = sub.body.subnet.id as string;
    const port = await call(alice.token, 'POST', '/v2.0/ports', {
      port: { network_id: netId, description: 'pd', admin_state_up: false },
    });
    assert.equal(port.status, 201, JSON.stringify(port.body));
    assert.deepEqual([port.body.port.description, port.body.port.admin_state_up], ['pd', false]);
    const portId = port.body.port.id as string;

    // PUT as tempest's test_update_subnet_gw_dns_host_routes_dhcp does: the lists are replaced whole.
    const s = await call(alice.token, 'PUT', `/v2.0/subnets/${subId}`, {
      subnet: {
        name: 'New_subnet',
        gateway_ip: '10.50.0.2',
        enable_dhcp: true,
        dns_nameservers: ['7.8.8.8', '7.8.4.4'],
        host_routes: [{ destination: '10.20.0.0/32', nexthop: '10.100.1.2' }],
      },
    });
    assert.equal(s.status, 200, JSON.stringify(s.body));
    assert.deepEqual(
      [s.body.subnet.gateway_ip, s.body.subnet.enable_dhcp, s.body.subnet.dns_nameservers],
      ['10.50.0.2', true, ['7.8.8.8', '7.8.4.4']],
    );
    const n = await call(alice.token, 'PUT', `/v2.0/networks/${netId}`, {
      network: { description: 'd2', admin_state_up: true },
    });
    assert.deepEqual(
      [n.status, n.body.network.description, n.body.network.admin_state_up],
      [200, 'd2', true],
    );
    const p = await call(alice.token, 'PUT', `/v2.0/ports/${portId}`, {
      port: { description: 'pd2', admin_state_up: true },
    });
    assert.deepEqual([p.status, p.body.port.description, p.body.port.admin_state_up], [200, 'pd2', true]);

    // The rows hold what the API answered.
    const ctx = { projectId: alice.projectId, roles: ['member'] };
    const stored = await env.cloud.neutron.getSubnet(subId);
    assert.deepEqual(stored.dnsNameservers, ['7.8.8.8', '7.8.4.4']);
    assert.deepEqual(stored.hostRoutes, [{ destination: '10.20.0.0/32', nexthop: '10.100.1.2' }]);
    assert.deepEqual([stored.gatewayIp, stored.name], ['10.50.0.2', 'New_subnet']);
    assert.equal((await env.cloud.neutron.getNetwork(netId, ctx)).description, 'd2');
    assert.equal((await env.cloud.neutron.getPort(portId)).adminStateUp, true);

    // Neutron's checks: bad or duplicate addresses, over the limits, the gateway in a pool; nothing changes.
    const six = ['1.1.1.1', '1.1.1.2', '1.1.1.3', '1.1.1.4', '1.1.1.5', '1.1.1.6'];
    const routes = Array.from({ length: 21 }, (_, i) => ({
      destination: `10.9.${i}.0/24`,
      nexthop: '10.50.0.9',
    }));
    for (const [payload, status, type, message] of [
      [{ dns_nameservers: ['8.8.8'] }, 400, 'HTTPBadRequest', /'8\.8\.8' is not a valid nameserver/],
      [
        { dns_nameservers: ['8.8.8.8', '8.8.8.8'] },
        400,
        'HTTPBadRequest',
        /Duplicate nameserver '8\.8\.8\.8'/,
      ],
      [{ dns_nameservers: six }, 400, 'DNSNameServersExhausted', /exceeds the limit 5/],
      [{ dns_nameservers: ['2001:db8::1'] }, 400, 'InvalidInput', /does not match the ip_version '4'/],
      [
        { host_routes: [{ destination: '10.0.0.1/24', nexthop: '10.50.0.9' }] },
        400,
        'HTTPBadRequest',
        /not a valid CIDR/,
      ],
      [
        { host_routes: [{ destination: '10.0.0.0/24', nexthop: 'x' }] },
        400,
        'HTTPBadRequest',
        /not a valid IP address/,
      ],
      [{ host_routes: [{ destination: '10.0.0.0/24' }] }, 400, 'HTTPBadRequest', /host_routes/],
      [{ host_routes: [routes[0], routes[0]] }, 400, 'HTTPBadRequest', /Duplicate hostroute/],
      [{ host_routes: routes }, 400, 'HostRoutesExhausted', /exceeds the limit 20/],
      [
        { gateway_ip: '10.50.0.4' },
        409,
        'GatewayConflictWithAllocationPools',
        /conflicts with allocation pool 10\.50\.0\.3-10\.50\.0\.7/,
      ],
      [
        { allocation_pools: [{ start: '10.50.0.2', end: '10.50.0.99' }] },
        400,
        'BadRequest',
        /must lie within/,
      ],
      [{ allocation_pools: [{ start: '10.50.0.1', end: '10.50.0.5' }] }, 400, 'BadRequest', /conflicts with/],
      [{ network_id: netId }, 400, 'HTTPBadRequest', /read-only attribute network_id/],
    ] as const) {
      const res = await call(alice.token, 'PUT', `/v2.0/subnets/${subId}`, { subnet: payload });
      assert.equal(res.status, status, JSON.stringify([payload, res.body]));
      assert.equal(res.body.NeutronError.type, type);
      assert.match(res.body.NeutronError.message, message);
    }
    const create = await call(alice.token, 'POST', '/v2.0/subnets', {
      subnet: { network_id: netId, cidr: '10.51.0.0/28', ip_version: 4, dns_nameservers: six },
    });
    assert.equal(create.status, 400);
    assert.match(create.body.NeutronError.message, /^Unable to complete operation for new subnet\./);
    assert.deepEqual(await env.cloud.neutron.getSubnet(subId), stored);
    assert.equal((await env.cloud.neutron.getNetwork(netId, ctx)).subnetIds.length, 1);
    await call(alice.token, 'DELETE', `/v2.0/ports/${portId}`);
    await call(alice.token, 'DELETE', `/v2.0/networks/${netId}`);
  });

  test('bulk create: all items or none', async () => {
    const before = await rows();
    const nets = await call(alice.token, 'POST', '/v2.0/networks', {
      networks: [{ name: 'bulk-1' }, { name: 'bulk-2' }],
    });
    assert.equal(nets.status, 201, JSON.stringify(nets.body));
    const ids = (nets.body.networks as Array<{ id: string; name: string }>).map((n) => n.id);
    assert.deepEqual(
      (nets.body.networks as Array<{ name: string }>).map((n) => n.name),
      ['bulk-1', 'bulk-2'],
    );
    assert.equal((await rows()).networks, before.networks + 2);
    const subs = await call(alice.token, 'POST', '/v2.0/subnets', {
      subnets: ids.map((id, i) => ({
        network_id: id,
        cidr: `10.5${i}.0.0/28`,
        ip_version: 4,
        enable_dhcp: false,
      })),
    });
    assert.equal(subs.status, 201, JSON.stringify(subs.body));
    assert.equal(subs.body.subnets.length, 2);
    const ports = await call(alice.token, 'POST', '/v2.0/ports', {
      ports: ids.map((id) => ({ network_id: id })),
    });
    assert.equal(ports.status, 201, JSON.stringify(ports.body));
    assert.equal(ports.body.ports.length, 2);
    const made = await rows();

    // The second item fails (a bad CIDR) after the first was made: the first is removed.
    const failing = await call(alice.token, 'POST', '/v2.0/subnets', {
      subnets: [
        { network_id: ids[0], cidr: '10.60.0.0/28', ip_version: 4, enable_dhcp: false },
        { network_id: ids[1], cidr: 'not-a-cidr', ip_version: 4 },
      ],
    });
    assert.equal(failing.status, 400, JSON.stringify(failing.body));
    const badItem = await call(alice.token, 'POST', '/v2.0/networks', {
      networks: [{ name: 'ok' }, { name: 'x', colour: 'red' }],
    });
    assert.equal(badItem.status, 400);
    assert.equal((await call(alice.token, 'POST', '/v2.0/networks', { networks: [] })).status, 400);
    assert.deepEqual(await rows(), made);

    for (const p of ports.body.ports as Array<{ id: string }>)
      await call(alice.token, 'DELETE', `/v2.0/ports/${p.id}`);
    for (const id of ids) await call(alice.token, 'DELETE', `/v2.0/networks/${id}`);
    assert.deepEqual(await rows(), before);
  });

  test('security groups: the project’s default group and its rules, list and show', async () => {
    const groups = await call(bob.token, 'GET', '/v2.0/security-groups');
    assert.equal(groups.status, 200);
    assert.deepEqual(
      groups.body.security_groups.map((g: { name: string; project_id: string }) => [g.name, g.project_id]),
      [['default', bob.projectId]],
    );
    const group = groups.body.security_groups[0];
    const shown = await call(bob.token, 'GET', `/v2.0/security-groups/${group.id}`);
    assert.equal(shown.body.security_group.id, group.id);
    const rules = await call(bob.token, 'GET', `/v2.0/security-group-rules?security_group_id=${group.id}`);
    assert.ok(rules.body.security_group_rules.length > 0);
    const rule = rules.body.security_group_rules[0];
    assert.equal(
      (await call(bob.token, 'GET', `/v2.0/security-group-rules/${rule.id}`)).body.security_group_rule.id,
      rule.id,
    );
    assert.equal((await call(alice.token, 'GET', `/v2.0/security-groups/${group.id}`)).status, 404);
  });

  test('security groups: create with egress rules, update, rules create / delete, delete; Neutron refusals', async () => {
    const groupRows = async () =>
      (await env.cloud.neutron.listSecurityGroups(bob.projectId)).map((g) => g.id);
    const created = await call(bob.token, 'POST', '/v2.0/security-groups', {
      security_group: { name: 'web', description: 'http in' },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const sg = created.body.security_group;
    assert.deepEqual([sg.name, sg.description, sg.project_id], ['web', 'http in', bob.projectId]);
    assert.deepEqual(
      sg.security_group_rules.map((r: Body) => [r.direction, r.ethertype, r.protocol]),
      [
        ['egress', 'IPv4', null],
        ['egress', 'IPv6', null],
      ],
    );
    const other = (await call(bob.token, 'POST', '/v2.0/security-groups', { security_group: { name: 'db' } }))
      .body.security_group;
    const stored = await env.cloud.neutron.securityGroups.visibleGroup(sg.id, 'all');
    assert.equal(stored.name, 'web');

    const updated = await call(bob.token, 'PUT', `/v2.0/security-groups/${sg.id}`, {
      security_group: { name: 'web2', description: 'new' },
    });
    assert.deepEqual([updated.status, updated.body.security_group.name], [200, 'web2']);
    assert.equal((await env.cloud.neutron.securityGroups.visibleGroup(sg.id, 'all')).description, 'new');

    const rulesOf = async (id: string) =>
      (await env.cloud.neutron.securityGroups.visibleGroup(id, 'all')).rules;
    const base = { security_group_id: sg.id, direction: 'ingress' };
    const made: Body[] = [];
    for (const extra of [
      { protocol: 'tcp', port_range_min: 77, port_range_max: 77, ethertype: 'ipv4' },
      { protocol: 'icmp', port_range_min: 3, port_range_max: 2 },
      { protocol: 'icmp', port_range_min: 11, port_range_max: null },
      { protocol: 17, remote_group_id: other.id, description: 'from db' },
      { protocol: 'udp', port_range_min: 50, port_range_max: 55, remote_ip_prefix: '10.1.0.0/24' },
      { protocol: 'tcp', remote_ip_prefix: '10.2.0.7' },
    ]) {
      const res = await call(bob.token, 'POST', '/v2.0/security-group-rules', {
        security_group_rule: { ...base, ...extra },
      });
      assert.equal(res.status, 201, JSON.stringify([extra, res.body]));
      made.push(res.body.security_group_rule);
    }
    assert.deepEqual(
      made.map((r) => [r.ethertype, r.protocol, r.port_range_min, r.port_range_max, r.remote_ip_prefix]),
      [
        ['IPv4', 'tcp', 77, 77, null],
        ['IPv4', 'icmp', 3, 2, null],
        ['IPv4', 'icmp', 11, null, null],
        ['IPv4', '17', null, null, null],
        ['IPv4', 'udp', 50, 55, '10.1.0.0/24'],
        ['IPv4', 'tcp', null, null, '10.2.0.7/32'],
      ],
    );
    assert.deepEqual([made[3]!.remote_group_id, made[3]!.description], [other.id, 'from db']);
    const shownRule = await call(bob.token, 'GET', `/v2.0/security-group-rules/${made[0]!.id}`);
    assert.deepEqual(shownRule.body.security_group_rule, made[0]);
    assert.equal((await rulesOf(sg.id)).length, 8);

    // Refused with Neutron's status and exception, changing nothing.
    const reader = await seedUserToken(env, 'rory', 'p-bob', 'reader');
    const rule = (extra: Body) => ({ security_group_rule: { ...base, ...extra } });
    for (const [token, method, url, payload, status, type] of [
      [
        bob.token,
        'POST',
        '/v2.0/security-groups',
        { security_group: { name: 'default' } },
        409,
        'SecurityGroupDefaultAlreadyExists',
      ],
      [
        bob.token,
        'PUT',
        `/v2.0/security-groups/${sg.id}`,
        { security_group: { name: 'default' } },
        409,
        'SecurityGroupDefaultAlreadyExists',
      ],
      [
        bob.token,
        'PUT',
        `/v2.0/security-groups/${sg.id}`,
        { security_group: { project_id: 'x' } },
        400,
        'HTTPBadRequest',
      ],
      [
        bob.token,
        'POST',
        '/v2.0/security-group-rules',
        rule({ protocol: 'tcp', port_range_min: 77, port_range_max: 77 }),
        409,
        'SecurityGroupRuleExists',
      ],
      [
        bob.token,
        'POST',
        '/v2.0/security-group-rules',
        rule({ protocol: 'bad_protocol_name' }),
        400,
        'SecurityGroupRuleInvalidProtocol',
      ],
      [
        bob.token,
        'POST',
        '/v2.0/security-group-rules',
        rule({ ethertype: 'bad_ethertype' }),
        400,
        'HTTPBadRequest',
      ],
      [
        bob.token,
        'POST',
        '/v2.0/security-group-rules',
        rule({ direction: 'sideways' }),
        400,
        'HTTPBadRequest',
      ],
      [
        bob.token,
        'POST',
        '/v2.0/security-group-rules',
        rule({ protocol: 'tcp', port_range_min: -16, port_range_max: 80 }),
        400,
        'SecurityGroupInvalidPortValue',
      ],
      [
        bob.token,
        'POST',
        '/v2.0/security-group-rules',
        rule({ protocol: 'tcp', port_range_min: 80, port_range_max: 79 }),
        400,
        'SecurityGroupInvalidPortRange',
      ],
      [
        bob.token,
        'POST',
        '/v2.0/security-group-rules',
        rule({ protocol: 'tcp', port_range_min: null, port_range_max: 6 }),
        400,
        'SecurityGroupInvalidPortRange',
      ],
      [
        bob.token,
        'POST',
        '/v2.0/security-group-rules',
        rule({ protocol: 'icmp', port_range_min: 1, port_range_max: 256 }),
        400,
        'SecurityGroupInvalidIcmpValue',
      ],
      [
        bob.token,
        'POST',
        '/v2.0/security-group-rules',
        rule({ protocol: 'icmp', port_range_min: null, port_range_max: 6 }),
        400,
        'SecurityGroupMissingIcmpType',
      ],
      [
        bob.token,
        'POST',
        '/v2.0/security-group-rules',
        rule({ protocol: 'gre', port_range_min: 1, port_range_max: 2 }),
        400,
        'SecurityGroupInvalidProtocolForPort',
      ],
      [
        bob.token,
        'POST',
        '/v2.0/security-group-rules',
        rule({ port_range_min: 1, port_range_max: 2 }),
        400,
        'SecurityGroupProtocolRequiredWithPorts',
      ],
      [
        bob.token,
        'POST',
        '/v2.0/security-group-rules',
        rule({ protocol: 'tcp', remote_ip_prefix: '192.168.1.1/33' }),
        400,
        'InvalidInput',
      ],
      [
        bob.token,
        'POST',
        '/v2.0/security-group-rules',
        rule({ protocol: 'tcp', remote_ip_prefix: 'bad_prefix' }),
        400,
        'InvalidInput',
      ],
      [
        bob.token,
        'POST',
        '/v2.0/security-group-rules',
        rule({ protocol: 'tcp', remote_ip_prefix: '::/0' }),
        400,
        'SecurityGroupRuleParameterConflict',
      ],
      [
        bob.token,
        'POST',
        '/v2.0/security-group-rules',
        rule({ protocol: 'ipv6-icmp' }),
        400,
        'SecurityGroupEthertypeConflictWithProtocol',
      ],
      [
        bob.token,
        'POST',
        '/v2.0/security-group-rules',
        rule({ protocol: 'tcp', remote_ip_prefix: '10.0.0.0/8', remote_group_id: other.id }),
        400,
        'SecurityGroupMultipleRemoteEntites',
      ],
      [
        bob.token,
        'POST',
        '/v2.0/security-group-rules',
        rule({ protocol: 'tcp', remote_group_id: 'bad_group_id' }),
        404,
        'SecurityGroupNotFound',
      ],
      [
        bob.token,
        'POST',
        '/v2.0/security-group-rules',
        { security_group_rule: { security_group_id: 'nope', direction: 'ingress' } },
        404,
        'SecurityGroupNotFound',
      ],
      [
        alice.token,
        'POST',
        '/v2.0/security-group-rules',
        rule({ protocol: 'tcp' }),
        404,
        'SecurityGroupNotFound',
      ],
      [
        alice.token,
        'PUT',
        `/v2.0/security-groups/${sg.id}`,
        { security_group: { name: 'mine' } },
        404,
        'SecurityGroupNotFound',
      ],
      [
        alice.token,
        'DELETE',
        `/v2.0/security-group-rules/${made[0]!.id}`,
        undefined,
        404,
        'SecurityGroupRuleNotFound',
      ],
      [
        reader.token,
        'POST',
        '/v2.0/security-groups',
        { security_group: { name: 'r' } },
        403,
        'PolicyNotAuthorized',
      ],
      [
        reader.token,
        'POST',
        '/v2.0/security-group-rules',
        rule({ protocol: 'tcp' }),
        403,
        'PolicyNotAuthorized',
      ],
      [reader.token, 'DELETE', `/v2.0/security-groups/${sg.id}`, undefined, 403, 'PolicyNotAuthorized'],
    ] as const) {
      const res = await call(token, method, url, payload);
      assert.equal(res.status, status, JSON.stringify([method, url, payload, res.body]));
      assert.equal(res.body.NeutronError.type, type, JSON.stringify(res.body));
    }
    assert.equal((await rulesOf(sg.id)).length, 8);
    assert.equal((await env.cloud.neutron.securityGroups.visibleGroup(sg.id, 'all')).name, 'web2');
    assert.equal((await call(reader.token, 'GET', `/v2.0/security-groups/${sg.id}`)).status, 200);

    // The default group: not renamed, not deleted by its project.
    const defaultGroup = (await env.cloud.neutron.ensureDefaultSecurityGroup(bob.projectId)).id;
    for (const [method, payload, type] of [
      ['PUT', { security_group: { name: 'renamed' } }, 'SecurityGroupCannotUpdateDefault'],
      ['DELETE', undefined, 'SecurityGroupCannotRemoveDefault'],
    ] as const) {
      const res = await call(bob.token, method, `/v2.0/security-groups/${defaultGroup}`, payload);
      assert.deepEqual([res.status, res.body.NeutronError.type], [409, type]);
    }

    assert.equal((await call(bob.token, 'DELETE', `/v2.0/security-group-rules/${made[0]!.id}`)).status, 204);
    assert.equal((await rulesOf(sg.id)).length, 7);
    // Deleting db takes the rule naming it as remote group with it.
    assert.equal((await call(bob.token, 'DELETE', `/v2.0/security-groups/${other.id}`)).status, 204);
    assert.equal((await rulesOf(sg.id)).length, 6);
    assert.equal((await call(bob.token, 'DELETE', `/v2.0/security-groups/${sg.id}`)).status, 204);
    assert.equal((await call(bob.token, 'GET', `/v2.0/security-group-rules/${made[1]!.id}`)).status, 404);
    assert.deepEqual(await groupRows(), [defaultGroup]);
  });
});
