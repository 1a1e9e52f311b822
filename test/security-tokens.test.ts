/**
 * Tokens that must not work: a forged signature (another key), a tampered payload (the real signature over
 * a changed project and roles), an unsigned one (alg none), an expired one (by the cloud's clock), one whose
 * project scope the user no longer holds, a scope the user never had, a revoked one (token revoked, user
 * disabled, password changed) and one for a disabled project. Each is Unauthorized with Keystone's one
 * message — at Keystone, at every activity that takes a token, and through the workflows the client starts —
 * and a boot attempted with it creates nothing: every row, every file and the leak audit stay as they were.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { SignJWT, decodeJwt, decodeProtectedHeader } from 'jose';
import { WorkflowFailedError } from '@temporalio/client';
import { createControllerActivities, createNetworkActivities } from '../activities';
import { createOperatorControllerActivities, createOperatorNetworkActivities } from '../activities/operator';
import { UNAUTHORIZED_MESSAGE } from '../cloud/keystone';
import type { BootAuth, BootResult } from '../workflows/types';
import { addTenantUser, assertUnchanged, expectTyped } from './helpers/security';
import {
  HARNESS_TIMEOUT,
  failureTypeOf,
  openSecurityHarness,
  typedFailureOf,
  type SecurityHarness,
} from './helpers/security-harness';

const HOUR = 3_600_000;
const READS_FOR = new Set(['forged signature', 'expired', 'user disabled', 'project disabled']);

/** The JWS parts of a token. */
function parts(token: string): [string, string, string] {
  const [header, payload, signature] = token.split('.');
  return [header ?? '', payload ?? '', signature ?? ''];
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe('tokens that must not work', HARNESS_TIMEOUT, () => {
  let h: SecurityHarness;
  /** Tokens that are Unauthorized everywhere, by what is wrong with them. */
  const bad: Record<string, string> = {};
  /** Credentials Keystone must refuse to turn into a token. */
  const badCredentials: Record<string, BootAuth> = {};
  /** A token one hour and a second past its expiry: Unauthorized for new requests, within allow_expired. */
  let expired: string;
  let validDemoToken: () => Promise<string>;
  let liveServer: BootResult;

  const boot = (auth: BootAuth) => ({
    requestId: `tok-${randomUUID()}`,
    auth,
    name: 'should-not-exist',
    flavor: 'm1.tiny',
    image: h.boot.imageId,
    networks: [h.boot.publicNetworkId],
  });

  before(async () => {
    h = await openSecurityHarness('sec-tokens');
    const { cloud } = h;
    const ks = cloud.keystone;
    validDemoToken = async () =>
      (
        await ks.authenticate({
          username: h.boot.demo.username,
          password: h.boot.demo.password,
          projectName: h.boot.demo.projectName,
        })
      ).token;
    liveServer = await h.run<BootResult>('create', boot(h.demoAuth()));

    const demoToken = await validDemoToken();
    const claims = decodeJwt(demoToken);
    const header = decodeProtectedHeader(demoToken);
    // Signed by a key that is not Keystone's, with Keystone's key id and well-formed claims.
    const { privateKey } = generateKeyPairSync('ed25519');
    bad['forged signature'] = await new SignJWT({ ...claims, roles: ['admin', 'member', 'reader'] })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT', kid: header.kid ?? '' })
      .sign(privateKey);
    // Keystone's real signature over a payload that now claims another project and admin.
    const [h64, , sig] = parts(demoToken);
    bad['tampered payload'] =
      `${h64}.${b64({ ...claims, project_id: h.boot.admin.projectId, roles: ['admin'] })}.${sig}`;
    bad['unsigned (alg none)'] = `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`;
    bad['not a token'] = 'gAAAAABlZXhhbXBsZS1mZXJuZXQtdG9rZW4';
    bad['oversized'] = `${h64}.${'A'.repeat(9000)}.${sig}`;

    // Scope the user no longer holds: the role on the project removed after the token was issued.
    const ex = await addTenantUser(cloud, { username: 'exmember', projectName: 'demo', role: 'member' });
    await ks.unassignRole({ user: 'exmember', project: 'demo', role: 'member' });
    bad['role on the project removed'] = ex.token ?? '';
    // Scope never held: a project the user has no role on.
    const stranger = await addTenantUser(cloud, {
      username: 'stranger',
      projectName: 'elsewhere',
      role: 'member',
    });
    badCredentials['project the user has no role on'] = h.credentials(
      stranger.username,
      stranger.password,
      'demo',
    );
    badCredentials['wrong password'] = h.credentials(
      h.boot.demo.username,
      `${h.boot.demo.password}x`,
      'demo',
    );
    badCredentials['unknown user'] = h.credentials('nobody', 'whatever', 'demo');

    // Revoked: the token itself, a disabled user's, and one issued before a password change.
    const revoked = await addTenantUser(cloud, { username: 'revoked', projectName: 'demo', role: 'member' });
    await ks.revokeToken(revoked.token ?? '');
    bad['token revoked'] = revoked.token ?? '';
    const disabled = await addTenantUser(cloud, {
      username: 'disabled',
      projectName: 'demo',
      role: 'member',
    });
    await ks.disableUser({ user: 'disabled' });
    bad['user disabled'] = disabled.token ?? '';
    badCredentials['user disabled'] = h.credentials('disabled', disabled.password, 'demo');
    const reenabled = await addTenantUser(cloud, {
      username: 'reenabled',
      projectName: 'demo',
      role: 'member',
    });
    await ks.disableUser({ user: 'reenabled' });
    h.clock.advance(1);
    await ks.enableUser({ user: 'reenabled' });
    bad['user disabled, then enabled again (old token)'] = reenabled.token ?? '';
    const changed = await addTenantUser(cloud, { username: 'changed', projectName: 'demo', role: 'member' });
    await ks.setUserPassword({ user: 'changed', password: 'a-new-password-1' });
    bad['issued before a password change'] = changed.token ?? '';

    // Disabled project: its tokens, and new logins to it.
    const frozen = await addTenantUser(cloud, { username: 'frozen', projectName: 'frozen', role: 'member' });
    await ks.disableProject({ project: 'frozen' });
    bad['project disabled'] = frozen.token ?? '';
    badCredentials['project disabled'] = h.credentials('frozen', frozen.password, 'frozen');
    h.clock.advance(1);

    // Expired by the cloud's clock (Keystone's [token] expiration is one hour); the hosts keep reporting.
    expired = await validDemoToken();
    h.clock.advance(HOUR + 1000);
    for (const host of h.computeHosts.keys()) await cloud.nova.heartbeat(host);
    for (const [what, token] of Object.entries(bad)) assert.ok(token, `no token for ${what}`);
  }, HARNESS_TIMEOUT);
  after(async () => {
    await h?.close();
  }, HARNESS_TIMEOUT);

  test('Keystone answers each with the same Unauthorized and the same message', async () => {
    for (const [what, token] of Object.entries({ ...bad, expired })) {
      const err = await expectTyped(h.cloud.keystone.validateToken(token), 'Unauthorized', what);
      assert.equal(err.message, UNAUTHORIZED_MESSAGE, what);
    }
    for (const [what, auth] of Object.entries(badCredentials)) {
      const creds = (auth as { credentials: Parameters<typeof h.cloud.keystone.authenticate>[0] })
        .credentials;
      const err = await expectTyped(h.cloud.keystone.authenticate(creds), 'Unauthorized', what);
      assert.equal(err.message, UNAUTHORIZED_MESSAGE, what);
    }
    // The expired token still serves work already accepted, within allow_expired (48 h), then not even that.
    assert.equal(
      (await h.cloud.keystone.validateToken(expired, { allowExpired: true })).projectId,
      h.boot.demo.projectId,
    );
    assert.equal(
      (await h.cloud.keystone.validateToken(await validDemoToken())).projectId,
      h.boot.demo.projectId,
    );
  });

  test('every activity that takes a token refuses each one and writes nothing', async () => {
    const { cloud } = h;
    const controller = {
      ...createControllerActivities(cloud),
      ...createOperatorControllerActivities(cloud),
    };
    const network = {
      ...createNetworkActivities({ neutron: cloud.neutron, identity: cloud.keystone }),
      ...createOperatorNetworkActivities({ neutron: cloud.neutron, identity: cloud.keystone }),
    };
    const plan = { name: 'x', flavor: 'm1.tiny', image: h.boot.imageId };
    const uuid = randomUUID();
    const image = await cloud.glance.imageLocation(h.boot.imageId);
    /** Calls that judge the token as for a new request. */
    const fresh: Record<string, (token: string) => Promise<unknown>> = {
      authenticate: (token) => controller.authenticate({ token }),
      authorize: (token) => controller.authorize({ token, rule: 'compute:server:create' }),
      validateBootRequest: (token) => controller.validateBootRequest({ token, request: plan }),
      getInstanceForDelete: (token) =>
        controller.getInstanceForDelete({ token, instanceUuid: liveServer.id }),
      validateNetworks: (token) => network.validateNetworks({ token, networks: [h.boot.publicNetworkId] }),
      findServers: (token) => controller.findServers({ token, filter: {} }),
      serverVolumes: (token) => controller.serverVolumes({ token, instanceUuids: [liveServer.id] }),
      listHypervisors: (token) => controller.listHypervisors({ token }),
      runLeakAudit: (token) => controller.runLeakAudit({ token }),
      serverAddresses: (token) => network.serverAddresses({ token, instanceUuids: [liveServer.id] }),
    };
    /** Calls of a build already accepted: an expired token passes within allow_expired, nothing else does. */
    const ongoing: Record<string, (token: string) => Promise<unknown>> = {
      reserveQuota: (token) =>
        controller.reserveQuota({ token, instanceUuid: uuid, amounts: { instances: 1, cores: 1, ram: 512 } }),
      createPorts: (token) =>
        network.createPorts({
          token,
          instanceUuid: uuid,
          attempt: 1,
          projectId: h.boot.demo.projectId,
          networks: [{ id: h.boot.publicNetworkId, name: 'public' }],
        }),
      createBootVolume: (token) =>
        controller.createBootVolume({
          token,
          instanceUuid: uuid,
          name: 'x',
          projectId: h.boot.demo.projectId,
          userId: 'u',
          sizeGb: 1,
          image,
          deleteOnTermination: true,
        }),
      attachVolume: (token) =>
        controller.attachVolume({
          token,
          volume: { volumeId: randomUUID(), sizeGb: 1, deleteOnTermination: true },
          instanceUuid: uuid,
          host: 'compute1',
        }),
    };
    const before = await h.state();
    for (const [what, token] of Object.entries(bad)) {
      for (const [name, call] of Object.entries({ ...fresh, ...ongoing })) {
        await expectTyped(call(token), 'Unauthorized', `${name} with ${what}`);
      }
    }
    for (const [name, call] of Object.entries(fresh)) await expectTyped(call(expired), 'Unauthorized', name);
    assertUnchanged(before, await h.state(), 'activities called with refused tokens');
  });

  test('through the client’s workflows: Unauthorized, and a boot attempt creates nothing', async () => {
    const before = await h.state();
    const attempts: Array<[string, BootAuth]> = [
      ...Object.entries(bad).map(([what, token]): [string, BootAuth] => [what, { token }]),
      ['expired', { token: expired }],
      ...Object.entries(badCredentials),
    ];
    const mismatches: string[] = [];
    for (const [what, auth] of attempts) {
      const requests: Array<[Parameters<SecurityHarness['start']>[0], unknown]> = [
        ['create', boot(auth)],
        ['delete', { requestId: `tok-del-${randomUUID()}`, auth, instanceUuid: liveServer.id }],
      ];
      // The reads check the token in the same first activity; a few kinds suffice for them.
      if (READS_FOR.has(what)) requests.push(['show', { auth, server: liveServer.id }], ['list', { auth }]);
      for (const [operation, request] of requests) {
        const error = await h.run(operation, request).then(
          () => undefined,
          (err: unknown) => err,
        );
        assert.ok(error instanceof WorkflowFailedError, `${operation} with ${what} did not fail`);
        const type = failureTypeOf(error);
        if (type !== 'Unauthorized') mismatches.push(`${operation} with ${what}: ${type}`);
        assert.equal(typedFailureOf(error)?.message, UNAUTHORIZED_MESSAGE, `${operation} with ${what}`);
      }
    }
    assert.deepEqual(mismatches, []);
    assertUnchanged(before, await h.state(), 'workflows started with refused tokens');
    // The server they aimed at is still there and running.
    assert.equal((await h.cloud.nova.getInstance(liveServer.id)).vmState, 'active');
    assert.equal(h.computeHosts.get(liveServer.host) !== undefined, true);
  });

  test('control: a fresh token of the same user boots and deletes through the same workflows', async () => {
    await h.syncClock();
    const token = await validDemoToken();
    const server = await h.run<BootResult>('create', boot({ token })).catch((err: unknown) => {
      throw new Error(`${failureTypeOf(err)}: ${typedFailureOf(err)?.message}`);
    });
    assert.equal(server.status, 'ACTIVE');
    await h.syncClock();
    const deleted = await h.run<{ outcome: string }>('delete', {
      requestId: `tok-del-${randomUUID()}`,
      auth: { token: await validDemoToken() },
      instanceUuid: server.id,
    });
    assert.equal(deleted.outcome, 'deleted');
  });
});
