/**
 * The unmodified `openstack` CLI and openstacksdk against a running bootflow (dev server, workers, the API
 * role): tokens, the catalog, Keystone administration as admin, and a member refused it with Keystone's 403;
 * EC2 and application credentials (a token from one through `v3applicationcredential`).
 * Needs scripts/setup-openstack-clients.sh (the test fails and says so when it has not run).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generateQcow2Image } from '../cloud/glance';
import { stopChild } from './helpers/deployment';
import { startApiDeployment, type ApiDeployment } from './helpers/api-deployment';
import {
  openstack,
  openstackJson,
  openstacksdkScript,
  requireOpenstackClients,
} from './helpers/openstack-cli';

describe('the openstack CLI and openstacksdk: Keystone, Glance, Neutron, Cinder, Placement', () => {
  let d: ApiDeployment;
  let bootstrapProjects: string[] = [];

  before(async () => {
    requireOpenstackClients();
    d = await startApiDeployment('api-cli');
  });
  after(async () => {
    await d?.close();
  });

  test('token issue: a token for the demo project, valid at the API', async () => {
    const token = await openstackJson<{ id: string; project_id: string; user_id: string; expires: string }>(
      d.demoEnv,
      ['token', 'issue'],
    );
    assert.equal(token.project_id, d.prepared.cloud.demo.projectId);
    assert.ok(Date.parse(token.expires) > Date.now());
    const check = await fetch(`${d.apiUrl}/identity/v3/auth/tokens`, {
      headers: { 'x-auth-token': token.id, 'x-subject-token': token.id },
    });
    assert.equal(check.status, 200);
  });

  test('catalog list names every service at the public URL', async () => {
    const catalog = await openstackJson<Array<{ Name: string; Type: string; Endpoints: unknown }>>(
      d.demoEnv,
      ['catalog', 'list'],
    );
    assert.deepEqual(catalog.map((s) => s.Type).sort(), [
      'block-storage',
      'compute',
      'identity',
      'image',
      'network',
      'placement',
      'volumev3',
    ]);
    assert.match(JSON.stringify(catalog), new RegExp(`${d.apiUrl}/compute/v2\\.1`));
  });

  test('project list as admin shows the bootstrap projects', async () => {
    const projects = await openstackJson<Array<{ ID: string; Name: string }>>(d.adminEnv, [
      'project',
      'list',
    ]);
    bootstrapProjects = projects.map((p) => p.Name).sort();
    assert.ok(bootstrapProjects.includes('admin') && bootstrapProjects.includes('demo'));
    assert.ok(projects.some((p) => p.ID === d.prepared.cloud.demo.projectId));
  });

  test('a member is denied project create with 403, and no project appears', async () => {
    const denied = await openstack(d.demoEnv, ['project', 'create', 'not-allowed']);
    assert.notEqual(denied.code, 0);
    assert.match(
      denied.stderr,
      /You are not authorized to perform the requested action: identity:create_project/,
    );
    assert.match(denied.stderr, /403/);
    const projects = await openstackJson<Array<{ Name: string }>>(d.adminEnv, ['project', 'list']);
    assert.ok(!projects.some((p) => p.Name === 'not-allowed'));
  });

  test('admin: project and user create, role add, assignment list, role remove, delete', async () => {
    const project = await openstackJson<{ id: string; name: string; domain_id: string }>(d.adminEnv, [
      'project',
      'create',
      '--description',
      'made by the CLI',
      'cli-project',
    ]);
    assert.equal(project.domain_id, 'default');
    const user = await openstackJson<{ id: string; name: string }>(d.adminEnv, [
      'user',
      'create',
      '--password',
      'cli-secret-1',
      'cli-user',
    ]);
    assert.equal(user.name, 'cli-user');
    const shown = await openstackJson<{ id: string }>(d.adminEnv, ['user', 'show', 'cli-user']);
    assert.equal(shown.id, user.id);
    const added = await openstack(d.adminEnv, [
      'role',
      'add',
      '--user',
      'cli-user',
      '--project',
      'cli-project',
      'member',
    ]);
    assert.equal(added.code, 0, added.stderr);
    const assignments = await openstackJson<Array<{ Role: string; User: string; Project: string }>>(
      d.adminEnv,
      ['role', 'assignment', 'list', '--user', 'cli-user', '--names'],
    );
    assert.deepEqual(
      assignments.map((a) => [a.Role, a.User, a.Project]),
      [['member', 'cli-user@Default', 'cli-project@Default']],
    );
    // The new user logs in with the CLI to its new project.
    const userEnv = {
      ...d.demoEnv,
      OS_USERNAME: 'cli-user',
      OS_PASSWORD: 'cli-secret-1',
      OS_PROJECT_NAME: 'cli-project',
    };
    const token = await openstackJson<{ project_id: string }>(userEnv, ['token', 'issue']);
    assert.equal(token.project_id, project.id);

    const removed = await openstack(d.adminEnv, [
      'role',
      'remove',
      '--user',
      'cli-user',
      '--project',
      'cli-project',
      'member',
    ]);
    assert.equal(removed.code, 0, removed.stderr);
    const none = await openstackJson<unknown[]>(d.adminEnv, [
      'role',
      'assignment',
      'list',
      '--user',
      'cli-user',
    ]);
    assert.deepEqual(none, []);
    assert.equal((await openstack(d.adminEnv, ['user', 'delete', 'cli-user'])).code, 0);
    assert.equal((await openstack(d.adminEnv, ['project', 'delete', 'cli-project'])).code, 0);
    const projects = await openstackJson<Array<{ Name: string }>>(d.adminEnv, ['project', 'list']);
    assert.deepEqual(projects.map((p) => p.Name).sort(), bootstrapProjects);
  });

  test('admin: group create, add user, a role for the group on a project, the member’s token; remove, delete', async () => {
    const group = await openstackJson<{ id: string; name: string; domain_id: string; description: string }>(
      d.adminEnv,
      ['group', 'create', '--description', 'made by the CLI', 'cli-group'],
    );
    assert.deepEqual(
      [group.name, group.domain_id, group.description],
      ['cli-group', 'default', 'made by the CLI'],
    );
    const ok = async (args: string[]) => {
      const res = await openstack(d.adminEnv, args);
      assert.equal(res.code, 0, `${args.join(' ')}: ${res.stderr}`);
      return res.stdout;
    };
    await ok(['user', 'create', '--password', 'cli-secret-2', 'cli-grouped']);
    await ok(['project', 'create', 'cli-group-project']);
    await ok(['group', 'add', 'user', 'cli-group', 'cli-grouped']);
    assert.match(
      await ok(['group', 'contains', 'user', 'cli-group', 'cli-grouped']),
      /cli-grouped in group cli-group/,
    );
    await ok(['role', 'add', '--group', 'cli-group', '--project', 'cli-group-project', 'member']);
    const granted = await openstackJson<Array<{ Role: string; Group: string; Project: string }>>(d.adminEnv, [
      'role',
      'assignment',
      'list',
      '--group',
      'cli-group',
      '--names',
    ]);
    assert.deepEqual(
      granted.map((a) => [a.Role, a.Group, a.Project]),
      [['member', 'cli-group@Default', 'cli-group-project@Default']],
    );
    const effective = await openstackJson<Array<{ Role: string; User: string }>>(d.adminEnv, [
      'role',
      'assignment',
      'list',
      '--user',
      'cli-grouped',
      '--effective',
      '--names',
    ]);
    assert.deepEqual(
      effective.map((a) => [a.Role, a.User]),
      [
        ['member', 'cli-grouped@Default'],
        ['reader', 'cli-grouped@Default'],
      ],
    );
    // The member logs in to the project through the group's role alone.
    const userEnv = {
      ...d.demoEnv,
      OS_USERNAME: 'cli-grouped',
      OS_PASSWORD: 'cli-secret-2',
      OS_PROJECT_NAME: 'cli-group-project',
    };
    const token = await openstackJson<{ project_id: string }>(userEnv, ['token', 'issue']);
    const projectId = (
      await openstackJson<{ id: string }>(d.adminEnv, ['project', 'show', 'cli-group-project'])
    ).id;
    assert.equal(token.project_id, projectId);
    const groups = await openstackJson<Array<{ Name: string }>>(d.adminEnv, [
      'group',
      'list',
      '--user',
      'cli-grouped',
    ]);
    assert.deepEqual(
      groups.map((g) => g.Name),
      ['cli-group'],
    );

    await ok(['group', 'remove', 'user', 'cli-group', 'cli-grouped']);
    const refused = await openstack(userEnv, ['token', 'issue']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /401/);
    await ok(['group', 'delete', 'cli-group']);
    const shown = await openstack(d.adminEnv, ['group', 'show', group.id]);
    assert.notEqual(shown.code, 0);
    assert.match(shown.stderr, /No Group found for/);
    await ok(['user', 'delete', 'cli-grouped']);
    await ok(['project', 'delete', 'cli-group-project']);
  });

  test('catalog administration, EC2 credentials, and a token from an application credential (v3applicationcredential)', async () => {
    // The catalog's rows: what the bootstrap registered, read as admin; a member may not add to them.
    const endpoints = await openstackJson<Array<{ 'Service Type': string; Interface: string; URL: string }>>(
      d.adminEnv,
      ['endpoint', 'list', '--service', 'compute', '--interface', 'public'],
    );
    assert.deepEqual(
      endpoints.map((e) => [e['Service Type'], e.URL]),
      [['compute', `${d.apiUrl}/compute/v2.1`]],
    );
    const denied = await openstack(d.demoEnv, ['service', 'create', '--name', 'not-allowed', 'x-type']);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /403.*identity:create_service/s);

    // EC2 credentials of the demo user: create, list, delete.
    const ec2 = await openstackJson<{ access: string; secret: string; project_id: string }>(d.demoEnv, [
      'ec2',
      'credentials',
      'create',
    ]);
    assert.equal(ec2.project_id, d.prepared.cloud.demo.projectId);
    const listed = await openstackJson<Array<{ Access: string }>>(d.demoEnv, ['ec2', 'credentials', 'list']);
    assert.deepEqual(
      listed.map((c) => c.Access),
      [ec2.access],
    );
    assert.equal((await openstack(d.demoEnv, ['ec2', 'credentials', 'delete', ec2.access])).code, 0);

    // An application credential of the demo user, then a token from it alone.
    const appCred = await openstackJson<{ ID: string; Secret: string; 'Project ID': string }>(d.demoEnv, [
      'application',
      'credential',
      'create',
      '--role',
      'member',
      'cli-app-cred',
    ]);
    assert.equal(appCred['Project ID'], d.prepared.cloud.demo.projectId);
    const passwordless = Object.fromEntries(
      Object.entries(d.demoEnv).filter(
        ([k]) => !/^OS_(USERNAME|PASSWORD|PROJECT_NAME|USER_DOMAIN_NAME|PROJECT_DOMAIN_NAME)$/.test(k),
      ),
    );
    const appCredEnv = {
      ...passwordless,
      OS_AUTH_TYPE: 'v3applicationcredential',
      OS_APPLICATION_CREDENTIAL_ID: appCred.ID,
      OS_APPLICATION_CREDENTIAL_SECRET: appCred.Secret,
    };
    const token = await openstackJson<{ project_id: string; user_id: string }>(appCredEnv, [
      'token',
      'issue',
    ]);
    assert.equal(token.project_id, d.prepared.cloud.demo.projectId);
    // The token works on the other services, found through its catalog.
    const images = await openstackJson<Array<{ Name: string }>>(appCredEnv, ['image', 'list']);
    assert.ok(images.some((i) => i.Name === 'cirros'));
    // A restricted application credential makes no other.
    const nested = await openstack(appCredEnv, ['application', 'credential', 'create', 'nested']);
    assert.notEqual(nested.code, 0);
    assert.match(nested.stderr, /403/);
    assert.ok(!nested.stderr.includes(appCred.Secret));

    assert.equal(
      (await openstack(d.demoEnv, ['application', 'credential', 'delete', 'cli-app-cred'])).code,
      0,
    );
    const gone = await openstack(appCredEnv, ['token', 'issue']);
    assert.notEqual(gone.code, 0);
    assert.match(gone.stderr, /401/);
  });

  test('image create --file and image save: the same bytes and checksum; image list filters; delete', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bootflow-cli-image-'));
    try {
      const file = path.join(dir, 'disk.qcow2');
      const data = generateQcow2Image({ seed: 'cli-image' });
      writeFileSync(file, data);
      const md5 = createHash('md5').update(data).digest('hex');
      const created = await openstackJson<{ id: string; status: string; checksum: string; size: number }>(
        d.demoEnv,
        [
          'image',
          'create',
          '--file',
          file,
          '--disk-format',
          'qcow2',
          '--container-format',
          'bare',
          'cli-img',
        ],
      );
      assert.equal(created.status, 'active');
      assert.equal(created.checksum, md5);
      assert.equal(created.size, data.length);
      const saved = path.join(dir, 'saved.qcow2');
      const save = await openstack(d.demoEnv, ['image', 'save', '--file', saved, created.id]);
      assert.equal(save.code, 0, save.stderr);
      assert.ok(readFileSync(saved).equals(data), 'the downloaded bytes are the uploaded ones');
      const listed = await openstackJson<Array<{ ID: string; Name: string; Status: string }>>(d.demoEnv, [
        'image',
        'list',
        '--name',
        'cli-img',
      ]);
      assert.deepEqual(
        listed.map((i) => [i.ID, i.Status]),
        [[created.id, 'active']],
      );
      // image set: tags, properties, name (Glance's PATCH), deactivate (download 403), reactivate.
      const set = await openstack(d.demoEnv, [
        'image',
        'set',
        '--tag',
        'cli-tag',
        '--property',
        'hw_disk_bus=virtio',
        '--min-ram',
        '64',
        '--name',
        'cli-img-2',
        created.id,
      ]);
      assert.equal(set.code, 0, set.stderr);
      const shown = await openstackJson<{
        name: string;
        tags: string[];
        min_ram: number;
        properties: unknown;
      }>(d.demoEnv, ['image', 'show', created.id]);
      assert.deepEqual([shown.name, shown.tags, shown.min_ram], ['cli-img-2', ['cli-tag'], 64]);
      assert.match(JSON.stringify(shown.properties), /"hw_disk_bus":"virtio"/);
      const tagged = await openstackJson<Array<{ ID: string }>>(d.demoEnv, [
        'image',
        'list',
        '--tag',
        'cli-tag',
      ]);
      assert.deepEqual(
        tagged.map((i) => i.ID),
        [created.id],
      );
      assert.equal((await openstack(d.demoEnv, ['image', 'set', '--deactivate', created.id])).code, 0);
      // The CLI fails (openstacksdk reads the 403's body as the data and reports a checksum mismatch, as it
      // does against Glance); the API itself answers Glance's 403.
      const refused = await openstack(d.demoEnv, ['image', 'save', '--file', saved, created.id]);
      assert.notEqual(refused.code, 0);
      const { id: token } = await openstackJson<{ id: string }>(d.demoEnv, ['token', 'issue']);
      const raw = await fetch(`${d.apiUrl}/image/v2/images/${created.id}/file`, {
        headers: { 'x-auth-token': token },
      });
      assert.equal(raw.status, 403);
      assert.match(await raw.text(), /The requested image has been deactivated/);
      assert.equal((await openstack(d.demoEnv, ['image', 'set', '--activate', created.id])).code, 0);
      // Shared with the admin project: pending until the admin project accepts it.
      assert.equal((await openstack(d.demoEnv, ['image', 'set', '--shared', created.id])).code, 0);
      const adminProject = d.prepared.cloud.admin.projectId;
      const added = await openstack(d.demoEnv, ['image', 'add', 'project', created.id, adminProject]);
      assert.equal(added.code, 0, added.stderr);
      const accepted = await openstack(d.adminEnv, ['image', 'set', '--accept', created.id]);
      assert.equal(accepted.code, 0, accepted.stderr);
      const members = await openstackJson<Array<{ 'Member ID': string; Status: string }>>(d.demoEnv, [
        'image',
        'member',
        'list',
        created.id,
      ]);
      assert.deepEqual(
        members.map((m) => [m['Member ID'], m.Status]),
        [[adminProject, 'accepted']],
      );
      const deleted = await openstack(d.demoEnv, ['image', 'delete', created.id]);
      assert.equal(deleted.code, 0, deleted.stderr);
      const after = await openstackJson<Array<{ ID: string }>>(d.demoEnv, ['image', 'list']);
      assert.ok(!after.some((i) => i.ID === created.id));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('network, subnet, port and security group commands', async () => {
    const networks = await openstackJson<Array<{ ID: string; Name: string; Subnets: string[] }>>(d.demoEnv, [
      'network',
      'list',
    ]);
    assert.ok(
      networks.some((n) => n.Name === 'private'),
      JSON.stringify(networks),
    );
    const subnets = await openstackJson<Array<{ ID: string; Name: string; Network: string; Subnet: string }>>(
      d.demoEnv,
      ['subnet', 'list'],
    );
    assert.ok(
      subnets.some((s) => s.Subnet === '10.0.0.0/24'),
      JSON.stringify(subnets),
    );
    const port = await openstackJson<{ id: string; fixed_ips: Array<{ ip_address: string }> | string }>(
      d.demoEnv,
      ['port', 'create', '--network', 'private', 'cli-port'],
    );
    assert.match(JSON.stringify(port.fixed_ips), /10\.0\.0\.\d+/);
    const ports = await openstackJson<Array<{ ID: string; Name: string }>>(d.demoEnv, [
      'port',
      'list',
      '--network',
      'private',
    ]);
    assert.ok(ports.some((p) => p.ID === port.id));
    const shown = await openstackJson<{ name: string }>(d.demoEnv, ['port', 'show', port.id]);
    assert.equal(shown.name, 'cli-port');
    // A second fixed IP (`port set --fixed-ip` adds to the port's list), then the first one released.
    const subnetId = subnets.find((s) => s.Subnet === '10.0.0.0/24')!.ID;
    const first = JSON.stringify(port.fixed_ips).match(/10\.0\.0\.\d+/)![0];
    const set = await openstack(d.demoEnv, [
      'port',
      'set',
      '--fixed-ip',
      `subnet=${subnetId},ip-address=10.0.0.250`,
      port.id,
    ]);
    assert.equal(set.code, 0, set.stderr);
    const ips = async () =>
      (await openstackJson<{ fixed_ips: unknown }>(d.demoEnv, ['port', 'show', port.id])).fixed_ips;
    // fixed_ips is JSON or the CLI's text form: an address counts when it stands whole in quotes.
    const holds = (text: string, ip: string) =>
      new RegExp(`["'\\\\]${ip.replace(/\./g, '\\.')}["'\\\\]`).test(text);
    const both = JSON.stringify(await ips());
    assert.ok(holds(both, first) && holds(both, '10.0.0.250'), both);
    const unset = await openstack(d.demoEnv, [
      'port',
      'unset',
      '--fixed-ip',
      `subnet=${subnetId},ip-address=${first}`,
      port.id,
    ]);
    assert.equal(unset.code, 0, unset.stderr);
    const left = JSON.stringify(await ips());
    assert.ok(holds(left, '10.0.0.250') && !holds(left, first), left);
    assert.equal((await openstack(d.demoEnv, ['port', 'delete', port.id])).code, 0);
    const after = await openstackJson<Array<{ ID: string }>>(d.demoEnv, ['port', 'list']);
    assert.ok(!after.some((p) => p.ID === port.id));
    const groups = await openstackJson<Array<{ Name: string; Project: string }>>(d.demoEnv, [
      'security',
      'group',
      'list',
    ]);
    assert.ok(groups.some((g) => g.Name === 'default' && g.Project === d.prepared.cloud.demo.projectId));
    const rules = await openstackJson<unknown[]>(d.demoEnv, ['security', 'group', 'rule', 'list']);
    assert.ok(rules.length > 0);
  });

  test('volume create --size 1, volume list, volume delete', async () => {
    const created = await openstackJson<{ id: string; size: number; status: string }>(d.demoEnv, [
      'volume',
      'create',
      '--size',
      '1',
      'cli-vol',
    ]);
    assert.equal(created.size, 1);
    let status = created.status;
    for (let i = 0; i < 60 && status !== 'available' && status !== 'error'; i++) {
      status = (await openstackJson<{ status: string }>(d.demoEnv, ['volume', 'show', created.id])).status;
    }
    assert.equal(status, 'available');
    const listed = await openstackJson<Array<{ ID: string; Name: string; Status: string; Size: number }>>(
      d.demoEnv,
      ['volume', 'list'],
    );
    assert.deepEqual(
      listed.filter((v) => v.ID === created.id).map((v) => [v.Name, v.Status, v.Size]),
      [['cli-vol', 'available', 1]],
    );
    const deleted = await openstack(d.demoEnv, ['volume', 'delete', created.id]);
    assert.equal(deleted.code, 0, deleted.stderr);
    const after = await openstackJson<Array<{ ID: string }>>(d.demoEnv, ['volume', 'list']);
    assert.ok(!after.some((v) => v.ID === created.id));
  });

  test('openstacksdk: networks, images, volumes and resource providers through the proxies', async () => {
    const result = await openstacksdkScript<{
      networks: string[];
      images: string[];
      volumes: unknown[];
      providers: number;
    }>(
      d.adminEnv,
      [
        'emit({"networks": sorted(n.name for n in conn.network.networks()),',
        '      "images": sorted(i.name for i in conn.image.images()),',
        '      "volumes": [v.id for v in conn.block_storage.volumes()],',
        '      "providers": len(list(conn.placement.resource_providers()))})',
      ].join('\n'),
    );
    assert.ok(
      result.networks.includes('private') && result.networks.includes('public'),
      JSON.stringify(result),
    );
    assert.ok(result.images.includes('cirros'), JSON.stringify(result));
    assert.ok(Array.isArray(result.volumes));
    assert.ok(result.providers >= 3, 'the three compute hosts');
  });

  test('openstacksdk: openstack.connect() authenticates and lists projects', async () => {
    const result = await openstacksdkScript<{ project: string; projects: string[] }>(
      d.adminEnv,
      [
        'emit({"project": conn.current_project_id,',
        '      "projects": sorted(p.name for p in conn.identity.projects())})',
      ].join('\n'),
    );
    assert.equal(result.project, d.prepared.cloud.admin.projectId);
    assert.deepEqual(result.projects, bootstrapProjects);
  });

  test('SIGTERM stops the worker and its API: exit 0, the port closed', async () => {
    const stopped = await stopChild(d.worker, 'SIGTERM', 60_000);
    assert.deepEqual(stopped, { code: 0, signal: null }, d.worker.output().slice(-2000));
    await assert.rejects(fetch(`${d.apiUrl}/identity/v3`), 'nothing listens on the API port any more');
  });
});
