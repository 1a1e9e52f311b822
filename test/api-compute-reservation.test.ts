/**
 * POST /servers' reservation id (servers.py create): one per request, shared by the servers of a
 * multi-create, shown as OS-EXT-SRV-ATTR:reservation_id to an admin and a filter of the server list;
 * `return_reservation_id` answers it alone. The Temporal client here only records the builds started.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@temporalio/client';
import { openComputeTestEnv, type ComputeTestEnv } from './helpers/compute-calls';

type Json = Record<string, unknown>;
let t: ComputeTestEnv;
const started: string[] = [];
const temporal = {
  workflow: {
    start: async (_type: string, options: { workflowId: string }) => {
      started.push(options.workflowId);
      return { workflowId: options.workflowId };
    },
  },
} as unknown as Client;

before(async () => {
  t = await openComputeTestEnv('api-reservation', temporal);
});

after(async () => {
  await t?.close();
});

const create = (server: Json) =>
  t.call('POST', '/servers', {
    as: 'member',
    version: '2.37',
    body: { server: { name: 'vm', imageRef: t.boot.imageId, flavorRef: '1', networks: 'none', ...server } },
  });

describe('reservation ids', () => {
  test('return_reservation_id: 202 with the reservation id only; both servers carry it and are found by it', async () => {
    const res = await create({ min_count: 2, return_reservation_id: true });
    assert.equal(res.statusCode, 202, res.body);
    const body = res.json() as Json;
    assert.deepEqual(Object.keys(body), ['reservation_id']);
    assert.match(String(body.reservation_id), /^r-[a-z0-9]{8}$/);
    assert.equal(res.headers.location, undefined);
    assert.equal(started.length, 2);

    const rows = await t.env.cloud.nova.store.db
      .selectFrom('instances')
      .select(['uuid', 'reservation_id'])
      .where('reservation_id', '=', String(body.reservation_id))
      .execute();
    assert.equal(rows.length, 2);
    const listed = await t.call('GET', `/servers?reservation_id=${String(body.reservation_id)}`, {
      as: 'reader',
    });
    assert.deepEqual(
      (listed.json() as { servers: Json[] }).servers.map((s) => s.id).sort(),
      rows.map((r) => r.uuid).sort(),
    );
    const shown = await t.call('GET', `/servers/${rows[0]!.uuid}`, { as: 'admin', version: '2.3' });
    assert.equal(
      (shown.json() as { server: Json }).server['OS-EXT-SRV-ATTR:reservation_id'],
      body.reservation_id,
    );
  });

  test('without it: the server body as before; another request has another reservation id', async () => {
    const res = await create({});
    assert.equal(res.statusCode, 202, res.body);
    const server = (res.json() as { server: Json }).server;
    assert.equal('reservation_id' in (res.json() as Json), false);
    const other = (await create({ return_reservation_id: 'False' })).json() as { server: Json };
    const [a, b] = await Promise.all(
      [server.id, other.server.id].map((id) => t.env.cloud.nova.getInstance(String(id))),
    );
    assert.notEqual(a!.reservationId, b!.reservationId);
    const none = await t.call('GET', '/servers?reservation_id=r-00000000', { as: 'member' });
    assert.deepEqual((none.json() as { servers: Json[] }).servers, []);
  });
});
