/**
 * The `api` role: the OpenStack HTTP APIs on one listener (plain HTTP, or HTTPS with a certificate and key).
 */
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { buildApiApp, type ApiAppOptions } from './app';
import type { ApiDeps } from './deps';

export { DEFAULT_API_PORT, DEFAULT_REGION, type ApiDeps } from './deps';
export { buildApiApp } from './app';

export interface ApiListenOptions extends ApiAppOptions {
  host: string;
  port: number;
  tls?: { certFile: string; keyFile: string };
}

export interface ApiServer {
  app: FastifyInstance;
  /** The address it listens on, e.g. http://127.0.0.1:8770 (the port resolved when 0 was asked). */
  url: string;
  close(): Promise<void>;
}

export async function startApiServer(deps: ApiDeps, options: ApiListenOptions): Promise<ApiServer> {
  const https = options.tls
    ? { cert: await readFile(options.tls.certFile), key: await readFile(options.tls.keyFile) }
    : undefined;
  const app = await buildApiApp(deps, { ...options, ...(https ? { https } : {}) });
  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address() as AddressInfo;
  const scheme = options.tls ? 'https' : 'http';
  let closing: Promise<void> | undefined;
  return {
    app,
    url: `${scheme}://${options.host}:${address.port}`,
    // Idempotent: the role's shutdown and its closers may both ask.
    close: () => (closing ??= app.close()),
  };
}
