/**
 * The OpenStack APIs on one Fastify listener, DevStack-style: each service under its path prefix
 * (catalog.ts), each with its own error format (errors.ts) and, except Keystone's token issue, keystonemiddleware's
 * token check (auth.ts). Every response carries `x-openstack-request-id` (compute also `x-compute-request-id`).
 */
import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { SERVICE_PREFIX } from './catalog';
import type { ApiDeps } from './deps';
import { ApiError, renderError, type ServiceName } from './errors';
import { computeApi } from './compute';
import { identityApi } from './identity';
import { imageApi } from './image';
import { networkApi } from './network';
import { placementApi } from './placement';
import { volumeApi } from './volume';

/** A service's routes, registered inside its own encapsulated scope under its prefix. */
export type ServicePlugin = (app: FastifyInstance, deps: ApiDeps) => Promise<void>;

const PLUGINS: Record<ServiceName, ServicePlugin> = {
  identity: identityApi,
  compute: computeApi,
  image: imageApi,
  network: networkApi,
  volume: volumeApi,
  placement: placementApi,
};

/** nova-api's and most services' oslo.middleware sizelimit default (max_request_body_size). */
export const MAX_REQUEST_BODY_BYTES = 114_688;

export interface ApiAppOptions {
  /** Only these services (tests); default all. */
  services?: ServiceName[];
  /** PEM certificate and key: the listener speaks HTTPS. */
  https?: { cert: Buffer; key: Buffer };
}

export async function buildApiApp(deps: ApiDeps, options: ApiAppOptions = {}): Promise<FastifyInstance> {
  // One instance type whether it speaks HTTP or HTTPS: routes never touch the raw server.
  const app = Fastify({
    ...(options.https ? { https: options.https } : {}),
    loggerInstance: deps.log.child({ component: 'api' }),
    disableRequestLogging: true,
    bodyLimit: MAX_REQUEST_BODY_BYTES,
    genReqId: () => `req-${randomUUID()}`,
    // Nova's and Neutron's routes answer the same with and without a trailing slash. A Glance tag (up to 255
    // characters, each up to 12 once UTF-8 and percent-encoded) is a path parameter: Fastify's default of 100
    // would answer 414.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 3072 },
  }) as unknown as FastifyInstance;
  app.decorateRequest('auth', null);
  // The clients send `Content-Type: application/json` on bodiless PUT and DELETE (grants, actions); the
  // services' WSGI stacks take that as no body, where Fastify's own parser answers 400. A body that does not
  // parse is wsgi.py's (JSONDeserializer) "Malformed request body", in each service's error format.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    const text = String(body);
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text) as unknown);
    } catch {
      done(new ApiError(400, 'Malformed request body'), undefined);
    }
  });
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-openstack-request-id', request.id);
    // Nova's own name for it, which tempest's compute tests read.
    if (request.url.startsWith('/compute')) reply.header('x-compute-request-id', request.id);
  });
  app.addHook('onResponse', async (request, reply) => {
    request.log.debug(
      { method: request.method, url: request.routeOptions.url, status: reply.statusCode },
      'api request',
    );
  });
  for (const service of options.services ?? (Object.keys(PLUGINS) as ServiceName[])) {
    await app.register(
      async (scope) => {
        scope.setErrorHandler(async (err, request, reply) => {
          const rendered = renderError(service, err, request.id);
          if (rendered.status >= 500) request.log.error({ err }, `${service} API: unexpected error`);
          return reply
            .code(rendered.status)
            .headers(rendered.headers)
            .type(rendered.contentType)
            .send(rendered.body);
        });
        // oslo.middleware's sizelimit runs before keystonemiddleware: an oversized body is 413 even
        // without a token. Fastify would read the body only after the services' onRequest hooks.
        scope.addHook('onRequest', async (request) => {
          const length = Number(request.headers['content-length'] ?? 0);
          if (length > (request.routeOptions.bodyLimit ?? MAX_REQUEST_BODY_BYTES))
            throw new ApiError(413, 'Request is too large.', 'RequestEntityTooLarge');
        });
        scope.setNotFoundHandler(async () => {
          throw new ApiError(404, `The resource could not be found.`, 'HTTPNotFound');
        });
        await PLUGINS[service](scope, deps);
      },
      { prefix: SERVICE_PREFIX[service] },
    );
  }
  return app;
}
