/**
 * Keystone's /v3/auth: token issue (password and token methods; scoped to a project or a domain, by id or
 * name, or unscoped), validation, check and revocation of a subject token, and the caller's projects,
 * domains and catalog.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { isCloudError } from '../../cloud/errors';
import type { IssuedToken, TokenContext } from '../../cloud/keystone';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { callerOf, isAdmin, parseBody, requireIdentityAuth } from './common';
import { collectionLinks, domainView, keystoneTime, projectView, tokenView, v3Url } from './views';

const SUBJECT_TOKEN_HEADER = 'x-subject-token';

// Keystone's auth schema (keystone/auth/schema.py) allows properties it does not know; so does this one.
const domainRef = z.object({ id: z.string().optional(), name: z.string().optional() });
const entityRef = z.object({
  id: z.string().optional(),
  name: z.string().optional(),
  domain: domainRef.optional(),
});
const authBody = z.object({
  auth: z.object({
    identity: z.object({
      methods: z.array(z.string()).min(1),
      password: z.object({ user: entityRef.extend({ password: z.string() }) }).optional(),
      token: z.object({ id: z.string() }).optional(),
      application_credential: z
        .object({
          id: z.string().optional(),
          name: z.string().optional(),
          secret: z.string(),
          user: entityRef.optional(),
        })
        .optional(),
    }),
    scope: z
      .union([
        z.literal('unscoped'),
        z.object({
          project: entityRef.optional(),
          domain: domainRef.optional(),
          system: z.unknown().optional(),
        }),
      ])
      .optional(),
  }),
});

type EntityRef = z.infer<typeof entityRef>;

/** A user or project reference as the cloud takes it: by id, or by name within a domain by id or name. */
function locator(ref: EntityRef, what: string) {
  if (ref.id) return { id: ref.id };
  if (!ref.name) throw new ApiError(400, `Expecting to find id or name in ${what}.`, 'ValidationError');
  const domain = ref.domain;
  if (domain?.id) return { name: ref.name, domain: { id: domain.id } };
  if (domain?.name) return { name: ref.name, domain: { name: domain.name } };
  throw new ApiError(400, `Expecting to find domain in ${what}.`, 'ValidationError');
}

type ScopeBody = Exclude<z.infer<typeof authBody>['auth']['scope'], undefined>;

/** The scope asked for: a project or a domain (by id or name), else unscoped (Keystone has no default project here). */
function scopeOf(scope: ScopeBody | undefined) {
  if (scope === undefined || scope === 'unscoped') return { unscoped: true as const };
  const asked = [scope.project, scope.domain, scope.system].filter((s) => s !== undefined).length;
  if (asked > 1)
    throw new ApiError(
      400,
      'Only one of project, domain or system may be given in auth.scope.',
      'ValidationError',
    );
  if (scope.project) return { project: locator(scope.project, 'project') };
  if (scope.domain) {
    if (scope.domain.id) return { domain: { id: scope.domain.id } };
    if (scope.domain.name) return { domain: { name: scope.domain.name } };
    throw new ApiError(400, 'Expecting to find id or name in domain.', 'ValidationError');
  }
  // Keystone's system scope is `{"system": {"all": true}}`; a role on the system is needed (else 401).
  if (scope.system !== undefined) {
    const system = scope.system as { all?: unknown } | null;
    if (typeof system !== 'object' || system === null || system.all !== true)
      throw new ApiError(400, "Invalid input for field 'scope.system'.", 'ValidationError');
    return { system: { all: true as const } };
  }
  return { unscoped: true as const };
}

const unauthorized = () =>
  new ApiError(401, 'The request you have made requires authentication.', 'Unauthorized');

/** Keystone answers a subject token it cannot validate with 404 (TokenNotFound). */
const tokenNotFound = () => new ApiError(404, 'Failed to validate token', 'TokenNotFound');

export async function tokenRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const keystone = deps.cloud.keystone;
  const authenticated = { preHandler: requireIdentityAuth(deps) };

  async function tokenBody(
    caller: TokenContext,
    methods: string[],
    auditIds: string[],
    catalog: boolean,
  ): Promise<{ token: ReturnType<typeof tokenView> }> {
    const roles = await keystone.listRoles();
    const scoped = caller.project !== undefined || caller.domain !== undefined || caller.system === true;
    const [userDomain, projectDomain] = await Promise.all([
      keystone.getDomain(caller.userDomainId),
      caller.project ? keystone.getDomain(caller.project.domainId) : undefined,
    ]);
    return {
      token: tokenView({
        caller,
        methods,
        auditIds,
        userDomainName: userDomain.name,
        ...(projectDomain ? { projectDomainName: projectDomain.name } : {}),
        roles: roles.filter((r) => caller.roles.includes(r.name)),
        ...(catalog && scoped ? { catalog: await catalogOf(caller) } : {}),
      }),
    };
  }

  const catalogOf = (caller: TokenContext) =>
    keystone.catalog.tokenCatalog({
      userId: caller.userId,
      ...(caller.project ? { projectId: caller.project.id } : {}),
    });

  const wantsCatalog = (request: FastifyRequest) => !Object.hasOwn(request.query as object, 'nocatalog');

  app.post('/v3/auth/tokens', async (request, reply) => {
    const { auth } = parseBody(authBody, request.body);
    const { identity } = auth;
    const scope = scopeOf(auth.scope);
    let result: IssuedToken;
    try {
      if (identity.methods.includes('password')) {
        if (!identity.password) throw new ApiError(400, 'Expecting to find password in identity.');
        const { password, ...user } = identity.password.user;
        result = await keystone.issueToken({
          method: 'password',
          user: locator(user, 'user'),
          password,
          // No scope in the body: Keystone's default scoping (the user's default_project_id).
          ...(auth.scope !== undefined ? { scope } : {}),
        });
      } else if (identity.methods.includes('application_credential')) {
        const appCred = identity.application_credential;
        if (!appCred)
          throw new ApiError(400, 'Expecting to find application_credential in identity.', 'ValidationError');
        // Keystone: an application credential's token is scoped to its project; no scope may be asked.
        if (auth.scope !== undefined) throw unauthorized();
        let ref: { id: string } | { name: string; user: ReturnType<typeof locator> };
        if (appCred.id) ref = { id: appCred.id };
        else if (appCred.name && appCred.user)
          ref = { name: appCred.name, user: locator(appCred.user, 'user') };
        else throw unauthorized();
        result = await keystone.issueToken({
          method: 'application_credential',
          applicationCredential: ref,
          secret: appCred.secret,
        });
      } else if (identity.methods.includes('token')) {
        if (!identity.token) throw new ApiError(400, 'Expecting to find token in identity.');
        // Without a scope the token method keeps the scope of the token it re-scopes.
        result = await keystone.issueToken({
          method: 'token',
          token: identity.token.id,
          ...(auth.scope !== undefined ? { scope } : {}),
        });
      } else {
        throw new ApiError(401, 'Attempted to authenticate with an unsupported method.', 'Unauthorized');
      }
    } catch (err) {
      // Every credential problem (and a malformed name or id inside one) is the same 401.
      if (
        isCloudError(err, 'Unauthorized') ||
        isCloudError(err, 'BadRequest') ||
        isCloudError(err, 'NotFound')
      )
        throw unauthorized();
      throw err;
    }
    const body = await tokenBody(result.caller, result.methods, result.auditIds, wantsCatalog(request));
    return reply.code(201).header('X-Subject-Token', result.token).send(body);
  });

  /** The subject token's context, if the caller may see it (Keystone's identity:validate_token). */
  async function subject(request: FastifyRequest) {
    const header = request.headers[SUBJECT_TOKEN_HEADER];
    const token = Array.isArray(header) ? header[0] : header;
    if (!token) throw new ApiError(400, 'X-Subject-Token header is required.', 'ValidationError');
    let described: Awaited<ReturnType<typeof keystone.describeToken>>;
    try {
      described = await keystone.describeToken(token);
    } catch (err) {
      if (isCloudError(err, 'Unauthorized') || isCloudError(err, 'BadRequest')) throw tokenNotFound();
      throw err;
    }
    const caller = callerOf(request);
    if (!isAdmin(caller) && caller.userId !== described.caller.userId)
      throw new ApiError(
        403,
        'You are not authorized to perform the requested action: identity:validate_token.',
      );
    return { token, ...described };
  }

  app.get('/v3/auth/tokens', { ...authenticated, exposeHeadRoute: false }, async (request, reply) => {
    const { token, caller, methods } = await subject(request);
    const body = await tokenBody(caller, methods, [caller.auditId], wantsCatalog(request));
    return reply.header('X-Subject-Token', token).send(body);
  });

  app.head('/v3/auth/tokens', authenticated, async (request, reply) => {
    await subject(request);
    return reply.code(200).send();
  });

  app.delete('/v3/auth/tokens', authenticated, async (request, reply) => {
    const { token } = await subject(request);
    await keystone.revokeToken(token);
    return reply.code(204).send();
  });

  // The scopes the caller may ask a token for: roles held directly or through a group.
  app.get('/v3/auth/projects', authenticated, async (request) => {
    const ids = new Set((await keystone.scopesOfUser(callerOf(request).userId)).projectIds);
    const projects = (await keystone.listProjects()).filter((p) => p.enabled && ids.has(p.id));
    return {
      projects: projects.map((p) => projectView(deps, p)),
      links: collectionLinks(deps, '/auth/projects'),
    };
  });

  app.get('/v3/auth/domains', authenticated, async (request) => {
    const ids = new Set((await keystone.scopesOfUser(callerOf(request).userId)).domainIds);
    const domains = (await keystone.listDomains()).filter((d) => d.enabled && ids.has(d.id));
    return {
      domains: domains.map((d) => domainView(deps, d)),
      links: collectionLinks(deps, '/auth/domains'),
    };
  });

  app.get('/v3/auth/catalog', authenticated, async (request) => {
    // Keystone's AuthCatalogResource refuses an unscoped token.
    const caller = callerOf(request);
    if (!caller.project && !caller.domain)
      throw new ApiError(
        403,
        'A project-scoped token is required to produce a service catalog.',
        'Forbidden',
      );
    return {
      catalog: await catalogOf(caller),
      links: { self: v3Url(deps, '/auth/catalog'), previous: null, next: null },
    };
  });

  /**
   * bootflow's extension (no Keystone counterpart): the caller's token (X-Auth-Token) → an operation grant for
   * one workflow, which is what client.ts puts in a workflow's input instead of the token (see BootAuth).
   */
  app.post('/v3/auth/OS-BOOTFLOW/grants', authenticated, async (request, reply) => {
    const token = request.identityAuth?.token;
    if (token === undefined) throw new Error('route registered without requireIdentityAuth');
    const { grant } = parseBody(grantBody, request.body);
    const issued = await keystone.issueGrant(token, {
      workflowType: grant.workflow_type,
      workflowId: grant.workflow_id,
    });
    return reply.code(201).send({ grant: { id: issued.grant, expires_at: keystoneTime(issued.expiresAt) } });
  });
}

const grantBody = z.strictObject({
  grant: z.strictObject({
    workflow_type: z.string().min(1).max(255),
    workflow_id: z.string().min(1).max(1000),
  }),
});
