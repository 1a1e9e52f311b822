/**
 * The compute API (Nova v2.1) under /compute: the version documents without a token, everything under
 * /v2.1 behind keystonemiddleware's token check and then the microversion negotiation, in that order, as
 * Nova's paste pipeline runs them. Bodies are JSON only; a malformed one is Nova's 400.
 */
import type { FastifyInstance } from 'fastify';
import type { ServicePlugin } from '../app';
import { requireAuth } from '../auth';
import type { ApiDeps } from '../deps';
import { availabilityZoneRoutes } from './availability-zones';
import { extensionRoutes } from './extensions';
import { flavorAccessRoutes } from './flavor-access';
import { flavorRoutes } from './flavors';
import { hypervisorRoutes } from './hypervisors';
import { imageMetadataRoutes } from './image-metadata';
import { imageRoutes } from './images';
import { instanceActionRoutes } from './instance-actions';
import { keypairRoutes } from './keypairs';
import { limitsRoutes } from './limits';
import { MIN_MICROVERSION, parseMicroversion, versionHeaders } from './microversion';
import { quotaSetRoutes } from './quota-sets';
import { serverActionRoutes } from './server-actions';
import { serverGroupRoutes } from './server-groups';
import { serverMetadataRoutes } from './server-metadata';
import { serverPasswordRoutes } from './server-password';
import { serverRoutes } from './servers';
import { securityGroupRoutes } from './security-groups';
import { serverSecurityGroupRoutes } from './server-security-groups';
import { serverTagRoutes } from './server-tags';
import { versionDocument, versionRoutes } from './versions';
import { volumeAttachmentRoutes } from './volume-attachments';
import { snapshotProxyRoutes } from './snapshots';
import { volumeProxyRoutes } from './volumes';

async function v21(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  // Set by the onRequest hook below before any route runs (null until then, as Fastify wants it).
  app.decorateRequest('microversion', null, []);
  const authenticate = requireAuth(deps);
  // onRequest runs before the body is read: a missing token is 401 whatever the body.
  app.addHook('onRequest', async (request, reply) => {
    await authenticate(request, reply);
    const version = parseMicroversion(request);
    request.microversion = version;
    versionHeaders(reply, version);
  });
  await serverRoutes(app, deps);
  await serverActionRoutes(app, deps);
  await serverMetadataRoutes(app, deps);
  await serverTagRoutes(app, deps);
  await serverPasswordRoutes(app, deps);
  await flavorRoutes(app, deps);
  await flavorAccessRoutes(app, deps);
  await keypairRoutes(app, deps);
  await serverGroupRoutes(app, deps);
  await hypervisorRoutes(app, deps);
  await limitsRoutes(app, deps);
  await quotaSetRoutes(app, deps);
  await availabilityZoneRoutes(app, deps);
  await instanceActionRoutes(app, deps);
  await volumeAttachmentRoutes(app, deps);
  await securityGroupRoutes(app, deps);
  await serverSecurityGroupRoutes(app, deps);
  await imageRoutes(app, deps);
  await imageMetadataRoutes(app, deps);
  await volumeProxyRoutes(app, deps);
  await snapshotProxyRoutes(app, deps);
  await extensionRoutes(app);
}

export const computeApi: ServicePlugin = async (app, deps) => {
  await versionRoutes(app, deps);
  // The v2.1 document, exactly at /v2.1 and /v2.1/, needs no token (Nova's oscomputeversion_v2).
  app.get('/v2.1', async (_request, reply) => {
    versionHeaders(reply, MIN_MICROVERSION);
    return versionDocument(deps);
  });
  await app.register(async (scope) => v21(scope, deps), { prefix: '/v2.1' });
};
