/**
 * The hypervisor statistics, uptime, search and servers routes, and the list's with_servers and
 * hypervisor_hostname_pattern (2.53, 2.75), through the compute API: bodies, Nova's messages, the
 * microversions each route lives in, and the admin-only policies.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DEFAULT_HOSTS } from '../cloud/hosts';
import {
  assertFault,
  openComputeTestEnv,
  recordActiveInstance,
  type ComputeTestEnv,
} from './helpers/compute-calls';

type Json = Record<string, unknown>;
let t: ComputeTestEnv;
let server = '';
const first = DEFAULT_HOSTS[0]!;

before(async () => {
  t = await openComputeTestEnv('api-hypervisor-extras');
  server = await recordActiveInstance(t);
});

after(async () => {
  await t?.close();
});

const admin = (url: string, version?: string) =>
  t.call('GET', url, { as: 'admin', ...(version ? { version } : {}) });

describe('hypervisor statistics, uptime, search and servers', () => {
  test('statistics: the sums over the enabled hosts', async () => {
    const res = await admin('/os-hypervisors/statistics');
    assert.equal(res.statusCode, 200, res.body);
    const stats = (res.json() as { hypervisor_statistics: Record<string, number> }).hypervisor_statistics;
    assert.deepEqual(Object.keys(stats).sort(), [
      'count',
      'current_workload',
      'disk_available_least',
      'free_disk_gb',
      'free_ram_mb',
      'local_gb',
      'local_gb_used',
      'memory_mb',
      'memory_mb_used',
      'running_vms',
      'vcpus',
      'vcpus_used',
    ]);
    assert.equal(stats.count, DEFAULT_HOSTS.length);
    assert.equal(
      stats.vcpus,
      DEFAULT_HOSTS.reduce((n, h) => n + h.vcpus, 0),
    );
    assert.equal(
      stats.memory_mb,
      DEFAULT_HOSTS.reduce((n, h) => n + h.memoryMb, 0),
    );
    assert.equal(stats.free_ram_mb, stats.memory_mb! - stats.memory_mb_used!);
    // A disabled service's node is not counted (compute_node_statistics filters on the service).
    await t.env.cloud.nova.setHostDisabled(first.host, true, 'maintenance');
    const fewer = (await admin('/os-hypervisors/statistics')).json() as { hypervisor_statistics: Json };
    assert.equal(fewer.hypervisor_statistics.count, DEFAULT_HOSTS.length - 1);
    assert.equal(fewer.hypervisor_statistics.vcpus, stats.vcpus - first.vcpus);
    await t.env.cloud.nova.setHostDisabled(first.host, false);
  });

  test('uptime: the uptime line of an up host, by legacy id or uuid; Nova 400/404 for bad ids', async () => {
    const list = (await admin('/os-hypervisors', '2.53')).json() as { hypervisors: Json[] };
    const hyp = list.hypervisors.find((h) => h.hypervisor_hostname === first.host)!;
    const res = await admin(`/os-hypervisors/${String(hyp.id)}/uptime`, '2.53');
    assert.equal(res.statusCode, 200, res.body);
    const body = (res.json() as { hypervisor: Json }).hypervisor;
    assert.deepEqual(Object.keys(body).sort(), ['hypervisor_hostname', 'id', 'state', 'status', 'uptime']);
    assert.equal(body.id, hyp.id);
    assert.match(String(body.uptime), /^ \d\d:\d\d:\d\d up .*load average: [\d.]+, [\d.]+, [\d.]+$/);
    const legacy = (await admin('/os-hypervisors')).json() as { hypervisors: Json[] };
    const legacyId = legacy.hypervisors.find((h) => h.hypervisor_hostname === first.host)!.id;
    assert.equal((await admin(`/os-hypervisors/${String(legacyId)}/uptime`)).statusCode, 200);
    assertFault(await admin('/os-hypervisors/abc/uptime', '2.53'), 400, 'badRequest', 'Invalid uuid abc');
    assertFault(
      await admin('/os-hypervisors/abc/uptime'),
      404,
      'itemNotFound',
      "Hypervisor with ID 'abc' could not be found.",
    );
    await t.env.cloud.nova.setHostForcedDown(first.host, true);
    assertFault(
      await admin(`/os-hypervisors/${String(legacyId)}/uptime`),
      400,
      'badRequest',
      `Compute service of ${first.host} is unavailable at this time.`,
    );
    await t.env.cloud.nova.setHostForcedDown(first.host, false);
  });

  test('search and servers before 2.53: hosts by hostname pattern, with their servers; 404 after 2.52', async () => {
    const found = (await admin(`/os-hypervisors/${first.host}/search`)).json() as { hypervisors: Json[] };
    assert.deepEqual(
      found.hypervisors.map((h) => h.hypervisor_hostname),
      [first.host],
    );
    assert.equal('servers' in found.hypervisors[0]!, false);
    const all = (await admin('/os-hypervisors/compute/search')).json() as { hypervisors: Json[] };
    assert.equal(all.hypervisors.length, DEFAULT_HOSTS.length);
    const withServers = (await admin(`/os-hypervisors/${first.host}/servers`)).json() as {
      hypervisors: Json[];
    };
    assert.deepEqual(withServers.hypervisors[0]!.servers, [{ name: `instance-${server}`, uuid: server }]);
    assertFault(
      await admin('/os-hypervisors/nowhere/search'),
      404,
      'itemNotFound',
      "No hypervisor matching 'nowhere' could be found.",
    );
    assertFault(await admin('/os-hypervisors/nowhere/servers'), 404, 'itemNotFound');
    assertFault(await admin(`/os-hypervisors/${first.host}/search`, '2.53'), 404, 'itemNotFound');
  });

  test('2.53 list filters: with_servers (an empty list from 2.75) and a hostname pattern without paging', async () => {
    const listed = (await admin(`/os-hypervisors?with_servers=true`, '2.53')).json() as {
      hypervisors: Json[];
    };
    const mine = listed.hypervisors.find((h) => h.hypervisor_hostname === first.host)!;
    assert.deepEqual(mine.servers, [{ name: `instance-${server}`, uuid: server }]);
    const empty = listed.hypervisors.find((h) => h.hypervisor_hostname !== first.host)!;
    assert.equal('servers' in empty, false);
    const at275 = (await admin(`/os-hypervisors/detail?with_servers=yes`, '2.75')).json() as {
      hypervisors: Json[];
    };
    assert.deepEqual(at275.hypervisors.find((h) => h.hypervisor_hostname !== first.host)!.servers, []);
    const shown = (await admin(`/os-hypervisors/${String(mine.id)}?with_servers=1`, '2.53')).json() as {
      hypervisor: Json;
    };
    assert.deepEqual(shown.hypervisor.servers, [{ name: `instance-${server}`, uuid: server }]);
    assertFault(await admin('/os-hypervisors?with_servers=maybe', '2.53'), 400, 'badRequest');
    const pattern = (
      await admin(`/os-hypervisors?hypervisor_hostname_pattern=${first.host}`, '2.53')
    ).json() as {
      hypervisors: Json[];
    };
    assert.deepEqual(
      pattern.hypervisors.map((h) => h.hypervisor_hostname),
      [first.host],
    );
    assertFault(
      await admin(`/os-hypervisors?hypervisor_hostname_pattern=${first.host}&limit=1`, '2.53'),
      400,
      'badRequest',
      'Paging over hypervisors with the hypervisor_hostname_pattern query parameter is not supported.',
    );
    assertFault(
      await admin('/os-hypervisors?hypervisor_hostname_pattern=nowhere', '2.53'),
      404,
      'itemNotFound',
      "No hypervisor matching 'nowhere' could be found.",
    );
  });

  test('each is admin only, with its own policy', async () => {
    for (const [url, rule] of [
      ['/os-hypervisors/statistics', 'statistics'],
      ['/os-hypervisors/1/uptime', 'uptime'],
      [`/os-hypervisors/${first.host}/search`, 'search'],
      [`/os-hypervisors/${first.host}/servers`, 'servers'],
    ] as const) {
      assertFault(
        await t.call('GET', url, { as: 'member' }),
        403,
        'forbidden',
        `Policy doesn't allow os_compute_api:os-hypervisors:${rule} to be performed.`,
      );
    }
  });
});
