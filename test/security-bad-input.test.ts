/**
 * Bad input, table-driven, through the workflow the client starts (createInstance with a BootRequest):
 * wrong types, missing and unknown fields, zero/negative/fractional/huge sizes, names over 255 characters,
 * control characters, SQL- and path-like strings, unknown flavor, image and network. Each ends in a clear
 * typed failure naming what is wrong, and every row of the six databases, every file under the data
 * directory and the leak audit are exactly as before. Valid but unusual input (unicode, SQL- or path-like
 * names) is accepted and stored verbatim, harming nothing.
 * The delete workflow's request gets the same treatment: a malformed delete touches nothing.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { CloudErrorType } from '../cloud/errors';
import type { BootResult } from '../workflows/types';
import type { ServerView } from '../workflows/operator-types';
import { addTenantUser, assertUnchanged } from './helpers/security';
import {
  HARNESS_TIMEOUT,
  failureTypeOf,
  openSecurityHarness,
  typedFailureOf,
  type SecurityHarness,
} from './helpers/security-harness';

/** A field set to REMOVE is left out of the request. */
const REMOVE = Symbol('remove');

interface BadCase {
  what: string;
  /** Changes to a valid boot request. */
  patch: Record<string, unknown>;
  type: CloudErrorType;
  /** The failure's message names what is wrong. */
  message: RegExp;
}

/** A refused request ends in well under a second; a boot that has not ended by then hangs. */
const HANG_MS = 5_000;
const UUID = '6f1c9a4e-2b7d-4c1e-9a3f-0d5e8b7c6a21';

/** The table. `$other` stands for another project's private network. */
const BAD: BadCase[] = [
  // wrong types
  { what: 'name is a number', patch: { name: 42 }, type: 'BadRequest', message: /name/ },
  { what: 'flavor is a number', patch: { flavor: 1 }, type: 'BadRequest', message: /flavor/ },
  { what: 'image is null', patch: { image: null }, type: 'BadRequest', message: /image/ },
  { what: 'image is an object', patch: { image: { id: UUID } }, type: 'BadRequest', message: /image/ },
  { what: 'bootVolume is a string', patch: { bootVolume: 'big' }, type: 'BadRequest', message: /bootVolume/ },
  {
    what: 'sizeGb is a string',
    patch: { bootVolume: { sizeGb: '10' } },
    type: 'BadRequest',
    message: /sizeGb/,
  },
  {
    what: 'deleteOnTermination is a string',
    patch: { bootVolume: { sizeGb: 1, deleteOnTermination: 'yes' } },
    type: 'BadRequest',
    message: /deleteOnTermination/,
  },
  { what: 'a network is a number', patch: { networks: [42] }, type: 'BadRequest', message: /network/ },
  { what: 'the token is a number', patch: { auth: { token: 42 } }, type: 'BadRequest', message: /token/ },
  {
    what: 'networks is a string',
    patch: { networks: 'private' },
    type: 'BadRequest',
    message: /networks/,
  },
  {
    what: 'maxAttempts is a string',
    patch: { maxAttempts: 'three' },
    type: 'BadRequest',
    message: /maxAttempts/,
  },
  // missing fields
  { what: 'no name', patch: { name: REMOVE }, type: 'BadRequest', message: /name/ },
  { what: 'no flavor', patch: { flavor: REMOVE }, type: 'BadRequest', message: /flavor/ },
  { what: 'no image', patch: { image: REMOVE }, type: 'BadRequest', message: /image/ },
  {
    what: 'credentials without a password',
    patch: { auth: { credentials: { username: 'demo', projectName: 'demo' } } },
    type: 'BadRequest',
    message: /password/,
  },
  {
    what: 'no networks',
    patch: { networks: REMOVE },
    type: 'BadRequest',
    message: /networks/,
  },
  {
    what: 'no auth',
    patch: { auth: REMOVE },
    type: 'BadRequest',
    message: /auth/,
  },
  {
    what: 'no requestId',
    patch: { requestId: REMOVE },
    type: 'BadRequest',
    message: /requestId/,
  },
  // unknown fields
  {
    what: 'unknown field in bootVolume',
    patch: { bootVolume: { sizeGb: 1, volumeType: 'ssd' } },
    type: 'BadRequest',
    message: /volumeType|[Uu]nrecognized/,
  },
  {
    what: 'unknown field in credentials',
    patch: { auth: { credentials: { username: 'demo', password: 'x', projectName: 'demo', domain: 'd' } } },
    type: 'BadRequest',
    message: /domain|[Uu]nrecognized/,
  },
  {
    what: 'unknown top-level field adminPass',
    patch: { adminPass: 'hunter2' },
    type: 'BadRequest',
    message: /adminPass|[Uu]nrecognized/,
  },
  {
    what: 'unknown top-level field projectId',
    patch: { projectId: UUID },
    type: 'BadRequest',
    message: /projectId|[Uu]nrecognized/,
  },
  // sizes
  { what: 'volume of 0 GB', patch: { bootVolume: { sizeGb: 0 } }, type: 'BadRequest', message: /sizeGb/ },
  { what: 'volume of -1 GB', patch: { bootVolume: { sizeGb: -1 } }, type: 'BadRequest', message: /sizeGb/ },
  { what: 'volume of 1.5 GB', patch: { bootVolume: { sizeGb: 1.5 } }, type: 'BadRequest', message: /sizeGb/ },
  {
    what: 'volume of 10001 GB',
    patch: { bootVolume: { sizeGb: 10_001 } },
    type: 'BadRequest',
    message: /sizeGb/,
  },
  {
    what: 'volume of 1e12 GB',
    patch: { bootVolume: { sizeGb: 1e12 } },
    type: 'BadRequest',
    message: /sizeGb/,
  },
  {
    what: 'volume of 5000 GB (valid, over the 1000 GB quota)',
    patch: { bootVolume: { sizeGb: 5000 } },
    type: 'QuotaExceeded',
    message: /gigabytes/,
  },
  {
    what: 'maxAttempts 0',
    patch: { maxAttempts: 0 },
    type: 'BadRequest',
    message: /maxAttempts/,
  },
  {
    what: 'maxAttempts -1',
    patch: { maxAttempts: -1 },
    type: 'BadRequest',
    message: /maxAttempts/,
  },
  {
    what: 'negative host pick-up timeout',
    patch: { timeouts: { hostPickupMs: -5 } },
    type: 'BadRequest',
    message: /hostPickupMs/,
  },
  {
    what: 'requestId of 300 characters',
    patch: { requestId: 'r'.repeat(300) },
    type: 'BadRequest',
    message: /requestId/,
  },
  // names
  { what: 'empty name', patch: { name: '' }, type: 'BadRequest', message: /name/ },
  { what: 'blank name', patch: { name: '   ' }, type: 'BadRequest', message: /name.*blank/ },
  {
    what: 'name of 256 characters',
    patch: { name: 'n'.repeat(256) },
    type: 'BadRequest',
    message: /name.*255/,
  },
  { what: 'NUL in the name', patch: { name: 'a\u0000b' }, type: 'BadRequest', message: /name.*control/ },
  {
    what: 'newline in the name',
    patch: { name: 'line\nbreak' },
    type: 'BadRequest',
    message: /name.*control/,
  },
  {
    what: 'ANSI escape in the name',
    patch: { name: '\u001b[31mred' },
    type: 'BadRequest',
    message: /control/,
  },
  { what: 'DEL in the name', patch: { name: 'del\u007f' }, type: 'BadRequest', message: /control/ },
  {
    what: 'NUL in the zone',
    patch: { availabilityZone: 'nova\u0000' },
    type: 'BadRequest',
    message: /zone|Zone/,
  },
  {
    what: 'empty zone',
    patch: { availabilityZone: '' },
    type: 'BadRequest',
    message: /availabilityZone/,
  },
  // SQL- and path-like references
  {
    what: 'SQL-like flavor',
    patch: { flavor: "m1.tiny' OR '1'='1" },
    type: 'BadRequest',
    message: /[Ff]lavor.*could not be found/,
  },
  { what: 'SQL-like image', patch: { image: "' OR 1=1 --" }, type: 'NotFound', message: /image/i },
  {
    what: 'path-like image',
    patch: { image: '../../../../etc/passwd' },
    type: 'NotFound',
    message: /image/i,
  },
  { what: 'URL image', patch: { image: 'file:///etc/passwd' }, type: 'NotFound', message: /image/i },
  {
    what: 'path-like network',
    patch: { networks: ['../../etc/passwd'] },
    type: 'NotFound',
    message: /[Nn]etwork/,
  },
  {
    what: 'SQL-like network',
    patch: { networks: ["x'; DROP TABLE networks; --"] },
    type: 'NotFound',
    message: /[Nn]etwork/,
  },
  // unknown references
  { what: 'unknown flavor', patch: { flavor: 'm1.colossal' }, type: 'BadRequest', message: /m1\.colossal/ },
  { what: 'unknown image id', patch: { image: UUID }, type: 'NotFound', message: new RegExp(UUID) },
  {
    what: 'unknown image name',
    patch: { image: 'no-such-image' },
    type: 'NotFound',
    message: /no-such-image/,
  },
  { what: 'unknown network', patch: { networks: [UUID] }, type: 'NotFound', message: new RegExp(UUID) },
  {
    what: 'another project’s network',
    patch: { networks: ['$other'] },
    type: 'NotFound',
    message: /[Nn]etwork/,
  },
  {
    what: 'unknown availability zone',
    patch: { availabilityZone: 'nowhere' },
    type: 'BadRequest',
    message: /availability zone/,
  },
];

describe('bad boot requests change nothing', HARNESS_TIMEOUT, () => {
  let h: SecurityHarness;
  let otherNetworkId: string;

  const validRequest = (): Record<string, unknown> => ({
    requestId: `bad-${randomUUID()}`,
    auth: h.demoAuth(),
    name: 'bad-input',
    flavor: 'm1.tiny',
    image: h.boot.imageId,
    networks: [h.boot.privateNetworkId],
  });
  const requestFor = (c: BadCase): Record<string, unknown> => {
    const request = validRequest();
    for (const [field, value] of Object.entries(c.patch)) {
      if (value === REMOVE) delete request[field];
      else if (field === 'networks' && Array.isArray(value))
        request[field] = value.map((n) => (n === '$other' ? otherNetworkId : n));
      else request[field] = value;
    }
    return request;
  };
  const attempt = async (c: BadCase): Promise<{ type?: string; message?: string }> => {
    const handle = await h.start('create', requestFor(c));
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), HANG_MS)));
    const outcome = await Promise.race([
      handle.result().then(
        () => undefined,
        (err: unknown) => err,
      ),
      hung,
    ]);
    clearTimeout(timer);
    if (outcome === 'hung') {
      await handle.terminate('bad-input test: the boot did not end').catch(() => undefined);
      return { type: 'hung', message: `no end within ${HANG_MS} ms` };
    }
    if (outcome === undefined) return {};
    return { type: failureTypeOf(outcome), message: typedFailureOf(outcome)?.message ?? String(outcome) };
  };

  before(async () => {
    h = await openSecurityHarness('sec-bad-input');
    const other = await addTenantUser(h.cloud, { username: 'olga', projectName: 'other', role: 'member' });
    const net = await h.cloud.neutron.createNetwork({ name: 'other-private', projectId: other.projectId });
    await h.cloud.neutron.createSubnet({ networkId: net.id, cidr: '10.9.0.0/24' });
    otherNetworkId = net.id;
    // Nova creates a project's quota usage rows (all zero) at its first claim; let that be before the
    // snapshots, so that a refused claim (QuotaExceeded) is seen to change nothing.
    const throwaway = randomUUID();
    await h.cloud.nova.claimQuota(h.boot.demo.projectId, throwaway, { instances: 1 });
    await h.cloud.nova.releaseQuota(throwaway);
  }, HARNESS_TIMEOUT);
  after(async () => {
    await h?.close();
  }, HARNESS_TIMEOUT);

  test(`${BAD.length} malformed requests: typed failures naming the problem, nothing changed`, async () => {
    const before = await h.state();
    assert.deepEqual(before.leaks, []);
    const wrong: string[] = [];
    for (const c of BAD) {
      const got = await attempt(c);
      if (got.type !== c.type || !c.message.test(got.message ?? '')) {
        wrong.push(
          `${c.what}: expected ${c.type} ${c.message}, got ${got.type ?? 'success'}: ${got.message}`,
        );
      }
    }
    assert.deepEqual(wrong, []);
    assertUnchanged(before, await h.state(), 'malformed boot requests');
  });

  test('valid but unusual input is accepted, stored verbatim and harms nothing', async () => {
    const names = [
      'сервер-雲-🚀 ünïcödé',
      "x'); DROP TABLE instances; --",
      '../../../../etc/passwd',
      '雲'.repeat(255),
    ];
    const ids: string[] = [];
    for (const name of names) {
      const server = await h.run<BootResult>('create', { ...validRequest(), name });
      assert.equal(server.name, name);
      const shown = await h.run<ServerView>('show', { auth: h.demoAuth(), server: server.id });
      assert.equal(shown.name, name, 'show returns the name as given');
      ids.push(server.id);
    }
    const state = await h.state();
    assert.ok(Object.keys(state.rows.nova ?? {}).includes('instances'), 'the instances table is still there');
    assert.ok(!state.files.some((f) => /(^|\/)passwd\b/.test(f)), 'a file was named after a server name');
    for (const id of ids) {
      await h.run('delete', { requestId: `bad-del-${randomUUID()}`, auth: h.demoAuth(), instanceUuid: id });
    }
    assert.deepEqual((await h.state()).leaks, []);
  });

  test('malformed delete requests: BadRequest naming the field, the server untouched', async () => {
    const server = await h.run<BootResult>('create', validRequest());
    const valid = () => ({
      requestId: `bad-del-${randomUUID()}`,
      auth: h.demoAuth(),
      instanceUuid: server.id,
    });
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ['instanceUuid not a uuid', { ...valid(), instanceUuid: '../../etc/passwd' }, /instanceUuid/],
      ['instanceUuid a number', { ...valid(), instanceUuid: 42 }, /instanceUuid/],
      ['no auth', { requestId: valid().requestId, instanceUuid: server.id }, /auth/],
      ['token and credentials', { ...valid(), auth: { token: 'x', credentials: h.demoAuth() } }, /auth/],
      ['unknown field force', { ...valid(), force: true }, /force|[Uu]nrecognized/],
      ['requestId with spaces', { ...valid(), requestId: 'a b' }, /requestId/],
    ];
    const before = await h.state();
    const wrong: string[] = [];
    for (const [what, request, message] of cases) {
      const error = await h.run('delete', request).then(
        () => undefined,
        (err: unknown) => err,
      );
      const type = failureTypeOf(error);
      const text = typedFailureOf(error)?.message ?? '';
      if (type !== 'BadRequest' || !message.test(text)) wrong.push(`${what}: ${type ?? 'success'}: ${text}`);
    }
    assert.deepEqual(wrong, []);
    assertUnchanged(before, await h.state(), 'malformed delete requests');
    assert.equal((await h.cloud.nova.getInstance(server.id)).vmState, 'active');
  });
});
