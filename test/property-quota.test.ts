/**
 * Quota as a property (fast-check): random sequences of claims, retried claims, releases and concurrent
 * bursts of claims by instances of one project, against a model. After every step the recorded usage is
 * exactly the sum of what the live consumers hold, never above a limit, and a claim is refused
 * (QuotaExceeded) exactly when it would go over; under concurrency, every refused claim would indeed
 * have gone over, and every granted one is counted once.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { Nova } from '../cloud/nova';
import { errorTypeOf } from './helpers/security';
import { testDbConfig, type TestDb } from './helpers/cloud-db';

const LIMITS = { instances: 3, cores: 6, ram: 3072 } as const;
type Resource = keyof typeof LIMITS;
const RESOURCES = Object.keys(LIMITS) as Resource[];
type Amounts = Record<Resource, number>;
const CONSUMERS = 6;

type Op =
  { kind: 'claim'; who: number } | { kind: 'release'; who: number } | { kind: 'burst'; who: number[] };

const who = fc.integer({ min: 0, max: CONSUMERS - 1 });
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: who.map((w): Op => ({ kind: 'claim', who: w })) },
  { weight: 3, arbitrary: who.map((w): Op => ({ kind: 'release', who: w })) },
  {
    weight: 1,
    arbitrary: fc
      .uniqueArray(who, { minLength: 2, maxLength: CONSUMERS })
      .map((w): Op => ({ kind: 'burst', who: w })),
  },
);
/** What each consumer (an instance of some flavor) claims, always the same for the same consumer. */
const flavors = fc.array(
  fc.record(
    {
      instances: fc.constant(1),
      cores: fc.integer({ min: 1, max: 3 }),
      ram: fc.constantFrom(512, 1024, 2048),
    },
    { noNullPrototype: true },
  ),
  { minLength: CONSUMERS, maxLength: CONSUMERS },
);

describe('quota (property)', () => {
  let testDb: TestDb;
  let nova: Nova;

  before(async () => {
    testDb = testDbConfig('prop-quota');
    nova = await Nova.open({ db: testDb.config });
  });
  after(async () => {
    await nova?.close();
    await testDb?.cleanup();
  });

  test('usage never exceeds a limit, and a claim fails exactly when it would', async () => {
    await fc.assert(
      fc.asyncProperty(flavors, fc.array(op, { maxLength: 24 }), async (amounts: Amounts[], ops) => {
        const project = `prj${randomUUID().replace(/-/g, '')}`;
        await nova.setQuotaLimits(project, LIMITS);
        const uuids = amounts.map(() => randomUUID());
        const held = new Set<number>();
        const used = (): Amounts => {
          const sum: Amounts = { instances: 0, cores: 0, ram: 0 };
          for (const i of held) for (const r of RESOURCES) sum[r] += amounts[i]![r];
          return sum;
        };
        const fits = (i: number) => RESOURCES.every((r) => used()[r] + amounts[i]![r] <= LIMITS[r]);
        const claim = (i: number) => nova.claimQuota(project, uuids[i]!, amounts[i]!);

        for (const step of ops) {
          if (step.kind === 'claim') {
            const expectOk = held.has(step.who) || fits(step.who);
            const outcome = await claim(step.who).then(
              () => 'ok',
              (err: unknown) => errorTypeOf(err) ?? String(err),
            );
            assert.equal(outcome, expectOk ? 'ok' : 'QuotaExceeded', `claim of consumer ${step.who}`);
            if (expectOk) held.add(step.who);
          } else if (step.kind === 'release') {
            const released = await nova.releaseQuota(uuids[step.who]!);
            assert.deepEqual(released, held.has(step.who) ? amounts[step.who] : {});
            held.delete(step.who);
          } else {
            const fresh = step.who.filter((i) => !held.has(i));
            const results = await Promise.allSettled(fresh.map(claim));
            const refused: number[] = [];
            results.forEach((r, n) => {
              const i = fresh[n] as number;
              if (r.status === 'fulfilled') held.add(i);
              else {
                assert.equal(errorTypeOf(r.reason), 'QuotaExceeded', String(r.reason));
                refused.push(i);
              }
            });
            // Usage only grew during the burst: a refused claim would not fit even now.
            for (const i of refused) assert.ok(!fits(i), `consumer ${i} was refused but fits`);
          }

          const usage = await nova.getQuotaUsage(project);
          const expected = used();
          for (const r of RESOURCES) {
            assert.equal(usage[r].inUse, expected[r], `${r} in use`);
            assert.ok(usage[r].inUse <= LIMITS[r], `${r} over its limit`);
          }
          const claims = await nova.listQuotaClaims(project);
          assert.deepEqual(claims.map((c) => c.consumerUuid).sort(), [...held].map((i) => uuids[i]).sort());
        }
      }),
      { numRuns: 25 },
    );
  });
});
