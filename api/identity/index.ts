/**
 * Keystone v3 at /identity: the version documents, /v3/auth (tokens, the caller's projects and catalog)
 * and the administration of projects, users, groups, roles, domains and grants (OS-INHERIT too), of the catalog, credentials, application credentials and policies,
 * OS-OAUTH1 consumers and domain configurations.
 */
import type { ServicePlugin } from '../app';
import { adminRoutes } from './admin';
import { appCredentialRoutes } from './app-credentials';
import { credentialRoutes } from './credentials';
import { policyRoutes } from './policies';
import { domainConfigRoutes } from './domain-config';
import { oauth1Routes } from './oauth1';
import { catalogRoutes } from './catalog';
import { groupRoutes } from './groups';
import { inheritedRoutes } from './inherited';
import { impliedRoleRoutes } from './implied-roles';
import { roleAssignmentRoutes } from './role-assignments';
import { tokenRoutes } from './tokens';
import { versionRoutes } from './versions';

export const identityApi: ServicePlugin = async (app, deps) => {
  app.decorateRequest('identityAuth', null);
  await versionRoutes(app, deps);
  await tokenRoutes(app, deps);
  await adminRoutes(app, deps);
  await groupRoutes(app, deps);
  await impliedRoleRoutes(app, deps);
  await roleAssignmentRoutes(app, deps);
  await catalogRoutes(app, deps);
  await credentialRoutes(app, deps);
  await appCredentialRoutes(app, deps);
  await policyRoutes(app, deps);
  await inheritedRoutes(app, deps);
  await domainConfigRoutes(app, deps);
  await oauth1Routes(app, deps);
};
