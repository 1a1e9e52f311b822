/**
 * The OpenStack API over a throw-away cloud, without a listener (Fastify's inject) or Temporal: for tests of
 * the HTTP layer itself. Workflow-starting routes need a Temporal client; give one with `temporal`.
 */
import type { Client } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import { buildApiApp, DEFAULT_REGION, type ApiDeps } from '../../api';
import type { ServiceName } from '../../api/errors';
import { openCloud, type Cloud } from '../../cloud';
import { createLogger } from '../../lib/logger';
import { testDbConfig, type TestDb } from './cloud-db';

export interface ApiTestEnv {
  app: FastifyInstance;
  cloud: Cloud;
  deps: ApiDeps;
  close(): Promise<void>;
}

export const TEST_PUBLIC_URL = 'http://127.0.0.1:8770';

export async function openApiTestEnv(
  options: { services?: ServiceName[]; temporal?: Client; label?: string } = {},
): Promise<ApiTestEnv> {
  const testDb: TestDb = testDbConfig(options.label ?? 'api');
  const cloud = await openCloud({ db: testDb.config });
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
    async close() {
      await app.close();
      await cloud.close();
      await testDb.cleanup();
    },
  };
}
