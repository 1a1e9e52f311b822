/**
 * The compute API's version documents (nova/api/openstack/compute/versions.py, versionsV21.py): the list at
 * the service root and the v2.1 document, both readable without a token, as in Nova's paste pipeline.
 */
import type { FastifyInstance } from 'fastify';
import type { ApiDeps } from '../deps';
import { formatVersion, MAX_MICROVERSION, MIN_MICROVERSION } from './microversion';

/** Nova's fixed "updated" stamp of v2.1. */
const V21_UPDATED = '2013-07-23T11:33:21Z';

function v21(deps: ApiDeps) {
  return {
    id: 'v2.1',
    status: 'CURRENT',
    version: formatVersion(MAX_MICROVERSION),
    min_version: formatVersion(MIN_MICROVERSION),
    updated: V21_UPDATED,
    links: [{ rel: 'self', href: `${deps.publicUrl}/compute/v2.1/` }],
  };
}

/** The legacy v2.0 entry Nova's root still lists first (SUPPORTED, no microversions). */
function v20(deps: ApiDeps) {
  return {
    id: 'v2.0',
    status: 'SUPPORTED',
    version: '',
    min_version: '',
    updated: '2011-01-21T11:33:21Z',
    links: [{ rel: 'self', href: `${deps.publicUrl}/compute/v2/` }],
  };
}

export async function versionRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  app.get('/', async () => ({ versions: [v20(deps), v21(deps)] }));
  // The v2.0 document its link names (no token); bootflow serves no v2.0 API beneath it.
  app.get('/v2', async () => {
    const doc = v20(deps);
    return {
      version: {
        ...doc,
        'media-types': [
          { base: 'application/json', type: 'application/vnd.openstack.compute+json;version=2' },
        ],
      },
    };
  });
}

/** GET /compute/v2.1 and /compute/v2.1/. */
export function versionDocument(deps: ApiDeps) {
  const doc = v21(deps);
  return {
    version: {
      ...doc,
      links: [...doc.links, { rel: 'describedby', type: 'text/html', href: 'http://docs.openstack.org/' }],
      'media-types': [
        { base: 'application/json', type: 'application/vnd.openstack.compute+json;version=2.1' },
      ],
    },
  };
}
