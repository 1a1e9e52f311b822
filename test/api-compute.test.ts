/**
 * The compute API (Nova v2.1) through Fastify's inject, over a bootstrapped cloud without Temporal: version
 * documents and microversion negotiation, the server body per microversion (field by field, types
 * included, against records written as nova-conductor writes them), filters and pagination, flavors, key
 * pairs, hypervisors, services, limits, zones, instance actions, Nova's policy defaults and tenancy, and
 * bad requests that get Nova's status and body and change nothing. The Temporal client here throws when
 * touched, so a refused POST /servers also proves that no workflow was started.
 */
import assert from 'node:assert/strict';
import { randomUUID, X509Certificate } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { auditLeaks } from '../cloud/audit';
import { bootstrapCloud, type BootstrapResult } from '../cloud/bootstrap';
import { DEFAULT_HOSTS } from '../cloud/hosts';
import { fingerprintOf } from '../cloud/nova';
import { openApiTestEnv, TEST_PUBLIC_URL, type ApiTestEnv } from './helpers/api';
import { addTenantUser } from './helpers/security';

const V = '/compute/v2.1';
/** base64 of "#cloud-config\n". */
const USER_DATA = Buffer.from('#cloud-config\n').toString('base64');
type Json = Record<string, unknown>;

let env: ApiTestEnv;
let boot: BootstrapResult;
const tokens: Record<'admin' | 'member' | 'reader' | 'other', string> = {
  admin: '',
  member: '',
  reader: '',
  other: '',
};
let otherProjectId = '';

async function tokenOf(username: string, password: string, projectName: string): Promise<string> {
  return (await env.cloud.keystone.authenticate({ username, password, projectName })).token;
}

function call(
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  url: string,
  options: { as?: keyof typeof tokens; version?: string; body?: unknown; raw?: string } = {},
): Promise<LightMyRequestResponse> {
  const headers: Record<string, string> = {};
  if (options.as) headers['x-auth-token'] = tokens[options.as];
  if (options.version) headers['openstack-api-version'] = `compute ${options.version}`;
  if (options.body !== undefined || options.raw !== undefined) headers['content-type'] = 'application/json';
  return env.app.inject({
    method,
    url: `${V}${url}`,
    headers,
    ...(options.raw !== undefined
      ? { payload: options.raw }
      : options.body !== undefined
        ? { payload: JSON.stringify(options.body) }
        : {}),
  });
}

function fault(res: LightMyRequestResponse, status: number, key: string, message?: RegExp | string): void {
  assert.equal(res.statusCode, status, res.body);
  const body = res.json() as Record<string, { code: number; message: string }>;
  assert.deepEqual(Object.keys(body), [key]);
  assert.equal(body[key]!.code, status);
  assert.equal(typeof body[key]!.message, 'string');
  if (typeof message === 'string') assert.equal(body[key]!.message, message);
  else if (message) assert.match(body[key]!.message, message);
}

/** An instance as nova-api and the conductor leave it (the workflow is tested in api-compute-boot). */
async function recordInstance(
  projectId: string,
  userId: string,
  overrides: {
    name?: string;
    keyName?: string;
    metadata?: Record<string, string>;
    userData?: string;
    tags?: string[];
  } = {},
): Promise<string> {
  const uuid = randomUUID();
  await env.cloud.nova.createInstance({
    uuid,
    requestId: `req-${uuid}`,
    name: overrides.name ?? `vm-${uuid.slice(0, 8)}`,
    projectId,
    userId,
    flavor: '1',
    imageRef: boot.imageId,
    networks: [boot.privateNetworkId],
    ...(overrides.keyName ? { keyName: overrides.keyName } : {}),
    ...(overrides.metadata ? { metadata: overrides.metadata } : {}),
    ...(overrides.userData ? { userData: overrides.userData } : {}),
    ...(overrides.tags ? { tags: overrides.tags } : {}),
  });
  return uuid;
}

async function rowCounts(): Promise<Record<string, number>> {
  const db = env.cloud.nova.store.db;
  const count = async (table: 'instances' | 'key_pairs' | 'quota_allocations' | 'instance_actions') =>
    Number(
      (
        await db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  return {
    instances: await count('instances'),
    keyPairs: await count('key_pairs'),
    quota: await count('quota_allocations'),
    actions: await count('instance_actions'),
    ports: (await env.cloud.neutron.listPorts()).length,
  };
}

let memberUserId = '';

before(async () => {
  env = await openApiTestEnv({ services: ['compute'], label: 'api-compute' });
  boot = await bootstrapCloud(env.cloud, { hosts: DEFAULT_HOSTS });
  tokens.admin = await tokenOf(boot.admin.username, boot.admin.password, boot.admin.projectName);
  tokens.member = await tokenOf(boot.demo.username, boot.demo.password, boot.demo.projectName);
  memberUserId = (await env.cloud.keystone.validateToken(tokens.member)).userId;
  const reader = await addTenantUser(env.cloud, { username: 'rita', projectName: 'demo', role: 'reader' });
  tokens.reader = reader.token!;
  const other = await addTenantUser(env.cloud, { username: 'otto', projectName: 'other', role: 'member' });
  tokens.other = other.token!;
  otherProjectId = other.projectId;
});

after(async () => {
  await env?.close();
});

describe('versions and microversions', () => {
  test('GET /compute/ lists v2.0 then v2.1 with its microversion range, no token needed', async () => {
    const res = await env.app.inject({ method: 'GET', url: '/compute/' });
    assert.equal(res.statusCode, 200);
    const { versions } = res.json() as { versions: Json[] };
    assert.equal(versions.length, 2);
    // Nova still lists the legacy v2.0 first (tempest's test_list_api_versions checks the order).
    assert.equal(versions[0]!.id, 'v2.0');
    assert.equal(versions[0]!.status, 'SUPPORTED');
    const v20 = await env.app.inject({ method: 'GET', url: '/compute/v2/' });
    assert.equal(v20.statusCode, 200);
    assert.equal((v20.json() as { version: Json }).version.id, 'v2.0');
    assert.deepEqual(versions[1], {
      id: 'v2.1',
      status: 'CURRENT',
      version: '2.79',
      min_version: '2.1',
      updated: '2013-07-23T11:33:21Z',
      links: [{ rel: 'self', href: `${TEST_PUBLIC_URL}/compute/v2.1/` }],
    });
  });

  test('GET /compute/v2.1 is the version document', async () => {
    for (const url of ['/compute/v2.1', '/compute/v2.1/']) {
      const res = await env.app.inject({ method: 'GET', url });
      assert.equal(res.statusCode, 200);
      const { version } = res.json() as { version: Json };
      assert.equal(version.id, 'v2.1');
      assert.equal(version.version, '2.79');
      assert.equal(version.min_version, '2.1');
      assert.deepEqual(version['media-types'], [
        { base: 'application/json', type: 'application/vnd.openstack.compute+json;version=2.1' },
      ]);
    }
  });

  test('no header is 2.1; both headers and latest are honoured and echoed with Vary', async () => {
    const plain = await call('GET', '/flavors', { as: 'member' });
    assert.equal(plain.headers['openstack-api-version'], 'compute 2.1');
    assert.equal(plain.headers['x-openstack-nova-api-version'], '2.1');
    assert.equal(plain.headers.vary, 'OpenStack-API-Version, X-OpenStack-Nova-API-Version');
    const standard = await call('GET', '/flavors', { as: 'member', version: '2.47' });
    assert.equal(standard.headers['openstack-api-version'], 'compute 2.47');
    const legacy = await env.app.inject({
      method: 'GET',
      url: `${V}/flavors`,
      headers: { 'x-auth-token': tokens.member, 'x-openstack-nova-api-version': '2.53' },
    });
    assert.equal(legacy.headers['x-openstack-nova-api-version'], '2.53');
    const latest = await call('GET', '/flavors', { as: 'member', version: 'latest' });
    assert.equal(latest.headers['openstack-api-version'], 'compute 2.79');
    // Another service's entry in the standard header is not ours.
    const mixed = await env.app.inject({
      method: 'GET',
      url: `${V}/flavors`,
      headers: { 'x-auth-token': tokens.member, 'openstack-api-version': 'volume 3.50, compute 2.60' },
    });
    assert.equal(mixed.headers['openstack-api-version'], 'compute 2.60');
  });

  test('out of range is 406 computeFault with Nova message; malformed is 400', async () => {
    fault(
      await call('GET', '/flavors', { as: 'member', version: '2.80' }),
      406,
      'computeFault',
      'Version 2.80 is not supported by the API. Minimum is 2.1 and maximum is 2.79.',
    );
    fault(await call('GET', '/flavors', { as: 'member', version: '3.0' }), 406, 'computeFault');
    fault(await call('GET', '/flavors', { as: 'member', version: '2.0' }), 406, 'computeFault');
    fault(
      await call('GET', '/flavors', { as: 'member', version: '2.x' }),
      400,
      'badRequest',
      'API Version String 2.x is of invalid format. Must be of format MajorNum.MinorNum.',
    );
    fault(await call('GET', '/flavors', { as: 'member', version: '02.1' }), 400, 'badRequest');
  });
});

describe('authentication', () => {
  test('no token and a forged token are 401 with WWW-Authenticate, before anything else', async () => {
    for (const headers of [{}, { 'x-auth-token': 'forged.token.value' }]) {
      const res = await env.app.inject({
        method: 'POST',
        url: `${V}/servers`,
        headers: { ...headers, 'content-type': 'application/json' },
        payload: '{not json',
      });
      fault(res, 401, 'unauthorized', 'The request you have made requires authentication.');
      assert.equal(res.headers['www-authenticate'], `Keystone uri="${TEST_PUBLIC_URL}/identity"`);
    }
  });

  test('a valid domain-scoped or unscoped token is 403: Nova takes project-scoped tokens only', async () => {
    const ks = env.cloud.keystone;
    const admin = await ks.getUser({ user: boot.admin.username });
    const adminRole = (await ks.listRoles()).find((r) => r.name === 'admin')!;
    await ks.assignDomainRole({ userId: admin.id, domainId: 'default', roleId: adminRole.id });
    const user = { name: boot.admin.username, domain: { id: 'default' } };
    const scopes = [{ domain: { id: 'default' } }, { unscoped: true as const }];
    const before = await rowCounts();
    for (const scope of scopes) {
      const { token } = await ks.issueToken({
        method: 'password',
        user,
        password: boot.admin.password,
        scope,
      });
      for (const [method, url] of [
        ['GET', `${V}/servers`],
        ['POST', `${V}/servers`],
      ] as const) {
        const res = await env.app.inject({
          method,
          url,
          headers: { 'x-auth-token': token, 'content-type': 'application/json' },
          payload:
            method === 'POST'
              ? JSON.stringify({ server: { name: 'vm', imageRef: boot.imageId, flavorRef: '1' } })
              : undefined,
        });
        fault(res, 403, 'forbidden', 'This service takes project-scoped tokens only.');
      }
    }
    assert.deepEqual(await rowCounts(), before);
    await ks.unassignDomainRole({ userId: admin.id, domainId: 'default', roleId: adminRole.id });
  });
});

describe('POST /servers: bad requests change nothing and start no workflow', () => {
  const good = () => ({
    server: {
      name: 'vm-bad',
      imageRef: boot.imageId,
      flavorRef: '1',
      networks: [{ uuid: boot.privateNetworkId }],
    },
  });

  test("each gets Nova's status and fault body", async () => {
    const before = await rowCounts();
    assert.deepEqual(await auditLeaks(env.cloud, { hosts: [] }), []);
    const cases: Array<
      [string, { body?: unknown; raw?: string; version?: string }, number, string, RegExp?]
    > = [
      ['malformed JSON', { raw: '{"server": ' }, 400, 'badRequest', /^Malformed request body$/],
      ['empty body', { raw: '' }, 400, 'badRequest'],
      [
        'unknown top-level field',
        { body: { ...good(), extra: 1 } },
        400,
        'badRequest',
        /Additional properties are not allowed \('extra' was unexpected\)/,
      ],
      [
        'unknown server field',
        { body: { server: { ...good().server, colour: 'red' } } },
        400,
        'badRequest',
        /'colour' was unexpected/,
      ],
      [
        'missing name',
        { body: { server: { ...good().server, name: undefined } } },
        400,
        'badRequest',
        /'name' is a required property/,
      ],
      [
        'missing flavorRef',
        { body: { server: { ...good().server, flavorRef: undefined } } },
        400,
        'badRequest',
        /'flavorRef' is a required property/,
      ],
      [
        'name with a leading space',
        { body: { server: { ...good().server, name: ' vm' } } },
        400,
        'badRequest',
      ],
      [
        'name too long',
        { body: { server: { ...good().server, name: 'x'.repeat(256) } } },
        400,
        'badRequest',
        /is too long/,
      ],
      ['empty name', { body: { server: { ...good().server, name: '' } } }, 400, 'badRequest', /is too short/],
      [
        'name of the wrong type',
        { body: { server: { ...good().server, name: 42 } } },
        400,
        'badRequest',
        /42 is not of type 'string'/,
      ],
      [
        'networks as a string before 2.37',
        { body: { server: { ...good().server, networks: 'auto' } } },
        400,
        'badRequest',
      ],
      [
        'networks missing from 2.37',
        { body: { server: { ...good().server, networks: undefined } }, version: '2.37' },
        400,
        'badRequest',
        /'networks' is a required property/,
      ],
      [
        'description before 2.19',
        { body: { server: { ...good().server, description: 'd' } } },
        400,
        'badRequest',
        /'description' was unexpected/,
      ],
      [
        'unknown flavor',
        { body: { server: { ...good().server, flavorRef: '999' } } },
        400,
        'badRequest',
        /^Flavor 999 could not be found\.$/,
      ],
      [
        'unknown image',
        { body: { server: { ...good().server, imageRef: randomUUID() } } },
        400,
        'badRequest',
        /^Can not find requested image$/,
      ],
      ['image not a uuid', { body: { server: { ...good().server, imageRef: 'cirros' } } }, 400, 'badRequest'],
      [
        'no image and no volume',
        { body: { server: { ...good().server, imageRef: undefined } } },
        400,
        'badRequest',
        /^Missing imageRef attribute$/,
      ],
      [
        'unknown network',
        { body: { server: { ...good().server, networks: [{ uuid: randomUUID() }] } } },
        400,
        'badRequest',
        /could not be found/,
      ],
      [
        'auto with two networks available',
        { body: { server: { ...good().server, networks: 'auto' } }, version: '2.37' },
        409,
        'conflictingRequest',
        /More than one possible network found/,
      ],
      [
        'unknown key pair',
        { body: { server: { ...good().server, key_name: 'nope' } } },
        400,
        'badRequest',
        /^Invalid key_name provided\.$/,
      ],
      [
        'unknown zone',
        { body: { server: { ...good().server, availability_zone: 'mars' } } },
        400,
        'badRequest',
        /availability zone is not available/,
      ],
      [
        'min_count above max_count',
        { body: { server: { ...good().server, min_count: 3, max_count: 2 } } },
        400,
        'badRequest',
        /^min_count must be <= max_count$/,
      ],
      [
        'min_count of the wrong type',
        { body: { server: { ...good().server, min_count: 'one' } } },
        400,
        'badRequest',
      ],
      [
        'a BDM of a volume that does not exist',
        {
          body: {
            server: {
              ...good().server,
              block_device_mapping_v2: [
                { source_type: 'volume', destination_type: 'volume', uuid: randomUUID(), boot_index: 0 },
              ],
            },
          },
        },
        400,
        'badRequest',
        /^Block Device Mapping is Invalid: failed to get volume [0-9a-f-]{36}\.$/,
      ],
      [
        'a boot volume without a size',
        {
          body: {
            server: {
              ...good().server,
              imageRef: '',
              block_device_mapping_v2: [
                { source_type: 'image', destination_type: 'volume', uuid: boot.imageId, boot_index: 0 },
              ],
            },
          },
        },
        400,
        'badRequest',
        /non-zero size/,
      ],
      [
        'metadata value not a string',
        { body: { server: { ...good().server, metadata: { a: 1 } } } },
        400,
        'badRequest',
      ],
      [
        'user_data not base64',
        { body: { server: { ...good().server, user_data: 'not base64!' } } },
        400,
        'badRequest',
        /^Invalid input for field\/attribute server\/user_data\. Value: .*is not a 'base64'$/,
      ],
      [
        'user_data over 65535 characters',
        { body: { server: { ...good().server, user_data: 'QUJD'.repeat(16_384) } } },
        400,
        'badRequest',
        /user_data.*is too long/,
      ],
      [
        'tags before 2.52',
        { body: { server: { ...good().server, tags: ['a'] } }, version: '2.51' },
        400,
        'badRequest',
        /'tags' was unexpected/,
      ],
      [
        'a tag with a slash',
        { body: { server: { ...good().server, tags: ['a/b'] } }, version: '2.52' },
        400,
        'badRequest',
      ],
      [
        'more metadata items than the metadata_items quota',
        {
          body: {
            server: {
              ...good().server,
              metadata: Object.fromEntries(Array.from({ length: 129 }, (_, i) => [`k${i}`, 'v'])),
            },
          },
        },
        403,
        'forbidden',
        /^Maximum number of metadata items exceeds 128$/,
      ],
      [
        'an accessIPv4 that is not an address',
        { body: { server: { ...good().server, accessIPv4: '10.0.0.300' } } },
        400,
        'badRequest',
      ],
      [
        'a body over the 114688-byte limit',
        { body: { server: { ...good().server, metadata: { k: 'x'.repeat(200_000) } } } },
        413,
        'overLimit',
      ],
    ];
    for (const [what, options, status, key, message] of cases) {
      const res = await call('POST', '/servers', { as: 'member', ...options });
      assert.equal(res.statusCode, status, `${what}: ${res.body}`);
      fault(res, status, key, message);
    }
    assert.deepEqual(await rowCounts(), before);
    assert.deepEqual(await auditLeaks(env.cloud, { hosts: [] }), []);
  });

  test('a reader may not create (403 with the policy name); over quota is 403', async () => {
    fault(
      await call('POST', '/servers', { as: 'reader', body: good() }),
      403,
      'forbidden',
      "Policy doesn't allow os_compute_api:servers:create to be performed.",
    );
    await env.cloud.nova.setQuotaLimits(otherProjectId, { instances: 0 });
    const res = await call('POST', '/servers', {
      as: 'other',
      body: { server: { ...good().server, networks: [{ uuid: boot.publicNetworkId }] } },
    });
    fault(
      res,
      403,
      'forbidden',
      'Quota exceeded for instances: Requested 1, but already used 0 of 0 instances',
    );
  });
  test('OS-DCF:diskConfig AUTO on an image whose auto_disk_config is disabled is 400; a bad value is 400', async () => {
    const before = await rowCounts();
    await env.cloud.glance.updateImage(boot.imageId, { properties: { auto_disk_config: 'disabled' } });
    try {
      fault(
        await call('POST', '/servers', {
          as: 'member',
          body: { server: { ...good().server, 'OS-DCF:diskConfig': 'AUTO' } },
        }),
        400,
        'badRequest',
        `Requested image ${boot.imageId} has automatic disk resize disabled.`,
      );
    } finally {
      await env.cloud.glance.updateImage(boot.imageId, { properties: { auto_disk_config: null } });
    }
    fault(
      await call('POST', '/servers', {
        as: 'member',
        body: { server: { ...good().server, 'OS-DCF:diskConfig': 'auto' } },
      }),
      400,
      'badRequest',
    );
    assert.deepEqual(await rowCounts(), before);
  });
});

describe('servers: show, list, detail', () => {
  let active = '';
  let failed = '';
  let others = '';

  before(async () => {
    const key = await env.cloud.nova.createKeyPair({ userId: memberUserId, name: 'demo-key' });
    assert.ok(key.privateKey.includes('PRIVATE KEY'));
    active = await recordInstance(boot.demo.projectId, memberUserId, {
      name: 'web-1',
      keyName: 'demo-key',
      metadata: { role: 'web' },
      userData: USER_DATA,
      tags: ['web', 'blue'],
    });
    const host = DEFAULT_HOSTS[0]!.host;
    await env.cloud.nova.updateInstance(active, {
      vmState: 'active',
      taskState: null,
      powerState: 1,
      host,
      node: host,
      launchedAt: env.cloud.clock.now(),
    });
    failed = await recordInstance(boot.demo.projectId, memberUserId, { name: 'db-1' });
    await env.cloud.nova.updateInstance(failed, { vmState: 'error', taskState: null });
    await env.cloud.nova.addFault(failed, {
      code: 500,
      message: 'No valid host was found. There are not enough hosts available.',
      details: 'NoValidHost',
    });
    others = await recordInstance(otherProjectId, 'someone', { name: 'web-other' });
  });

  test('show at 2.1: every field of the api-ref, with its type', async () => {
    const res = await call('GET', `/servers/${active}`, { as: 'member' });
    assert.equal(res.statusCode, 200);
    const { server } = res.json() as { server: Json };
    assert.deepEqual(Object.keys(server).sort(), [
      'OS-DCF:diskConfig',
      'OS-EXT-AZ:availability_zone',
      'OS-EXT-STS:power_state',
      'OS-EXT-STS:task_state',
      'OS-EXT-STS:vm_state',
      'OS-SRV-USG:launched_at',
      'OS-SRV-USG:terminated_at',
      'accessIPv4',
      'accessIPv6',
      'addresses',
      'config_drive',
      'created',
      'flavor',
      'hostId',
      'id',
      'image',
      'key_name',
      'links',
      'metadata',
      'name',
      'os-extended-volumes:volumes_attached',
      'progress',
      'status',
      'tenant_id',
      'updated',
      'user_id',
    ]);
    assert.equal(server.id, active);
    assert.equal(server.name, 'web-1');
    assert.equal(server.status, 'ACTIVE');
    assert.equal(server.tenant_id, boot.demo.projectId);
    assert.equal(server.user_id, memberUserId);
    assert.equal(server.key_name, 'demo-key');
    assert.deepEqual(server.metadata, { role: 'web' });
    assert.equal(server['OS-EXT-STS:vm_state'], 'active');
    assert.equal(server['OS-EXT-STS:task_state'], null);
    assert.equal(server['OS-EXT-STS:power_state'], 1);
    assert.equal(server['OS-EXT-AZ:availability_zone'], DEFAULT_HOSTS[0]!.availabilityZone ?? 'nova');
    assert.match(server.hostId as string, /^[0-9a-f]{56}$/);
    assert.match(server.created as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.match(server['OS-SRV-USG:launched_at'] as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/);
    assert.equal(server['OS-SRV-USG:terminated_at'], null);
    assert.equal(server.progress, 0);
    assert.equal(server.config_drive, '');
    assert.deepEqual(server.flavor, {
      id: '1',
      links: [{ rel: 'bookmark', href: `${TEST_PUBLIC_URL}/compute/flavors/1` }],
    });
    assert.deepEqual(server.image, {
      id: boot.imageId,
      links: [{ rel: 'bookmark', href: `${TEST_PUBLIC_URL}/compute/images/${boot.imageId}` }],
    });
    assert.deepEqual(server.links, [
      { rel: 'self', href: `${TEST_PUBLIC_URL}/compute/v2.1/servers/${active}` },
      { rel: 'bookmark', href: `${TEST_PUBLIC_URL}/compute/servers/${active}` },
    ]);
    assert.deepEqual(server['os-extended-volumes:volumes_attached'], []);
    // No OS-EXT-SRV-ATTR for a member: admin only by default.
    assert.ok(!Object.keys(server).some((k) => k.startsWith('OS-EXT-SRV-ATTR')));
  });

  test('show at 2.79: the fields each microversion adds; extended attributes for admin', async () => {
    const member = (await call('GET', `/servers/${active}`, { as: 'member', version: '2.79' }).then((r) =>
      r.json(),
    )) as { server: Json };
    const s = member.server;
    assert.equal(s.locked, false);
    assert.equal(s.description, null);
    assert.deepEqual(s.tags, ['web', 'blue']);
    assert.equal(s.trusted_image_certificates, null);
    assert.deepEqual(s.server_groups, []);
    assert.equal(s.locked_reason, null);
    assert.ok(!('host_status' in s));
    assert.deepEqual(s.flavor, {
      vcpus: 1,
      ram: 512,
      disk: 1,
      ephemeral: 0,
      swap: 0,
      original_name: 'm1.tiny',
      extra_specs: {},
    });
    const admin = (
      (await call('GET', `/servers/${active}`, { as: 'admin', version: '2.79' })).json() as {
        server: Json;
      }
    ).server;
    assert.equal(admin['OS-EXT-SRV-ATTR:host'], DEFAULT_HOSTS[0]!.host);
    assert.equal(admin['OS-EXT-SRV-ATTR:hypervisor_hostname'], DEFAULT_HOSTS[0]!.host);
    assert.equal(admin['OS-EXT-SRV-ATTR:instance_name'], `instance-${active}`);
    assert.equal(admin['OS-EXT-SRV-ATTR:hostname'], 'web-1');
    assert.equal(admin['OS-EXT-SRV-ATTR:launch_index'], 0);
    assert.match(admin['OS-EXT-SRV-ATTR:reservation_id'] as string, /^r-[0-9a-f]{8}$/);
    // user_data as given at boot, to an admin only (os-extended-server-attributes, 2.3+).
    assert.equal(admin['OS-EXT-SRV-ATTR:user_data'], USER_DATA);
    assert.equal(typeof admin.host_status, 'string');
    // At 2.1 an admin gets only the three original extended attributes.
    const admin21 = ((await call('GET', `/servers/${active}`, { as: 'admin' })).json() as { server: Json })
      .server;
    assert.deepEqual(
      Object.keys(admin21)
        .filter((k) => k.startsWith('OS-EXT-SRV-ATTR'))
        .sort(),
      ['OS-EXT-SRV-ATTR:host', 'OS-EXT-SRV-ATTR:hypervisor_hostname', 'OS-EXT-SRV-ATTR:instance_name'],
    );
  });

  test('an ERROR server shows its fault; details to an admin only for a 500', async () => {
    const member = ((await call('GET', `/servers/${failed}`, { as: 'member' })).json() as { server: Json })
      .server;
    assert.equal(member.status, 'ERROR');
    const f = member.fault as Json;
    assert.equal(f.code, 500);
    assert.equal(f.message, 'No valid host was found. There are not enough hosts available.');
    assert.match(f.created as string, /Z$/);
    assert.ok(!('details' in f));
    assert.ok(!('progress' in member));
    const admin = ((await call('GET', `/servers/${failed}`, { as: 'admin' })).json() as { server: Json })
      .server;
    assert.equal((admin.fault as Json).details, 'NoValidHost');
  });

  test("another project's server is 404 with Nova's message; a reader sees its project's", async () => {
    fault(
      await call('GET', `/servers/${others}`, { as: 'member' }),
      404,
      'itemNotFound',
      `Instance ${others} could not be found.`,
    );
    fault(await call('DELETE', `/servers/${others}`, { as: 'member' }), 404, 'itemNotFound');
    fault(await call('GET', `/servers/${others}/ips`, { as: 'member' }), 404, 'itemNotFound');
    fault(
      await call('GET', '/servers/not-a-uuid', { as: 'member' }),
      404,
      'itemNotFound',
      'Instance not-a-uuid could not be found.',
    );
    assert.equal((await call('GET', `/servers/${active}`, { as: 'reader' })).statusCode, 200);
    fault(
      await call('DELETE', `/servers/${active}`, { as: 'reader' }),
      403,
      'forbidden',
      "Policy doesn't allow os_compute_api:servers:delete to be performed.",
    );
  });

  test('list: own project only; all_tenants for admin; 403 for a member', async () => {
    const list = (await call('GET', '/servers', { as: 'member' })).json() as { servers: Json[] };
    assert.deepEqual(list.servers.map((s) => s.id).sort(), [active, failed].sort());
    assert.deepEqual(Object.keys(list.servers[0]!).sort(), ['id', 'links', 'name']);
    fault(
      await call('GET', '/servers?all_tenants=1', { as: 'member' }),
      403,
      'forbidden',
      "Policy doesn't allow os_compute_api:servers:index:get_all_tenants to be performed.",
    );
    const all = (await call('GET', '/servers/detail?all_tenants=true', { as: 'admin' })).json() as {
      servers: Json[];
    };
    assert.ok(all.servers.some((s) => s.id === others));
    const one = (
      await call('GET', `/servers/detail?all_tenants=1&project_id=${otherProjectId}`, {
        as: 'admin',
      })
    ).json() as { servers: Json[] };
    assert.deepEqual(
      one.servers.map((s) => s.id),
      [others],
    );
  });

  test('filters: name regex, status, image, flavor, changes-since, ip', async () => {
    const ids = async (query: string) =>
      (
        (await call('GET', `/servers/detail?${query}`, { as: 'member' })).json() as { servers: Json[] }
      ).servers
        .map((s) => s.id)
        .sort();
    assert.deepEqual(await ids('name=^web'), [active]);
    assert.deepEqual(await ids('name=-1$'), [active, failed].sort());
    assert.deepEqual(await ids('status=ERROR'), [failed]);
    assert.deepEqual(await ids('status=active'), [active]);
    assert.deepEqual(await ids('status=SHELVED'), []);
    assert.deepEqual(await ids(`image=${boot.imageId}`), [active, failed].sort());
    assert.deepEqual(await ids('flavor=2'), []);
    assert.deepEqual(await ids('changes-since=2000-01-01T00:00:00Z'), [active, failed].sort());
    assert.deepEqual(await ids('changes-since=2999-01-01T00:00:00Z'), []);
    assert.deepEqual(await ids('ip=10.0.0.250'), []);
    fault(await call('GET', '/servers?changes-since=yesterday', { as: 'member' }), 400, 'badRequest');
    fault(await call('GET', '/servers?limit=-1', { as: 'member' }), 400, 'badRequest');
  });

  test('limit and marker page through, with servers_links', async () => {
    const first = (await call('GET', '/servers?limit=1', { as: 'member' })).json() as {
      servers: Json[];
      servers_links: Array<{ rel: string; href: string }>;
    };
    assert.equal(first.servers.length, 1);
    assert.equal(first.servers_links[0]!.rel, 'next');
    const next = new URL(first.servers_links[0]!.href);
    assert.equal(next.searchParams.get('marker'), first.servers[0]!.id);
    const second = (
      await call('GET', `/servers?limit=1&marker=${first.servers[0]!.id as string}`, {
        as: 'member',
      })
    ).json() as { servers: Json[] };
    assert.equal(second.servers.length, 1);
    assert.notEqual(second.servers[0]!.id, first.servers[0]!.id);
    fault(
      await call('GET', `/servers?marker=${randomUUID()}`, { as: 'member' }),
      400,
      'badRequest',
      /^marker \[.*\] not found$/,
    );
  });

  test('PUT renames and sets the access addresses; unknown actions are a 400 naming the action', async () => {
    let res = await call('PUT', `/servers/${active}`, {
      as: 'member',
      body: { server: { name: 'web-2' } },
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal((res.json() as { server: Json }).server.name, 'web-2');
    assert.equal((await env.cloud.nova.getInstance(active)).name, 'web-2');
    // The access addresses change too; before 2.75 PUT answers Nova's update view (no extended fields).
    res = await call('PUT', `/servers/${active}`, {
      as: 'member',
      version: '2.1',
      body: { server: { accessIPv4: '1.1.1.1', accessIPv6: '0:0:0:0:0:babe:202:202' } },
    });
    assert.equal(res.statusCode, 200, res.body);
    const updated = (res.json() as { server: Json }).server;
    assert.deepEqual(Object.keys(updated).sort(), [
      'OS-DCF:diskConfig',
      'accessIPv4',
      'accessIPv6',
      'addresses',
      'created',
      'flavor',
      'hostId',
      'id',
      'image',
      'links',
      'metadata',
      'name',
      'progress',
      'status',
      'tenant_id',
      'updated',
      'user_id',
    ]);
    assert.equal(updated.accessIPv6, '::babe:202:202');
    const row = await env.cloud.nova.getInstance(active);
    assert.deepEqual([row.accessIPv4, row.accessIPv6], ['1.1.1.1', '::babe:202:202']);
    res = await call('PUT', `/servers/${active}`, { as: 'member', version: '2.75', body: { server: {} } });
    assert.equal((res.json() as { server: Json }).server['OS-EXT-STS:vm_state'], 'active');
    fault(
      await call('PUT', `/servers/${active}`, { as: 'member', body: { server: { name: 'x', bogus: 1 } } }),
      400,
      'badRequest',
      /'bogus' was unexpected/,
    );
    fault(
      await call('POST', `/servers/${active}/action`, { as: 'member', body: { shelve: null } }),
      400,
      'badRequest',
      'There is no such action: shelve',
    );
  });

  test('server metadata: list, show, merge, replace, set and delete items; refusals change nothing', async () => {
    const metadataOf = async () => (await env.cloud.nova.getInstance(active)).metadata;
    const path = `/servers/${active}/metadata`;
    let res = await call('GET', path, { as: 'reader' });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json(), { metadata: { role: 'web' } });
    res = await call('POST', path, { as: 'member', body: { metadata: { tier: 'front', role: 'www' } } });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json(), { metadata: { role: 'www', tier: 'front' } });
    assert.deepEqual(await metadataOf(), { role: 'www', tier: 'front' });
    res = await call('GET', `${path}/tier`, { as: 'reader' });
    assert.deepEqual(res.json(), { meta: { tier: 'front' } });
    res = await call('PUT', `${path}/zone`, { as: 'member', body: { meta: { zone: 'a' } } });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json(), { meta: { zone: 'a' } });
    res = await call('PUT', path, { as: 'member', body: { metadata: { only: 'this' } } });
    assert.deepEqual(res.json(), { metadata: { only: 'this' } });
    assert.deepEqual(await metadataOf(), { only: 'this' });
    res = await call('DELETE', `${path}/only`, { as: 'member' });
    assert.equal(res.statusCode, 204, res.body);
    assert.deepEqual(await metadataOf(), {});

    await call('POST', path, { as: 'member', body: { metadata: { kept: '1' } } });
    const refusals: Array<[Promise<LightMyRequestResponse>, number, string, RegExp | string]> = [
      [call('GET', `${path}/nope`, { as: 'reader' }), 404, 'itemNotFound', 'Metadata item was not found'],
      [call('DELETE', `${path}/nope`, { as: 'member' }), 404, 'itemNotFound', 'Metadata item was not found'],
      [call('POST', path, { as: 'member', body: { metadata: { '': 'x' } } }), 400, 'badRequest', /metadata/],
      [
        call('PUT', path, { as: 'member', body: { meta: { a: 'b' } } }),
        400,
        'badRequest',
        /'metadata' is a required property/,
      ],
      [
        call('PUT', `${path}/a`, { as: 'member', body: { meta: { b: 'c' } } }),
        400,
        'badRequest',
        'Request body and URI mismatch',
      ],
      [
        call('PUT', `${path}/a`, { as: 'member', body: { meta: { a: 'b', c: 'd' } } }),
        400,
        'badRequest',
        /too many items/,
      ],
      [
        call('POST', path, {
          as: 'member',
          body: { metadata: Object.fromEntries(Array.from({ length: 128 }, (_, i) => [`k${i}`, 'v'])) },
        }),
        403,
        'forbidden',
        'Maximum number of metadata items exceeds 128',
      ],
      [
        call('POST', path, { as: 'reader', body: { metadata: { a: 'b' } } }),
        403,
        'forbidden',
        "Policy doesn't allow os_compute_api:server-metadata:create to be performed.",
      ],
      [
        call('GET', `/servers/${others}/metadata`, { as: 'member' }),
        404,
        'itemNotFound',
        `Instance ${others} could not be found.`,
      ],
      [
        call('POST', `/servers/${failed}/metadata`, { as: 'member', body: { metadata: { a: 'b' } } }),
        409,
        'conflictingRequest',
        `Cannot 'update_instance_metadata' instance ${failed} while it is in vm_state error`,
      ],
    ];
    for (const [pending, status, key, message] of refusals) fault(await pending, status, key, message);
    assert.deepEqual(await metadataOf(), { kept: '1' });
    assert.deepEqual((await env.cloud.nova.getInstance(failed)).metadata, {});
  });

  test('instance actions: list and show with events', async () => {
    const list = (await call('GET', `/servers/${active}/os-instance-actions`, { as: 'member' })).json() as {
      instanceActions: Json[];
    };
    assert.equal(list.instanceActions.length, 1);
    const action = list.instanceActions[0]!;
    assert.equal(action.action, 'create');
    assert.equal(action.instance_uuid, active);
    assert.equal(action.request_id, `req-${active}`);
    const show = (
      await call('GET', `/servers/${active}/os-instance-actions/req-${active}`, {
        as: 'admin',
      })
    ).json() as { instanceAction: Json };
    assert.ok(Array.isArray(show.instanceAction.events));
    const member = (
      await call('GET', `/servers/${active}/os-instance-actions/req-${active}`, {
        as: 'member',
      })
    ).json() as { instanceAction: Json };
    assert.ok(!('events' in member.instanceAction), 'events are admin-only before 2.51');
    fault(
      await call('GET', `/servers/${active}/os-instance-actions/req-nope`, { as: 'member' }),
      404,
      'itemNotFound',
    );
  });
});

describe('flavors', () => {
  test('list, detail per microversion, show, filters, 404', async () => {
    const list = (await call('GET', '/flavors', { as: 'reader' })).json() as { flavors: Json[] };
    assert.deepEqual(
      list.flavors.map((f) => f.id),
      ['1', '2', '3', '4', '5'],
    );
    assert.deepEqual(Object.keys(list.flavors[0]!).sort(), ['id', 'links', 'name']);
    const detail = (await call('GET', '/flavors/detail', { as: 'member' })).json() as { flavors: Json[] };
    assert.deepEqual(detail.flavors[0], {
      id: '1',
      name: 'm1.tiny',
      ram: 512,
      disk: 1,
      swap: '',
      'OS-FLV-EXT-DATA:ephemeral': 0,
      'OS-FLV-DISABLED:disabled': false,
      vcpus: 1,
      'os-flavor-access:is_public': true,
      rxtx_factor: 1.0,
      links: [
        { rel: 'self', href: `${TEST_PUBLIC_URL}/compute/v2.1/flavors/1` },
        { rel: 'bookmark', href: `${TEST_PUBLIC_URL}/compute/flavors/1` },
      ],
    });
    const latest = (await call('GET', '/flavors/1', { as: 'member', version: '2.79' })).json() as {
      flavor: Json;
    };
    assert.equal(latest.flavor.swap, 0);
    assert.equal(latest.flavor.description, null);
    assert.deepEqual(latest.flavor.extra_specs, {});
    const big = (await call('GET', '/flavors?minRam=8192', { as: 'member' })).json() as { flavors: Json[] };
    assert.deepEqual(
      big.flavors.map((f) => f.id),
      ['4', '5'],
    );
    fault(
      await call('GET', '/flavors/42', { as: 'member' }),
      404,
      'itemNotFound',
      'Flavor 42 could not be found.',
    );
    const specs = (await call('GET', '/flavors/1/os-extra_specs', { as: 'member' })).json() as Json;
    assert.deepEqual(specs, { extra_specs: {} });
  });
});

describe('flavor create and delete (admin)', () => {
  test('an admin creates and deletes; a member is refused; duplicates are 409', async () => {
    const body = { flavor: { name: 'm1.huge', ram: 1_048_576, vcpus: 256, disk: 10, id: 'huge' } };
    fault(
      await call('POST', '/flavors', { as: 'member', body }),
      403,
      'forbidden',
      "Policy doesn't allow os_compute_api:os-flavor-manage:create to be performed.",
    );
    const created = await call('POST', '/flavors', { as: 'admin', body });
    assert.equal(created.statusCode, 200, created.body);
    const flavor = (created.json() as { flavor: Json }).flavor;
    assert.equal(flavor.id, 'huge');
    assert.equal(flavor.ram, 1_048_576);
    assert.equal(flavor.vcpus, 256);
    assert.equal((await env.cloud.nova.listFlavors()).find((f) => f.id === 'huge')?.memoryMb, 1_048_576);
    fault(
      await call('POST', '/flavors', { as: 'admin', body }),
      409,
      'conflictingRequest',
      'Flavor with name m1.huge already exists.',
    );
    fault(
      await call('POST', '/flavors', { as: 'admin', body: { flavor: { ...body.flavor, ram: 'lots' } } }),
      400,
      'badRequest',
    );
    assert.equal((await call('DELETE', '/flavors/huge', { as: 'admin' })).statusCode, 202);
    fault(await call('GET', '/flavors/huge', { as: 'admin' }), 404, 'itemNotFound');
    fault(
      await call('DELETE', '/flavors/huge', { as: 'admin' }),
      404,
      'itemNotFound',
      'Flavor huge could not be found.',
    );
  });
});

describe('flavor extra specs and description (admin)', () => {
  test("os-extra_specs CRUD with Nova's codes; 2.55 description on create and update; rows written; a member refused", async () => {
    const body = {
      flavor: { name: 'm1.specs', ram: 256, vcpus: 1, disk: 1, id: 'specs', description: 'd1' },
    };
    const created = await call('POST', '/flavors', { as: 'admin', version: '2.55', body });
    assert.equal(created.statusCode, 200, created.body);
    assert.equal((created.json() as { flavor: Json }).flavor.description, 'd1');
    const set = await call('POST', '/flavors/specs/os-extra_specs', {
      as: 'admin',
      body: { extra_specs: { 'hw:cpu_policy': 'dedicated', 'quota:cpu_shares': 42 } },
    });
    assert.equal(set.statusCode, 200, set.body);
    assert.deepEqual(set.json(), { extra_specs: { 'hw:cpu_policy': 'dedicated', 'quota:cpu_shares': '42' } });
    const rows = await env.cloud.nova.store.db
      .selectFrom('flavor_extra_specs')
      .select(['spec_key', 'spec_value'])
      .where('flavorid', '=', 'specs')
      .orderBy('spec_key')
      .execute();
    assert.deepEqual(rows, [
      { spec_key: 'hw:cpu_policy', spec_value: 'dedicated' },
      { spec_key: 'quota:cpu_shares', spec_value: '42' },
    ]);
    fault(
      await call('POST', '/flavors/specs/os-extra_specs', {
        as: 'member',
        body: { extra_specs: { a: 'b' } },
      }),
      403,
      'forbidden',
      "Policy doesn't allow os_compute_api:os-flavor-extra-specs:create to be performed.",
    );
    const put = await call('PUT', '/flavors/specs/os-extra_specs/hw:cpu_policy', {
      as: 'admin',
      body: { 'hw:cpu_policy': 'shared' },
    });
    assert.deepEqual([put.statusCode, put.json()], [200, { 'hw:cpu_policy': 'shared' }]);
    fault(
      await call('PUT', '/flavors/specs/os-extra_specs/other', {
        as: 'admin',
        body: { 'hw:cpu_policy': 'x' },
      }),
      400,
      'badRequest',
      'Request body and URI mismatch',
    );
    const one = await call('GET', '/flavors/specs/os-extra_specs/hw:cpu_policy', { as: 'member' });
    assert.deepEqual(one.json(), { 'hw:cpu_policy': 'shared' });
    const shown = await call('GET', '/flavors/specs', { as: 'admin', version: '2.61' });
    assert.deepEqual((shown.json() as { flavor: Json }).flavor.extra_specs, {
      'hw:cpu_policy': 'shared',
      'quota:cpu_shares': '42',
    });
    assert.equal(
      (await call('DELETE', '/flavors/specs/os-extra_specs/quota:cpu_shares', { as: 'admin' })).statusCode,
      200,
    );
    fault(
      await call('DELETE', '/flavors/specs/os-extra_specs/quota:cpu_shares', { as: 'admin' }),
      404,
      'itemNotFound',
      'Flavor specs has no extra specs with key quota:cpu_shares.',
    );
    const updated = await call('PUT', '/flavors/specs', {
      as: 'admin',
      version: '2.55',
      body: { flavor: { description: 'd2' } },
    });
    assert.equal((updated.json() as { flavor: Json }).flavor.description, 'd2');
    fault(
      await call('PUT', '/flavors/specs', {
        as: 'member',
        version: '2.55',
        body: { flavor: { description: 'x' } },
      }),
      403,
      'forbidden',
    );
    // An integer id is taken as its digits, as Nova's schema allows.
    const intId = await call('POST', '/flavors', {
      as: 'admin',
      body: {
        flavor: {
          name: 'm1.int',
          ram: 256,
          vcpus: 1,
          disk: 1,
          id: 424242,
          'os-flavor-access:is_public': 'True',
        },
      },
    });
    assert.equal((intId.json() as { flavor: Json }).flavor.id, '424242');
    assert.equal((await call('DELETE', '/flavors/424242', { as: 'admin' })).statusCode, 202);
    assert.equal((await call('DELETE', '/flavors/specs', { as: 'admin' })).statusCode, 202);
    assert.deepEqual(
      await env.cloud.nova.store.db
        .selectFrom('flavor_extra_specs')
        .selectAll()
        .where('flavorid', '=', 'specs')
        .execute(),
      [],
    );
  });
});

describe('os-keypairs', () => {
  test('create returns the private key once; import, list, show, delete; per user', async () => {
    const created = await call('POST', '/os-keypairs', {
      as: 'member',
      version: '2.2',
      body: { keypair: { name: 'k1' } },
    });
    assert.equal(created.statusCode, 201, created.body);
    const key = (created.json() as { keypair: Json }).keypair;
    assert.equal(key.name, 'k1');
    assert.equal(key.type, 'ssh');
    assert.equal(key.user_id, memberUserId);
    assert.match(key.public_key as string, /^ssh-rsa [A-Za-z0-9+/=]+ /);
    assert.match(key.private_key as string, /^-----BEGIN RSA PRIVATE KEY-----/);
    assert.equal(key.fingerprint, fingerprintOf(key.public_key as string));
    assert.match(key.fingerprint as string, /^([0-9a-f]{2}:){15}[0-9a-f]{2}$/);
    const row = await env.cloud.nova.getKeyPair(memberUserId, 'k1');
    assert.equal(row.publicKey, key.public_key);
    assert.ok(!JSON.stringify(row).includes('PRIVATE'), 'the private key is not stored');

    const pub = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGVBq1cUq5bJ4b6xT8eWq3dXkTqz0+fSLRn5bq8S8q5C user@host';
    const imported = await call('POST', '/os-keypairs', {
      as: 'member',
      body: { keypair: { name: 'k2', public_key: pub } },
    });
    assert.equal(imported.statusCode, 200, imported.body);
    assert.ok(!('private_key' in (imported.json() as { keypair: Json }).keypair));
    fault(
      await call('POST', '/os-keypairs', {
        as: 'member',
        body: { keypair: { name: 'k2', public_key: pub } },
      }),
      409,
      'conflictingRequest',
      "Key pair 'k2' already exists.",
    );
    fault(
      await call('POST', '/os-keypairs', {
        as: 'member',
        body: { keypair: { name: 'k3', public_key: 'ssh-rsa nonsense' } },
      }),
      400,
      'badRequest',
      'Keypair data is invalid: failed to generate fingerprint',
    );
    fault(
      await call('POST', '/os-keypairs', { as: 'member', body: { keypair: { name: 'bad/name' } } }),
      400,
      'badRequest',
      'Keypair data is invalid: Keypair name contains unsafe characters',
    );
    fault(
      await call('POST', '/os-keypairs', { as: 'member', body: { keypair: { name: 'k4', type: 'ssh' } } }),
      400,
      'badRequest',
      /'type' was unexpected/,
    );

    const list = (await call('GET', '/os-keypairs', { as: 'member', version: '2.2' })).json() as {
      keypairs: Array<{ keypair: Json }>;
    };
    assert.ok(['k1', 'k2'].every((n) => list.keypairs.some((k) => k.keypair.name === n)));
    const others = (await call('GET', '/os-keypairs', { as: 'other' })).json() as { keypairs: unknown[] };
    assert.deepEqual(others.keypairs, []);
    fault(
      await call('GET', '/os-keypairs/k1', { as: 'other' }),
      404,
      'itemNotFound',
      /^Keypair k1 not found for user /,
    );
    const shown = (await call('GET', '/os-keypairs/k1', { as: 'member' })).json() as { keypair: Json };
    assert.equal(shown.keypair.deleted, false);
    assert.equal(typeof shown.keypair.id, 'number');
    fault(
      await call('GET', `/os-keypairs?user_id=${memberUserId}`, { as: 'other', version: '2.10' }),
      403,
      'forbidden',
      "Policy doesn't allow os_compute_api:os-keypairs:other_user to be performed.",
    );
    const deleted = await call('DELETE', '/os-keypairs/k2', { as: 'member', version: '2.2' });
    assert.equal(deleted.statusCode, 204);
    fault(await call('DELETE', '/os-keypairs/k2', { as: 'member' }), 404, 'itemNotFound');
  });
});

describe('os-keypairs of type x509', () => {
  test('generate (openssl, as Nova) and import a certificate; SHA-1 fingerprint; 400 for a bad one', async () => {
    const created = await call('POST', '/os-keypairs', {
      as: 'member',
      version: '2.2',
      body: { keypair: { name: 'x1', type: 'x509' } },
    });
    assert.equal(created.statusCode, 201, created.body);
    const key = (created.json() as { keypair: Json }).keypair;
    assert.equal(key.type, 'x509');
    const pem = key.public_key as string;
    assert.match(pem, /^-----BEGIN CERTIFICATE-----/);
    const cert = new X509Certificate(pem);
    assert.equal(cert.subject, `CN=${memberUserId}`);
    assert.equal(key.fingerprint, cert.fingerprint.toLowerCase());
    assert.match(key.fingerprint as string, /^([0-9a-f]{2}:){19}[0-9a-f]{2}$/);
    // The private key: a base64 PKCS#12 (DER, starts with a SEQUENCE), answered once and not stored.
    assert.equal(Buffer.from(key.private_key as string, 'base64')[0], 0x30);
    const row = await env.cloud.nova.getKeyPair(memberUserId, 'x1');
    assert.deepEqual([row.type, row.publicKey, row.fingerprint], ['x509', pem, key.fingerprint]);
    assert.ok(!JSON.stringify(row).includes(key.private_key as string));

    const imported = await call('POST', '/os-keypairs', {
      as: 'member',
      version: '2.2',
      body: { keypair: { name: 'x2', type: 'x509', public_key: pem } },
    });
    assert.equal(imported.statusCode, 201, imported.body);
    assert.equal((imported.json() as { keypair: Json }).keypair.fingerprint, key.fingerprint);
    const listed = (await call('GET', '/os-keypairs', { as: 'member', version: '2.2' })).json() as {
      keypairs: Array<{ keypair: Json }>;
    };
    assert.equal(listed.keypairs.find((k) => k.keypair.name === 'x2')?.keypair.type, 'x509');
    fault(
      await call('POST', '/os-keypairs', {
        as: 'member',
        version: '2.2',
        body: { keypair: { name: 'x3', type: 'x509', public_key: 'not a certificate' } },
      }),
      400,
      'badRequest',
      /^Keypair data is invalid: failed to generate X509 fingerprint/,
    );
    await assert.rejects(env.cloud.nova.getKeyPair(memberUserId, 'x3'), /not found/);
    for (const name of ['x1', 'x2'])
      assert.equal(
        (await call('DELETE', `/os-keypairs/${name}`, { as: 'member', version: '2.2' })).statusCode,
        204,
      );
  });
});

describe('admin APIs: hypervisors, services, zones; limits', () => {
  test("a member gets 403 with Nova's policy message", async () => {
    const denied: Array<[string, string]> = [
      ['/os-hypervisors', 'os_compute_api:os-hypervisors:list'],
      ['/os-hypervisors/detail', 'os_compute_api:os-hypervisors:list-detail'],
      ['/os-services', 'os_compute_api:os-services:list'],
      ['/os-availability-zone/detail', 'os_compute_api:os-availability-zone:detail'],
    ];
    for (const [url, rule] of denied) {
      fault(
        await call('GET', url, { as: 'member' }),
        403,
        'forbidden',
        `Policy doesn't allow ${rule} to be performed.`,
      );
    }
  });

  test('hypervisors list, detail and show; services; zones', async () => {
    const list = (await call('GET', '/os-hypervisors', { as: 'admin', version: '2.53' })).json() as {
      hypervisors: Json[];
    };
    assert.deepEqual(
      list.hypervisors.map((h) => h.hypervisor_hostname).sort(),
      DEFAULT_HOSTS.map((h) => h.host).sort(),
    );
    assert.match(list.hypervisors[0]!.id as string, /^[0-9a-f-]{36}$/);
    const legacy = (await call('GET', '/os-hypervisors', { as: 'admin' })).json() as { hypervisors: Json[] };
    assert.equal(typeof legacy.hypervisors[0]!.id, 'number');
    const detail = (await call('GET', '/os-hypervisors/detail', { as: 'admin', version: '2.53' })).json() as {
      hypervisors: Json[];
    };
    const h = detail.hypervisors.find((x) => x.hypervisor_hostname === DEFAULT_HOSTS[0]!.host)!;
    assert.equal(h.vcpus, DEFAULT_HOSTS[0]!.vcpus);
    assert.equal(h.memory_mb, DEFAULT_HOSTS[0]!.memoryMb);
    assert.equal(h.local_gb, DEFAULT_HOSTS[0]!.diskGb);
    assert.equal(typeof h.cpu_info, 'object');
    assert.equal((h.service as Json).host, DEFAULT_HOSTS[0]!.host);
    const show = (
      await call('GET', `/os-hypervisors/${h.id as string}`, { as: 'admin', version: '2.53' })
    ).json() as {
      hypervisor: Json;
    };
    assert.equal(show.hypervisor.id, h.id);
    fault(
      await call('GET', `/os-hypervisors/${randomUUID()}`, { as: 'admin', version: '2.53' }),
      404,
      'itemNotFound',
    );
    const services = (await call('GET', '/os-services', { as: 'admin', version: '2.11' })).json() as {
      services: Json[];
    };
    assert.equal(services.services.length, DEFAULT_HOSTS.length);
    assert.equal(services.services[0]!.binary, 'nova-compute');
    assert.equal(typeof services.services[0]!.forced_down, 'boolean');
    const zones = (await call('GET', '/os-availability-zone', { as: 'member' })).json() as {
      availabilityZoneInfo: Json[];
    };
    assert.ok(zones.availabilityZoneInfo.length >= 1);
    assert.deepEqual(zones.availabilityZoneInfo[0]!.zoneState, { available: true });
    assert.equal(zones.availabilityZoneInfo[0]!.hosts, null);
  });

  test('PUT /os-services: enable, disable, force-down by host and binary before 2.53, by uuid from it', async () => {
    const host = DEFAULT_HOSTS[1]!.host;
    const put = (id: string, body: unknown, version: string, as: 'admin' | 'member' = 'admin') =>
      call('PUT', `/os-services/${id}`, { as, version, body });
    const row = async () => (await env.cloud.nova.listComputeHosts()).find((h) => h.host === host)!;
    fault(
      await put('disable', { host, binary: 'nova-compute' }, '2.1', 'member'),
      403,
      'forbidden',
      "Policy doesn't allow os_compute_api:os-services:update to be performed.",
    );
    // Before 2.53: the action in the path, the service named by host and binary.
    fault(
      await put('reboot', { host, binary: 'nova-compute' }, '2.1'),
      404,
      'itemNotFound',
      'Unknown action',
    );
    fault(
      await put('force-down', { host, binary: 'nova-compute', forced_down: true }, '2.10'),
      400,
      'badRequest',
    );
    fault(
      await put('force-down', { host, binary: 'nova-compute' }, '2.11'),
      400,
      'badRequest',
      'Missing forced_down field',
    );
    fault(
      await put('disable', { host: 'nowhere', binary: 'nova-compute' }, '2.1'),
      404,
      'itemNotFound',
      'Could not find binary nova-compute on host nowhere.',
    );
    fault(
      await put('disable-log-reason', { host, binary: 'nova-compute' }, '2.1'),
      400,
      'badRequest',
      'Missing disabled reason field',
    );
    assert.equal((await row()).disabled, false, 'a refusal changes nothing');
    const disabled = await put(
      'disable-log-reason',
      { host, binary: 'nova-compute', disabled_reason: 'maint' },
      '2.1',
    );
    assert.equal(disabled.statusCode, 200, disabled.body);
    assert.deepEqual(disabled.json(), {
      service: { host, binary: 'nova-compute', status: 'disabled', disabled_reason: 'maint' },
    });
    assert.deepEqual([(await row()).disabled, (await row()).disabledReason], [true, 'maint']);
    const down = await put('force-down', { host, binary: 'nova-compute', forced_down: true }, '2.11');
    assert.deepEqual(down.json(), { service: { host, binary: 'nova-compute', forced_down: true } });
    assert.deepEqual([(await row()).forcedDown, (await row()).up], [true, false]);
    // From 2.53: PUT /os-services/{uuid} with status, disabled_reason, forced_down; the service answered.
    const id = (await row()).serviceId;
    fault(
      await put('force-down', { forced_down: false }, '2.53'),
      400,
      'badRequest',
      'Invalid uuid force-down',
    );
    fault(await put(randomUUID(), { forced_down: false }, '2.53'), 404, 'itemNotFound');
    fault(
      await put(id, { status: 'enabled', disabled_reason: 'x' }, '2.53'),
      400,
      'badRequest',
      'Specifying a disabled reason is not supported unless disabling the service.',
    );
    fault(await put(id, { host }, '2.53'), 400, 'badRequest');
    const updated = await put(id, { status: 'enabled', forced_down: false }, '2.53');
    assert.equal(updated.statusCode, 200, updated.body);
    const service = (updated.json() as { service: Json }).service;
    assert.deepEqual(
      [service.id, service.host, service.status, service.forced_down, service.disabled_reason],
      [id, host, 'enabled', false, null],
    );
    assert.deepEqual([(await row()).disabled, (await row()).forcedDown], [false, false]);
  });

  test("limits: the project's quota and usage; network fields until 2.36", async () => {
    const old = (
      (await call('GET', '/limits', { as: 'member' })).json() as { limits: { absolute: Json; rate: [] } }
    ).limits;
    assert.deepEqual(old.rate, []);
    assert.equal(old.absolute.maxTotalInstances, 10);
    assert.equal(old.absolute.maxTotalCores, 20);
    assert.equal(old.absolute.maxTotalRAMSize, 51200);
    assert.equal(old.absolute.totalInstancesUsed, 0);
    assert.equal(old.absolute.maxSecurityGroups, 10);
    assert.equal(old.absolute.maxPersonality, 5);
    const latest = (
      (await call('GET', '/limits', { as: 'member', version: '2.79' })).json() as {
        limits: { absolute: Json };
      }
    ).limits.absolute;
    assert.ok(!('maxSecurityGroups' in latest) && !('maxPersonality' in latest));
    fault(
      await call('GET', `/limits?tenant_id=${otherProjectId}`, { as: 'member' }),
      403,
      'forbidden',
      "Policy doesn't allow os_compute_api:limits:other_project to be performed.",
    );
    const theirs = (
      (await call('GET', `/limits?tenant_id=${otherProjectId}`, { as: 'admin' })).json() as {
        limits: { absolute: Json };
      }
    ).limits.absolute;
    assert.equal(theirs.maxTotalInstances, 0);
  });

  test('os-quota-sets: show, detail and defaults per microversion; a reader of the project only', async () => {
    const project = boot.demo.projectId;
    const show = async (path: string, as: keyof typeof tokens = 'reader', version = '2.1') => {
      const res = await call('GET', `/os-quota-sets/${path}`, { as, version });
      assert.equal(res.statusCode, 200, res.body);
      return (res.json() as { quota_set: Json }).quota_set;
    };
    const atOne = await show(project);
    assert.deepEqual(atOne, {
      id: project,
      instances: 10,
      cores: 20,
      ram: 51200,
      metadata_items: 128,
      key_pairs: 100,
      server_groups: 10,
      server_group_members: 10,
      fixed_ips: -1,
      floating_ips: -1,
      security_groups: -1,
      security_group_rules: -1,
      injected_files: 5,
      injected_file_content_bytes: 10240,
      injected_file_path_bytes: 255,
    });
    assert.deepEqual(await show(`${project}/defaults`, 'member'), atOne);
    assert.deepEqual(await show(`${project}?user_id=${memberUserId}`), atOne);
    assert.deepEqual(Object.keys(await show(project, 'reader', '2.57')).sort(), [
      'cores',
      'id',
      'instances',
      'key_pairs',
      'metadata_items',
      'ram',
      'server_group_members',
      'server_groups',
    ]);
    const detail = await show(`${project}/detail`, 'reader', '2.79');
    const usage = await env.cloud.nova.getQuotaUsage(project);
    assert.deepEqual(detail.instances, { in_use: usage.instances.inUse, limit: 10, reserved: 0 });
    // Another project's: its limits from Nova's quota table, for an admin; 403 for a member elsewhere.
    await env.cloud.nova.setQuotaLimits(otherProjectId, { instances: 0 });
    assert.equal((await show(otherProjectId, 'admin')).instances, 0);
    assert.equal((await show(`${otherProjectId}/defaults`, 'member')).instances, 10);
    fault(
      await call('GET', `/os-quota-sets/${otherProjectId}`, { as: 'member' }),
      403,
      'forbidden',
      "Policy doesn't allow os_compute_api:os-quota-sets:show to be performed.",
    );
    fault(
      await call('GET', '/os-quota-sets/no-such-project', { as: 'admin' }),
      400,
      'badRequest',
      'Project ID no-such-project is not a valid project.',
    );
  });
});
