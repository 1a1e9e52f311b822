/**
 * The compute API's read path: `GET /servers/detail` and `GET /servers` at a given number of servers, each
 * with a port and a fixed IP (so the addresses are read as well), through Fastify's inject over a
 * throw-away cloud — the HTTP stack, the token check, the microversion negotiation and the reads of the
 * Nova, Neutron and Cinder databases, without a socket. Records are written as nova-conductor writes them.
 *
 * Then the write path on a Temporal dev server. First the API alone (no worker polls: nothing but the API's
 * own work and the start RPC; the workflows are terminated afterwards): `POST /servers` one at a time and
 * `concurrency` at once. Then with every worker role in this process: `POST /servers`'s answer time (202,
 * once the instance row exists — not the boot) against the client's own start of the same workflow, and
 * boots per second with `concurrency` boots started at once through the API and through the client.
 */
import { randomUUID } from 'node:crypto';
import { buildApiApp, DEFAULT_REGION } from '../../api';
import { bootstrapCloud } from '../../cloud/bootstrap';
import { openCloud } from '../../cloud/index';
import { createLogger } from '../../lib/logger';
import type { Client } from '@temporalio/client';
import { CONTROLLER_QUEUE, bootWorkflowId } from '../../workflows/names';
import { benchDb } from './bench-db';
import { openBootCloud, openTemporal, startWorkers } from './boot-env';
import { rounded, summarize, timed, type Summary } from './stats';

export interface ApiBenchResult {
  servers: number;
  samples: number;
  detail: Summary;
  index: Summary;
  /** Size of one detail answer. */
  detailBytes: number;
  /** POST /servers answer time (sequential boots, each awaited before the next). */
  post: Summary;
  /** The client's workflow start of the same request, for comparison. */
  clientStart: Summary;
  concurrency: number;
  /** POST /servers answer time with `concurrency` sent at once (absent in older results). */
  postConcurrent?: Summary;
  /**
   * POST /servers with no worker running in the process: one at a time, then `concurrency` at once; and the
   * client's own start RPC of the same boot, `concurrency` at once (absent in older results): the floor under
   * the API's answer, since the API answers once its start RPC has.
   */
  alone?: { post: Summary; postConcurrent: Summary; clientStartConcurrent?: Summary };
  bootsPerSecondApi: number;
  bootsPerSecondClient: number;
}

export async function runApiBench(options: {
  servers: number;
  samples: number;
  boots: number;
  concurrency: number;
  eagerStart: boolean;
  log: (line: string) => void;
}): Promise<ApiBenchResult> {
  const read = await readPath(options);
  const write = await writePath(options);
  return { ...read, ...write };
}

async function readPath(options: {
  servers: number;
  samples: number;
  log: (line: string) => void;
}): Promise<Pick<ApiBenchResult, 'servers' | 'samples' | 'detail' | 'index' | 'detailBytes'>> {
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

async function writePath(options: {
  boots: number;
  concurrency: number;
  eagerStart: boolean;
  log: (line: string) => void;
}): Promise<
  Pick<
    ApiBenchResult,
    | 'post'
    | 'clientStart'
    | 'concurrency'
    | 'postConcurrent'
    | 'alone'
    | 'bootsPerSecondApi'
    | 'bootsPerSecondClient'
  >
> {
  const temporal = await openTemporal(options.log, { eagerStart: options.eagerStart });
  const bc = await openBootCloud('api-write');
  let workers: Awaited<ReturnType<typeof startWorkers>> | undefined;
  try {
    const app = await buildApiApp(
      {
        cloud: bc.cloud,
        temporal: temporal.client,
        publicUrl: 'http://127.0.0.1:8770',
        region: DEFAULT_REGION,
        log: createLogger({ name: 'bench-api', env: { ...process.env, LOG_LEVEL: 'error' } }),
        eagerStart: temporal.eagerStart,
      },
      { services: ['compute'] },
    );
    await app.ready();
    const viaApi = async (name: string): Promise<{ ms: number; requestId: string }> => {
      const { ms, value } = await timed(() =>
        app.inject({
          method: 'POST',
          url: '/compute/v2.1/servers',
          headers: { 'x-auth-token': bc.token, 'content-type': 'application/json' },
          payload: JSON.stringify({
            server: { name, imageRef: bc.imageId, flavorRef: '1', networks: [{ uuid: bc.networkId }] },
          }),
        }),
      );
      if (value.statusCode !== 202) throw new Error(`POST /servers: ${value.statusCode} ${value.body}`);
      return { ms, requestId: String(value.headers['x-openstack-request-id']) };
    };
    const viaClient = async (name: string): Promise<{ ms: number; requestId: string }> => {
      const requestId = `req-${randomUUID()}`;
      const request = await bc.request(requestId, { name, flavor: '1', image: bc.imageId });
      const { ms } = await timed(() =>
        temporal.client.workflow.start('createInstance', {
          taskQueue: CONTROLLER_QUEUE,
          workflowId: bootWorkflowId(requestId),
          args: [request],
          ...(temporal.eagerStart ? { requestEagerStart: true } : {}),
        }),
      );
      return { ms, requestId };
    };
    const alone = await apiAlone(options, viaApi, viaClient, (requestId) =>
      temporal.client.workflow.getHandle(bootWorkflowId(requestId)).terminate('bench: API alone'),
    );
    workers = await startWorkers(temporal, bc);
    const finish = (requestId: string) =>
      temporal.client.workflow.getHandle(bootWorkflowId(requestId)).result();
    const post: number[] = [];
    const clientStart: number[] = [];
    for (let i = 0; i < options.boots; i++) {
      const a = await viaApi(`api-${i}`);
      await finish(a.requestId);
      post.push(a.ms);
      const c = await viaClient(`client-${i}`);
      await finish(c.requestId);
      clientStart.push(c.ms);
    }
    const rate = async (
      start: (name: string) => Promise<{ ms: number; requestId: string }>,
      prefix: string,
    ) => {
      let answers: number[] = [];
      const { ms } = await timed(async () => {
        const started = await Promise.all(
          Array.from({ length: options.concurrency }, (_, i) => start(`${prefix}-${i}`)),
        );
        answers = started.map((s) => s.ms);
        await Promise.all(started.map((s) => finish(s.requestId)));
      });
      return { perSecond: Math.round((options.concurrency / (ms / 1000)) * 100) / 100, answers };
    };
    const api = await rate(viaApi, 'api-c');
    const bootsPerSecondApi = api.perSecond;
    const bootsPerSecondClient = (await rate(viaClient, 'client-c')).perSecond;
    const postConcurrent = rounded(summarize(api.answers));
    await app.close();
    options.log(
      `api: POST /servers alone p50 ${alone.post.p50} ms (${alone.postConcurrent.p50} ms at ${options.concurrency} at once)`,
    );
    options.log(
      `api: POST /servers p50 ${rounded(summarize(post)).p50} ms (${postConcurrent.p50} ms at ${options.concurrency} at once); ${bootsPerSecondApi} boots/s via the API, ${bootsPerSecondClient} via the client`,
    );
    return {
      post: rounded(summarize(post)),
      clientStart: rounded(summarize(clientStart)),
      concurrency: options.concurrency,
      postConcurrent,
      alone,
      bootsPerSecondApi,
      bootsPerSecondClient,
    };
  } finally {
    await workers?.stop();
    await bc.close();
    await temporal.close();
  }
}

/**
 * POST /servers with no worker in the process: what the API itself costs (validation, the token check, the
 * grant, the quota claim and the row, the start RPC), one at a time and `concurrency` at once; then the
 * client's bare start RPC `concurrency` at once, which no POST can answer faster than. Nothing builds: each
 * workflow is terminated once measured.
 */
async function apiAlone(
  options: { boots: number; concurrency: number },
  post: (name: string) => Promise<{ ms: number; requestId: string }>,
  clientStart: (name: string) => Promise<{ ms: number; requestId: string }>,
  terminate: (requestId: string) => Promise<unknown>,
): Promise<NonNullable<ApiBenchResult['alone']>> {
  const one: number[] = [];
  const started: string[] = [];
  // A few unmeasured first: the first requests compile schemas and queries and open connections.
  for (let i = 0; i < 3; i++) started.push((await post(`alone-warmup-${i}`)).requestId);
  for (let i = 0; i < options.boots; i++) {
    const a = await post(`alone-${i}`);
    one.push(a.ms);
    started.push(a.requestId);
  }
  const atOnce = await Promise.all(
    Array.from({ length: options.concurrency }, (_, i) => post(`alone-c-${i}`)),
  );
  started.push(...atOnce.map((a) => a.requestId));
  const bare = await Promise.all(
    Array.from({ length: options.concurrency }, (_, i) => clientStart(`alone-client-c-${i}`)),
  );
  started.push(...bare.map((a) => a.requestId));
  for (const requestId of started) await terminate(requestId);
  return {
    post: rounded(summarize(one)),
    postConcurrent: rounded(summarize(atOnce.map((a) => a.ms))),
    clientStartConcurrent: rounded(summarize(bare.map((a) => a.ms))),
  };
}
