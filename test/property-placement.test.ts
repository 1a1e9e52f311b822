/**
 * Placement as a property (fast-check): random sequences of claims, retried claims, releases and
 * concurrent bursts of claims on one resource provider, against a model. After every step the provider's
 * usage is exactly the sum of the live allocations, never above capacity ((total − reserved) × ratio),
 * the inventory's recorded usage agrees with the allocations (auditUsage), and a claim is refused
 * (AllocationCapacityExceeded) exactly when it would not fit; under concurrency, every refused claim would
 * indeed not fit.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { Placement } from '../cloud/placement';
import { errorTypeOf } from './helpers/security';
import { testDbConfig, type TestDb } from './helpers/cloud-db';

/** VCPU 4 at ratio 1, MEMORY_MB 4096 with 512 reserved, DISK_GB 10. */
const CAPACITY = { VCPU: 4, MEMORY_MB: 3584, DISK_GB: 10 } as const;
type Rc = keyof typeof CAPACITY;
const CLASSES = Object.keys(CAPACITY) as Rc[];
type Resources = Record<Rc, number>;
const CONSUMERS = 8;

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
const flavors = fc.array(
  fc.record(
    {
      VCPU: fc.integer({ min: 1, max: 2 }),
      MEMORY_MB: fc.constantFrom(512, 1024, 1536, 2048),
      DISK_GB: fc.integer({ min: 1, max: 4 }),
    },
    { noNullPrototype: true },
  ),
  { minLength: CONSUMERS, maxLength: CONSUMERS },
);

describe('placement (property)', () => {
  let testDb: TestDb;
  let placement: Placement;

  before(async () => {
    testDb = testDbConfig('prop-placement');
    placement = await Placement.open({ db: testDb.config });
  });
  after(async () => {
    await placement?.close();
    await testDb?.cleanup();
  });

  test('a provider is never over capacity, and a claim fails exactly when it would not fit', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(flavors, fc.array(op, { maxLength: 24 }), async (wants: Resources[], ops) => {
        const provider = randomUUID();
        await placement.ensureResourceProvider({
          uuid: provider,
          name: `node-${++run}`,
          inventories: {
            VCPU: { total: 4, allocationRatio: 1 },
            MEMORY_MB: { total: 4096, reserved: 512 },
            DISK_GB: { total: 10 },
          },
        });
        const uuids = wants.map(() => randomUUID());
        const held = new Set<number>();
        const used = (): Resources => {
          const sum: Resources = { VCPU: 0, MEMORY_MB: 0, DISK_GB: 0 };
          for (const i of held) for (const rc of CLASSES) sum[rc] += wants[i]![rc];
          return sum;
        };
        const fits = (i: number) => CLASSES.every((rc) => used()[rc] + wants[i]![rc] <= CAPACITY[rc]);
        const claim = (i: number) =>
          placement.claim({
            consumerUuid: uuids[i]!,
            providerUuid: provider,
            resources: wants[i]!,
            projectId: 'p-placement',
            userId: 'u-placement',
          });

        for (const step of ops) {
          if (step.kind === 'claim') {
            const expectOk = held.has(step.who) || fits(step.who);
            const outcome = await claim(step.who).then(
              () => 'ok',
              (err: unknown) => errorTypeOf(err) ?? String(err),
            );
            assert.equal(outcome, expectOk ? 'ok' : 'AllocationCapacityExceeded', `claim of ${step.who}`);
            if (expectOk) held.add(step.who);
          } else if (step.kind === 'release') {
            const { released } = await placement.releaseAllocations(uuids[step.who]!);
            assert.equal(released, held.has(step.who));
            held.delete(step.who);
          } else {
            const fresh = step.who.filter((i) => !held.has(i));
            const results = await Promise.allSettled(fresh.map(claim));
            const refused: number[] = [];
            results.forEach((r, n) => {
              const i = fresh[n] as number;
              if (r.status === 'fulfilled') held.add(i);
              else {
                assert.equal(errorTypeOf(r.reason), 'AllocationCapacityExceeded', String(r.reason));
                refused.push(i);
              }
            });
            for (const i of refused) assert.ok(!fits(i), `consumer ${i} was refused but fits`);
          }

          const usages = await placement.usages(provider);
          const expected = used();
          for (const rc of CLASSES) {
            assert.equal(usages[rc], expected[rc], `${rc} used`);
            assert.ok(usages[rc] <= CAPACITY[rc], `${rc} over capacity`);
          }
          const inventories = (await placement.getResourceProvider(provider)).inventories;
          for (const rc of CLASSES) assert.equal(inventories[rc]?.used, expected[rc], `${rc} recorded usage`);
          const allocations = await placement.listAllocations({ providerUuid: provider });
          assert.deepEqual(
            allocations.map((a) => a.consumerUuid).sort(),
            [...held].map((i) => uuids[i]).sort(),
          );
        }
        assert.deepEqual(await placement.auditUsage(), []);
      }),
      { numRuns: 25 },
    );
  });
});
