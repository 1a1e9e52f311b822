/**
 * The services' validated-token cache (keystonemiddleware's token_cache_time): what it may and may not keep.
 * Two Keystones over one database stand for two processes (the API and a worker, or two APIs). A token
 * revoked, its user disabled, its password changed or its role removed through one is refused by that one
 * at once; the other takes it until its entry is token_cache_time old (the documented bound), never longer,
 * never past the token's expiry. A grant made in that window from the cached validation is still refused at
 * once, by either, because it carries the token's audit id and issue time.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../cloud/clock';
import { Keystone, UNAUTHORIZED_MESSAGE } from '../cloud/keystone';
import { testDbConfig, type TestDb } from './helpers/cloud-db';

const CACHE_SECONDS = 300;
const op = (id: string) => ({ workflowType: 'createInstance', workflowId: `boot-${id}` });

describe('validated-token cache: revocation bound', () => {
  let db: TestDb;
  let clock: ManualClock;
  /** The process that revokes. */
  let here: Keystone;
  /** Another process over the same database, with its own cache. */
  let there: Keystone;
  let seq = 0;

  /** A new member of project p with a fresh token. */
  async function member(): Promise<{ user: string; token: string }> {
    seq += 1;
    const user = `u${seq}`;
    await here.ensureProject({ name: 'p' });
    await here.ensureUser({ name: user, password: `${user}-password` });
    await here.assignRole({ user, project: 'p', role: 'member' });
    // Past the millisecond of anything revoked before.
    clock.advance(1_000);
    const { token } = await here.authenticate({
      username: user,
      password: `${user}-password`,
      projectName: 'p',
    });
    return { user, token };
  }

  const refused = (p: Promise<unknown>) => assert.rejects(p, { message: UNAUTHORIZED_MESSAGE });

  before(async () => {
    db = testDbConfig('token-cache');
    clock = new ManualClock(Date.now());
    here = await Keystone.open({ db: db.config, clock, tokenCacheSeconds: CACHE_SECONDS });
    there = await Keystone.open({ db: db.config, clock, tokenCacheSeconds: CACHE_SECONDS });
  });
  after(async () => {
    await here?.close();
    await there?.close();
    await db?.cleanup();
  });

  test('revoked through this process: refused here at once, there until the bound', async () => {
    const { token } = await member();
    for (const k of [here, there]) assert.ok((await k.authenticateRequest(token)).context.projectId);
    await here.revokeToken(token);
    await refused(here.authenticateRequest(token));
    // The documented bound: the other process's cache still takes it ...
    clock.advance(CACHE_SECONDS * 1000 - 1_000);
    assert.ok((await there.authenticateRequest(token)).context.projectId, 'cached there within the bound');
    // ... a grant made from that cached validation is refused at once, by both ...
    const validated = await there.authenticateRequest(token);
    const { grant } = await there.grantFor(validated, op('revoked'));
    await refused(there.validateGrant(grant, op('revoked')));
    await refused(here.validateGrant(grant, op('revoked')));
    // ... and once the entry is token_cache_time old, the token is refused there too.
    clock.advance(1_000);
    await refused(there.authenticateRequest(token));
  });

  test('all of a user`s tokens revoked (password change): cached grants die too', async () => {
    const { user, token } = await member();
    const validated = await there.authenticateRequest(token);
    clock.advance(1_000);
    await here.setUserPassword({ user, password: 'another-password-1' });
    await refused(here.authenticateRequest(token));
    clock.advance(1_000);
    // Made after the revocation, from the other process's cached validation: the token's issue time counts.
    const { grant } = await there.grantFor(validated, op('password'));
    await refused(here.validateGrant(grant, op('password')));
    await refused(there.validateGrant(grant, op('password')));
  });

  test('a disabled user, a removed role: refused at once by the process that changed it', async () => {
    const a = await member();
    const b = await member();
    await here.authenticateRequest(a.token);
    await here.authenticateRequest(b.token);
    await here.disableUser({ user: a.user });
    await refused(here.authenticateRequest(a.token));
    await here.unassignRole({ user: b.user, project: 'p', role: 'member' });
    await refused(here.authenticateRequest(b.token));
  });

  test('a cached validation never outlives the token', async () => {
    const { token } = await member();
    const { context } = await there.authenticateRequest(token);
    clock.set(context.expiresAt);
    await refused(there.authenticateRequest(token));
  });

  test('the cache is bounded: the oldest entry goes first and is validated again', async () => {
    const small = await Keystone.open({ db: db.config, clock, tokenCacheSeconds: 300, tokenCacheEntries: 2 });
    try {
      const first = await member();
      const second = await member();
      const third = await member();
      for (const t of [first, second, third]) await small.authenticateRequest(t.token);
      await here.revokeToken(first.token);
      await here.revokeToken(third.token);
      // `first` was evicted: validated again, refused; `third` is still cached in `small`.
      await refused(small.authenticateRequest(first.token));
      assert.ok((await small.authenticateRequest(third.token)).context.projectId);
    } finally {
      await small.close();
    }
  });

  test('a change of tags, description or extra keeps the cache; a rename drops it', async () => {
    const { token } = await member();
    const { projectId } = (await there.authenticateRequest(token)).context;
    await here.revokeToken(token);
    // None of these is in a validated token: `there` keeps its cached validation (within the bound).
    await there.addProjectTag(projectId, 'kept');
    await there.removeProjectTag(projectId, 'kept');
    await there.updateProject({ id: projectId, tags: ['a', 'b'] });
    await there.updateProject({ id: projectId, description: 'tags only', extra: { owner: 'ops' } });
    assert.deepEqual((await there.getProject({ project: projectId })).tags, ['a', 'b']);
    assert.ok((await there.authenticateRequest(token)).context.projectId, 'still cached there');
    // The project's name is in the token's context: a rename drops the cache, and the token is refused.
    await there.updateProject({ id: projectId, name: 'p' });
    await refused(there.authenticateRequest(token));
  });

  test('with token_cache_time 0, nothing is cached', async () => {
    const uncached = await Keystone.open({ db: db.config, clock, tokenCacheSeconds: 0 });
    try {
      const { token } = await member();
      await uncached.authenticateRequest(token);
      await here.revokeToken(token);
      await refused(uncached.authenticateRequest(token));
    } finally {
      await uncached.close();
    }
  });
});
