/**
 * The unmodified `openstack` CLI and openstacksdk against a running bootflow, on the compute API: flavors,
 * hypervisors and key pairs; `server create --wait` from an image and with `--boot-from-volume 1`,
 * `server show -f json` (its address on the private subnet, the volume attached), `server list` with filters,
 * `console log show`, `server delete --wait` and an empty leak audit; a boot volume with
 * delete_on_termination through openstacksdk; a boot no host can take showing ERROR with Nova's fault; a
 * member denied the admin APIs (403) and another project's server (404); openstacksdk end to end. Needs scripts/setup-openstack-clients.sh (the test fails and says so when it has not run).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ApiDeployment } from './helpers/api-deployment';
import { runClient } from './helpers/deployment';
import {
  openstack,
  openstackJson,
  openstacksdkScript,
  createActiveServer,
  startCliDeployment,
} from './helpers/openstack-cli';

type Json = Record<string, unknown>;

describe('the openstack CLI and openstacksdk: Nova', { timeout: 15 * 60_000 }, () => {
  let d: ApiDeployment;

  before(async () => {
    d = await startCliDeployment('api-nova-cli');
  });
  after(async () => {
    await d?.close();
  });

  /** create_server + wait_for_server through openstacksdk; returns the id and the final status. */
  async function sdkBoot(
    name: string,
    extra: string,
  ): Promise<{ id: string; status: string; error?: string }> {
    const net = d.prepared.cloud.privateNetworkId;
    return openstacksdkScript(
      d.demoEnv,
      [
        `s = conn.compute.create_server(name=${JSON.stringify(name)}, flavor_id=FLAVOR,`,
        `    networks=[{"uuid": ${JSON.stringify(net)}}], ${extra})`,
        'try:',
        '    s = conn.compute.wait_for_server(s, wait=240)',
        '    emit({"id": s.id, "status": s.status})',
        'except openstack.exceptions.ResourceFailure as e:',
        '    emit({"id": s.id, "status": conn.compute.get_server(s.id).status, "error": str(e)})',
      ]
        .join('\n')
        .replace('FLAVOR', '"1"'),
      300_000,
    );
  }

  test('flavor list, hypervisor list (admin), keypair create and list', async () => {
    const flavors = await openstackJson<Array<{ ID: string; Name: string; RAM: number }>>(d.demoEnv, [
      'flavor',
      'list',
    ]);
    assert.deepEqual(
      flavors.map((f) => f.Name),
      ['m1.tiny', 'm1.small', 'm1.medium', 'm1.large', 'm1.xlarge'],
    );
    assert.equal(flavors[0]!.RAM, 512);
    const hypervisors = await openstackJson<Array<{ 'Hypervisor Hostname': string; State: string }>>(
      d.adminEnv,
      ['hypervisor', 'list'],
    );
    assert.deepEqual(hypervisors.map((h) => h['Hypervisor Hostname']).sort(), [
      'compute1',
      'compute2',
      'compute3',
    ]);
    assert.ok(hypervisors.every((h) => h.State === 'up'));
    const created = await openstack(d.demoEnv, ['keypair', 'create', 'cli-key']);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /PRIVATE KEY/);
    const keys = await openstackJson<Array<{ Name: string; Fingerprint: string }>>(d.demoEnv, [
      'keypair',
      'list',
    ]);
    assert.deepEqual(
      keys.map((k) => k.Name),
      ['cli-key'],
    );
    assert.match(keys[0]!.Fingerprint, /^([0-9a-f]{2}:){15}[0-9a-f]{2}$/);
  });

  test('a member is denied the admin APIs with 403 and Nova policy message', async () => {
    for (const args of [
      ['hypervisor', 'list'],
      ['compute', 'service', 'list'],
      ['server', 'list', '--all-projects'],
    ]) {
      const denied = await openstack(d.demoEnv, args);
      assert.notEqual(denied.code, 0, args.join(' '));
      assert.match(
        denied.stderr,
        /Policy doesn't allow os_compute_api:[\w:-]+ to be performed/,
        args.join(' '),
      );
      assert.match(denied.stderr, /403/);
    }
  });

  test('server create --wait from an image: ACTIVE on the private subnet, listed with filters, console log, 404 to another project', async () => {
    const created = await createActiveServer(d.demoEnv, 'cli-vm');
    const booted = { id: created.id as string };
    const server = await openstackJson<Json>(d.demoEnv, ['server', 'show', booted.id]);
    assert.equal(server.status, 'ACTIVE');
    assert.equal(server.name, 'cli-vm');
    const addresses = server.addresses as Record<string, string[]>;
    assert.match(addresses.private![0]!, /^10\.0\.0\.\d+$/);
    assert.equal(server['OS-EXT-STS:vm_state'], 'active');
    const listed = await openstackJson<Array<{ ID: string; Status: string }>>(d.demoEnv, [
      'server',
      'list',
      '--status',
      'ACTIVE',
      '--name',
      '^cli-',
    ]);
    assert.deepEqual(
      listed.map((s) => s.ID),
      [booted.id],
    );
    const none = await openstackJson<unknown[]>(d.demoEnv, ['server', 'list', '--name', '^nothing-']);
    assert.deepEqual(none, []);
    const consoleLog = await openstack(d.demoEnv, ['console', 'log', 'show', booted.id]);
    assert.equal(consoleLog.code, 0, consoleLog.stderr);

    // Another project's member: the server does not exist for them (404 at the API).
    const admin = (args: string[]) => openstack(d.adminEnv, args);
    assert.equal((await admin(['project', 'create', 'elsewhere'])).code, 0);
    assert.equal((await admin(['user', 'create', '--password', 'pw-elsewhere-1', 'ellie'])).code, 0);
    assert.equal(
      (await admin(['role', 'add', '--user', 'ellie', '--project', 'elsewhere', 'member'])).code,
      0,
    );
    const ellie = {
      ...d.demoEnv,
      OS_USERNAME: 'ellie',
      OS_PASSWORD: 'pw-elsewhere-1',
      OS_PROJECT_NAME: 'elsewhere',
    };
    const hidden = await openstack(ellie, ['server', 'show', booted.id]);
    assert.notEqual(hidden.code, 0);
    assert.match(hidden.stderr, /No Server found|could not be found/);
    const token = await openstackJson<{ id: string }>(ellie, ['token', 'issue']);
    const res = await fetch(`${d.apiUrl}/compute/v2.1/servers/${booted.id}`, {
      headers: { 'x-auth-token': token.id },
    });
    assert.equal(res.status, 404);
    assert.deepEqual(await res.json(), {
      itemNotFound: { code: 404, message: `Instance ${booted.id} could not be found.` },
    });

    const deleted = await openstack(d.demoEnv, ['server', 'delete', '--wait', booted.id], 240_000);
    assert.equal(deleted.code, 0, deleted.stderr);
    const gone = await openstack(d.demoEnv, ['server', 'show', booted.id]);
    assert.notEqual(gone.code, 0);
  });

  test('server create --nic none (2.37): ACTIVE with no address; a delete during a build wins', async () => {
    const created = await createActiveServer(d.demoEnv, 'cli-no-nic', {
      options: ['--nic', 'none'],
      globals: ['--os-compute-api-version', '2.37'],
    });
    const id = created.id as string;
    const server = await openstackJson<Json>(d.demoEnv, ['server', 'show', id]);
    assert.deepEqual(server.addresses, {});
    const ports = await openstackJson<unknown[]>(d.demoEnv, ['port', 'list', '--device-id', id]);
    assert.deepEqual(ports, []);
    const deleted = await openstack(d.demoEnv, ['server', 'delete', '--wait', id], 240_000);
    assert.equal(deleted.code, 0, deleted.stderr);

    // Create, then delete at once: `delete --wait` fails if it ever sees ERROR; the server must just go.
    const building = await openstackJson<Json>(d.demoEnv, [
      'server',
      'create',
      '--flavor',
      'm1.tiny',
      '--image',
      'cirros',
      '--network',
      'private',
      'cli-deleted-early',
    ]);
    const early = await openstack(d.demoEnv, ['server', 'delete', '--wait', building.id as string], 240_000);
    assert.equal(early.code, 0, early.stderr);
    const gone = await openstack(d.demoEnv, ['server', 'show', building.id as string]);
    assert.notEqual(gone.code, 0);
  });

  test('server create --boot-from-volume 1: the volume attached, kept after the server (OSC default)', async () => {
    const created = await createActiveServer(d.demoEnv, 'cli-bfv', {
      options: ['--boot-from-volume', '1', '--network', 'private'],
    });
    const id = created.id as string;
    const server = await openstackJson<Json>(d.demoEnv, ['server', 'show', id]);
    const volumes = server.volumes_attached as Array<{ id: string }>;
    assert.equal(volumes.length, 1);
    const volumeId = volumes[0]!.id;
    const volume = await openstackJson<Json>(d.demoEnv, ['volume', 'show', volumeId]);
    assert.equal(volume.status, 'in-use');
    assert.equal(volume.size, 1);
    const deleted = await openstack(d.demoEnv, ['server', 'delete', '--wait', id], 240_000);
    assert.equal(deleted.code, 0, deleted.stderr);
    // delete_on_termination was false: the volume stays, available, and is deleted by its owner.
    const kept = await openstackJson<Json>(d.demoEnv, ['volume', 'show', volumeId]);
    assert.equal(kept.status, 'available');
    assert.equal((await openstack(d.demoEnv, ['volume', 'delete', volumeId])).code, 0);
  });

  test('openstacksdk: a boot volume with delete_on_termination goes with the server', async () => {
    const bdm = JSON.stringify([
      {
        boot_index: 0,
        uuid: d.prepared.cloud.imageId,
        source_type: 'image',
        destination_type: 'volume',
        volume_size: 1,
        delete_on_termination: true,
      },
    ]);
    const booted = await sdkBoot('sdk-bfv', `block_device_mapping=${bdm.replace(/true/g, 'True')}`);
    assert.equal(booted.status, 'ACTIVE', booted.error);
    const server = await openstackJson<Json>(d.demoEnv, ['server', 'show', booted.id]);
    const volumes = server.volumes_attached as Array<{ id: string }>;
    assert.equal(volumes.length, 1);
    const deleted = await openstack(d.demoEnv, ['server', 'delete', '--wait', booted.id], 240_000);
    assert.equal(deleted.code, 0, deleted.stderr);
    const gone = await openstack(d.demoEnv, ['volume', 'show', volumes[0]!.id]);
    assert.notEqual(gone.code, 0, 'the volume was deleted with the server');
  });

  test("no valid host: a flavor bigger than every host boots to ERROR with Nova's fault", async () => {
    const flavor = await openstackJson<{ id: string; name: string }>(d.adminEnv, [
      'flavor',
      'create',
      // Within the project's quota (cores, RAM), but a root disk no host has.
      '--ram',
      '512',
      '--vcpus',
      '1',
      '--disk',
      '1000',
      'm1.colossal',
    ]);
    assert.equal(flavor.name, 'm1.colossal');
    const booted = await openstacksdkScript<{ id: string; status: string }>(
      d.demoEnv,
      [
        `s = conn.compute.create_server(name="too-big", flavor_id=${JSON.stringify(flavor.id)},`,
        `    image_id=${JSON.stringify(d.prepared.cloud.imageId)},`,
        `    networks=[{"uuid": ${JSON.stringify(d.prepared.cloud.privateNetworkId)}}])`,
        'try:',
        '    conn.compute.wait_for_server(s, wait=240)',
        'except openstack.exceptions.ResourceFailure:',
        '    pass',
        'emit({"id": s.id, "status": conn.compute.get_server(s.id).status})',
      ].join('\n'),
      300_000,
    );
    assert.equal(booted.status, 'ERROR');
    const server = await openstackJson<Json>(d.demoEnv, ['server', 'show', booted.id]);
    assert.equal(server.status, 'ERROR');
    const fault = server.fault as { message: string; code: number; created: string };
    assert.match(fault.message, /^No valid host was found/);
    assert.equal(typeof fault.code, 'number');
    const deleted = await openstack(d.demoEnv, ['server', 'delete', '--wait', booted.id], 240_000);
    assert.equal(deleted.code, 0, deleted.stderr);
  });

  test('openstacksdk end to end: connect, create_server, wait_for_server, delete, wait_for_delete', async () => {
    const result = await openstacksdkScript<{ status: string; deleted: boolean; microversion: string }>(
      d.demoEnv,
      [
        `s = conn.compute.create_server(name="sdk-e2e", flavor_id="1",`,
        `    image_id=${JSON.stringify(d.prepared.cloud.imageId)},`,
        `    networks=[{"uuid": ${JSON.stringify(d.prepared.cloud.privateNetworkId)}}])`,
        's = conn.compute.wait_for_server(s, wait=240)',
        'status = s.status',
        'conn.compute.delete_server(s)',
        'conn.compute.wait_for_delete(s, wait=240)',
        'emit({"status": status, "deleted": conn.compute.find_server(s.id) is None,',
        '      "microversion": "%d.%d" % conn.compute.get_endpoint_data().max_microversion})',
      ].join('\n'),
      300_000,
    );
    assert.deepEqual(result, { status: 'ACTIVE', deleted: true, microversion: '2.79' });
  });

  test('nothing leaked: the leak audit is empty', async () => {
    const run = await runClient(['-f', 'json', 'audit'], d.env);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), []);
  });
});
