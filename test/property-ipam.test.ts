/**
 * IPAM as a property (fast-check): random sequences of port creations (first free address or a chosen
 * one), retries, deletions and concurrent bursts on a /29 subnet (5 pool addresses) against a model. After
 * every step: no address is allocated twice, every address is in the pool, the allocations are exactly the
 * live ports', and a creation fails (IpAddressGenerationFailure) exactly when the pool is full.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Neutron } from '../cloud/neutron';
import { errorTypeOf } from './helpers/security';
import { testDbConfig, type TestDb } from './helpers/cloud-db';

const CIDR = '10.0.0.0/29';
/** Network .0, gateway .1, broadcast .7: the pool is .2 to .6. */
const POOL = ['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6'];
const KEYS = 8;

type Op =
  | { kind: 'create'; key: number }
  | { kind: 'createAt'; key: number; last: number }
  | { kind: 'delete'; key: number }
  | { kind: 'burst'; keys: number[] };

const key = fc.integer({ min: 0, max: KEYS - 1 });
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: key.map((k): Op => ({ kind: 'create', key: k })) },
  {
    weight: 1,
    arbitrary: fc
      .record({ key, last: fc.integer({ min: 0, max: 7 }) })
      .map((r): Op => ({ kind: 'createAt', ...r })),
  },
  { weight: 3, arbitrary: key.map((k): Op => ({ kind: 'delete', key: k })) },
  {
    weight: 1,
    arbitrary: fc
      .uniqueArray(key, { minLength: 2, maxLength: 6 })
      .map((keys): Op => ({ kind: 'burst', keys })),
  },
);

describe('IPAM (property)', () => {
  let testDb: TestDb;
  let neutron: Neutron;

  before(async () => {
    testDb = testDbConfig('prop-ipam');
    neutron = await Neutron.open({ db: testDb.config });
  });
  after(async () => {
    await neutron?.close();
    await testDb?.cleanup();
  });

  test('no duplicate IPs, all in the pool, failure exactly when the pool is full', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 24 }), async (ops) => {
        run++;
        const network = await neutron.createNetwork({ name: `ipam-${run}`, projectId: 'p-ipam' });
        await neutron.createSubnet({ networkId: network.id, cidr: CIDR });
        /** key → the live port's id and address. */
        const live = new Map<number, { id: string; ip: string }>();
        const requestKey = (k: number) => `${network.id}:${k}`;
        const lowestFree = () => POOL.find((ip) => ![...live.values()].some((p) => p.ip === ip));
        const create = (k: number, ipAddress?: string) =>
          neutron.createPort({
            requestKey: requestKey(k),
            networkId: network.id,
            projectId: 'p-ipam',
            ...(ipAddress ? { fixedIps: [{ ipAddress }] } : {}),
          });

        for (const step of ops) {
          if (step.kind === 'create') {
            const known = live.get(step.key);
            const expected = known?.ip ?? lowestFree();
            const result = await create(step.key).then(
              (port) => ({ port }),
              (err: unknown) => ({ err }),
            );
            if ('err' in result) {
              assert.equal(errorTypeOf(result.err), 'IpAddressGenerationFailure');
              assert.equal(expected, undefined, 'refused although the pool had room');
            } else {
              assert.equal(
                result.port.fixedIps[0]?.ipAddress,
                expected,
                'not the retry’s or the lowest free IP',
              );
              if (known) assert.equal(result.port.id, known.id, 'a retry made a second port');
              live.set(step.key, { id: result.port.id, ip: expected ?? '' });
            }
          } else if (step.kind === 'createAt') {
            const ip = `10.0.0.${step.last}`;
            const known = live.get(step.key);
            const result = await create(step.key, ip).then(
              (port) => ({ port }),
              (err: unknown) => ({ err }),
            );
            if (known) {
              // A retry returns the first result, whatever it asks for now.
              assert.ok('port' in result && result.port.id === known.id);
            } else if (!POOL.includes(ip)) {
              assert.ok(
                'err' in result && errorTypeOf(result.err) === 'BadRequest',
                `${ip} outside the pool`,
              );
            } else if ([...live.values()].some((p) => p.ip === ip)) {
              assert.ok('err' in result && errorTypeOf(result.err) === 'Conflict', `${ip} given twice`);
            } else {
              assert.ok('port' in result, `free ${ip} refused`);
              assert.equal(result.port.fixedIps[0]?.ipAddress, ip);
              live.set(step.key, { id: result.port.id, ip });
            }
          } else if (step.kind === 'delete') {
            const known = live.get(step.key);
            if (!known) continue;
            assert.equal(await neutron.deletePort(known.id), true);
            live.delete(step.key);
          } else {
            const fresh = step.keys.filter((k) => !live.has(k));
            const room = POOL.length - live.size;
            const results = await Promise.allSettled(fresh.map((k) => create(k)));
            let made = 0;
            results.forEach((r, i) => {
              if (r.status === 'fulfilled') {
                made++;
                live.set(fresh[i] as number, { id: r.value.id, ip: r.value.fixedIps[0]?.ipAddress ?? '' });
              } else {
                assert.equal(errorTypeOf(r.reason), 'IpAddressGenerationFailure', String(r.reason));
              }
            });
            assert.equal(
              made,
              Math.min(room, fresh.length),
              'a concurrent burst did not fill exactly the room',
            );
          }

          const allocations = await neutron.listIpAllocations(network.id);
          const ips = allocations.map((a) => a.ipAddress);
          assert.equal(new Set(ips).size, ips.length, `an IP is allocated twice: ${ips.join(', ')}`);
          assert.ok(
            ips.every((ip) => POOL.includes(ip)),
            `an IP outside the pool: ${ips.join(', ')}`,
          );
          assert.deepEqual(ips.sort(), [...live.values()].map((p) => p.ip).sort());
          const ports = await neutron.listPorts({ networkId: network.id });
          assert.equal(ports.length, live.size);
          assert.ok(ports.every((p) => p.fixedIps.length === 1));
        }
      }),
      { numRuns: 25 },
    );
  });
});
