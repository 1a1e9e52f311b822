/**
 * Nova's deprecated proxy APIs through Fastify's inject, over a bootstrapped cloud without Temporal:
 * os-security-groups and rules (Neutron's groups in Nova's view), a server's groups and the
 * add/removeSecurityGroup actions (its Neutron ports' groups), /images and image metadata (Glance),
 * os-volumes (Cinder's own creation), extensions. Each answers as Nova does up to the microversion that
 * removed it and 404 after; refusals change nothing in the services' databases.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { bootstrapCloud, type BootstrapResult } from '../cloud/bootstrap';
import type { Clock } from '../cloud/clock';
import { isCloudError } from '../cloud/errors';
import { DEFAULT_HOSTS } from '../cloud/hosts';
import type { RequestContext } from '../cloud/keystone';
import { pollUntil } from '../lib/poll';
import { openApiTestEnv, TEST_PUBLIC_URL, type ApiTestEnv } from './helpers/api';
import { addTenantUser } from './helpers/security';

const V = '/compute/v2.1';
type Who = 'admin' | 'member' | 'reader' | 'other';
type Json = Record<string, unknown>;

let env: ApiTestEnv;
let boot: BootstrapResult;
const tokens = {} as Record<Who, string>;
const ctxs = {} as Record<Who, RequestContext>;

function call(
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  url: string,
  options: { as?: Who; version?: string; body?: unknown } = {},
): Promise<LightMyRequestResponse> {
  const headers: Record<string, string> = { 'x-auth-token': tokens[options.as ?? 'member'] };
  if (options.version) headers['openstack-api-version'] = `compute ${options.version}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  return env.app.inject({
    method,
    url: `${V}${url}`,
    headers,
    ...(options.body !== undefined ? { payload: JSON.stringify(options.body) } : {}),
  });
}

function fault(res: LightMyRequestResponse, status: number, message?: string | RegExp): void {
  assert.equal(res.statusCode, status, res.body);
  const body = res.json() as Record<string, { code: number; message: string }>;
  const [inner] = Object.values(body);
  assert.equal(inner!.code, status);
  if (typeof message === 'string') assert.equal(inner!.message, message);
  else if (message) assert.match(inner!.message, message);
}

const gone = (res: LightMyRequestResponse) => fault(res, 404, 'The resource could not be found.');

/** The cloud's clock: real time, put ahead where a test needs two distinct instants without waiting. */
let clockAheadMs = 0;
const clock: Clock = { now: () => Date.now() + clockAheadMs };

before(async () => {
  env = await openApiTestEnv({ services: ['compute'], label: 'api-proxies', clock });
  boot = await bootstrapCloud(env.cloud, { hosts: DEFAULT_HOSTS });
  const ks = env.cloud.keystone;
  const admin = await ks.authenticate({
    username: boot.admin.username,
    password: boot.admin.password,
    projectName: boot.admin.projectName,
  });
  const member = await ks.authenticate({
    username: boot.demo.username,
    password: boot.demo.password,
    projectName: boot.demo.projectName,
  });
  const reader = await addTenantUser(env.cloud, { username: 'rita', projectName: 'demo', role: 'reader' });
  const other = await addTenantUser(env.cloud, { username: 'otto', projectName: 'other', role: 'member' });
  [tokens.admin, ctxs.admin] = [admin.token, admin.context];
  [tokens.member, ctxs.member] = [member.token, member.context];
  [tokens.reader, ctxs.reader] = [reader.token!, reader.ctx!];
  [tokens.other, ctxs.other] = [other.token!, other.ctx!];
});

after(async () => {
  await env?.close();
});

/** A server of the demo project as nova-conductor records it, with `ports` Neutron ports on the private network. */
async function serverWithPorts(ports: number): Promise<string> {
  const uuid = randomUUID();
  await env.cloud.nova.createInstance({
    uuid,
    requestId: `req-${uuid}`,
    name: `vm-${uuid.slice(0, 8)}`,
    projectId: boot.demo.projectId,
    userId: ctxs.member.userId,
    flavor: '1',
    imageRef: boot.imageId,
    networks: [boot.privateNetworkId],
  });
  for (let i = 0; i < ports; i++)
    await env.cloud.neutron.createPort({
      requestKey: `port-${uuid}-${i}`,
      networkId: boot.privateNetworkId,
      projectId: boot.demo.projectId,
      deviceId: uuid,
      deviceOwner: 'compute:nova',
    });
  return uuid;
}

const groupRows = (projectId?: string) => env.cloud.neutron.listSecurityGroups(projectId);

describe('os-security-groups and os-security-group-rules (to 2.35)', () => {
  test('list: the project default group made on first look, ingress rules only, in Nova terms; 404 from 2.36', async () => {
    const res = await call('GET', '/os-security-groups');
    assert.equal(res.statusCode, 200, res.body);
    const groups = (res.json() as { security_groups: Json[] }).security_groups;
    const def = groups.find((g) => g.name === 'default')!;
    assert.equal(def.tenant_id, boot.demo.projectId);
    assert.equal(def.description, 'Default security group');
    // Neutron's default group: egress to anywhere (not shown by Nova), ingress from the group itself.
    const rule = {
      parent_group_id: def.id,
      ip_protocol: null,
      from_port: null,
      to_port: null,
      group: { name: 'default', tenant_id: boot.demo.projectId },
      ip_range: {},
    };
    assert.deepEqual(
      (def.rules as Json[]).map(({ id: _id, ...r }) => r),
      [rule, rule],
    );
    const stored = (await groupRows(boot.demo.projectId)).find((g) => g.name === 'default')!;
    assert.deepEqual(
      (def.rules as Json[]).map((r) => r.id).sort(),
      stored.rules
        .filter((r) => r.direction === 'ingress')
        .map((r) => r.id)
        .sort(),
    );
    gone(await call('GET', '/os-security-groups', { version: '2.36' }));
    assert.equal((await call('GET', '/os-security-groups', { version: '2.35' })).statusCode, 200);
  });

  test('create, show, update and delete a group; refusals (schema, policy, default name) write nothing', async () => {
    const before = (await groupRows()).length;
    fault(
      await call('POST', '/os-security-groups', { body: { security_group: { name: 'web' } } }),
      400,
      /^Invalid input for field\/attribute security_group\. .*'description' is a required property$/,
    );
    fault(
      await call('POST', '/os-security-groups', {
        as: 'reader',
        body: { security_group: { name: 'web', description: '' } },
      }),
      403,
      "Policy doesn't allow os_compute_api:os-security-groups:create to be performed.",
    );
    fault(
      await call('POST', '/os-security-groups', {
        body: { security_group: { name: 'default', description: 'x' } },
      }),
      403,
      'Default security group already exists.',
    );
    gone(
      await call('POST', '/os-security-groups', {
        version: '2.36',
        body: { security_group: { name: 'web', description: 'd' } },
      }),
    );
    assert.equal((await groupRows()).length, before);

    const created = await call('POST', '/os-security-groups', {
      body: { security_group: { name: ' web tier ', description: 'front', extra: 'ignored' } },
    });
    assert.equal(created.statusCode, 200, created.body);
    const group = (created.json() as { security_group: Json }).security_group;
    assert.deepEqual(Object.keys(group).sort(), ['description', 'id', 'name', 'rules', 'tenant_id']);
    assert.equal(group.name, ' web tier ');
    // Neutron's new group has two egress rules; Nova shows ingress only.
    assert.deepEqual(group.rules, []);
    const row = (await groupRows(boot.demo.projectId)).find((g) => g.id === group.id)!;
    assert.deepEqual(
      row.rules.map((r) => r.direction),
      ['egress', 'egress'],
    );

    const shown = await call('GET', `/os-security-groups/${String(group.id)}`, { as: 'reader' });
    assert.deepEqual((shown.json() as Json).security_group, group);
    fault(await call('GET', '/os-security-groups/not-a-uuid'), 400, 'Security group id should be uuid');
    const missing = randomUUID();
    fault(
      await call('GET', `/os-security-groups/${missing}`),
      404,
      `Security group ${missing} does not exist`,
    );
    fault(await call('GET', `/os-security-groups/${String(group.id)}`, { as: 'other' }), 404);
    assert.equal(
      (await call('GET', `/os-security-groups/${String(group.id)}`, { as: 'admin' })).statusCode,
      200,
    );

    const updated = await call('PUT', `/os-security-groups/${String(group.id)}`, {
      body: { security_group: { name: 'web2', description: 'renamed' } },
    });
    assert.equal(updated.statusCode, 200, updated.body);
    const after = (await groupRows(boot.demo.projectId)).find((g) => g.id === group.id)!;
    assert.equal(after.name, 'web2');
    assert.equal(after.description, 'renamed');
    fault(
      await call('PUT', `/os-security-groups/${String(group.id)}`, {
        as: 'other',
        body: { security_group: { name: 'x', description: 'y' } },
      }),
      404,
    );

    const deleted = await call('DELETE', `/os-security-groups/${String(group.id)}`);
    assert.equal(deleted.statusCode, 202, deleted.body);
    assert.equal(deleted.body, '');
    assert.equal(
      (await groupRows()).find((g) => g.id === group.id),
      undefined,
    );
    fault(await call('DELETE', `/os-security-groups/${String(group.id)}`), 404);
  });

  test('the default group and a group in use are not deleted (400, Nova turning Neutron 409)', async () => {
    const def = (await env.cloud.neutron.ensureDefaultSecurityGroup(boot.demo.projectId)).id;
    fault(
      await call('DELETE', `/os-security-groups/${def}`),
      400,
      'Insufficient rights for removing default security group.',
    );
    const inUse = (
      await call('POST', '/os-security-groups', {
        body: { security_group: { name: 'used', description: '' } },
      })
    ).json() as { security_group: { id: string } };
    const server = await serverWithPorts(1);
    const add = await call('POST', `/servers/${server}/action`, {
      body: { addSecurityGroup: { name: 'used' } },
    });
    assert.equal(add.statusCode, 202, add.body);
    fault(
      await call('DELETE', `/os-security-groups/${inUse.security_group.id}`),
      400,
      `Security Group ${inUse.security_group.id} in use.`,
    );
    assert.ok((await groupRows()).some((g) => g.id === inUse.security_group.id));
  });

  test('rules: TCP from a CIDR, ICMP, a remote group; Nova checks and Neutron rows; delete', async () => {
    const mk = async (name: string) =>
      (
        (
          await call('POST', '/os-security-groups', { body: { security_group: { name, description: '' } } })
        ).json() as { security_group: { id: string } }
      ).security_group.id;
    const parent = await mk('rules-parent');
    const peer = await mk('rules-peer');
    const rule = (body: Json, as: Who = 'member') =>
      call('POST', '/os-security-group-rules', {
        as,
        body: { security_group_rule: { parent_group_id: parent, ...body } },
      });

    const ssh = await rule({ ip_protocol: 'tcp', from_port: 22, to_port: 22 });
    assert.equal(ssh.statusCode, 200, ssh.body);
    const sshView = (ssh.json() as { security_group_rule: Json }).security_group_rule;
    assert.deepEqual(
      { ...sshView, id: '' },
      {
        id: '',
        parent_group_id: parent,
        ip_protocol: 'tcp',
        from_port: 22,
        to_port: 22,
        group: {},
        ip_range: { cidr: '0.0.0.0/0' },
      },
    );
    const rowsOf = async () => (await groupRows(boot.demo.projectId)).find((g) => g.id === parent)!.rules;
    const stored = (await rowsOf()).find((r) => r.id === sshView.id)!;
    assert.deepEqual(
      [
        stored.direction,
        stored.ethertype,
        stored.protocol,
        stored.portRangeMin,
        stored.portRangeMax,
        stored.remoteIpPrefix,
      ],
      ['ingress', 'IPv4', 'tcp', 22, 22, '0.0.0.0/0'],
    );
    const count = (await rowsOf()).length;
    fault(
      await rule({ ip_protocol: 'tcp', from_port: 22, to_port: 22 }),
      400,
      `This rule already exists in group ${parent}`,
    );
    fault(await rule({ ip_protocol: 'foo', from_port: 1, to_port: 2 }), 400, 'Invalid IP protocol foo.');
    fault(
      await rule({ ip_protocol: 'tcp', from_port: 22, to_port: 21 }),
      400,
      'Invalid port range 22:21. Former value cannot be greater than the later',
    );
    fault(
      await rule({ ip_protocol: 'udp', from_port: 1, to_port: 65536 }),
      400,
      'Invalid port range 1:65536. Valid UDP ports should be between 1-65535',
    );
    fault(
      await rule({ ip_protocol: 'tcp', from_port: 'a', to_port: 2 }),
      400,
      'Invalid input received: To and From ports must be integers',
    );
    fault(
      await rule({ ip_protocol: 'tcp', from_port: 1, to_port: 2, cidr: '10.0.0.300/24' }),
      400,
      '10.0.0.300/24 is not a valid IP network.',
    );
    fault(
      await rule({ ip_protocol: 'tcp', from_port: 1, to_port: 2, cidr: '10.0.0.0/0' }),
      400,
      'Bad prefix for network in cidr 10.0.0.0/0',
    );
    fault(await rule({ cidr: '10.0.0.0/8' }), 400, 'Not enough parameters to build a valid rule.');
    fault(await rule({ ip_protocol: 'tcp', from_port: 1, to_port: 2 }, 'reader'), 403);
    fault(
      await call('POST', '/os-security-group-rules', {
        body: { security_group_rule: { parent_group_id: 'x1' } },
      }),
      400,
      /x1" is not a 'uuid'$/,
    );
    const missing = randomUUID();
    fault(
      await call('POST', '/os-security-group-rules', {
        body: {
          security_group_rule: { parent_group_id: missing, ip_protocol: 'tcp', from_port: 1, to_port: 2 },
        },
      }),
      404,
      `Security group ${missing} does not exist`,
    );
    assert.equal((await rowsOf()).length, count);

    const ping = await rule({ ip_protocol: 'icmp', from_port: -1, to_port: -1, cidr: '10.2.3.0/24' });
    assert.equal(ping.statusCode, 200, ping.body);
    const pingView = (ping.json() as { security_group_rule: Json }).security_group_rule;
    assert.deepEqual(
      [pingView.from_port, pingView.to_port, pingView.ip_range],
      [-1, -1, { cidr: '10.2.3.0/24' }],
    );
    const pingRow = (await rowsOf()).find((r) => r.id === pingView.id)!;
    assert.deepEqual([pingRow.protocol, pingRow.portRangeMin, pingRow.portRangeMax], ['icmp', null, null]);

    // A remote group without ports opens TCP 1-65535.
    const fromPeer = await rule({ ip_protocol: 'tcp', group_id: peer });
    assert.equal(fromPeer.statusCode, 200, fromPeer.body);
    const peerView = (fromPeer.json() as { security_group_rule: Json }).security_group_rule;
    assert.deepEqual(
      [peerView.from_port, peerView.to_port, peerView.group, peerView.ip_range],
      [1, 65535, { name: 'rules-peer', tenant_id: boot.demo.projectId }, {}],
    );
    const shown = (await call('GET', `/os-security-groups/${parent}`)).json() as {
      security_group: { rules: Json[] };
    };
    assert.deepEqual(
      shown.security_group.rules.map((r) => r.id).sort(),
      [sshView.id, pingView.id, peerView.id].sort(),
    );
    gone(
      await call('POST', '/os-security-group-rules', {
        version: '2.36',
        body: {
          security_group_rule: { parent_group_id: parent, ip_protocol: 'tcp', from_port: 80, to_port: 80 },
        },
      }),
    );

    // Deleting the peer group takes the rules naming it (Neutron), so Nova's view drops it.
    assert.equal((await call('DELETE', `/os-security-groups/${peer}`)).statusCode, 202);
    assert.equal(
      (await rowsOf()).some((r) => r.id === peerView.id),
      false,
    );

    const del = await call('DELETE', `/os-security-group-rules/${String(sshView.id)}`);
    assert.equal(del.statusCode, 202, del.body);
    assert.equal(
      (await rowsOf()).some((r) => r.id === sshView.id),
      false,
    );
    fault(
      await call('DELETE', `/os-security-group-rules/${String(sshView.id)}`),
      404,
      `Security group rule ${String(sshView.id)} does not exist`,
    );
    fault(await call('DELETE', `/os-security-group-rules/${String(pingView.id)}`, { as: 'other' }), 404);
    fault(await call('DELETE', '/os-security-group-rules/nope'), 400, 'Security group id should be uuid');
  });

  test('list paging (offset, limit) and an admin`s all_tenants', async () => {
    const all = ((await call('GET', '/os-security-groups')).json() as { security_groups: Json[] })
      .security_groups;
    const page = (
      (await call('GET', '/os-security-groups?limit=1&offset=1')).json() as { security_groups: Json[] }
    ).security_groups;
    assert.equal(page.length, 1);
    fault(
      await call('GET', '/os-security-groups?limit=x'),
      400,
      /^Invalid input for query parameters limit\./,
    );
    await env.cloud.neutron.ensureDefaultSecurityGroup(ctxs.other.projectId);
    const own = (
      (await call('GET', '/os-security-groups', { as: 'admin' })).json() as { security_groups: Json[] }
    ).security_groups;
    assert.ok(own.every((g) => g.tenant_id === ctxs.admin.projectId));
    const every = (
      (await call('GET', '/os-security-groups?all_tenants=1', { as: 'admin' })).json() as {
        security_groups: Json[];
      }
    ).security_groups;
    assert.ok(every.some((g) => g.tenant_id === ctxs.other.projectId));
    // all_tenants is an admin's: a member still sees its project's.
    const memberAll = (
      (await call('GET', '/os-security-groups?all_tenants=1')).json() as { security_groups: Json[] }
    ).security_groups;
    assert.equal(memberAll.length, all.length);
  });
});

describe("a server's security groups (all microversions)", () => {
  const action = (server: string, body: Json, as: Who = 'member', version = '2.79') =>
    call('POST', `/servers/${server}/action`, { as, version, body });
  const portGroups = async (server: string) =>
    (await env.cloud.neutron.listPorts({ deviceId: server })).map((p) => [...p.securityGroupIds].sort());

  test('add and remove change every port; the server view and os-security-groups follow', async () => {
    const server = await serverWithPorts(2);
    const def = (await env.cloud.neutron.ensureDefaultSecurityGroup(boot.demo.projectId)).id;
    const app = (
      (
        await call('POST', '/os-security-groups', {
          body: { security_group: { name: 'app', description: '' } },
        })
      ).json() as { security_group: { id: string } }
    ).security_group.id;

    let listed = (
      await call('GET', `/servers/${server}/os-security-groups`, { as: 'reader', version: '2.79' })
    ).json() as { security_groups: Json[] };
    // One entry per port, as Nova lists them.
    assert.deepEqual(
      listed.security_groups.map((g) => g.id),
      [def, def],
    );

    assert.equal((await action(server, { addSecurityGroup: { name: 'app' } })).statusCode, 202);
    assert.deepEqual(await portGroups(server), [[app, def].sort(), [app, def].sort()]);
    const shown = (await call('GET', `/servers/${server}`)).json() as { server: { security_groups: Json[] } };
    assert.deepEqual(shown.server.security_groups.map((g) => g.name).sort(), [
      'app',
      'app',
      'default',
      'default',
    ]);
    // By id too, and again: a port that has the group keeps one binding.
    assert.equal((await action(server, { addSecurityGroup: { name: app } })).statusCode, 202);
    assert.deepEqual(await portGroups(server), [[app, def].sort(), [app, def].sort()]);
    listed = (await call('GET', `/servers/${server}/os-security-groups`)).json() as {
      security_groups: Json[];
    };
    assert.deepEqual(
      listed.security_groups.map((g) => g.name),
      ['app', 'app', 'default', 'default'],
    );

    assert.equal((await action(server, { removeSecurityGroup: { name: 'default' } })).statusCode, 202);
    assert.equal((await action(server, { removeSecurityGroup: { name: 'app' } })).statusCode, 202);
    assert.deepEqual(await portGroups(server), [[], []]);
    const bare = (await call('GET', `/servers/${server}`)).json() as { server: Json };
    assert.equal('security_groups' in bare.server, false);
    fault(
      await action(server, { removeSecurityGroup: { name: 'app' } }),
      404,
      `Security group app not associated with the instance ${server}`,
    );
  });

  test('two adds at once both stay (one transaction each, the ports locked)', async () => {
    const server = await serverWithPorts(2);
    const ids: string[] = [];
    for (const name of ['race-a', 'race-b'])
      ids.push(
        (
          (
            await call('POST', '/os-security-groups', { body: { security_group: { name, description: '' } } })
          ).json() as { security_group: { id: string } }
        ).security_group.id,
      );
    const answers = await Promise.all(
      ['race-a', 'race-b'].map((name) => action(server, { addSecurityGroup: { name } })),
    );
    assert.deepEqual(
      answers.map((a) => a.statusCode),
      [202, 202],
    );
    const def = (await env.cloud.neutron.ensureDefaultSecurityGroup(boot.demo.projectId)).id;
    const all = [def, ...ids].sort();
    assert.deepEqual(await portGroups(server), [all, all]);
  });

  test('refusals: unknown or ambiguous group, empty name, schema, policy, another project, no ports', async () => {
    const server = await serverWithPorts(1);
    const before = await portGroups(server);
    fault(
      await action(server, { addSecurityGroup: { name: 'nope' } }),
      404,
      `Security group nope is not found for project ${boot.demo.projectId}`,
    );
    for (let i = 0; i < 2; i++)
      await call('POST', '/os-security-groups', {
        body: { security_group: { name: 'twin', description: '' } },
      });
    fault(
      await action(server, { addSecurityGroup: { name: 'twin' } }),
      409,
      "Multiple security_group matches found for name 'twin', use an ID to be more specific.",
    );
    fault(
      await action(server, { addSecurityGroup: { name: '  ' } }),
      400,
      'Security group name cannot be empty',
    );
    fault(await action(server, { addSecurityGroup: {} }), 400, /'name' is a required property$/);
    fault(
      await action(server, { addSecurityGroup: { name: 'default' } }, 'reader'),
      403,
      "Policy doesn't allow os_compute_api:os-security-groups:add to be performed.",
    );
    fault(
      await action(server, { addSecurityGroup: { name: 'default' } }, 'other'),
      404,
      `Instance ${server} could not be found.`,
    );
    fault(await call('GET', `/servers/${server}/os-security-groups`, { as: 'other' }), 404);
    assert.deepEqual(await portGroups(server), before);
    const portless = await serverWithPorts(0);
    fault(
      await action(portless, { addSecurityGroup: { name: 'default' } }),
      404,
      `instance_id ${portless} could not be found as device id on any ports`,
    );
  });
});

describe('/images and image metadata (to 2.35 and 2.38)', () => {
  async function ownImage(properties: Record<string, string> = {}, name = `img-${randomUUID().slice(0, 6)}`) {
    return env.cloud.glance.createImage(
      { name, ownerProjectId: boot.demo.projectId, visibility: 'private', properties },
      ctxs.member,
    );
  }

  test('list, detail and show in Nova`s image view; another project`s private image is not there', async () => {
    const index = (await call('GET', '/images')).json() as { images: Json[] };
    const cirros = index.images.find((i) => i.id === boot.imageId)!;
    assert.deepEqual(cirros.links, [
      { rel: 'self', href: `${TEST_PUBLIC_URL}/compute/v2.1/images/${boot.imageId}` },
      { rel: 'bookmark', href: `${TEST_PUBLIC_URL}/compute/images/${boot.imageId}` },
      {
        rel: 'alternate',
        type: 'application/vnd.openstack.image',
        href: `${TEST_PUBLIC_URL}/image/images/${boot.imageId}`,
      },
    ]);
    assert.deepEqual(Object.keys(cirros).sort(), ['id', 'links', 'name']);
    const glance = await env.cloud.glance.getImage(boot.imageId, ctxs.member);
    const shown = ((await call('GET', `/images/${boot.imageId}`)).json() as { image: Json }).image;
    assert.deepEqual(
      {
        status: shown.status,
        progress: shown.progress,
        size: shown['OS-EXT-IMG-SIZE:size'],
        minRam: shown.minRam,
        minDisk: shown.minDisk,
        metadata: shown.metadata,
        name: shown.name,
      },
      {
        status: 'ACTIVE',
        progress: 100,
        size: glance.size,
        minRam: glance.minRam,
        minDisk: glance.minDisk,
        metadata: glance.properties,
        name: glance.name,
      },
    );
    assert.match(String(shown.created), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

    const snapshot = await ownImage({ instance_uuid: 'a1b2', auto_disk_config: 'True' });
    const snap = ((await call('GET', `/images/${snapshot.id}`)).json() as { image: Json }).image;
    assert.deepEqual([snap.status, snap.progress, snap['OS-EXT-IMG-SIZE:size']], ['SAVING', 25, 0]);
    assert.deepEqual(snap.server, {
      id: 'a1b2',
      links: [
        { rel: 'self', href: `${TEST_PUBLIC_URL}/compute/v2.1/servers/a1b2` },
        { rel: 'bookmark', href: `${TEST_PUBLIC_URL}/compute/servers/a1b2` },
      ],
    });
    assert.equal(snap['OS-DCF:diskConfig'], 'AUTO');
    fault(await call('GET', `/images/${snapshot.id}`, { as: 'other' }), 404, 'Image not found.');
    const otherList = (await call('GET', '/images/detail', { as: 'other' })).json() as { images: Json[] };
    assert.equal(
      otherList.images.some((i) => i.id === snapshot.id),
      false,
    );
    fault(await call('GET', `/images/${randomUUID()}`), 404, 'Image not found.');
    gone(await call('GET', '/images', { version: '2.36' }));
    gone(await call('GET', `/images/${boot.imageId}`, { version: '2.36' }));
  });

  test('filters (name, status, server, property-*), newest first, limit and marker with images_links', async () => {
    const a = await ownImage({ instance_uuid: 'srv-1', image_type: 'snapshot' }, 'filter-a');
    // Newest first needs two creation times (made in one millisecond, the two would tie): b is a second later.
    clockAheadMs += 1000;
    const b = await ownImage({}, 'filter-b');
    const ids = async (query: string) =>
      ((await call('GET', `/images${query}`)).json() as { images: Json[] }).images.map((i) => i.id);
    assert.deepEqual(await ids('?name=filter-a'), [a.id]);
    assert.deepEqual(await ids(`?server=${encodeURIComponent('http://x/servers/srv-1')}`), [a.id]);
    assert.deepEqual(await ids('?type=snapshot'), [a.id]);
    assert.deepEqual(await ids('?property-image_type=snapshot'), [a.id]);
    // Nova lower-cases the status for Glance: a queued image (SAVING in the view) is `QUEUED` here.
    assert.ok((await ids('?status=QUEUED')).includes(b.id));
    assert.equal((await ids('?status=ACTIVE')).includes(b.id), false);
    const all = await ids('');
    assert.ok(all.indexOf(b.id) < all.indexOf(a.id), 'newest first');
    const first = (await call('GET', '/images?limit=1')).json() as { images: Json[]; images_links: Json[] };
    assert.deepEqual(
      first.images.map((i) => i.id),
      [all[0]],
    );
    assert.equal(
      first.images_links[0]!.href,
      `${TEST_PUBLIC_URL}/compute/v2.1/images?limit=1&marker=${String(all[0])}`,
    );
    assert.deepEqual(await ids(`?limit=1&marker=${String(all[0])}`), [all[1]]);
    fault(await call('GET', '/images?marker=nope'), 400, 'Invalid marker. Image nope could not be found.');
    fault(await call('GET', '/images?status=bogus'), 400, 'Invalid status value: bogus');
  });

  test('delete: 204 and gone from Glance; another project`s public image 403; unknown 404', async () => {
    const mine = await ownImage();
    const res = await call('DELETE', `/images/${mine.id}`);
    assert.equal(res.statusCode, 204, res.body);
    await assert.rejects(env.cloud.glance.getImage(mine.id, ctxs.admin), (err) =>
      isCloudError(err, 'NotFound'),
    );
    fault(await call('DELETE', `/images/${boot.imageId}`), 403, 'You are not allowed to delete the image.');
    assert.equal((await env.cloud.glance.getImage(boot.imageId, ctxs.admin)).status, 'active');
    fault(await call('DELETE', `/images/${mine.id}`), 404, 'Image not found.');
    gone(await call('DELETE', `/images/${boot.imageId}`, { version: '2.36' }));
  });

  test('metadata: list, show, merge, replace, set and delete an item, as Glance properties; to 2.38', async () => {
    const image = await ownImage({ os_distro: 'cirros' });
    const url = `/images/${image.id}/metadata`;
    const props = async () => (await env.cloud.glance.getImage(image.id, ctxs.member)).properties;
    assert.deepEqual((await call('GET', url, { version: '2.38' })).json(), {
      metadata: { os_distro: 'cirros' },
    });
    const merged = await call('POST', url, {
      body: { metadata: { os_version: '1', architecture: 'x86_64' } },
    });
    assert.deepEqual(merged.json(), {
      metadata: { os_distro: 'cirros', os_version: '1', architecture: 'x86_64' },
    });
    assert.deepEqual(await props(), { os_distro: 'cirros', os_version: '1', architecture: 'x86_64' });
    assert.deepEqual((await call('GET', `${url}/os_version`)).json(), { meta: { os_version: '1' } });
    gone(await call('GET', `${url}/missing`));
    const item = await call('PUT', `${url}/os_version`, { body: { meta: { os_version: '2' } } });
    assert.deepEqual(item.json(), { meta: { os_version: '2' } });
    fault(
      await call('PUT', `${url}/os_version`, { body: { meta: { other: '2' } } }),
      400,
      'Request body and URI mismatch',
    );
    const replaced = await call('PUT', url, { body: { metadata: { only: 'this' } } });
    assert.deepEqual(replaced.json(), { metadata: { only: 'this' } });
    assert.deepEqual(await props(), { only: 'this' });
    assert.equal((await call('DELETE', `${url}/only`)).statusCode, 204);
    assert.deepEqual(await props(), {});
    fault(await call('DELETE', `${url}/only`), 404, 'Invalid metadata key');

    const tooMany = Object.fromEntries(Array.from({ length: 129 }, (_, i) => [`k${i}`, 'v']));
    fault(await call('POST', url, { body: { metadata: tooMany } }), 403, 'Image metadata limit exceeded');
    fault(
      await call('POST', url, { as: 'reader', body: { metadata: { a: 'b' } } }),
      403,
      `Not authorized for image ${image.id}.`,
    );
    fault(await call('POST', `/images/${boot.imageId}/metadata`, { body: { metadata: { a: 'b' } } }), 403);
    fault(await call('GET', url, { as: 'other' }), 404, 'Image not found.');
    assert.deepEqual(await props(), {});
    gone(await call('GET', url, { version: '2.39' }));
  });
});

describe('os-volumes (to 2.35)', () => {
  test('create (Cinder`s own creation), show, list and detail in Nova`s view; delete', async () => {
    const res = await call('POST', '/os-volumes', {
      body: {
        volume: { size: 1, display_name: 'v-proxy', display_description: 'd', metadata: { Type: 'work' } },
      },
    });
    assert.equal(res.statusCode, 200, res.body);
    const created = (res.json() as { volume: Json }).volume;
    assert.equal(res.headers.location, `${TEST_PUBLIC_URL}/compute/v2.1/os-volumes/${String(created.id)}`);
    assert.deepEqual(
      { ...created, id: '', createdAt: '' },
      {
        id: '',
        status: 'creating',
        size: 1,
        availabilityZone: 'nova',
        createdAt: '',
        attachments: [{}],
        displayName: 'v-proxy',
        displayDescription: 'd',
        volumeType: '__DEFAULT__',
        snapshotId: null,
        metadata: { Type: 'work' },
      },
    );
    const volume = await env.cloud.cinder.waitForVolume(String(created.id));
    assert.deepEqual(
      [volume.projectId, volume.sizeGb, volume.metadata],
      [boot.demo.projectId, 1, { Type: 'work' }],
    );
    const shown = (
      (await call('GET', `/os-volumes/${volume.id}`, { as: 'reader' })).json() as { volume: Json }
    ).volume;
    assert.equal(shown.status, 'available');
    for (const path of ['/os-volumes', '/os-volumes/detail']) {
      const listed = (await call('GET', path, { as: 'reader' })).json() as { volumes: Json[] };
      assert.deepEqual(
        listed.volumes.find((v) => v.id === volume.id),
        shown,
      );
    }
    fault(
      await call('GET', `/os-volumes/${volume.id}`, { as: 'other' }),
      404,
      `Volume ${volume.id} could not be found.`,
    );
    fault(await call('DELETE', `/os-volumes/${volume.id}`, { as: 'reader' }), 403);
    gone(await call('GET', `/os-volumes/${volume.id}`, { version: '2.36' }));
    gone(await call('GET', '/os-volumes/'));

    const del = await call('DELETE', `/os-volumes/${volume.id}`);
    assert.equal(del.statusCode, 202, del.body);
    await assert.rejects(env.cloud.cinder.getVolume(volume.id, ctxs.member), (err) =>
      isCloudError(err, 'NotFound'),
    );
    fault(await call('DELETE', `/os-volumes/${volume.id}`), 404, `Volume ${volume.id} could not be found.`);
  });

  test('bad sizes, types and policy create nothing; an attached volume shows its server and is not deleted', async () => {
    const count = async () => (await env.cloud.cinder.listVolumes({})).length;
    const before = await count();
    fault(
      await call('POST', '/os-volumes', { body: { volume: { size: '#$%' } } }),
      400,
      /does not match '\^\[0-9\]\+\$'$/,
    );
    fault(await call('POST', '/os-volumes', { body: { volume: { size: '' } } }), 400);
    fault(
      await call('POST', '/os-volumes', { body: { volume: { size: '0' } } }),
      400,
      "Invalid input received: Volume size '0' must be an integer and greater than 0",
    );
    fault(
      await call('POST', '/os-volumes', { body: { volume: { display_name: 'x' } } }),
      400,
      /'size' is a required property$/,
    );
    fault(await call('POST', '/os-volumes', { body: { volume: { size: 1, imageRef: 'x' } } }), 400);
    fault(
      await call('POST', '/os-volumes', { body: { volume: { size: 1, volume_type: 'gold' } } }),
      404,
      'Volume type with name gold could not be found.',
    );
    fault(
      await call('POST', '/os-volumes', { as: 'reader', body: { volume: { size: 1 } } }),
      403,
      "Policy doesn't allow os_compute_api:os-volumes:create to be performed.",
    );
    gone(await call('POST', '/os-volumes', { version: '2.36', body: { volume: { size: 1 } } }));
    assert.equal(await count(), before);

    const made = (await call('POST', '/os-volumes', { body: { volume: { size: '1' } } })).json() as {
      volume: { id: string };
    };
    await env.cloud.cinder.waitForVolume(made.volume.id);
    const server = await serverWithPorts(0);
    await env.cloud.cinder.legacyReserve(made.volume.id);
    await env.cloud.cinder.legacyAttach(made.volume.id, server, '/dev/vdb');
    const shown = ((await call('GET', `/os-volumes/${made.volume.id}`)).json() as { volume: Json }).volume;
    assert.deepEqual(shown.attachments, [
      { id: made.volume.id, volumeId: made.volume.id, serverId: server, device: '/dev/vdb' },
    ]);
    fault(
      await call('DELETE', `/os-volumes/${made.volume.id}`),
      400,
      /^Invalid input received: Invalid volume: /,
    );
    assert.equal((await env.cloud.cinder.getVolume(made.volume.id)).status, 'in-use');
  });

  test('offset and limit (common.limited)', async () => {
    for (let i = 0; i < 2; i++) await call('POST', '/os-volumes', { body: { volume: { size: 1 } } });
    const all = ((await call('GET', '/os-volumes')).json() as { volumes: Json[] }).volumes;
    assert.ok(all.length >= 3);
    const page = ((await call('GET', '/os-volumes/detail?offset=1&limit=1')).json() as { volumes: Json[] })
      .volumes;
    assert.deepEqual(
      page.map((v) => v.id),
      [all[1]!.id],
    );
    fault(await call('GET', '/os-volumes?offset=-1'), 400, /^Invalid input for query parameters offset\./);
  });
});

describe('os-snapshots (to 2.35)', () => {
  const settled = (id: string): Promise<string> =>
    pollUntil(
      async () => {
        const { status } = await env.cloud.cinder.snapshots.get(id);
        return status === 'creating' ? undefined : status;
      },
      { timeoutMs: 5_000, intervalMs: 10, what: `snapshot ${id} to leave creating` },
    );

  test('create (Cinder`s own snapshot, 200), show, list and detail in Nova`s view; delete 202', async () => {
    const source = await env.cloud.cinder.createVolume({
      requestKey: 'os-snapshots-source',
      projectId: boot.demo.projectId,
      sizeGb: 1,
      name: 'snap-source',
    });
    await env.cloud.cinder.waitForVolume(source.id);
    const res = await call('POST', '/os-snapshots', {
      body: { snapshot: { volume_id: source.id, display_name: 's-proxy', display_description: 'd' } },
    });
    assert.equal(res.statusCode, 200, res.body);
    const created = (res.json() as { snapshot: Json }).snapshot;
    assert.deepEqual(
      { ...created, id: '', createdAt: '' },
      {
        id: '',
        volumeId: source.id,
        status: 'creating',
        size: 1,
        createdAt: '',
        displayName: 's-proxy',
        displayDescription: 'd',
      },
    );
    assert.match(String(created.createdAt), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/);
    const id = String(created.id);
    const row = await env.cloud.cinder.snapshots.get(id);
    assert.deepEqual(
      [row.projectId, row.volumeId, row.name, row.description],
      [boot.demo.projectId, source.id, 's-proxy', 'd'],
    );
    assert.equal(await settled(id), 'available');
    const shown = ((await call('GET', `/os-snapshots/${id}`, { as: 'reader' })).json() as { snapshot: Json })
      .snapshot;
    assert.deepEqual({ ...shown, status: shown.status }, { ...created, status: 'available' });
    for (const path of ['/os-snapshots', '/os-snapshots/detail']) {
      const listed = (await call('GET', path, { as: 'reader' })).json() as { snapshots: Json[] };
      assert.deepEqual(
        listed.snapshots.find((v) => v.id === id),
        shown,
      );
      const others = (await call('GET', path, { as: 'other' })).json() as { snapshots: Json[] };
      assert.equal(
        others.snapshots.find((v) => v.id === id),
        undefined,
      );
    }
    fault(
      await call('GET', `/os-snapshots/${id}`, { as: 'other' }),
      404,
      `Snapshot ${id} could not be found.`,
    );
    fault(
      await call('DELETE', `/os-snapshots/${id}`, { as: 'reader' }),
      403,
      "Policy doesn't allow os_compute_api:os-volumes:snapshots:delete to be performed.",
    );
    gone(await call('GET', `/os-snapshots/${id}`, { version: '2.36' }));
    gone(await call('GET', '/os-snapshots', { version: '2.36' }));
    gone(
      await call('POST', '/os-snapshots', { version: '2.36', body: { snapshot: { volume_id: source.id } } }),
    );
    gone(await call('GET', '/os-snapshots/'));

    const del = await call('DELETE', `/os-snapshots/${id}`);
    assert.equal(del.statusCode, 202, del.body);
    await assert.rejects(env.cloud.cinder.snapshots.get(id, ctxs.member), (err) =>
      isCloudError(err, 'NotFound'),
    );
    fault(await call('DELETE', `/os-snapshots/${id}`), 404, `Snapshot ${id} could not be found.`);
    fault(await call('GET', `/os-snapshots/${id}`), 404, `Snapshot ${id} could not be found.`);
  });

  test('bad bodies, policy and a volume not found or in use create nothing', async () => {
    const count = async () => (await env.cloud.cinder.snapshots.list({})).length;
    const before = await count();
    fault(
      await call('POST', '/os-snapshots', { body: { snapshot: {} } }),
      400,
      /'volume_id' is a required property$/,
    );
    fault(await call('POST', '/os-snapshots', { body: { snapshot: { volume_id: 'x', name: 'n' } } }), 400);
    fault(
      await call('POST', '/os-snapshots', { body: { snapshot: { volume_id: 'x', force: 'maybe' } } }),
      400,
    );
    const missing = randomUUID();
    fault(
      await call('POST', '/os-snapshots', { body: { snapshot: { volume_id: missing } } }),
      404,
      `Volume ${missing} could not be found.`,
    );
    const source = await env.cloud.cinder.createVolume({
      requestKey: 'os-snapshots-refused',
      projectId: boot.demo.projectId,
      sizeGb: 1,
    });
    await env.cloud.cinder.waitForVolume(source.id);
    fault(
      await call('POST', '/os-snapshots', { as: 'reader', body: { snapshot: { volume_id: source.id } } }),
      403,
      "Policy doesn't allow os_compute_api:os-volumes:snapshots:create to be performed.",
    );
    fault(
      await call('POST', '/os-snapshots', { as: 'other', body: { snapshot: { volume_id: source.id } } }),
      404,
      `Volume ${source.id} could not be found.`,
    );
    assert.equal(await count(), before);
  });
});

describe('extensions', () => {
  test("Nova's fixed list; show by alias; unknown alias 404", async () => {
    const list = (await call('GET', '/extensions', { as: 'reader', version: '2.79' })).json() as {
      extensions: Json[];
    };
    assert.equal(list.extensions.length, 99);
    assert.ok(list.extensions.some((e) => e.name === 'Hosts'));
    const one = (await call('GET', '/extensions/os-consoles')).json() as { extension: Json };
    assert.deepEqual(Object.keys(one.extension).sort(), [
      'alias',
      'description',
      'links',
      'name',
      'namespace',
      'updated',
    ]);
    assert.equal(one.extension.alias, 'os-consoles');
    gone(await call('GET', '/extensions/os-nope'));
  });
});
