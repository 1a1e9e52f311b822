import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { openServiceDb } from '../cloud/db';
import { isCloudError } from '../cloud/errors';
import { neutronMigrations } from '../cloud/neutron/migrations';
import type { NeutronDb } from '../cloud/neutron/schema';
import { isUniqueViolation } from '../cloud/db';
import {
  cidrContains,
  defaultAllocationPools,
  firstFreeAddress,
  formatIpv4,
  parseCidr,
  parseIpv4,
} from '../cloud/neutron/ipv4';
import { MAC_PATTERN } from '../cloud/neutron/mac';
import { Neutron } from '../cloud/neutron/neutron';
import { planSubnet } from '../cloud/neutron/subnet-plan';
import type { Network, Port } from '../cloud/neutron/types';
import { testDbConfig, testDbDialect, type TestDb } from './helpers/cloud-db';

const demo = { projectId: 'demo-project', roles: ['member'] };
const alt = { projectId: 'alt-project', roles: ['member'] };
const admin = { projectId: 'admin-project', roles: ['admin'] };

function isType(type: Parameters<typeof isCloudError>[1], message?: RegExp) {
  return (err: unknown) => isCloudError(err, type) && (!message || message.test(err.message));
}

describe('IPv4 helpers', () => {
  test('parse and format round-trip every address', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), (n) => parseIpv4(formatIpv4(n)) === n));
    assert.equal(parseIpv4('10.0.0.1'), 167772161);
    for (const bad of ['10.0.0', '10.0.0.256', '10.0.0.01', '10.0.0.-1', 'a.b.c.d', '', '1.2.3.4.5']) {
      assert.equal(parseIpv4(bad), undefined, bad);
    }
  });

  test('CIDRs: host bits must be zero, ranges are right', () => {
    const parsed = parseCidr('10.0.0.0/24');
    assert.ok(parsed.ok);
    assert.equal(formatIpv4(parsed.cidr.broadcast), '10.0.0.255');
    assert.ok(cidrContains(parsed.cidr, parseIpv4('10.0.0.77') ?? 0));
    assert.ok(!cidrContains(parsed.cidr, parseIpv4('10.0.1.0') ?? 0));
    assert.deepEqual(parseCidr('10.0.0.1/24'), {
      ok: false,
      reason: 'host-bits',
      recommended: '10.0.0.0/24',
    });
    assert.deepEqual(parseCidr('10.0.0.0/33'), { ok: false, reason: 'syntax' });
    assert.deepEqual(parseCidr('10.0.0.0'), { ok: false, reason: 'syntax' });
  });

  test('default pools exclude the network, broadcast and gateway addresses', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 8, max: 30 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        (prefix, seed) => {
          const size = 2 ** (32 - prefix);
          const network = Math.floor(seed / size) * size;
          const cidr = { network, prefixLength: prefix, broadcast: network + size - 1 };
          const gateway = network + 1 + (seed % (size - 2));
          const pools = defaultAllocationPools(cidr, gateway);
          const total = pools.reduce((sum, p) => sum + p.last - p.first + 1, 0);
          return (
            total === size - 3 &&
            pools.every(
              (p) =>
                p.first > network &&
                p.last < cidr.broadcast &&
                !(gateway >= p.first && gateway <= p.last) &&
                p.first <= p.last,
            )
          );
        },
      ),
    );
  });

  test('firstFreeAddress skips taken addresses and reports exhaustion', () => {
    const pools = [
      { first: 2, last: 3 },
      { first: 10, last: 10 },
    ];
    assert.equal(firstFreeAddress(pools, new Set([2])), 3);
    assert.equal(firstFreeAddress(pools, new Set([2, 3])), 10);
    assert.equal(firstFreeAddress(pools, new Set([2, 3, 10])), undefined);
  });

  test('subnet plans follow Neutron: 10.0.0.0/24 with gateway .1 pools .2-.254', () => {
    const plan = planSubnet({ cidr: '10.0.0.0/24' });
    assert.equal(formatIpv4(plan.gateway ?? 0), '10.0.0.1');
    assert.deepEqual(
      plan.pools.map((p) => [formatIpv4(p.first), formatIpv4(p.last)]),
      [['10.0.0.2', '10.0.0.254']],
    );
    const mid = planSubnet({ cidr: '192.168.5.0/24', gatewayIp: '192.168.5.100' });
    assert.deepEqual(
      mid.pools.map((p) => [formatIpv4(p.first), formatIpv4(p.last)]),
      [
        ['192.168.5.1', '192.168.5.99'],
        ['192.168.5.101', '192.168.5.254'],
      ],
    );
    const noGateway = planSubnet({ cidr: '10.9.0.0/30', gatewayIp: null });
    assert.equal(noGateway.gateway, undefined);
    assert.deepEqual(
      noGateway.pools.map((p) => [formatIpv4(p.first), formatIpv4(p.last)]),
      [['10.9.0.1', '10.9.0.2']],
    );
  });

  test('subnet plans refuse bad CIDRs, gateways and pools', () => {
    const cases: Array<[Parameters<typeof planSubnet>[0], RegExp]> = [
      [{ cidr: '10.0.0.1/24' }, /'10\.0\.0\.0\/24' is recommended/],
      [{ cidr: 'nonsense' }, /not a valid IPv4 CIDR/],
      [{ cidr: '10.0.0.0/31' }, /prefix length/],
      [{ cidr: '10.0.0.0/24', gatewayIp: '10.0.1.1' }, /not a usable host address/],
      [{ cidr: '10.0.0.0/24', gatewayIp: '10.0.0.255' }, /not a usable host address/],
      [
        { cidr: '10.0.0.0/24', allocationPools: [{ start: '10.0.0.1', end: '10.0.0.20' }] },
        /Gateway ip 10\.0\.0\.1 conflicts with allocation pool/,
      ],
      [
        { cidr: '10.0.0.0/24', allocationPools: [{ start: '10.0.0.0', end: '10.0.0.20' }] },
        /network or broadcast/,
      ],
      [
        { cidr: '10.0.0.0/24', allocationPools: [{ start: '10.0.0.200', end: '10.0.0.255' }] },
        /network or broadcast/,
      ],
      [
        {
          cidr: '10.0.0.0/24',
          allocationPools: [
            { start: '10.0.0.10', end: '10.0.0.20' },
            { start: '10.0.0.20', end: '10.0.0.30' },
          ],
        },
        /overlap/,
      ],
      [{ cidr: '10.0.0.0/24', allocationPools: [{ start: '10.0.0.30', end: '10.0.0.20' }] }, /starts after/],
    ];
    for (const [request, message] of cases) {
      assert.throws(
        () => planSubnet(request),
        (err: unknown) => isCloudError(err, 'BadRequest') && message.test(err.message),
        JSON.stringify(request),
      );
    }
  });
});

describe(`Neutron on ${testDbDialect}`, () => {
  let testDb: TestDb;
  let neutron: Neutron;
  let privateNet: Network;
  let privateSubnetId: string;

  before(async () => {
    testDb = testDbConfig('neutron');
    neutron = await Neutron.open({ db: testDb.config, bindingFailHosts: ['broken-host'] });
    privateNet = await neutron.createNetwork({ name: 'private', projectId: demo.projectId });
    privateSubnetId = (
      await neutron.createSubnet({ networkId: privateNet.id, cidr: '10.0.0.0/24', name: 'private-subnet' })
    ).id;
  });
  after(async () => {
    await neutron?.close();
    await testDb?.cleanup();
  });

  test('a subnet stores its gateway and the default pool, and ports never get reserved addresses', async () => {
    const subnet = await neutron.getSubnet(privateSubnetId);
    assert.equal(subnet.gatewayIp, '10.0.0.1');
    assert.deepEqual(subnet.allocationPools, [{ start: '10.0.0.2', end: '10.0.0.254' }]);
    assert.deepEqual((await neutron.getNetwork('private', demo)).subnetIds, [privateSubnetId]);

    // A /29 has 8 addresses: network .0, gateway .1, broadcast .7 leave exactly .2-.6.
    const small = await neutron.createNetwork({ name: 'small', projectId: demo.projectId });
    await neutron.createSubnet({ networkId: small.id, cidr: '10.20.0.0/29' });
    const ips: string[] = [];
    for (let i = 0; i < 5; i++) {
      const port = await neutron.createPort({
        requestKey: `small-${i}`,
        networkId: small.id,
        projectId: demo.projectId,
      });
      ips.push(port.fixedIps[0]?.ipAddress ?? '');
    }
    assert.deepEqual(ips, ['10.20.0.2', '10.20.0.3', '10.20.0.4', '10.20.0.5', '10.20.0.6']);
    await assert.rejects(
      neutron.createPort({ requestKey: 'small-full', networkId: small.id, projectId: demo.projectId }),
      (err: unknown) =>
        isCloudError(err, 'IpAddressGenerationFailure') &&
        err.message === `No more IP addresses available on network ${small.id}.` &&
        err.code === 409 &&
        !err.retryable,
    );
    assert.equal((await neutron.listPorts({ networkId: small.id })).length, 5);
    // No address left for the network's DHCP port: none is made, and the IPAM is unchanged.
    assert.equal(await neutron.ensureDhcpPort(small.id), null);
    assert.equal((await neutron.listPorts({ networkId: small.id })).length, 5);
  });

  test('a network without a DHCP-enabled subnet gets no DHCP port', async () => {
    const quiet = await neutron.createNetwork({ name: 'no-dhcp', projectId: demo.projectId });
    assert.equal(await neutron.ensureDhcpPort(quiet.id), null);
    await neutron.createSubnet({ networkId: quiet.id, cidr: '10.21.0.0/24', enableDhcp: false });
    assert.equal(await neutron.ensureDhcpPort(quiet.id), null);
    assert.deepEqual(await neutron.listPorts({ networkId: quiet.id }), []);
    await assert.rejects(neutron.ensureDhcpPort(randomUUID()), isType('NotFound'));
  });

  test('bad subnet input changes nothing; overlapping subnets are refused', async () => {
    const before = (await neutron.listSubnets(privateNet.id)).length;
    await assert.rejects(
      neutron.createSubnet({ networkId: privateNet.id, cidr: '10.0.0.128/25' }),
      /overlaps/,
    );
    await assert.rejects(
      neutron.createSubnet({ networkId: privateNet.id, cidr: '10.1.0.5/24' }),
      isType('BadRequest'),
    );
    await assert.rejects(
      neutron.createSubnet({ networkId: privateNet.id, cidr: '10.1.0.0/24', bogus: true } as never),
      isType('BadRequest'),
    );
    await assert.rejects(
      neutron.createSubnet({ networkId: 'no-such-network', cidr: '10.1.0.0/24' }),
      isType('NotFound'),
    );
    await assert.rejects(
      neutron.createNetwork({ name: 'x'.repeat(256), projectId: demo.projectId }),
      isType('BadRequest'),
    );
    assert.equal((await neutron.listSubnets(privateNet.id)).length, before);
  });

  test('visibility: private networks only to their project, shared and external to all', async () => {
    const shared = await neutron.createNetwork({ name: 'public', projectId: admin.projectId, shared: true });
    const external = await neutron.createNetwork({
      name: 'ext-net',
      projectId: admin.projectId,
      external: true,
    });
    assert.equal((await neutron.getNetwork('private', demo)).id, privateNet.id);
    await assert.rejects(neutron.getNetwork(privateNet.id, alt), isType('NotFound'));
    await assert.rejects(neutron.getNetwork('private', alt), /Network private could not be found/);
    assert.equal((await neutron.getNetwork(privateNet.id, admin)).id, privateNet.id);
    assert.equal((await neutron.getNetwork('public', alt)).id, shared.id);
    assert.equal((await neutron.getNetwork(external.id, alt)).external, true);
    const altSees = (await neutron.listNetworks(alt)).map((n) => n.id);
    assert.ok(altSees.includes(shared.id) && !altSees.includes(privateNet.id));

    // A port on another project's private network: the network does not exist for that project.
    await assert.rejects(
      neutron.createPort({
        requestKey: 'alt-on-private',
        networkId: privateNet.id,
        projectId: alt.projectId,
      }),
      isType('NotFound'),
    );
    await neutron.createSubnet({ networkId: shared.id, cidr: '172.24.4.0/24' });
    const altPort = await neutron.createPort({
      requestKey: 'alt-on-public',
      networkId: shared.id,
      projectId: alt.projectId,
    });
    assert.equal(altPort.fixedIps[0]?.ipAddress, '172.24.4.2');
    assert.equal(await neutron.deletePort(altPort.id), true);
  });

  test('createPort is idempotent by requestKey, also for concurrent retries', async () => {
    const request = {
      requestKey: 'req-1/instance-a/net-0',
      networkId: privateNet.id,
      projectId: demo.projectId,
      deviceId: 'instance-a',
      deviceOwner: 'compute:nova',
    };
    const results = await Promise.all(Array.from({ length: 8 }, () => neutron.createPort(request)));
    const again = await neutron.createPort(request);
    const ids = new Set([...results, again].map((p) => p.id));
    assert.equal(ids.size, 1);
    const allocations = await neutron.listIpAllocations(privateNet.id);
    assert.equal(allocations.filter((a) => a.portId === again.id).length, 1);
    assert.deepEqual(await neutron.listPorts({ deviceId: 'instance-a' }).then((ps) => ps.map((p) => p.id)), [
      again.id,
    ]);
    assert.equal(again.deviceOwner, 'compute:nova');
    assert.equal(await neutron.deletePort(again.id), true);
  });

  test('port life: DOWN/unbound → bound ovs → ACTIVE → unbound; delete frees the IP and is idempotent', async () => {
    const port = await neutron.createPort({
      requestKey: 'life-1',
      networkId: privateNet.id,
      projectId: demo.projectId,
      deviceId: 'instance-life',
      deviceOwner: 'compute:nova',
    });
    assert.match(port.macAddress, MAC_PATTERN);
    assert.equal(port.status, 'DOWN');
    assert.equal(port.bindingVifType, 'unbound');
    assert.equal(port.bindingHostId, null);
    const group = await neutron.ensureDefaultSecurityGroup(demo.projectId);
    assert.deepEqual(port.securityGroupIds, [group.id]);

    await assert.rejects(neutron.markPortActive(port.id), /not bound/);
    const binding = await neutron.bindPort(port.id, 'compute1');
    assert.equal(binding.vifType, 'ovs');
    assert.equal(binding.vifDetails.bridge_name, 'br-int');
    assert.equal(binding.port.bindingHostId, 'compute1');
    assert.equal(binding.port.status, 'DOWN');
    await assert.rejects(
      neutron.markPortActive(port.id, 'compute2'),
      /bound to host compute1, not to compute2/,
    );
    const active = await neutron.markPortActive(port.id, 'compute1');
    assert.equal(active.status, 'ACTIVE');
    assert.equal((await neutron.markPortActive(port.id)).status, 'ACTIVE');
    // Rebinding to another host (a reschedule) takes it DOWN until that host plugs it.
    assert.equal((await neutron.bindPort(port.id, 'compute2')).port.status, 'DOWN');

    const unbound = await neutron.unbindPort(port.id);
    assert.equal(unbound?.bindingVifType, 'unbound');
    assert.equal(unbound?.bindingHostId, null);
    assert.equal(unbound?.status, 'DOWN');

    const ip = port.fixedIps[0]?.ipAddress;
    assert.equal(await neutron.deletePort(port.id), true);
    assert.equal(await neutron.deletePort(port.id), false);
    assert.equal(await neutron.unbindPort(port.id), null);
    await assert.rejects(neutron.getPort(port.id), isType('NotFound'));
    assert.ok(!(await neutron.listIpAllocations(privateNet.id)).some((a) => a.ipAddress === ip));
    const next = await neutron.createPort({
      requestKey: 'life-2',
      networkId: privateNet.id,
      projectId: demo.projectId,
    });
    assert.equal(next.fixedIps[0]?.ipAddress, ip, 'the freed address is handed out again');
    await neutron.deletePort(next.id);
  });

  test('binding on a failing host records binding_failed and raises PortBindingFailed', async () => {
    const port = await neutron.createPort({
      requestKey: 'bind-fail',
      networkId: privateNet.id,
      projectId: demo.projectId,
    });
    await assert.rejects(neutron.bindPort(port.id, 'broken-host'), isType('PortBindingFailed'));
    const failed = await neutron.getPort(port.id);
    assert.equal(failed.bindingVifType, 'binding_failed');
    assert.equal(failed.status, 'DOWN');
    await assert.rejects(neutron.bindPort('no-such-port', 'compute1'), isType('NotFound'));
    await neutron.deletePort(port.id);
  });

  test('fixed IP requests: a free address is taken, an allocated one is a conflict', async () => {
    const port = await neutron.createPort({
      requestKey: 'fixed-1',
      networkId: privateNet.id,
      projectId: demo.projectId,
      fixedIps: [{ ipAddress: '10.0.0.200' }],
    });
    assert.deepEqual(port.fixedIps, [{ subnetId: privateSubnetId, ipAddress: '10.0.0.200' }]);
    await assert.rejects(
      neutron.createPort({
        requestKey: 'fixed-2',
        networkId: privateNet.id,
        projectId: demo.projectId,
        fixedIps: [{ ipAddress: '10.0.0.200' }],
      }),
      /IP address 10\.0\.0\.200 already allocated in subnet/,
    );
    await assert.rejects(
      neutron.createPort({
        requestKey: 'fixed-3',
        networkId: privateNet.id,
        projectId: demo.projectId,
        fixedIps: [{ ipAddress: '10.0.0.1' }],
      }),
      isType('BadRequest'),
    );
    assert.equal((await neutron.listPorts({ networkId: privateNet.id })).length, 1);
    await neutron.deletePort(port.id);
  });

  test('updatePort: fixed IPs replaced as Neutron does, groups replaced; a refused update keeps every row', async () => {
    const net = await neutron.createNetwork({ name: 'upd', projectId: demo.projectId });
    const s1 = (await neutron.createSubnet({ networkId: net.id, cidr: '10.70.0.0/29', enableDhcp: false }))
      .id;
    const s2 = (await neutron.createSubnet({ networkId: net.id, cidr: '10.71.0.0/29', enableDhcp: false }))
      .id;
    const group = await neutron.securityGroups.createGroup({ projectId: demo.projectId, name: 'web' });
    const port = await neutron.createPort({
      requestKey: 'upd-1',
      networkId: net.id,
      projectId: demo.projectId,
      macAddress: 'FA:16:3E:AA:BB:CC',
      fixedIps: [{ subnetId: s1 }, { subnetId: s2, ipAddress: '10.71.0.6' }],
      securityGroupIds: [],
    });
    assert.equal(port.macAddress, 'fa:16:3e:aa:bb:cc');
    assert.deepEqual(port.securityGroupIds, []);
    const held = async () =>
      (await neutron.listIpAllocations(net.id))
        .map((a) => `${a.subnetId === s1 ? 's1' : 's2'}:${a.ipAddress}`)
        .sort();
    assert.deepEqual(await held(), ['s1:10.70.0.2', 's2:10.71.0.6']);

    const updated = await neutron.updatePort({
      id: port.id,
      fixedIps: [{ subnetId: s2, ipAddress: '10.71.0.6' }, { subnetId: s2 }],
      securityGroupIds: [group.id, group.id],
    });
    assert.deepEqual(updated.securityGroupIds, [group.id]);
    assert.deepEqual(await held(), ['s2:10.71.0.2', 's2:10.71.0.6']);

    const before = { ips: await held(), port: await neutron.getPort(port.id) };
    const other = await neutron.createPort({
      requestKey: 'upd-2',
      networkId: net.id,
      projectId: demo.projectId,
      fixedIps: [{ subnetId: s1 }],
    });
    await assert.rejects(
      neutron.updatePort({
        id: port.id,
        name: 'x',
        fixedIps: [{ subnetId: s1, ipAddress: other.fixedIps[0]!.ipAddress }],
      }),
      isType('Conflict'),
    );
    await assert.rejects(
      neutron.updatePort({ id: port.id, name: 'x', fixedIps: [], securityGroupIds: ['no-such-group'] }),
      isType('NotFound'),
    );
    await assert.rejects(
      neutron.createPort({
        requestKey: 'upd-3',
        networkId: net.id,
        projectId: demo.projectId,
        macAddress: 'fa:16:3e:aa:bb:cc',
      }),
      isType('Conflict'),
    );
    assert.deepEqual(await neutron.getPort(port.id), before.port);
    assert.deepEqual(
      (await held()).filter((h) => h.startsWith('s2')),
      before.ips,
    );
    await assert.rejects(
      neutron.updatePort({ id: '00000000-0000-0000-0000-000000000000', name: 'x' }),
      isType('NotFound'),
    );

    for (const p of [port, other]) await neutron.deletePort(p.id);
    assert.deepEqual(await held(), []);
    await neutron.securityGroups.deleteGroup(group.id, 'all');
    await neutron.deleteNetwork(net.id);
  });

  test('one default security group per project, even when ensured concurrently', async () => {
    const groups = await Promise.all(
      Array.from({ length: 10 }, () => neutron.ensureDefaultSecurityGroup('sg-project')),
    );
    assert.equal(new Set(groups.map((g) => g.id)).size, 1);
    const [group] = groups;
    assert.equal(group?.name, 'default');
    assert.equal(group?.rules.length, 4);
    assert.deepEqual(
      group?.rules.filter((r) => r.direction === 'ingress').map((r) => r.remoteGroupId),
      [group?.id, group?.id],
    );
    assert.ok(group?.rules.filter((r) => r.direction === 'egress').every((r) => r.remoteGroupId === null));
  });

  test('deleteNetwork refuses while ports remain, then deletes once (idempotent)', async () => {
    const net = await neutron.createNetwork({
      name: 'temp',
      projectId: demo.projectId,
      requestKey: 'net-temp',
    });
    assert.equal(
      (await neutron.createNetwork({ name: 'temp', projectId: demo.projectId, requestKey: 'net-temp' })).id,
      net.id,
    );
    await neutron.createSubnet({ networkId: net.id, cidr: '10.30.0.0/24' });
    const port = await neutron.createPort({
      requestKey: 'temp-port',
      networkId: net.id,
      projectId: demo.projectId,
    });
    await assert.rejects(neutron.deleteNetwork(net.id), /ports still in use/);
    await neutron.deletePort(port.id);
    assert.equal(await neutron.deleteNetwork(net.id), true);
    assert.equal(await neutron.deleteNetwork(net.id), false);
    assert.deepEqual(await neutron.listSubnets(net.id), []);
  });

  test('descriptions, DNS servers and host routes live in their rows and go with the subnet', async () => {
    const net = await neutron.createNetwork({
      name: 'extras',
      projectId: demo.projectId,
      description: 'd',
      adminStateUp: false,
    });
    assert.deepEqual([net.description, net.adminStateUp], ['d', false]);
    const subnet = await neutron.createSubnet({
      networkId: net.id,
      cidr: '10.77.0.0/28',
      dnsNameservers: ['8.8.8.8', '1.1.1.1'],
      hostRoutes: [{ destination: '10.9.0.0/16', nexthop: '10.77.0.5' }],
    });
    assert.deepEqual(subnet.dnsNameservers, ['8.8.8.8', '1.1.1.1']);
    const updated = await neutron.updateSubnet({
      id: subnet.id,
      dnsNameservers: ['9.9.9.9'],
      hostRoutes: [],
    });
    assert.deepEqual([updated.dnsNameservers, updated.hostRoutes], [['9.9.9.9'], []]);
    await assert.rejects(
      neutron.updateSubnet({ id: subnet.id, dnsNameservers: ['9.9.9.9', '9.9.9.9'] }),
      /Duplicate nameserver/,
    );
    assert.deepEqual((await neutron.getSubnet(subnet.id)).dnsNameservers, ['9.9.9.9']);
    assert.equal(await neutron.deleteNetwork(net.id), true);
    // The subnet's DNS rows went with it (foreign keys with cascade).
    const raw = await openServiceDb<NeutronDb>('neutron', neutronMigrations, testDb.config);
    try {
      const left = await raw.db
        .selectFrom('dnsnameservers')
        .select('address')
        .where('subnet_id', '=', subnet.id)
        .execute();
      assert.deepEqual(left, []);
    } finally {
      await raw.close();
    }
  });

  test('security group writes: rows of groups and rules; a group in use or the default one is kept', async () => {
    const groups = neutron.securityGroups;
    const mine = { projectId: 'sg-project' };
    const web = await groups.createGroup({ projectId: mine.projectId, name: 'web', description: 'w' });
    const rule = await groups.createRule(
      {
        securityGroupId: web.id,
        direction: 'ingress',
        protocol: 'tcp',
        portRangeMin: 22,
        portRangeMax: 22,
        description: 'ssh',
      },
      mine,
    );
    const raw = await openServiceDb<NeutronDb>('neutron', neutronMigrations, testDb.config);
    try {
      const ruleRows = () =>
        raw.db
          .selectFrom('security_group_rules')
          .select(['direction', 'protocol', 'port_range_min', 'description'])
          .where('security_group_id', '=', web.id)
          .orderBy('direction')
          .orderBy('ethertype')
          .execute();
      assert.deepEqual(await ruleRows(), [
        { direction: 'egress', protocol: null, port_range_min: null, description: '' },
        { direction: 'egress', protocol: null, port_range_min: null, description: '' },
        { direction: 'ingress', protocol: 'tcp', port_range_min: 22, description: 'ssh' },
      ]);
      await assert.rejects(
        groups.createRule(
          {
            securityGroupId: web.id,
            direction: 'ingress',
            protocol: 'tcp',
            portRangeMin: 22,
            portRangeMax: 22,
          },
          mine,
        ),
        isType('Conflict', /Rule id is /),
      );
      await assert.rejects(groups.visibleGroup(web.id, { projectId: 'someone-else' }), isType('NotFound'));
      await assert.rejects(groups.deleteRule(rule.id, { projectId: 'someone-else' }), isType('NotFound'));

      // The default group, bound to a port: its project may not delete it, an admin neither while in use.
      const net = await neutron.createNetwork({ name: 'sg-net', projectId: mine.projectId });
      await neutron.createSubnet({ networkId: net.id, cidr: '10.78.0.0/28' });
      const port = await neutron.createPort({
        requestKey: 'sg-port',
        networkId: net.id,
        projectId: mine.projectId,
      });
      const defaultGroup = port.securityGroupIds[0]!;
      await assert.rejects(groups.deleteGroup(defaultGroup, mine), isType('Conflict', /Insufficient rights/));
      await assert.rejects(groups.deleteGroup(defaultGroup, 'all'), isType('Conflict', /in use/));
      await neutron.deletePort(port.id);
      await neutron.deleteNetwork(net.id);

      await groups.deleteRule(rule.id, mine);
      assert.equal((await ruleRows()).length, 2);
      await groups.deleteGroup(web.id, mine);
      assert.deepEqual(await ruleRows(), []);
      assert.deepEqual(
        (await neutron.listSecurityGroups(mine.projectId)).map((g) => g.id),
        [defaultGroup],
      );
    } finally {
      await raw.close();
    }
  });

  test('the database itself refuses a second allocation of an address, a duplicate MAC, a second default group', async () => {
    const port = await neutron.createPort({
      requestKey: 'db-invariants',
      networkId: privateNet.id,
      projectId: demo.projectId,
    });
    const fixed = port.fixedIps[0];
    assert.ok(fixed);
    // A raw handle on the same database, bypassing the service's code (migrations are already applied).
    const raw = await openServiceDb<NeutronDb>('neutron', neutronMigrations, testDb.config);
    try {
      const now = Date.now();
      const row = {
        id: 'f0000000-0000-4000-8000-000000000001',
        name: '',
        description: '',
        network_id: privateNet.id,
        project_id: demo.projectId,
        mac_address: port.macAddress,
        admin_state_up: 1,
        status: 'DOWN',
        device_id: '',
        device_owner: '',
        binding_host_id: null,
        binding_vif_type: 'unbound',
        binding_vif_details: '{}',
        binding_vnic_type: 'normal',
        request_key: null,
        created_at: now,
        updated_at: now,
      };
      await assert.rejects(raw.db.insertInto('ports').values(row).execute(), isUniqueViolation);
      await raw.db
        .insertInto('ports')
        .values({ ...row, mac_address: 'fa:16:3e:00:00:00' })
        .execute();
      await assert.rejects(
        raw.db
          .insertInto('ipallocations')
          .values({
            ip_address: fixed.ipAddress,
            subnet_id: fixed.subnetId,
            network_id: privateNet.id,
            port_id: row.id,
          })
          .execute(),
        isUniqueViolation,
      );
      const group = await neutron.ensureDefaultSecurityGroup(demo.projectId);
      await assert.rejects(
        raw.db
          .insertInto('default_security_groups')
          .values({ project_id: demo.projectId, security_group_id: group.id })
          .execute(),
        isUniqueViolation,
      );
      await raw.db.deleteFrom('ports').where('id', '=', row.id).execute();
    } finally {
      await raw.close();
    }
    await neutron.deletePort(port.id);
  });

  test('200 parallel port creations for 100 free addresses: exactly 100 succeed, distinct, nothing leaked', async () => {
    const net = await neutron.createNetwork({ name: 'race', projectId: demo.projectId });
    const subnet = await neutron.createSubnet({
      networkId: net.id,
      cidr: '10.50.0.0/24',
      allocationPools: [{ start: '10.50.0.10', end: '10.50.0.109' }],
    });
    // On a server, a second service instance (own connection pool) makes the interleaving real.
    const second = testDbDialect === 'sqlite' ? neutron : await Neutron.open({ db: testDb.config });
    try {
      const outcomes = await Promise.allSettled(
        Array.from({ length: 200 }, (_, i) =>
          (i % 2 ? second : neutron).createPort({
            requestKey: `race-${i}`,
            networkId: net.id,
            projectId: demo.projectId,
            deviceId: `instance-${i}`,
            deviceOwner: 'compute:nova',
          }),
        ),
      );
      const ports = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
      const failures = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []));
      assert.equal(ports.length, 100);
      assert.equal(failures.length, 100);
      assert.ok(
        failures.every((e) => isCloudError(e, 'IpAddressGenerationFailure')),
        String(failures[0]),
      );

      const ips = ports.map((p: Port) => p.fixedIps[0]?.ipAddress);
      assert.equal(new Set(ips).size, 100);
      for (const ip of ips) {
        const last = Number(ip?.split('.')[3]);
        assert.ok(ip?.startsWith('10.50.0.') && last >= 10 && last <= 109, ip);
      }
      const macs = ports.map((p) => p.macAddress);
      assert.equal(new Set(macs).size, 100);
      assert.ok(macs.every((m) => MAC_PATTERN.test(m)));

      // The rows: 100 ports, 100 allocations, each pointing at one of them, no more.
      const rows = await neutron.listPorts({ networkId: net.id });
      assert.equal(rows.length, 100);
      const allocations = await neutron.listIpAllocations(net.id);
      assert.equal(allocations.length, 100);
      const portIds = new Set(rows.map((p) => p.id));
      assert.ok(allocations.every((a) => portIds.has(a.portId)));
      assert.deepEqual(await neutron.ipAvailability(net.id), [
        { subnetId: subnet.id, cidr: '10.50.0.0/24', totalIps: 100, usedIps: 100 },
      ]);

      await Promise.all(rows.map((p, i) => (i % 2 ? second : neutron).deletePort(p.id)));
      assert.equal((await neutron.listIpAllocations(net.id)).length, 0);
    } finally {
      if (second !== neutron) await second.close();
    }
  });
});
