/**
 * Keystone's version discovery: GET /identity lists v3 (300 Multiple Choices, as Keystone answers it), GET
 * /identity/v3 describes it. keystoneauth reads these to find the v3 endpoint.
 */
import type { FastifyInstance } from 'fastify';
import type { ApiDeps } from '../deps';

/** The identity API version bootflow's routes follow (Keystone 2020.1 and later report 3.14). */
export const IDENTITY_VERSION = { id: 'v3.14', updated: '2020-04-07T00:00:00Z' };

function v3Document(deps: Pick<ApiDeps, 'publicUrl'>) {
  return {
    id: IDENTITY_VERSION.id,
    status: 'stable',
    updated: IDENTITY_VERSION.updated,
    links: [{ rel: 'self', href: `${deps.publicUrl}/identity/v3/` }],
    'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.identity-v3+json' }],
  };
}

export async function versionRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  app.get('/', async (_request, reply) => reply.code(300).send({ versions: { values: [v3Document(deps)] } }));
  app.get('/v3', async () => ({ version: v3Document(deps) }));
}
