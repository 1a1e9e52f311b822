/**
 * Placement at /placement: the root version document with its microversion range (what clients probe), and
 * the resource providers (list with name/uuid filters, show) for admins, as Placement's default policies
 * allow. Microversions: `OpenStack-API-Version: placement 1.x`; out of range is 406, malformed 400.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isCloudError } from '../../cloud/errors';
import type { ResourceProvider } from '../../cloud/placement';
import type { ServicePlugin } from '../app';
import { authOf, requireAuth } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';

/** 1.14 adds parent/root provider uuids to providers, which bootflow returns (its providers are all roots). */
const MIN_MINOR = 0;
const MAX_MINOR = 14;

function microversion(request: FastifyRequest, reply: FastifyReply): number {
  const header = request.headers['openstack-api-version'];
  const asked = (Array.isArray(header) ? header.join(',') : (header ?? ''))
    .split(',')
    .map((v) => v.trim().split(/\s+/))
    .find(([service]) => service?.toLowerCase() === 'placement')?.[1];
  let minor = MIN_MINOR;
  if (asked === 'latest') minor = MAX_MINOR;
  else if (asked !== undefined) {
    const match = /^1\.(0|[1-9]\d*)$/.exec(asked);
    if (!/^\d+\.\d+$/.test(asked)) throw new ApiError(400, `invalid version string: ${asked}`);
    if (!match || Number(match[1]) > MAX_MINOR)
      throw new ApiError(406, `Unacceptable version header: ${asked}`);
    minor = Number(match[1]);
  }
  reply.header('OpenStack-API-Version', `placement 1.${minor}`);
  reply.header('Vary', 'openstack-api-version');
  return minor;
}

function providerView(deps: Pick<ApiDeps, 'publicUrl'>, p: ResourceProvider, minor: number) {
  const self = `/resource_providers/${p.uuid}`;
  return {
    uuid: p.uuid,
    name: p.name,
    generation: p.generation,
    ...(minor >= 14 ? { parent_provider_uuid: null, root_provider_uuid: p.uuid } : {}),
    links: [
      { rel: 'self', href: self },
      { rel: 'inventories', href: `${self}/inventories` },
      { rel: 'usages', href: `${self}/usages` },
    ],
  };
}

async function routes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const placement = deps.cloud.placement;
  const authenticate = requireAuth(deps);
  const guarded = async (request: FastifyRequest, reply: FastifyReply): Promise<number> => {
    await authenticate(request, reply);
    const minor = microversion(request, reply);
    // Placement's defaults: resource providers are for admins (the services use them with admin tokens).
    if (!authOf(request).ctx.roles.includes('admin'))
      throw new ApiError(403, 'Policy does not allow placement:resource_providers:list to be performed.');
    return minor;
  };

  app.get('/resource_providers', async (request, reply) => {
    const minor = await guarded(request, reply);
    const q = request.query as Record<string, unknown>;
    const providers = (await placement.listResourceProviders()).filter(
      (p) => (q.name === undefined || p.name === q.name) && (q.uuid === undefined || p.uuid === q.uuid),
    );
    return { resource_providers: providers.map((p) => providerView(deps, p, minor)) };
  });

  app.get('/resource_providers/:uuid', async (request, reply) => {
    const minor = await guarded(request, reply);
    const { uuid } = request.params as { uuid: string };
    try {
      return providerView(deps, await placement.getResourceProvider(uuid), minor);
    } catch (err) {
      if (isCloudError(err, 'NotFound') || isCloudError(err, 'BadRequest'))
        throw new ApiError(404, `No resource provider with uuid ${uuid} found`);
      throw err;
    }
  });
}

export const placementApi: ServicePlugin = async (app, deps) => {
  // The root document needs no token: clients read the range before they authenticate.
  app.get('/', async (request, reply) => {
    microversion(request, reply);
    return {
      versions: [
        {
          id: 'v1.0',
          max_version: `1.${MAX_MINOR}`,
          min_version: `1.${MIN_MINOR}`,
          status: 'CURRENT',
          links: [{ rel: 'self', href: '' }],
        },
      ],
    };
  });
  await routes(app, deps);
};
