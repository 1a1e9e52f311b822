/**
 * The OpenStack API over a throw-away cloud, without a listener (Fastify's inject) or Temporal: for tests of
 * the HTTP layer itself. Workflow-starting routes need a Temporal client; give one with `temporal`.
 */
import type { Client } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import { buildApiApp, DEFAULT_REGION, type ApiDeps } from '../../api';
import type { ServiceName } from '../../api/errors';
import { openCloud, type Cloud } from '../../cloud';
import type { Clock } from '../../cloud/clock';
import { ensureServiceCatalog } from '../../cloud/bootstrap';
import { createLogger } from '../../lib/logger';
import { testDbConfig, type TestDb } from './cloud-db';

export interface ApiTestEnv {
  app: FastifyInstance;
  cloud: Cloud;
  deps: ApiDeps;
  /** The throw-away databases' configuration (tests read services' rows beside them). */
  db: TestDb['config'];
  close(): Promise<void>;
}

export const TEST_PUBLIC_URL = 'http://127.0.0.1:8770';

export async function openApiTestEnv(
  options: { services?: ServiceName[]; temporal?: Client; label?: string; clock?: Clock } = {},
): Promise<ApiTestEnv> {
  const testDb: TestDb = testDbConfig(options.label ?? 'api');
  const cloud = await openCloud({ db: testDb.config, ...(options.clock ? { clock: options.clock } : {}) });
  // Keystone's catalog, as the bootstrap registers it: every token's catalog names these endpoints.
  await ensureServiceCatalog(cloud, TEST_PUBLIC_URL);
  const deps: ApiDeps = {
    cloud,
    // Routes that start workflows fail loudly without a client; the HTTP-layer tests never reach them.
    temporal:
      options.temporal ??
      (new Proxy(
        {},
        {
          get: () => {
            throw new Error('no Temporal client in this test');
          },
        },
      ) as Client),
    publicUrl: TEST_PUBLIC_URL,
    region: DEFAULT_REGION,
    log: createLogger({
      name: 'api-test',
      env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' },
    }),
  };
  const app = await buildApiApp(deps, options.services ? { services: options.services } : {});
  await app.ready();
  return {
    app,
    cloud,
    deps,
    db: testDb.config,
    async close() {
      await app.close();
      await cloud.close();
      await testDb.cleanup();
    },
  };
}

/** A project with one user holding `role` on it (password `<user>-pw`), and a token for them from the API. */
export async function seedUserToken(
  env: ApiTestEnv,
  user: string,
  project: string,
  role: 'admin' | 'member' | 'reader' = 'member',
): Promise<{ token: string; projectId: string; userId: string }> {
  const ks = env.cloud.keystone;
  const p = await ks.ensureProject({ name: project });
  const u = await ks.ensureUser({ name: user, password: `${user}-pw` });
  await ks.assignRole({ user, project, role });
  const res = await env.app.inject({
    method: 'POST',
    url: '/identity/v3/auth/tokens',
    headers: { 'content-type': 'application/json' },
    payload: {
      auth: {
        identity: {
          methods: ['password'],
          password: { user: { name: user, domain: { id: 'default' }, password: `${user}-pw` } },
        },
        scope: { project: { name: project, domain: { id: 'default' } } },
      },
    },
  });
  if (res.statusCode !== 201) throw new Error(`token for ${user}: ${res.statusCode} ${res.body}`);
  return { token: String(res.headers['x-subject-token']), projectId: p.id, userId: u.id };
}

type Role = 'admin' | 'member' | 'reader';
export type SeededUser = Awaited<ReturnType<typeof seedUserToken>>;

/**
 * The set-up most API test files share: a throw-away env and, in order, one seeded user and token per entry
 * (`[user, project, role]`, as seedUserToken takes them), under the entry's name.
 */
export async function openApiTestEnvWithUsers<K extends string>(
  options: Parameters<typeof openApiTestEnv>[0],
  users: Record<K, [user: string, project: string, role?: Role]>,
): Promise<{ env: ApiTestEnv; users: Record<K, SeededUser> }> {
  const env = await openApiTestEnv(options);
  const seeded = {} as Record<K, SeededUser>;
  for (const [key, [user, project, role]] of Object.entries(users) as Array<[K, [string, string, Role?]]>)
    seeded[key] = await seedUserToken(env, user, project, role);
  return { env, users: seeded };
}

/**
 * Keystone v3 through inject as the given token, the way the identity API tests call it: the status, the
 * body parsed loosely (tests index into it), the raw text and any X-Subject-Token. `env` is read at each
 * call, so a file can make its caller before its `before` hook opens the env.
 */
export function identityCaller(env: () => ApiTestEnv) {
  return async (method: string, url: string, as: string, payload?: unknown) => {
    const res = await env().app.inject({
      method: method as 'GET',
      url: `/identity/v3${url}`,
      headers: { 'content-type': 'application/json', 'x-auth-token': as },
      ...(payload !== undefined ? { payload: JSON.stringify(payload) } : {}),
    });
    return {
      status: res.statusCode,
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      body: (res.body ? res.json() : {}) as Record<string, any>,
      raw: res.body,
      token: String(res.headers['x-subject-token']),
    };
  };
}
