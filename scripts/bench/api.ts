/**
 * The compute API's read path: `GET /servers/detail` and `GET /servers` at a given number of servers, each
 * with a port and a fixed IP (so the addresses are read as well), through Fastify's inject over a
 * throw-away cloud — the HTTP stack, the token check, the microversion negotiation and the reads of the
 * Nova, Neutron and Cinder databases, without a socket. Records are written as nova-conductor writes them;
 * no workflow runs here (POST /servers' answer time and boots/s through the API are not measured yet).
 */
import { randomUUID } from 'node:crypto';
import { buildApiApp, DEFAULT_REGION } from '../../api';
import { bootstrapCloud } from '../../cloud/bootstrap';
import { openCloud } from '../../cloud/index';
import { createLogger } from '../../lib/logger';
import type { Client } from '@temporalio/client';
import { benchDb } from './bench-db';
import { rounded, summarize, timed, type Summary } from './stats';

export interface ApiBenchResult {
  servers: number;
  samples: number;
  detail: Summary;
  index: Summary;
  /** Size of one detail answer. */
  detailBytes: number;
}

export async function runApiBench(options: {
  servers: number;
  samples: number;
  log: (line: string) => void;
}): Promise<ApiBenchResult> {
  const db = benchDb('api');
  const cloud = await openCloud({ db: db.config });
  try {
    const boot = await bootstrapCloud(cloud);
    const demo = boot.demo;
    const auth = await cloud.keystone.authenticate({
      username: demo.username,
      password: demo.password,
      projectName: demo.projectName,
    });
    // A /20 of its own: enough fixed IPs for every server.
    const network = await cloud.neutron.createNetwork({ name: 'bench', projectId: demo.projectId });
    await cloud.neutron.createSubnet({ networkId: network.id, cidr: '10.16.0.0/20' });
    options.log(`api: writing ${options.servers} servers with a port each`);
    for (let i = 0; i < options.servers; i++) {
      const uuid = randomUUID();
      await cloud.nova.createInstance({
        uuid,
        requestId: `req-${uuid}`,
        name: `bench-${i}`,
        projectId: demo.projectId,
        userId: auth.context.userId,
        flavor: '1',
        imageRef: boot.imageId,
        networks: [network.id],
      });
      await cloud.nova.updateInstance(uuid, { vmState: 'active', taskState: null, powerState: 1 });
      await cloud.neutron.createPort({
        requestKey: `bench-${uuid}`,
        networkId: network.id,
        projectId: demo.projectId,
        deviceId: uuid,
        deviceOwner: 'compute:nova',
      });
    }
    const app = await buildApiApp(
      {
        cloud,
        // Reads never start a workflow.
        temporal: {} as Client,
        publicUrl: 'http://127.0.0.1:8770',
        region: DEFAULT_REGION,
        log: createLogger({ name: 'bench-api', env: { ...process.env, LOG_LEVEL: 'error' } }),
      },
      { services: ['compute'] },
    );
    await app.ready();
    const headers = { 'x-auth-token': auth.token, 'openstack-api-version': 'compute 2.79' };
    const get = async (url: string) => {
      const res = await app.inject({ method: 'GET', url, headers });
      if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode} ${res.body.slice(0, 200)}`);
      return res;
    };
    const first = await get('/compute/v2.1/servers/detail');
    const count = (first.json() as { servers: unknown[] }).servers.length;
    if (count !== Math.min(options.servers, 1000))
      throw new Error(`detail listed ${count} servers, expected ${options.servers}`);
    const detail: number[] = [];
    const index: number[] = [];
    for (let i = 0; i < options.samples; i++) {
      detail.push((await timed(() => get('/compute/v2.1/servers/detail'))).ms);
      index.push((await timed(() => get('/compute/v2.1/servers'))).ms);
    }
    await app.close();
    const result = {
      servers: options.servers,
      samples: options.samples,
      detail: rounded(summarize(detail)),
      index: rounded(summarize(index)),
      detailBytes: first.body.length,
    };
    options.log(`api: GET /servers/detail at ${options.servers} servers, p50 ${result.detail.p50} ms`);
    return result;
  } finally {
    await cloud.close();
    await db.cleanup();
  }
}
