/**
 * Calls to the compute API through Fastify's inject as one of a test's callers (a token by name), and
 * Nova's fault body asserted: for the compute API tests beside api-compute.test.ts.
 */
import assert from 'node:assert/strict';
import type { LightMyRequestResponse } from 'fastify';
import type { ApiTestEnv } from './api';

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
