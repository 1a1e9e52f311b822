/**
 * Keystone's administration: projects, users, roles, domains, grants (role assignments on a project) and
 * the role_assignments report, with Keystone's default policies (admin for everything that writes; a user
 * may see itself and the projects it has a role on).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { isCloudError } from '../../cloud/errors';
import type { Project, RequestContext, RoleAssignment, User } from '../../cloud/keystone';
import { authOf, requireAuth } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { boolParam, enforceIdentity, forbiddenAction, isAdmin, parseBody, queryParam } from './common';
import { collectionLinks, domainView, projectView, roleView, userView, v3Url } from './views';

// Keystone's resource schemas allow extra properties and store them; bootflow stores only these, and refuses
// the rest rather than drop them silently (README: where the API differs).
const projectCreate = z.strictObject({
  project: z.strictObject({
    name: z.string().min(1).max(64),
    domain_id: z.string().min(1).max(64).optional(),
    description: z.string().max(4096).nullable().optional(),
    enabled: z.boolean().optional(),
    is_domain: z.literal(false).optional(),
    parent_id: z.string().nullable().optional(),
    tags: z.array(z.string()).max(0, 'project tags are not supported').optional(),
    options: z.strictObject({}).optional(),
  }),
});

const userCreate = z.strictObject({
  user: z.strictObject({
    name: z.string().min(1).max(255),
    domain_id: z.string().min(1).max(64).optional(),
    password: z.string().min(1).max(4096),
    email: z.string().max(255).optional(),
    enabled: z.boolean().optional(),
    options: z.strictObject({}).optional(),
  }),
});

const roleCreate = z.strictObject({
  role: z.strictObject({ name: z.string().min(1).max(255), options: z.strictObject({}).optional() }),
});

const notFound = (what: string, id: string) =>
  new ApiError(404, `Could not find ${what}: ${id}.`, 'NotFound');

/** Keystone's identity_api lookups: a cloud NotFound keeps its message; bad references are 404 too. */
async function found<T>(what: string, id: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    if (isCloudError(err, 'NotFound') || isCloudError(err, 'BadRequest')) throw notFound(what, id);
    throw err;
  }
}

/** Path parameters; Fastify always sets the ones its route declares. */
function byIdParams(request: FastifyRequest): Record<string, string> & {
  projectId: string;
  userId: string;
  roleId: string;
  domainId: string;
} {
  return request.params as ReturnType<typeof byIdParams>;
}

export async function adminRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const keystone = deps.cloud.keystone;
  const authenticated = { preHandler: requireAuth(deps) };
  const ctxOf = (request: FastifyRequest): RequestContext => authOf(request).ctx;

  /** The project by id only (Keystone's routes take ids; the CLI resolves names through list filters). */
  const projectById = (id: string): Promise<Project> =>
    found('project', id, async () => {
      const p = await keystone.getProject({ project: id });
      if (p.id !== id) throw notFound('project', id);
      return p;
    });
  const userById = (id: string): Promise<User> =>
    found('user', id, async () => {
      const u = await keystone.getUser({ user: id });
      if (u.id !== id) throw notFound('user', id);
      return u;
    });
  const roleById = (id: string) =>
    found('role', id, async () => {
      const r = await keystone.getRole(id);
      if (r.id !== id) throw notFound('role', id);
      return r;
    });
  const domainById = (id: string) =>
    found('domain', id, async () => {
      const d = await keystone.getDomain(id);
      if (d.id !== id) throw notFound('domain', id);
      return d;
    });

  // ---- projects --------------------------------------------------------------------------------------------

  app.get('/v3/projects', authenticated, async (request) => {
    enforceIdentity(ctxOf(request), 'identity:list_projects');
    const name = queryParam(request, 'name');
    const domainId = queryParam(request, 'domain_id');
    const enabled = boolParam(request, 'enabled');
    const projects = (await keystone.listProjects()).filter(
      (p) =>
        (name === undefined || p.name === name) &&
        (domainId === undefined || p.domainId === domainId) &&
        (enabled === undefined || p.enabled === enabled),
    );
    return { projects: projects.map((p) => projectView(deps, p)), links: collectionLinks(deps, '/projects') };
  });

  app.post('/v3/projects', authenticated, async (request, reply) => {
    const ctx = ctxOf(request);
    enforceIdentity(ctx, 'identity:create_project');
    const { project: body } = parseBody(projectCreate, request.body);
    // Without a domain, Keystone creates the project in the domain of the token's scope.
    const domainId = body.domain_id ?? ctx.domainId;
    if (body.parent_id && body.parent_id !== domainId)
      throw new ApiError(400, 'bootflow projects have no parent project (parent_id must be the domain)');
    await domainById(domainId);
    const project = await keystone.createProject({
      name: body.name,
      domainId,
      ...(body.description ? { description: body.description } : {}),
      ...(body.enabled !== undefined ? { enabled: body.enabled } : {}),
    });
    return reply.code(201).send({ project: projectView(deps, project) });
  });

  app.get('/v3/projects/:projectId', authenticated, async (request) => {
    const { projectId } = byIdParams(request);
    enforceIdentity(ctxOf(request), 'identity:get_project', { projectId });
    return { project: projectView(deps, await projectById(projectId)) };
  });

  app.delete('/v3/projects/:projectId', authenticated, async (request, reply) => {
    const { projectId } = byIdParams(request);
    enforceIdentity(ctxOf(request), 'identity:delete_project');
    await projectById(projectId);
    await keystone.deleteProject(projectId);
    return reply.code(204).send();
  });

  // ---- users -----------------------------------------------------------------------------------------------

  /** Keystone's identity:get_user and list_user_projects: admin, or the user itself. */
  const enforceSelfOrAdmin = (ctx: RequestContext, userId: string, action: string) => {
    if (!isAdmin(ctx) && ctx.userId !== userId) throw forbiddenAction(action);
  };

  app.get('/v3/users', authenticated, async (request) => {
    enforceIdentity(ctxOf(request), 'identity:list_users');
    const name = queryParam(request, 'name');
    const domainId = queryParam(request, 'domain_id');
    const enabled = boolParam(request, 'enabled');
    const users = (await keystone.listUsers()).filter(
      (u) =>
        (name === undefined || u.name === name) &&
        (domainId === undefined || u.domainId === domainId) &&
        (enabled === undefined || u.enabled === enabled),
    );
    return { users: users.map((u) => userView(deps, u)), links: collectionLinks(deps, '/users') };
  });

  app.post('/v3/users', authenticated, async (request, reply) => {
    const ctx = ctxOf(request);
    enforceIdentity(ctx, 'identity:create_user');
    const { user: body } = parseBody(userCreate, request.body);
    const domainId = body.domain_id ?? ctx.domainId;
    await domainById(domainId);
    const user = await keystone.createUser({
      name: body.name,
      domainId,
      password: body.password,
      ...(body.email ? { email: body.email } : {}),
      ...(body.enabled !== undefined ? { enabled: body.enabled } : {}),
    });
    return reply.code(201).send({ user: userView(deps, user) });
  });

  app.get('/v3/users/:userId', authenticated, async (request) => {
    const { userId } = byIdParams(request);
    enforceSelfOrAdmin(ctxOf(request), userId, 'identity:get_user');
    return { user: userView(deps, await userById(userId)) };
  });

  app.delete('/v3/users/:userId', authenticated, async (request, reply) => {
    const { userId } = byIdParams(request);
    enforceIdentity(ctxOf(request), 'identity:delete_user');
    await userById(userId);
    await keystone.deleteUser(userId);
    return reply.code(204).send();
  });

  app.get('/v3/users/:userId/projects', authenticated, async (request) => {
    const { userId } = byIdParams(request);
    enforceSelfOrAdmin(ctxOf(request), userId, 'identity:list_user_projects');
    await userById(userId);
    const ids = new Set((await keystone.listRoleAssignments({ userId })).map((a) => a.projectId));
    const projects = (await keystone.listProjects()).filter((p) => ids.has(p.id));
    return {
      projects: projects.map((p) => projectView(deps, p)),
      links: collectionLinks(deps, `/users/${userId}/projects`),
    };
  });

  // ---- roles and domains -----------------------------------------------------------------------------------

  app.get('/v3/roles', authenticated, async (request) => {
    enforceIdentity(ctxOf(request), 'identity:list_roles');
    const name = queryParam(request, 'name');
    const roles = (await keystone.listRoles()).filter((r) => name === undefined || r.name === name);
    return { roles: roles.map((r) => roleView(deps, r)), links: collectionLinks(deps, '/roles') };
  });

  app.post('/v3/roles', authenticated, async (request, reply) => {
    enforceIdentity(ctxOf(request), 'identity:create_role');
    const { role: body } = parseBody(roleCreate, request.body);
    if ((await keystone.listRoles()).some((r) => r.name === body.name))
      throw new ApiError(
        409,
        `Conflict occurred attempting to store role - Duplicate entry found with name ${body.name}.`,
        'Conflict',
      );
    return reply.code(201).send({ role: roleView(deps, await keystone.ensureRole({ name: body.name })) });
  });

  app.get('/v3/roles/:roleId', authenticated, async (request) => {
    const { roleId } = byIdParams(request);
    enforceIdentity(ctxOf(request), 'identity:get_role');
    return { role: roleView(deps, await roleById(roleId)) };
  });

  app.get('/v3/domains', authenticated, async (request) => {
    enforceIdentity(ctxOf(request), 'identity:list_domains');
    const name = queryParam(request, 'name');
    const enabled = boolParam(request, 'enabled');
    const domains = (await keystone.listDomains()).filter(
      (d) => (name === undefined || d.name === name) && (enabled === undefined || d.enabled === enabled),
    );
    return { domains: domains.map((d) => domainView(deps, d)), links: collectionLinks(deps, '/domains') };
  });

  app.get('/v3/domains/:domainId', authenticated, async (request) => {
    const { domainId } = byIdParams(request);
    const ctx = ctxOf(request);
    // Keystone's identity:get_domain: admin, or a token scoped inside that domain.
    if (!isAdmin(ctx) && ctx.domainId !== domainId) throw forbiddenAction('identity:get_domain');
    return { domain: domainView(deps, await domainById(domainId)) };
  });

  // ---- grants: a role for a user on a project ----------------------------------------------------------------

  const grantPath = '/v3/projects/:projectId/users/:userId/roles/:roleId';
  async function grantTarget(request: FastifyRequest, rule: Parameters<typeof enforceIdentity>[1]) {
    const { projectId, userId, roleId } = byIdParams(request);
    enforceIdentity(ctxOf(request), rule);
    await projectById(projectId);
    await userById(userId);
    await roleById(roleId);
    const assigned = await keystone.listRoleAssignments({ userId, projectId, roleId });
    return { projectId, userId, roleId, assigned: assigned.length > 0 };
  }

  app.put(grantPath, authenticated, async (request, reply) => {
    const t = await grantTarget(request, 'identity:create_grant');
    await keystone.assignRole({ user: t.userId, project: t.projectId, role: t.roleId });
    return reply.code(204).send();
  });

  app.get(grantPath, { ...authenticated, exposeHeadRoute: false }, async (request, reply) => {
    const t = await grantTarget(request, 'identity:check_grant');
    if (!t.assigned) throw new ApiError(404, `Could not find role assignment.`, 'NotFound');
    return reply.code(204).send();
  });

  app.head(grantPath, authenticated, async (request, reply) => {
    const t = await grantTarget(request, 'identity:check_grant');
    if (!t.assigned) throw new ApiError(404, `Could not find role assignment.`, 'NotFound');
    return reply.code(204).send();
  });

  app.delete(grantPath, authenticated, async (request, reply) => {
    const t = await grantTarget(request, 'identity:revoke_grant');
    if (!t.assigned) throw new ApiError(404, `Could not find role assignment.`, 'NotFound');
    await keystone.unassignRole({ user: t.userId, project: t.projectId, role: t.roleId });
    return reply.code(204).send();
  });

  app.get('/v3/projects/:projectId/users/:userId/roles', authenticated, async (request) => {
    const { projectId, userId } = byIdParams(request);
    enforceIdentity(ctxOf(request), 'identity:list_grants');
    await projectById(projectId);
    await userById(userId);
    const assigned = await keystone.listRoleAssignments({ userId, projectId });
    return {
      roles: assigned.map((a) => roleView(deps, { id: a.roleId, name: a.roleName })),
      links: collectionLinks(deps, `/projects/${projectId}/users/${userId}/roles`),
    };
  });

  // ---- the role assignments report ---------------------------------------------------------------------------

  app.get('/v3/role_assignments', authenticated, async (request) => {
    enforceIdentity(ctxOf(request), 'identity:list_role_assignments');
    const userId = queryParam(request, 'user.id');
    const projectId = queryParam(request, 'scope.project.id');
    const roleId = queryParam(request, 'role.id');
    const includeNames = boolParam(request, 'include_names') === true;
    // Only project grants to users exist here: a filter on groups, domains or the system matches nothing.
    const query = request.query as Record<string, unknown>;
    const elsewhere = ['group.id', 'scope.domain.id', 'scope.system'].some((k) => query[k] !== undefined);
    const assignments = elsewhere
      ? []
      : await keystone.listRoleAssignments({
          ...(userId ? { userId } : {}),
          ...(projectId ? { projectId } : {}),
          ...(roleId ? { roleId } : {}),
        });
    const names = includeNames ? await nameLookup() : undefined;
    return {
      role_assignments: assignments.map((a) => assignmentView(a, names)),
      links: collectionLinks(deps, '/role_assignments'),
    };
  });

  async function nameLookup() {
    const [users, projects, domains] = await Promise.all([
      keystone.listUsers(),
      keystone.listProjects(),
      keystone.listDomains(),
    ]);
    const domain = (id: string) => ({ id, name: domains.find((d) => d.id === id)?.name ?? id });
    return {
      user: (id: string) => {
        const u = users.find((x) => x.id === id);
        return u ? { name: u.name, domain: domain(u.domainId) } : {};
      },
      project: (id: string) => {
        const p = projects.find((x) => x.id === id);
        return p ? { name: p.name, domain: domain(p.domainId) } : {};
      },
    };
  }

  function assignmentView(a: RoleAssignment, names: Awaited<ReturnType<typeof nameLookup>> | undefined) {
    return {
      role: { id: a.roleId, ...(names ? { name: a.roleName } : {}) },
      user: { id: a.userId, ...(names ? names.user(a.userId) : {}) },
      scope: { project: { id: a.projectId, ...(names ? names.project(a.projectId) : {}) } },
      links: {
        assignment: v3Url(deps, `/projects/${a.projectId}/users/${a.userId}/roles/${a.roleId}`),
      },
    };
  }
}
