/**
 * Calls to the compute API through Fastify's inject as one of a test's callers (a token by name), Nova's
 * fault body asserted, and a bootstrapped cloud with its callers: for the compute API tests beside
 * api-compute.test.ts.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import type { LightMyRequestResponse } from 'fastify';
import { bootstrapCloud, type BootstrapResult } from '../../cloud/bootstrap';
import { DEFAULT_HOSTS } from '../../cloud/hosts';
import { openApiTestEnv, type ApiTestEnv } from './api';
import { addTenantUser } from './security';

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';
export interface CallOptions<Who extends string> {
  as?: Who;
  version?: string;
  body?: unknown;
}

/** `call(method, path under /compute/v2.1, { as, version, body })`. */
export function computeCaller<Who extends string>(env: () => ApiTestEnv, tokens: Record<Who, string>) {
  return (method: Method, url: string, options: CallOptions<Who> = {}): Promise<LightMyRequestResponse> => {
    const headers: Record<string, string> = {};
    if (options.as) headers['x-auth-token'] = tokens[options.as];
    if (options.version) headers['openstack-api-version'] = `compute ${options.version}`;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    return env().app.inject({
      method,
      url: `/compute/v2.1${url}`,
      headers,
      ...(options.body !== undefined ? { payload: JSON.stringify(options.body) } : {}),
    });
  };
}

/** Nova's fault: `{"<key>": {"code": status, "message": ...}}` with the status given. */
export function assertFault(
  res: LightMyRequestResponse,
  status: number,
  key: string,
  message?: RegExp | string,
): void {
  assert.equal(res.statusCode, status, res.body);
  const body = res.json() as Record<string, { code: number; message: string }>;
  assert.deepEqual(Object.keys(body), [key]);
  assert.equal(body[key]!.code, status);
  if (typeof message === 'string') assert.equal(body[key]!.message, message);
  else if (message) assert.match(body[key]!.message, message);
}

export type Caller = 'admin' | 'member' | 'reader' | 'other';

/** A bootstrapped cloud behind the compute API, with an admin, a member and a reader of demo, and a member of other. */
export interface ComputeTestEnv {
  env: ApiTestEnv;
  boot: BootstrapResult;
  tokens: Record<Caller, string>;
  demoProjectId: string;
  memberUserId: string;
  otherProjectId: string;
  call: ReturnType<typeof computeCaller<Caller>>;
  close(): Promise<void>;
}

export async function openComputeTestEnv(label: string, temporal?: Client): Promise<ComputeTestEnv> {
  const env = await openApiTestEnv({ services: ['compute'], label, ...(temporal ? { temporal } : {}) });
  const boot = await bootstrapCloud(env.cloud, { hosts: DEFAULT_HOSTS });
  const ks = env.cloud.keystone;
  const admin = await ks.authenticate({
    username: boot.admin.username,
    password: boot.admin.password,
    projectName: boot.admin.projectName,
  });
  const demo = await ks.authenticate({
    username: boot.demo.username,
    password: boot.demo.password,
    projectName: boot.demo.projectName,
  });
  const reader = await addTenantUser(env.cloud, { username: 'rita', projectName: 'demo', role: 'reader' });
  const other = await addTenantUser(env.cloud, { username: 'otto', projectName: 'other', role: 'member' });
  const tokens = { admin: admin.token, member: demo.token, reader: reader.token!, other: other.token! };
  return {
    env,
    boot,
    tokens,
    demoProjectId: demo.context.projectId,
    memberUserId: demo.context.userId,
    otherProjectId: other.projectId,
    call: computeCaller(() => env, tokens),
    close: () => env.close(),
  };
}

/** An ACTIVE server on the first host, as nova-api and the conductor leave a finished build. */
export async function recordActiveInstance(
  t: ComputeTestEnv,
  options: { projectId?: string; userId?: string; tags?: string[] } = {},
): Promise<string> {
  const uuid = randomUUID();
  const nova = t.env.cloud.nova;
  await nova.createInstance({
    uuid,
    requestId: `req-${uuid}`,
    name: `vm-${uuid.slice(0, 8)}`,
    projectId: options.projectId ?? t.demoProjectId,
    userId: options.userId ?? t.memberUserId,
    flavor: '1',
    imageRef: t.boot.imageId,
    networks: [],
    ...(options.tags ? { tags: options.tags } : {}),
  });
  const host = DEFAULT_HOSTS[0]!.host;
  await nova.updateInstance(uuid, {
    vmState: 'active',
    taskState: null,
    powerState: 1,
    host,
    node: host,
    launchedAt: t.env.cloud.clock.now(),
  });
  return uuid;
}
