import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ManualClock } from '../cloud/clock';
import { isCloudError, type CloudErrorType } from '../cloud/errors';
import { DEFAULT_QUOTA_LIMITS, Nova, type QuotaAmounts } from '../cloud/nova';
import { testDbConfig, testDbDialect, type TestDb } from './helpers/cloud-db';

function isType(type: CloudErrorType, message?: RegExp) {
  return (err: unknown) => isCloudError(err, type) && (!message || message.test(err.message));
}

/** nova-api's instance row for a consumer of the project's quota. */
function instanceRequest(project: string, uuid: string) {
  return {
    uuid,
    requestId: `req-${uuid}`,
    name: 'vm',
    projectId: project,
    userId: 'u',
    flavor: 'm1.tiny',
    imageRef: 'img',
    networks: [],
  };
}

describe('nova quotas', () => {
  let testDb: TestDb;
  let nova: Nova;
  /** A second connection pool on database servers, so claims really interleave; SQLite: the same one. */
  let nova2: Nova;
  const clock = new ManualClock(Date.UTC(2025, 0, 1));

  before(async () => {
    testDb = testDbConfig('quota');
    nova = await Nova.open({ db: testDb.config, clock });
    nova2 = testDbDialect === 'sqlite' ? nova : await Nova.open({ db: testDb.config, clock });
    await nova.ensureDefaultFlavors();
  });
  after(async () => {
    if (nova2 !== nova) await nova2?.close();
    await nova?.close();
    await testDb?.cleanup();
  });

  async function allocationRows(projectId: string) {
    return nova.store.db
      .selectFrom('quota_allocations')
      .selectAll()
      .where('project_id', '=', projectId)
      .execute();
  }

  test('defaults are Nova’s (and Cinder’s, Neutron’s)', async () => {
    const usage = await nova.getQuotaUsage('fresh-project');
    assert.deepEqual(DEFAULT_QUOTA_LIMITS, {
      instances: 10,
      cores: 20,
      ram: 51200,
      volumes: 10,
      snapshots: 10,
      gigabytes: 1000,
      ports: 50,
    });
    for (const [resource, limit] of Object.entries(DEFAULT_QUOTA_LIMITS)) {
      assert.deepEqual(usage[resource as keyof typeof usage], { limit, inUse: 0 });
    }
  });

  test('over quota: Nova’s message, nothing recorded', async () => {
    const project = 'p-message';
    await nova.claimQuota(project, randomUUID(), { instances: 1, cores: 19, ram: 49152 });
    const loser = randomUUID();
    await assert.rejects(
      nova.claimQuota(project, loser, { instances: 1, cores: 2, ram: 512 }),
      (err: unknown) =>
        isType('QuotaExceeded')(err) &&
        isCloudError(err) &&
        err.message === 'Quota exceeded for cores: Requested 2, but already used 19 of 20 cores' &&
        err.code === 403 &&
        !err.retryable,
    );
    await assert.rejects(
      nova.claimQuota(project, loser, { instances: 1, cores: 2, ram: 4096 }),
      isType(
        'QuotaExceeded',
        /^Quota exceeded for cores, ram: Requested 2, 4096, but already used 19, 49152 of 20, 51200 cores, ram$/,
      ),
    );
    assert.equal((await allocationRows(project)).filter((r) => r.consumer_uuid === loser).length, 0);
    const usage = await nova.getQuotaUsage(project);
    assert.equal(usage.cores.inUse, 19);
    assert.equal(usage.instances.inUse, 1);
    // Exactly filling the limit is allowed.
    await nova.claimQuota(project, loser, { instances: 1, cores: 1, ram: 2048 });
    assert.equal((await nova.getQuotaUsage(project)).cores.inUse, 20);
  });

  test('claims are idempotent per consumer; mismatched re-claims are refused; release is idempotent', async () => {
    const project = 'p-idem';
    const consumer = randomUUID();
    const first = await nova.claimQuota(project, consumer, { instances: 1, cores: 2, ram: 4096 });
    const again = await nova.claimQuota(project, consumer, { instances: 1, cores: 2, ram: 4096 });
    assert.deepEqual(again, first);
    // A later step of the same boot adds what it needs (ports, volumes); what is held stays once.
    const more = await nova.claimQuota(project, consumer, { cores: 2, ports: 1, volumes: 1, gigabytes: 10 });
    assert.deepEqual(more.resources, {
      instances: 1,
      cores: 2,
      ram: 4096,
      ports: 1,
      volumes: 1,
      gigabytes: 10,
    });
    await assert.rejects(
      nova.claimQuota(project, consumer, { cores: 4 }),
      isType('BadRequest', /already holds cores=2/),
    );
    await assert.rejects(
      nova.claimQuota('p-other', consumer, { cores: 2 }),
      isType('BadRequest', /project p-idem/),
    );
    let usage = await nova.getQuotaUsage(project);
    assert.deepEqual(Object.fromEntries(Object.entries(usage).map(([r, u]) => [r, u.inUse])), {
      instances: 1,
      cores: 2,
      ram: 4096,
      volumes: 1,
      snapshots: 0,
      gigabytes: 10,
      ports: 1,
    });
    assert.equal((await nova.listQuotaClaims(project)).length, 1);
    const [r1, r2] = await Promise.all([nova.releaseQuota(consumer), nova2.releaseQuota(consumer)]);
    const released = [r1, r2].find((r) => Object.keys(r).length > 0);
    assert.deepEqual(released, more.resources);
    assert.deepEqual(await nova.releaseQuota(consumer), {});
    usage = await nova.getQuotaUsage(project);
    assert.ok(Object.values(usage).every((u) => u.inUse === 0));
    assert.equal((await allocationRows(project)).length, 0);
    assert.deepEqual(await nova.releaseQuota(randomUUID()), {});
  });

  test('a project whose usage rows predate a resource (snapshots): its claims release, and new claims add the row', async () => {
    const project = 'p-before-snapshots';
    const consumer = randomUUID();
    await nova.claimQuota(project, consumer, { volumes: 1, gigabytes: 2 });
    await nova.store.db
      .deleteFrom('quota_usages')
      .where('project_id', '=', project)
      .where('resource', '=', 'snapshots')
      .execute();
    // A Nova opened after the upgrade has not seen the project yet.
    const later = await Nova.open({ db: testDb.config, clock });
    try {
      assert.deepEqual(await later.releaseQuota(consumer), { volumes: 1, gigabytes: 2 });
      await later.claimQuota(project, randomUUID(), { snapshots: 1, gigabytes: 1 });
      const usage = await later.getQuotaUsage(project);
      assert.deepEqual([usage.volumes.inUse, usage.snapshots.inUse, usage.gigabytes.inUse], [0, 1, 1]);
    } finally {
      await later.close();
    }
  });

  test('limits: set per project, -1 is unlimited, others keep theirs', async () => {
    const project = 'p-limits';
    await nova.setQuotaLimits(project, { cores: -1, instances: 3 });
    const usage = await nova.setQuotaLimits(project, { instances: 3 });
    assert.equal(usage.cores.limit, -1);
    assert.equal(usage.instances.limit, 3);
    assert.equal(usage.ram.limit, 51200);
    await nova.claimQuota(project, randomUUID(), { instances: 1, cores: 1000 });
    await nova.claimQuota(project, randomUUID(), { instances: 2 });
    await assert.rejects(
      nova.claimQuota(project, randomUUID(), { instances: 1 }),
      isType('QuotaExceeded', /Requested 1, but already used 3 of 3 instances/),
    );
    const rows = await nova.store.db
      .selectFrom('quotas')
      .selectAll()
      .where('project_id', '=', project)
      .execute();
    assert.equal(rows.length, 2);
  });

  test('200 parallel claims against room for 100: exactly 100 win, nothing over-committed or duplicated', async () => {
    const project = 'p-race';
    await nova.setQuotaLimits(project, { instances: 100, cores: -1, ram: -1 });
    const consumers = Array.from({ length: 200 }, () => randomUUID());
    const results = await Promise.allSettled(
      consumers.map((c, i) =>
        (i % 2 ? nova2 : nova).claimQuota(project, c, { instances: 1, cores: 1, ram: 512 }),
      ),
    );
    const winners = consumers.filter((_, i) => results[i]?.status === 'fulfilled');
    const losers = results.filter((r) => r.status === 'rejected');
    assert.equal(winners.length, 100);
    assert.ok(losers.every((r) => isType('QuotaExceeded', /instances/)(r.reason)));
    const usage = await nova.getQuotaUsage(project);
    assert.equal(usage.instances.inUse, 100);
    assert.equal(usage.cores.inUse, 100);
    assert.equal(usage.ram.inUse, 100 * 512);
    const rows = await allocationRows(project);
    const instanceRows = rows.filter((r) => r.resource === 'instances');
    assert.equal(instanceRows.length, 100);
    assert.deepEqual(new Set(instanceRows.map((r) => r.consumer_uuid)), new Set(winners));

    // Retries of the winners (and a second wave of new consumers) change nothing.
    const retries = await Promise.allSettled([
      ...winners.map((c, i) =>
        (i % 2 ? nova : nova2).claimQuota(project, c, { instances: 1, cores: 1, ram: 512 }),
      ),
      ...Array.from({ length: 20 }, () => nova.claimQuota(project, randomUUID(), { instances: 1 })),
    ]);
    assert.equal(retries.filter((r) => r.status === 'fulfilled').length, 100);
    assert.equal((await nova.getQuotaUsage(project)).instances.inUse, 100);
    assert.equal((await allocationRows(project)).length, 300);

    // Releasing half, each twice and in parallel, frees exactly half.
    const half = winners.slice(0, 50);
    await Promise.all(half.flatMap((c) => [nova.releaseQuota(c), nova2.releaseQuota(c)]));
    const after = await nova.getQuotaUsage(project);
    assert.equal(after.instances.inUse, 50);
    assert.equal(after.ram.inUse, 50 * 512);
    const sums = await nova.store.db
      .selectFrom('quota_allocations')
      .select((eb) => ['resource', eb.fn.sum<number>('amount').as('total')])
      .where('project_id', '=', project)
      .groupBy('resource')
      .execute();
    for (const s of sums)
      assert.equal(Number(s.total), after[s.resource as keyof typeof after].inUse, s.resource);
  });

  test('one consumer claiming 20 times at once counts once', async () => {
    const project = 'p-same-consumer';
    const consumer = randomUUID();
    const claims = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 ? nova2 : nova).claimQuota(project, consumer, { instances: 1, cores: 2 }),
      ),
    );
    assert.ok(claims.every((c) => c.resources.instances === 1 && c.resources.cores === 2));
    const usage = await nova.getQuotaUsage(project);
    assert.equal(usage.instances.inUse, 1);
    assert.equal(usage.cores.inUse, 2);
    assert.equal((await allocationRows(project)).length, 2);
  });

  test('deleting an instance frees the quota it holds as consumer', async () => {
    const project = 'p-delete';
    const uuid = randomUUID();
    await nova.claimQuota(project, uuid, { instances: 1, cores: 1, ram: 512 });
    await nova.createInstance(instanceRequest(project, uuid));
    await nova.softDeleteInstance(uuid);
    const usage = await nova.getQuotaUsage(project);
    assert.equal(usage.instances.inUse, 0);
    assert.equal(usage.ram.inUse, 0);
    assert.deepEqual(await nova.releaseQuota(uuid), {});
  });

  test("a boot's claim: its own to undo unless an earlier run's instance record holds it", async () => {
    const project = 'p-boot-claim';
    const uuid = randomUUID();
    const amounts = { instances: 1, cores: 1, ram: 512 };
    const held = async () => (await nova.listQuotaClaims()).filter((c) => c.consumerUuid === uuid);
    // The first claim, and a retry of it whose first answer was lost (no record yet): the boot's own.
    assert.deepEqual(await nova.claimBootQuota(project, uuid, amounts), { ownClaim: true });
    assert.deepEqual(await nova.claimBootQuota(project, uuid, amounts), { ownClaim: true });
    await nova.createInstance(instanceRequest(project, uuid));
    // A re-run of the boot (a reset) meets the claim its instance holds: not its own, held once.
    assert.deepEqual(await nova.claimBootQuota(project, uuid, amounts), { ownClaim: false });
    assert.equal((await held()).length, 1);
    assert.equal((await nova.getQuotaUsage(project)).instances.inUse, 1);
    // A failed build released it: the re-run's claim is new, so its own.
    await nova.releaseQuota(uuid);
    assert.deepEqual(await nova.claimBootQuota(project, uuid, amounts), { ownClaim: true });
    // A deleted instance released it too.
    await nova.softDeleteInstance(uuid);
    assert.deepEqual(await nova.claimBootQuota(project, uuid, amounts), { ownClaim: true });
    await nova.releaseQuota(uuid);
    assert.deepEqual(await held(), []);
    assert.equal((await nova.getQuotaUsage(project)).instances.inUse, 0);
  });

  test('a create with its quota: claim and row in one transaction; over quota or a failure leaves neither', async () => {
    const project = 'p-create-with-quota';
    await nova.setQuotaLimits(project, { instances: 1 });
    const request = (uuid: string) => instanceRequest(project, uuid);
    const tiny = { instances: 1, cores: 1, ram: 512 };
    const instanceRows = () =>
      nova.store.db.selectFrom('instances').select('uuid').where('project_id', '=', project).execute();

    // The transaction fails after both writes (as a lost connection at commit would): neither stays.
    const failing = randomUUID();
    const store = nova.store;
    const transaction = store.transaction;
    // (ServiceDb's methods are closures over the database, not over `this`.)
    store.transaction = (fn) =>
      transaction(async (trx) => {
        await fn(trx);
        throw new Error('the commit failed');
      });
    try {
      await assert.rejects(nova.createInstance(request(failing), tiny), /the commit failed/);
    } finally {
      store.transaction = transaction;
    }
    assert.deepEqual(await allocationRows(project), []);
    assert.deepEqual(await instanceRows(), []);
    assert.equal((await nova.getQuotaUsage(project)).instances.inUse, 0);

    const uuid = randomUUID();
    const created = await nova.createInstance(request(uuid), tiny);
    assert.equal(created.uuid, uuid);
    assert.deepEqual(
      (await allocationRows(project)).map((r) => [r.consumer_uuid, r.resource, Number(r.amount)]).sort(),
      [
        [uuid, 'cores', 1],
        [uuid, 'instances', 1],
        [uuid, 'ram', 512],
      ],
    );
    assert.deepEqual(
      (await nova.listActions(uuid)).map((a) => a.action),
      ['create'],
    );
    // A retry of the same request gets the first result and claims nothing again.
    assert.equal((await nova.createInstance(request(uuid), tiny)).uuid, uuid);
    assert.equal((await nova.getQuotaUsage(project)).instances.inUse, 1);
    // Over quota: 403's QuotaExceeded, and no row.
    const over = randomUUID();
    await assert.rejects(nova.createInstance(request(over), tiny), isType('QuotaExceeded'));
    assert.deepEqual(
      (await instanceRows()).map((r) => r.uuid),
      [uuid],
    );
    assert.equal((await nova.getQuotaUsage(project)).instances.inUse, 1);
    // Deleting it frees what the create claimed.
    await nova.softDeleteInstance(uuid);
    assert.equal((await nova.getQuotaUsage(project)).instances.inUse, 0);
    assert.deepEqual(await allocationRows(project), []);
  });

  test('bad input is refused and changes nothing', async () => {
    const project = 'p-bad';
    const consumer = randomUUID();
    await nova.claimQuota(project, consumer, { instances: 1 });
    const snapshot = async () => ({
      quotas: await nova.store.db
        .selectFrom('quotas')
        .selectAll()
        .orderBy('project_id')
        .orderBy('resource')
        .execute(),
      usages: await nova.store.db
        .selectFrom('quota_usages')
        .selectAll()
        .orderBy('project_id')
        .orderBy('resource')
        .execute(),
      allocations: await nova.store.db
        .selectFrom('quota_allocations')
        .selectAll()
        .orderBy('consumer_uuid')
        .orderBy('resource')
        .execute(),
    });
    const before = await snapshot();
    const bad = (v: unknown) => v as QuotaAmounts;
    const cases: Array<[string, () => Promise<unknown>, RegExp?]> = [
      ['negative', () => nova.claimQuota(project, randomUUID(), { cores: -1 }), /cores/],
      ['fractional', () => nova.claimQuota(project, randomUUID(), { ram: 1.5 })],
      ['huge', () => nova.claimQuota(project, randomUUID(), { gigabytes: 2 ** 40 })],
      ['unknown resource', () => nova.claimQuota(project, randomUUID(), bad({ gpus: 1 })), /gpus/],
      ['nothing asked', () => nova.claimQuota(project, randomUUID(), {}), /at least one/],
      ['string amount', () => nova.claimQuota(project, randomUUID(), bad({ cores: '2' }))],
      ['bad consumer', () => nova.claimQuota(project, 'consumer-1', { cores: 1 }), /consumer uuid/],
      ['bad project', () => nova.claimQuota('bad project', randomUUID(), { cores: 1 }), /project id/],
      ['long project', () => nova.claimQuota('p'.repeat(65), randomUUID(), { cores: 1 })],
      ['limit below -1', () => nova.setQuotaLimits(project, { cores: -2 })],
      ['limit unknown', () => nova.setQuotaLimits(project, bad({ floating_ips: 1 }))],
      ['limit: partial bad', () => nova.setQuotaLimits(project, bad({ cores: 5, ram: 'lots' }))],
      ['release bad uuid', () => nova.releaseQuota('x')],
    ];
    for (const [what, run, message] of cases) {
      await assert.rejects(run(), isType('BadRequest', message), what);
    }
    assert.deepEqual(await snapshot(), before);
  });
});
