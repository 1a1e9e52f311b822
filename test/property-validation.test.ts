/**
 * Request validation as a property (fast-check): random junk — any JavaScript value, null-prototype
 * objects, Maps, Sets, dates, typed and sparse arrays, bigints, boxed values, unicode — given to the public
 * operations of every service, and valid boot requests broken one field at a time given to nova-api's
 * check, never end in anything but a typed BadRequest (no TypeError, no crash, no other type), and the
 * whole run leaves every database row, every file and the leak audit as it found them.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createComputeApiActivities, type BootPlanRequest } from '../activities/compute-api';
import { isCloudError } from '../cloud/errors';
import {
  assertUnchanged,
  errorTypeOf,
  openSecurityCloud,
  tenant,
  type SecurityCloud,
  type Tenant,
} from './helpers/security';

const junk = fc.anything({
  withBigInt: true,
  withBoxedValues: true,
  withDate: true,
  withMap: true,
  withSet: true,
  withNullPrototype: true,
  withObjectString: true,
  withSparseArray: true,
  withTypedArray: true,
  withUnicodeString: true,
});

/** Only a BadRequest (a CloudError, or an activity's failure of that type) may come out. */
async function onlyBadRequest(what: string, work: () => Promise<unknown>): Promise<void> {
  let caught: unknown;
  try {
    await work();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught !== undefined, `${what} accepted junk`);
  assert.equal(
    errorTypeOf(caught),
    'BadRequest',
    `${what}: ${caught instanceof Error ? `${caught.name}: ${caught.message}` : String(caught)}`,
  );
}

describe('request validation (property)', () => {
  let sc: SecurityCloud;
  let demo: Tenant;
  let computeApi: ReturnType<typeof createComputeApiActivities>;
  /** nova-api's check as a workflow's activity runs it: with the grant of that (mock) workflow. */
  let validateBoot: (request: BootPlanRequest) => Promise<unknown>;

  before(async () => {
    sc = await openSecurityCloud('prop-validation');
    demo = await tenant(sc.cloud, { username: 'vera', projectName: 'demo', role: 'member' });
    computeApi = createComputeApiActivities(sc.cloud);
    const { grant } = await sc.cloud.keystone.issueGrant(demo.token, {
      workflowType: 'test',
      workflowId: 'test',
    });
    validateBoot = (request) =>
      new MockActivityEnvironment().run(() => computeApi.validateBootRequest({ token: grant, request }));
  });
  after(async () => {
    await sc?.close();
  });

  test('junk into every service’s public operations: BadRequest, nothing written', async () => {
    const { cloud } = sc;
    const ctx = demo.ctx;
    /** Operations with at least two required fields, so that junk cannot be valid by chance. */
    const operations: Record<string, (j: unknown) => Promise<unknown>> = {
      'nova-api validateBootRequest': (j) => validateBoot(j as BootPlanRequest),
      'keystone authenticate': (j) => cloud.keystone.authenticate(j as never),
      'keystone assignRole': (j) => cloud.keystone.assignRole(j as never),
      'nova createInstance': (j) => cloud.nova.createInstance(j as never),
      'nova claimQuota': (j) => cloud.nova.claimQuota(j as never, j as never, j as never),
      'placement claim': (j) => cloud.placement.claim(j as never),
      'placement ensureResourceProvider': (j) => cloud.placement.ensureResourceProvider(j as never),
      'scheduler selectDestinations': (j) => cloud.scheduler.selectDestinations(j as never),
      'glance createImage': (j) => cloud.glance.createImage(j as never, ctx),
      'neutron createNetwork': (j) => cloud.neutron.createNetwork(j as never),
      'neutron createSubnet': (j) => cloud.neutron.createSubnet(j as never),
      'neutron createPort': (j) => cloud.neutron.createPort(j as never),
      'cinder createVolume': (j) => cloud.cinder.createVolume(j as never),
      'cinder createAttachment': (j) => cloud.cinder.createAttachment(j as never),
    };
    const before = await sc.state();
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...Object.keys(operations)), junk, async (name, value) => {
        await onlyBadRequest(name, () => (operations[name] as (j: unknown) => Promise<unknown>)(value));
      }),
      { numRuns: 600 },
    );
    assertUnchanged(before, await sc.state(), 'junk requests');
  });

  test('valid boot requests broken in one place: BadRequest naming the field, nothing written', async () => {
    const valid = (): Record<string, unknown> => ({ name: 'ok', flavor: 'm1.tiny', image: sc.boot.imageId });
    // `undefined` is how an optional field is left out, which is valid.
    const notString = junk.filter((v) => typeof v !== 'string' && v !== undefined);
    const breakage = fc.oneof(
      fc
        .record({ field: fc.constantFrom('name', 'flavor', 'image', 'availabilityZone'), value: notString })
        .map(({ field, value }) => ({ expect: field, request: { ...valid(), [field]: value } })),
      fc.constantFrom('name', 'flavor', 'image').map((field) => {
        const request = valid();
        delete request[field];
        return { expect: field, request };
      }),
      fc
        .string({ minLength: 1, maxLength: 20 })
        .filter((k) => !['name', 'flavor', 'image', 'bootVolume', 'availabilityZone'].includes(k))
        .map((k) => ({ expect: 'Unrecognized key', request: { ...valid(), [k]: 'x' } })),
      fc
        .tuple(fc.string({ maxLength: 10 }), fc.integer({ min: 0, max: 31 }), fc.string({ maxLength: 10 }))
        .map(([a, code, b]) => ({
          expect: 'name',
          request: { ...valid(), name: `${a}${String.fromCharCode(code)}${b}` },
        })),
      fc
        .oneof(
          fc.integer({ max: 0 }),
          fc.integer({ min: 10_001 }),
          fc.double({ noInteger: true }),
          notString.filter((v) => typeof v !== 'number'),
        )
        .map((sizeGb) => ({ expect: 'sizeGb', request: { ...valid(), bootVolume: { sizeGb } } })),
    );
    const before = await sc.state();
    await fc.assert(
      fc.asyncProperty(breakage, async ({ expect, request }) => {
        let caught: unknown;
        try {
          await validateBoot(request as unknown as BootPlanRequest);
        } catch (err) {
          caught = err;
        }
        assert.equal(errorTypeOf(caught), 'BadRequest', `${inspect(request)} → ${String(caught)}`);
        assert.ok(!isCloudError(caught) || caught.type === 'BadRequest');
        const message = (caught as Error).message;
        assert.ok(message.includes(expect), `${message} does not name ${expect}`);
      }),
      { numRuns: 300 },
    );
    assertUnchanged(before, await sc.state(), 'broken boot requests');
  });
});
