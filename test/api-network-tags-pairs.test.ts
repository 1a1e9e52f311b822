/**
 * Neutron v2.0 over HTTP (inject): a port's allowed_address_pairs (allowed-address-pairs: the port's MAC by
 * default, replaced whole by a PUT, neutron_lib's checks) and standard-attr tags on networks, subnets, ports
 * and security groups (the tags API, the tags / tags-any / not-tags / not-tags-any filters, Neutron's
 * policies). Refused requests change no row.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openApiTestEnvWithUsers, type ApiTestEnv, type SeededUser } from './helpers/api';

// Response bodies are read field by field as Neutron documents them; each assertion checks the shape it uses.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Body = Record<string, any>;

describe('Neutron v2.0 API: allowed address pairs and tags', () => {
  let env: ApiTestEnv;
  let alice: SeededUser;
  let bob: SeededUser;
  let rita: SeededUser;
  let admin: SeededUser;
  let networkId: string;
  let subnetId: string;

  before(async () => {
    ({
      env,
      users: { alice, bob, rita, admin },
    } = await openApiTestEnvWithUsers(
      { services: ['identity', 'network'], label: 'api-network-tags-pairs' },
      {
        alice: ['alice', 'p-alice'],
        bob: ['bob', 'p-bob'],
        rita: ['rita', 'p-alice', 'reader'],
        admin: ['root', 'p-admin', 'admin'],
      },
    ));
    networkId = (await call(alice.token, 'POST', '/networks', { network: { name: 'n1' } })).body.network.id;
    subnetId = (
      await call(alice.token, 'POST', '/subnets', {
        subnet: { network_id: networkId, cidr: '10.20.0.0/24', ip_version: 4 },
      })
    ).body.subnet.id;
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
      url: `/network/v2.0${url}`,
      headers: {
        'x-auth-token': token,
        ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(payload !== undefined ? { payload: JSON.stringify(payload) } : {}),
    });
    return { status: res.statusCode, body: res.body ? (JSON.parse(res.body) as Body) : {} };
  };
  const pairsOf = async (portId: string) =>
    (await env.cloud.neutron.getPort(portId)).allowedAddressPairs
      .map((p) => `${p.macAddress} ${p.ipAddress}`)
      .sort();

  test('the extensions list names allowed-address-pairs and standard-attr-tag', async () => {
    const ext = await call(alice.token, 'GET', '/extensions');
    const aliases = ext.body.extensions.map((e: { alias: string }) => e.alias);
    assert.ok(
      aliases.includes('allowed-address-pairs') && aliases.includes('standard-attr-tag'),
      aliases.join(),
    );
    assert.equal((await call(alice.token, 'GET', '/extensions/allowed-address-pairs')).status, 200);
  });

  test('allowed_address_pairs: on create (the port MAC by default), listed, replaced by PUT, cleared', async () => {
    const created = await call(alice.token, 'POST', '/ports', {
      port: {
        network_id: networkId,
        allowed_address_pairs: [
          { ip_address: '10.20.0.50' },
          { ip_address: '10.30.0.0/24', mac_address: 'FA-16-3E-00-00-01' },
        ],
      },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const port = created.body.port;
    assert.deepEqual(port.allowed_address_pairs, [
      { ip_address: '10.20.0.50', mac_address: port.mac_address },
      { ip_address: '10.30.0.0/24', mac_address: 'fa:16:3e:00:00:01' },
    ]);
    assert.deepEqual(
      await pairsOf(port.id),
      [`${port.mac_address} 10.20.0.50`, 'fa:16:3e:00:00:01 10.30.0.0/24'].sort(),
    );
    const listed = await call(alice.token, 'GET', `/ports?id=${port.id}`);
    assert.equal(listed.body.ports[0].allowed_address_pairs.length, 2);

    const put = await call(alice.token, 'PUT', `/ports/${port.id}`, {
      port: { allowed_address_pairs: [{ ip_address: '10.20.0.60', mac_address: 'fa:16:3e:00:00:02' }] },
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.deepEqual(put.body.port.allowed_address_pairs, [
      { ip_address: '10.20.0.60', mac_address: 'fa:16:3e:00:00:02' },
    ]);
    assert.deepEqual(await pairsOf(port.id), ['fa:16:3e:00:00:02 10.20.0.60']);

    // Every refusal is Neutron's 400 with its exception name, and the pairs stay as they were.
    const refused: Array<[unknown, string]> = [
      [Array.from({ length: 11 }, (_, i) => ({ ip_address: `10.20.1.${i}` })), 'AllowedAddressPairExhausted'],
      [[{ mac_address: 'fa:16:3e:00:00:03' }], 'AllowedAddressPairsMissingIP'],
      [[{ ip_address: '10.20.0.7' }, { ip_address: '10.20.0.7' }], 'DuplicateAddressPairInRequest'],
      [
        [{ ip_address: '10.20.0.7' }, { ip_address: '10.20.0.7', mac_address: port.mac_address }],
        'DuplicateAddressPairInRequest',
      ],
      [[{ ip_address: '10.20.0.300' }], 'HTTPBadRequest'],
      [[{ ip_address: '10.20.0.0/33' }], 'HTTPBadRequest'],
      [[{ ip_address: '224.0.0.5' }], 'HTTPBadRequest'],
      [[{ ip_address: '10.20.0.8', mac_address: '01:00:5e:00:00:01' }], 'HTTPBadRequest'],
      [[{ ip_address: '10.20.0.8', extra: 1 }], 'HTTPBadRequest'],
      ['10.20.0.8', 'HTTPBadRequest'],
    ];
    for (const [pairs, type] of refused) {
      const res = await call(alice.token, 'PUT', `/ports/${port.id}`, {
        port: { allowed_address_pairs: pairs },
      });
      assert.deepEqual([res.status, res.body.NeutronError?.type], [400, type], JSON.stringify(pairs));
    }
    assert.deepEqual(await pairsOf(port.id), ['fa:16:3e:00:00:02 10.20.0.60']);
    const portsBefore = (await env.cloud.neutron.listPorts()).length;
    const badCreate = await call(alice.token, 'POST', '/ports', {
      port: { network_id: networkId, allowed_address_pairs: [{ ip_address: 'nope' }] },
    });
    assert.equal(badCreate.status, 400);
    assert.equal((await env.cloud.neutron.listPorts()).length, portsBefore);

    const cleared = await call(alice.token, 'PUT', `/ports/${port.id}`, {
      port: { allowed_address_pairs: [] },
    });
    assert.deepEqual(cleared.body.port.allowed_address_pairs, []);
    assert.deepEqual(await pairsOf(port.id), []);
    assert.equal((await call(alice.token, 'DELETE', `/ports/${port.id}`)).status, 204);
  });

  test('tags: PUT all, PUT one (201), GET one (204/404), DELETE one and all, on each tagged resource', async () => {
    const portId = (await call(alice.token, 'POST', '/ports', { port: { network_id: networkId } })).body.port
      .id;
    const groupId = (await call(alice.token, 'POST', '/security-groups', { security_group: { name: 'g' } }))
      .body.security_group.id;
    for (const [collection, id, member] of [
      ['networks', networkId, 'network'],
      ['subnets', subnetId, 'subnet'],
      ['ports', portId, 'port'],
      ['security-groups', groupId, 'security_group'],
    ] as const) {
      const base = `/${collection}/${id}/tags`;
      const all = await call(alice.token, 'PUT', base, { tags: ['red', 'blue'] });
      assert.deepEqual([all.status, all.body.tags], [200, ['red', 'blue']], collection);
      assert.equal((await call(alice.token, 'PUT', `${base}/green`)).status, 201);
      assert.equal((await call(alice.token, 'PUT', `${base}/green`)).status, 201, 'again is fine');
      assert.equal((await call(rita.token, 'GET', `${base}/green`)).status, 204);
      const missing = await call(alice.token, 'GET', `${base}/black`);
      assert.deepEqual([missing.status, missing.body.NeutronError.type], [404, 'TagNotFound']);
      assert.deepEqual((await call(rita.token, 'GET', base)).body.tags, ['blue', 'green', 'red']);
      const shown = await call(alice.token, 'GET', `/${collection}/${id}`);
      assert.deepEqual(shown.body[member].tags, ['blue', 'green', 'red']);

      // A reader may not change them, another project does not see the resource; nothing changes.
      const denied = await call(rita.token, 'PUT', `${base}/x`);
      assert.deepEqual([denied.status, denied.body.NeutronError.type], [403, 'PolicyNotAuthorized']);
      assert.match(denied.body.NeutronError.message, new RegExp(`update_${member}:tags`));
      assert.equal((await call(bob.token, 'DELETE', base)).status, 404);
      const tooMany = await call(alice.token, 'PUT', base, {
        tags: Array.from({ length: 51 }, (_, i) => `t${i}`),
      });
      assert.equal(tooMany.status, 400);
      assert.equal((await call(alice.token, 'PUT', base, { tags: ['a', 'a'] })).status, 400);
      assert.equal((await call(alice.token, 'PUT', base, { tags: 'a' })).status, 400);
      assert.equal((await call(alice.token, 'PUT', base, { nottags: [] })).status, 400);
      assert.equal((await call(alice.token, 'PUT', `${base}/${'x'.repeat(256)}`)).status, 400);
      assert.deepEqual((await call(alice.token, 'GET', base)).body.tags, ['blue', 'green', 'red']);

      assert.equal((await call(alice.token, 'DELETE', `${base}/green`)).status, 204);
      assert.equal((await call(alice.token, 'DELETE', `${base}/green`)).status, 404);
      assert.deepEqual((await call(alice.token, 'GET', base)).body.tags, ['blue', 'red']);
    }
    assert.equal(
      (await call(alice.token, 'GET', '/networks/00000000-0000-4000-8000-000000000000/tags')).status,
      404,
    );

    // The filters: tags (all of), tags-any, not-tags (not all of), not-tags-any; comma-separated.
    const other = (await call(alice.token, 'POST', '/networks', { network: { name: 'n2' } })).body.network.id;
    await call(alice.token, 'PUT', `/networks/${other}/tags`, { tags: ['red'] });
    const names = async (query: string) =>
      (await call(alice.token, 'GET', `/networks?${query}`)).body.networks
        .map((n: { id: string }) => n.id)
        .sort();
    assert.deepEqual(await names('tags=red,blue'), [networkId]);
    assert.deepEqual(await names('tags=red'), [networkId, other].sort());
    assert.deepEqual(await names('tags-any=blue,nothing'), [networkId]);
    assert.deepEqual(await names('not-tags=red,blue'), [other]);
    assert.deepEqual(await names('not-tags-any=blue'), [other]);
    assert.deepEqual(
      (await call(alice.token, 'GET', `/ports?tags=red&id=${portId}`)).body.ports.map(
        (p: { id: string }) => p.id,
      ),
      [portId],
    );

    // Deleting a resource takes its tags; admins change anyone's.
    assert.equal((await call(admin.token, 'DELETE', `/networks/${other}/tags`)).status, 204);
    await call(alice.token, 'PUT', `/networks/${other}/tags`, { tags: ['gone'] });
    assert.equal((await call(alice.token, 'DELETE', `/networks/${other}`)).status, 204);
    assert.equal((await env.cloud.neutron.tags.tagsOf('networks', [other])).size, 0);
  });
});
