/**
 * Keystone's /v3/auth: token issue (password and token methods, project scope), validation, check and
 * revocation of a subject token, and the caller's projects and catalog.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { isCloudError } from '../../cloud/errors';
import type { AuthResult, RequestContext } from '../../cloud/keystone';
import { authOf, requireAuth } from '../auth';
import { serviceCatalog } from '../catalog';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { isAdmin, parseBody } from './common';
import { collectionLinks, keystoneTime, projectView, tokenView, v3Url } from './views';

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

const unauthorized = () =>
  new ApiError(401, 'The request you have made requires authentication.', 'Unauthorized');

/** Keystone answers a subject token it cannot validate with 404 (TokenNotFound). */
const tokenNotFound = () => new ApiError(404, 'Failed to validate token', 'TokenNotFound');

export async function tokenRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const keystone = deps.cloud.keystone;
  const authenticated = { preHandler: requireAuth(deps) };

  async function tokenBody(
    context: RequestContext,
    methods: string[],
    auditIds: string[],
    catalog: boolean,
  ): Promise<{ token: ReturnType<typeof tokenView> }> {
    const roles = await keystone.listRoles();
    const [userDomain, projectDomain] = await Promise.all([
      keystone.getDomain(context.userDomainId),
      keystone.getDomain(context.domainId),
    ]);
    return {
      token: tokenView(deps, {
        context,
        methods,
        auditIds,
        userDomainName: userDomain.name,
        projectDomainName: projectDomain.name,
        roles: roles.filter((r) => context.roles.includes(r.name)),
        catalog,
      }),
    };
  }

  const wantsCatalog = (request: FastifyRequest) => !Object.hasOwn(request.query as object, 'nocatalog');

  app.post('/v3/auth/tokens', async (request, reply) => {
    const { auth } = parseBody(authBody, request.body);
    const { identity, scope } = auth;
    if (
      scope === 'unscoped' ||
      (scope && !scope.project) ||
      (!scope && identity.methods.includes('password'))
    )
      throw new ApiError(
        400,
        'bootflow issues project-scoped tokens only: give a project in auth.scope.',
        'ValidationError',
      );
    const project = scope?.project ? locator(scope.project, 'project') : undefined;
    let result: AuthResult;
    try {
      if (identity.methods.includes('password')) {
        if (!identity.password) throw new ApiError(400, 'Expecting to find password in identity.');
        const { password, ...user } = identity.password.user;
        result = await keystone.issueToken({
          method: 'password',
          user: locator(user, 'user'),
          password,
          project: project!,
        });
      } else if (identity.methods.includes('token')) {
        if (!identity.token) throw new ApiError(400, 'Expecting to find token in identity.');
        result = await keystone.issueToken({
          method: 'token',
          token: identity.token.id,
          ...(project ? { project } : {}),
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
    const body = await tokenBody(result.context, result.methods, result.auditIds, wantsCatalog(request));
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
    const caller = authOf(request).ctx;
    if (!isAdmin(caller) && caller.userId !== described.context.userId)
      throw new ApiError(
        403,
        'You are not authorized to perform the requested action: identity:validate_token.',
      );
    return { token, ...described };
  }

  app.get('/v3/auth/tokens', { ...authenticated, exposeHeadRoute: false }, async (request, reply) => {
    const { token, context, methods } = await subject(request);
    const body = await tokenBody(context, methods, [context.auditId], wantsCatalog(request));
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

  app.get('/v3/auth/projects', authenticated, async (request) => {
    const { ctx } = authOf(request);
    const assignments = await keystone.listRoleAssignments({ userId: ctx.userId });
    const ids = [...new Set(assignments.map((a) => a.projectId))];
    const projects = (await keystone.listProjects()).filter((p) => p.enabled && ids.includes(p.id));
    return {
      projects: projects.map((p) => projectView(deps, p)),
      links: collectionLinks(deps, '/auth/projects'),
    };
  });

  app.get('/v3/auth/catalog', authenticated, async () => ({
    catalog: serviceCatalog(deps),
    links: { self: v3Url(deps, '/auth/catalog'), previous: null, next: null },
  }));

  /**
   * bootflow's extension (no Keystone counterpart): the caller's token (X-Auth-Token) → an operation grant for
   * one workflow, which is what client.ts puts in a workflow's input instead of the token (see BootAuth).
   */
  app.post('/v3/auth/OS-BOOTFLOW/grants', authenticated, async (request, reply) => {
    const { token } = authOf(request);
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
