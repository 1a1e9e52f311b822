/**
 * Evacuate end to end with the unmodified `openstack` CLI: compute1 and compute2 run as their own worker
 * processes (compute3 with the controller, disabled). Two servers boot on compute1 (compute2 disabled
 * meanwhile with `compute service set --disable`, 2.53's PUT /os-services/{id}), one with a volume; an
 * evacuate while compute1 is up is refused (400); compute1's worker is killed (-9) and, as Nova's operators
 * do, forced down (`compute service set --down`); `server evacuate` (the CLI's own microversion, and 2.29
 * with `--host`) rebuilds both on compute2 with the same ports, IPs and
 * volume. compute1's worker then starts again and its init_host destroys the evacuated guests it still had
 * (instance directories, domains, VIFs, volume connections); its force-down is lifted the 2.11 way
 * (PUT /os-services/force-down); the leak audit is empty. Needs
 * scripts/setup-openstack-clients.sh (the test fails and says so when it has not run).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openComputeHost } from '../cloud/index';
import { capabilitiesOf, defaultHostSpec } from '../cloud/hosts';
import type { ComputeHost } from '../cloud/compute';
import { pollUntil } from '../lib/poll';
import type { ApiDeployment } from './helpers/api-deployment';
import { runClient, stopChild } from './helpers/deployment';
import { openstack, openstackJson, createActiveServer, startCliDeployment } from './helpers/openstack-cli';

type Json = Record<string, unknown>;

const SOURCE = 'compute1';
const TARGET = 'compute2';
const IDLE = 'compute3';

describe('the openstack CLI: evacuate from a dead compute host', { timeout: 20 * 60_000 }, () => {
  let d: ApiDeployment;

  before(async () => {
    d = await startCliDeployment('api-evacuate-cli', { computeWorkers: [SOURCE, TARGET] });
  });
  after(async () => {
    await d?.close();
  });

  const admin = (args: string[], timeoutMs?: number) => openstack(d.adminEnv, args, timeoutMs);
  const adminJson = <T = Json>(args: string[], timeoutMs?: number) =>
    openstackJson<T>(d.adminEnv, args, timeoutMs);
  const serviceSet = async (version: string, args: string[]) => {
    const run = await admin(['--os-compute-api-version', version, 'compute', 'service', 'set', ...args]);
    assert.equal(run.code, 0, run.stderr);
  };
  const service = async (host: string) => {
    const [row] = await adminJson<Json[]>([
      '--os-compute-api-version',
      '2.53',
      'compute',
      'service',
      'list',
      '--long',
      '--host',
      host,
    ]);
    assert.ok(row, `the service of ${host}`);
    return row;
  };
  const hostOf = async (id: string) =>
    (await adminJson(['server', 'show', id]))['OS-EXT-SRV-ATTR:host'] as string;
  const ports = async (id: string) =>
    (await adminJson<Json[]>(['port', 'list', '--server', id, '--long']))
      .map((p) => ({ id: p.ID, mac: p['MAC Address'], ips: JSON.stringify(p['Fixed IP Addresses']) }))
      .sort((a, b) => String(a.id).localeCompare(String(b.id)));

  test('server evacuate after kill -9 and force-down: same ports, IPs and volume on compute2; compute1 reaps when back', async () => {
    // Only compute1 takes new servers while they boot.
    await serviceSet('2.53', ['--disable', '--disable-reason', 'evacuate test', TARGET, 'nova-compute']);
    await serviceSet('2.53', ['--disable', IDLE, 'nova-compute']);
    assert.equal((await service(TARGET)).Status, 'disabled');
    const boot = async (name: string) => {
      const created = await createActiveServer(d.demoEnv, name);
      return created.id as string;
    };
    const plain = await boot('evac-plain');
    const withVolume = await boot('evac-volume');
    assert.equal(await hostOf(plain), SOURCE);
    assert.equal(await hostOf(withVolume), SOURCE);
    const volume = await openstackJson<Json>(d.demoEnv, ['volume', 'create', '--size', '1', 'evac-data']);
    const volumeId = volume.id as string;
    await pollUntil(
      async () =>
        (await openstackJson<Json>(d.demoEnv, ['volume', 'show', volumeId])).status === 'available' ||
        undefined,
      { timeoutMs: 60_000, what: `volume ${volumeId} available` },
    );
    const added = await openstack(d.demoEnv, ['server', 'add', 'volume', withVolume, volumeId], 180_000);
    assert.equal(added.code, 0, added.stderr);
    // The legacy (2.1) enable: compute2 may take the evacuated servers; compute3 stays disabled.
    await serviceSet('2.1', ['--enable', TARGET, 'nova-compute']);
    assert.equal((await service(TARGET)).Status, 'enabled');
    const portsBefore = { [plain]: await ports(plain), [withVolume]: await ports(withVolume) };

    // Nova refuses to evacuate from a host whose nova-compute is up, and changes nothing.
    const early = await admin(['server', 'evacuate', plain]);
    assert.notEqual(early.code, 0);
    assert.match(early.stderr, new RegExp(`400: .*Compute service of ${SOURCE} is still in use\\.`));
    assert.equal((await adminJson(['server', 'show', plain]))['OS-EXT-STS:task_state'], null);

    // compute1 dies; the operator fences it and marks it down (the CLI needs 2.11 for --down).
    const source = d.computes.get(SOURCE);
    assert.ok(source);
    const exit = await stopChild(source, 'SIGKILL', 0);
    assert.equal(exit.signal, 'SIGKILL');
    // The CLI's own microversion (the highest both sides know: the API's 2.79) updates the service by its
    // uuid (PUT /os-services/{id}).
    const forced = await admin(['compute', 'service', 'set', '--down', SOURCE, 'nova-compute']);
    assert.equal(forced.code, 0, forced.stderr);
    const down = await service(SOURCE);
    assert.equal(down.State, 'down');
    assert.equal(down['Forced Down'], true);

    // The CLI's own microversion (no onSharedStorage, no adminPass answered) ...
    const first = await admin(['server', 'evacuate', plain]);
    assert.equal(first.code, 0, first.stderr);
    // ... and 2.29 with a requested host.
    const second = await admin([
      '--os-compute-api-version',
      '2.29',
      'server',
      'evacuate',
      '--host',
      TARGET,
      withVolume,
    ]);
    assert.equal(second.code, 0, second.stderr);
    // Polled as a user would: this client's `server evacuate --wait` compares the lower-cased status with
    // 'ACTIVE' and never returns.
    for (const id of [plain, withVolume]) {
      await pollUntil(
        async () => {
          const shown = await adminJson(['server', 'show', id]);
          return shown.status === 'ACTIVE' && shown['OS-EXT-STS:task_state'] === null ? true : undefined;
        },
        { timeoutMs: 300_000, intervalMs: 1000, what: `server ${id} ACTIVE after its evacuation` },
      );
    }

    for (const id of [plain, withVolume]) {
      const shown = await adminJson(['server', 'show', id]);
      assert.equal(shown.status, 'ACTIVE');
      assert.equal(shown['OS-EXT-STS:task_state'], null);
      assert.equal(shown['OS-EXT-SRV-ATTR:host'], TARGET);
      assert.deepEqual(await ports(id), portsBefore[id], 'the same ports, MACs and IPs');
      for (const port of portsBefore[id] ?? []) {
        const bound = await adminJson(['port', 'show', String(port.id)]);
        assert.equal(bound.binding_host_id, TARGET);
        assert.equal(bound.status, 'ACTIVE');
      }
      const events = await adminJson<Json[]>(['server', 'event', 'list', id]);
      assert.ok(
        events.some((e) => e.Action === 'evacuate'),
        JSON.stringify(events),
      );
    }
    const moved = await adminJson(['volume', 'show', volumeId]);
    assert.equal(moved.status, 'in-use');
    const attachments = moved.attachments as Json[];
    assert.deepEqual(
      attachments.map((a) => [a.server_id, a.host_name]),
      [[withVolume, TARGET]],
    );

    // What compute1 left behind when it died: its guests' directories, domains, VIFs and the connection.
    const dead: ComputeHost = await openComputeHost({
      dataDir: d.dataDir,
      host: SOURCE,
      capabilities: capabilitiesOf(defaultHostSpec(SOURCE)),
    });
    const leftovers = async () => ({
      dirs: (await dead.listInstanceDirs()).filter((u) => u === plain || u === withVolume).sort(),
      domains: (await dead.listDomains()).map((x) => x.uuid).sort(),
      vifs: (await dead.listVifs()).map((v) => v.instanceUuid).sort(),
      connections: (await dead.listVolumeConnections()).map((c) => c.instanceUuid),
    });
    const both = [plain, withVolume].sort();
    const before = await leftovers();
    assert.deepEqual(before.dirs, both);
    assert.deepEqual(before.domains, both);
    assert.deepEqual([...new Set(before.vifs)].sort(), both);
    assert.deepEqual(before.connections, [withVolume]);

    // compute1 comes back: init_host destroys what was evacuated; then the operator lifts the force-down.
    await d.startCompute(SOURCE);
    const empty = { dirs: [], domains: [], vifs: [], connections: [] };
    let last = before;
    await pollUntil(
      async () => {
        last = await leftovers();
        return JSON.stringify(last) === JSON.stringify(empty) ? last : undefined;
      },
      { timeoutMs: 120_000, what: () => `compute1 to reap ${JSON.stringify(last)}` },
    );
    // The force-down lifted the pre-2.53 way (PUT /os-services/force-down, from 2.11).
    await serviceSet('2.11', ['--up', SOURCE, 'nova-compute']);
    await serviceSet('2.53', ['--enable', IDLE, 'nova-compute']);
    await pollUntil(async () => ((await service(SOURCE)).State === 'up' ? true : undefined), {
      timeoutMs: 60_000,
      what: 'compute1 up again',
    });
    // The evacuated servers are untouched by the reaping.
    for (const id of [plain, withVolume]) assert.equal(await hostOf(id), TARGET);

    const audit = await runClient(['-f', 'json', 'audit'], d.env);
    assert.equal(audit.code, 0, audit.stderr);
    assert.deepEqual(JSON.parse(audit.stdout), []);

    const removed = await openstack(d.demoEnv, ['server', 'remove', 'volume', withVolume, volumeId], 180_000);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal((await openstack(d.demoEnv, ['volume', 'delete', volumeId])).code, 0);
    const deleted = await openstack(d.demoEnv, ['server', 'delete', '--wait', plain, withVolume], 240_000);
    assert.equal(deleted.code, 0, deleted.stderr);
    const finalAudit = await runClient(['-f', 'json', 'audit'], d.env);
    assert.equal(finalAudit.code, 0, finalAudit.stderr);
    assert.deepEqual(JSON.parse(finalAudit.stdout), []);
  });
});
