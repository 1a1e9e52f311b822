/**
 * What POST /servers does for a burst of creates. The admission limit (api/compute/create-admission.ts): at
 * most `concurrentCreates` creates do their own work at once, the others wait in arrival order, and a
 * create that fails — in its own work or at the start RPC — gives its slot to the next. The kept lookups
 * (create-lookups.ts): the flavors, the image and a network are read once for a burst, and a write through
 * this process, or by another one after LOOKUP_TTL_MS, is seen by the next create. Temporal is a stub
 * that records the starts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import { buildApiApp } from '../api';
import { AdmissionGate } from '../api/compute/create-admission';
import { LOOKUP_TTL_MS } from '../api/compute/create-lookups';
import { openCloud } from '../cloud';
import { bootstrapCloud, type BootstrapResult } from '../cloud/bootstrap';
import { DEFAULT_HOSTS } from '../cloud/hosts';
import type { BootRequest } from '../workflows/types';
import { openApiTestEnv, type ApiTestEnv } from './helpers/api';

let env: ApiTestEnv;
let boot: BootstrapResult;
let token = '';

before(async () => {
  env = await openApiTestEnv({ services: ['compute'], label: 'api-admission' });
  boot = await bootstrapCloud(env.cloud, { hosts: DEFAULT_HOSTS });
  await env.cloud.nova.setQuotaLimits(boot.demo.projectId, { instances: -1, cores: -1, ram: -1 });
  const demo = boot.demo;
  token = (
    await env.cloud.keystone.authenticate({
      username: demo.username,
      password: demo.password,
      projectName: demo.projectName,
    })
  ).token;
});
after(async () => {
  await env?.close();
});

/** Lets the event loop turn `turns` times (every pending step of an unblocked request runs meanwhile). */
async function turns(count: number): Promise<void> {
  for (let i = 0; i < count; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** The compute API over the test cloud with this limit; its start RPCs are recorded (or fail, named). */
async function apiWithLimit(
  concurrentCreates: number,
  started: string[],
  failStartOf?: string,
): Promise<FastifyInstance> {
  const temporal = {
    workflow: {
      start: async (_type: string, options: { args: [BootRequest] }) => {
        const name = options.args[0].name;
        if (name === failStartOf) throw new Error('frontend unavailable');
        started.push(name);
      },
    },
  } as unknown as Client;
  const app = await buildApiApp({ ...env.deps, temporal, concurrentCreates }, { services: ['compute'] });
  await app.ready();
  return app;
}

function create(
  app: FastifyInstance,
  name: string,
  refs: { imageRef?: string; flavorRef?: string; network?: string } = {},
) {
  const { imageRef = boot.imageId, flavorRef = '1', network = boot.privateNetworkId } = refs;
  return app.inject({
    method: 'POST',
    url: '/compute/v2.1/servers',
    headers: { 'x-auth-token': token, 'content-type': 'application/json' },
    payload: JSON.stringify({ server: { name, imageRef, flavorRef, networks: [{ uuid: network }] } }),
  });
}

/** Holds the first create's row write (part of its own work) until released; counts the writes. */
function holdFirstRowWrite(): { writes: () => number; release: () => void; restore: () => void } {
  const nova = env.cloud.nova;
  const original = nova.createInstance;
  let writes = 0;
  let release = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  nova.createInstance = async (...args) => {
    writes++;
    if (writes === 1) await held;
    return original.apply(nova, args);
  };
  return { writes: () => writes, release, restore: () => (nova.createInstance = original) };
}

async function namesOfRows(): Promise<string[]> {
  const rows = await env.cloud.nova.listInstances({ projectId: boot.demo.projectId });
  return rows.map((i) => i.name).sort();
}

describe('POST /servers admission limit', () => {
  test('the gate admits `limit` at once, the rest in arrival order, and a failure passes its slot on', async () => {
    const gate = new AdmissionGate(2);
    const order: string[] = [];
    const leaves = new Map<string, () => void>();
    const entering = ['a', 'b', 'c', 'd'].map((name) =>
      gate.enter().then((leave) => {
        order.push(name);
        leaves.set(name, leave);
      }),
    );
    await turns(5);
    assert.deepEqual(order, ['a', 'b']);
    leaves.get('b')!();
    leaves.get('b')!(); // a second leave gives nothing more away
    await turns(5);
    assert.deepEqual(order, ['a', 'b', 'c']);
    leaves.get('a')!();
    await Promise.all(entering);
    assert.deepEqual(order, ['a', 'b', 'c', 'd']);
    assert.throws(() => new AdmissionGate(0), /must be ≥ 1/);
  });

  test('with a limit of 1 the second create waits for the first one’s own work; both answer in order', async () => {
    for (const limit of [2, 1]) {
      const started: string[] = [];
      const app = await apiWithLimit(limit, started);
      const hold = holdFirstRowWrite();
      try {
        const first = create(app, `first-${limit}`);
        while (hold.writes() === 0) await turns(1);
        const second = create(app, `second-${limit}`);
        await turns(200);
        // Limit 2: the second is admitted beside the held first and writes its row; limit 1: it waits.
        assert.equal(hold.writes(), limit === 2 ? 2 : 1, `limit ${limit}`);
        if (limit === 1) assert.ok(!(await namesOfRows()).includes('second-1'));
        hold.release();
        const answers = await Promise.all([first, second]);
        assert.deepEqual(
          answers.map((r) => r.statusCode),
          [202, 202],
          answers.map((r) => r.body).join(' | '),
        );
        if (limit === 1) assert.deepEqual(started, ['first-1', 'second-1']);
        assert.deepEqual(started.sort(), [`first-${limit}`, `second-${limit}`].sort());
        assert.equal(hold.writes(), 2);
      } finally {
        hold.release();
        hold.restore();
        await app.close();
      }
    }
    const names = await namesOfRows();
    for (const name of ['first-1', 'first-2', 'second-1', 'second-2']) assert.ok(names.includes(name), name);
  });

  test('a create refused in its own work, or whose start fails, gives its slot to the next', async () => {
    const started: string[] = [];
    const app = await apiWithLimit(1, started, 'unstarted');
    try {
      const answers = await Promise.all([
        create(app, 'bad-image', { imageRef: '8d3a3cde-0000-4000-8000-000000000000' }),
        create(app, 'unstarted'),
        create(app, 'after-failures'),
      ]);
      assert.deepEqual(
        answers.map((r) => r.statusCode),
        [400, 500, 202],
        answers.map((r) => r.body).join(' | '),
      );
      assert.deepEqual(started, ['after-failures']);
      const names = await namesOfRows();
      assert.ok(names.includes('after-failures'));
      assert.ok(!names.includes('bad-image') && !names.includes('unstarted'), names.join(','));
    } finally {
      await app.close();
    }
  });
});

describe('POST /servers kept lookups', () => {
  /** Counts the reads the lookups make of the three services while fn runs. */
  async function countingReads(fn: () => Promise<void>): Promise<Record<string, number>> {
    const { nova, glance, neutron } = env.cloud;
    const counts = { flavors: 0, image: 0, network: 0 };
    const originals = { flavors: nova.listFlavors, image: glance.getImage, network: neutron.getNetwork };
    nova.listFlavors = (...args) => (counts.flavors++, originals.flavors.apply(nova, args));
    glance.getImage = (...args) => (counts.image++, originals.image.apply(glance, args));
    neutron.getNetwork = (...args) => (counts.network++, originals.network.apply(neutron, args));
    try {
      await fn();
    } finally {
      nova.listFlavors = originals.flavors;
      glance.getImage = originals.image;
      neutron.getNetwork = originals.network;
    }
    return counts;
  }

  test('a burst reads the flavors, the image and the network once; a write here is seen by the next create', async () => {
    const started: string[] = [];
    const app = await apiWithLimit(4, started);
    try {
      const counts = await countingReads(async () => {
        const answers = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => create(app, `burst-${i}`)));
        assert.deepEqual(
          answers.map((r) => r.statusCode),
          [202, 202, 202, 202, 202, 202],
        );
      });
      assert.deepEqual(counts, { flavors: 1, image: 1, network: 1 });

      // A flavor deleted through this process: the next create no longer finds it (and writes nothing).
      const flavor = await env.cloud.nova.createFlavor({
        id: '42',
        name: 'burst.flavor',
        vcpus: 1,
        memoryMb: 256,
        rootGb: 1,
        ephemeralGb: 0,
        swapMb: 0,
      });
      const withFlavor = (name: string) => create(app, name, { flavorRef: flavor.id });
      assert.equal((await withFlavor('on-new-flavor')).statusCode, 202);
      await env.cloud.nova.deleteFlavor(flavor.id);
      const gone = await withFlavor('on-deleted-flavor');
      assert.equal(gone.statusCode, 400, gone.body);
      assert.match(gone.body, /Flavor 42 could not be found/);

      // An image deactivated, then reactivated.
      await env.cloud.glance.deactivateImage(boot.imageId);
      const inactive = await create(app, 'on-inactive-image');
      assert.equal(inactive.statusCode, 400, inactive.body);
      assert.match(inactive.body, /is not active/);
      await env.cloud.glance.reactivateImage(boot.imageId);
      assert.equal((await create(app, 'on-reactivated-image')).statusCode, 202);

      // A network deleted.
      const network = await env.cloud.neutron.createNetwork({
        name: 'burst-net',
        projectId: boot.demo.projectId,
      });
      await env.cloud.neutron.createSubnet({ networkId: network.id, cidr: '10.77.0.0/24' });
      const onNetwork = (name: string) => create(app, name, { network: network.id });
      assert.equal((await onNetwork('on-new-network')).statusCode, 202);
      await env.cloud.neutron.deleteNetwork(network.id);
      const noNetwork = await onNetwork('on-deleted-network');
      assert.equal(noNetwork.statusCode, 400, noNetwork.body);
      assert.match(noNetwork.body, /could not be found/);

      const names = await namesOfRows();
      for (const refused of ['on-deleted-flavor', 'on-inactive-image', 'on-deleted-network'])
        assert.ok(!names.includes(refused), refused);
    } finally {
      await app.close();
    }
  });

  test('a write by another process is seen once LOOKUP_TTL_MS has passed', async () => {
    const started: string[] = [];
    const app = await apiWithLimit(4, started);
    // Another process on the same databases: its writes do not move this process's generations.
    const other = await openCloud({ db: env.db });
    try {
      assert.equal((await create(app, 'before-other-write')).statusCode, 202);
      await other.glance.deactivateImage(boot.imageId);
      await new Promise((resolve) => setTimeout(resolve, LOOKUP_TTL_MS + 50));
      const inactive = await create(app, 'after-other-write');
      assert.equal(inactive.statusCode, 400, inactive.body);
      assert.match(inactive.body, /is not active/);
    } finally {
      await other.glance.reactivateImage(boot.imageId);
      await other.close();
      await app.close();
    }
  });
});
