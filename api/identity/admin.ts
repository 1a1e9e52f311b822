/**
 * Keystone's administration: projects, users, roles, domains, grants (role assignments on a project) and
 * the role_assignments report, with Keystone's default policies (admin for everything that writes; a user
 * may see itself and the projects it has a role on).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { isCloudError } from '../../cloud/errors';
import type { Project, Role, TokenContext } from '../../cloud/keystone';
import { unauthorized } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import {
  boolParam,
  callerOf,
  enforceIdentity,
  enforceSystemReader,
  forbiddenAction,
  isAdmin,
  parseBody,
  queryParam,
  requireIdentityAuth,
} from './common';
import { byIdParams, lookups, notFound } from './lookups';
import {
  collectionLinks,
  domainProjectView,
  domainView,
  projectView,
  roleView,
  userView,
  v3Url,
} from './views';

// Keystone's resource schemas allow extra properties (additionalProperties: true): they are stored in the
// resource's `extra` and answered back (a user's description and default_project_id among them).
const extraValue = z.json();
const projectFields = {
  name: z.string().min(1).max(64),
  domain_id: z.string().min(1).max(64).nullable().optional(),
  description: z.string().max(4096).nullable().optional(),
  enabled: z.boolean().optional(),
  is_domain: z.boolean().optional(),
  parent_id: z.string().max(64).nullable().optional(),
  tags: z.array(z.string()).optional(),
  options: z.strictObject({}).optional(),
};
const projectCreate = z.strictObject({ project: z.object(projectFields).catchall(extraValue) });
// Keystone's project_update: at least one property; domain, is_domain and parent_id may not change.
const projectUpdate = z.strictObject({
  project: z
    .object({ ...projectFields, name: projectFields.name.optional() })
    .catchall(extraValue)
    .refine((p) => Object.keys(p).length > 0, 'at least one property is required'),
});

const userFields = {
  name: z.string().min(1).max(255),
  domain_id: z.string().min(1).max(64).optional(),
  password: z.string().min(1).max(4096),
  email: z.string().max(255).nullable().optional(),
  enabled: z.boolean().optional(),
  default_project_id: z.string().max(64).nullable().optional(),
  description: z.string().max(4096).nullable().optional(),
  options: z.strictObject({}).optional(),
};
const userCreate = z.strictObject({ user: z.object(userFields).catchall(extraValue) });
const userUpdate = z.strictObject({
  user: z
    .object({ ...userFields, name: userFields.name.optional(), password: userFields.password.optional() })
    .catchall(extraValue)
    .refine((u) => Object.keys(u).length > 0, 'at least one property is required'),
});
const passwordChange = z.strictObject({
  user: z.strictObject({ password: z.string().min(1).max(4096), original_password: z.string().max(4096) }),
});

const domainFields = {
  name: z.string().min(1).max(64),
  description: z.string().max(4096).nullable().optional(),
  enabled: z.boolean().optional(),
  tags: z.array(z.string()).max(0, 'domain tags are not supported').optional(),
  options: z.strictObject({}).optional(),
};
const domainCreate = z.strictObject({ domain: z.strictObject(domainFields) });
const domainUpdate = z.strictObject({
  domain: z
    .strictObject({ ...domainFields, name: domainFields.name.optional() })
    .refine((d) => Object.keys(d).length > 0, 'at least one property is required'),
});

/** What a body carries beyond the named fields: Keystone's extra attributes. */
function extrasOf(
  body: Record<string, unknown>,
  named: readonly string[],
): Record<string, z.core.util.JSONType> {
  return Object.fromEntries(Object.entries(body).filter(([k]) => !named.includes(k))) as Record<
    string,
    z.core.util.JSONType
  >;
}
const PROJECT_COLUMNS = [
  'name',
  'domain_id',
  'description',
  'enabled',
  'is_domain',
  'parent_id',
  'tags',
  'options',
];
const USER_COLUMNS = ['name', 'domain_id', 'password', 'email', 'enabled', 'options'];

const roleCreate = z.strictObject({
  role: z.strictObject({
    name: z.string().min(1).max(255),
    domain_id: z.string().min(1).max(64).nullable().optional(),
    options: z.strictObject({}).optional(),
  }),
});
const roleUpdate = z.strictObject({
  role: z.strictObject({
    name: z.string().min(1).max(255).optional(),
    domain_id: z.string().min(1).max(64).nullable().optional(),
    options: z.strictObject({}).optional(),
  }),
});

/** Keystone's tag filters on a project list: tags (all of), tags-any, not-tags (not all of), not-tags-any. */
function tagFilter(request: FastifyRequest): (tags: readonly string[]) => boolean {
  const list = (name: string) => queryParam(request, name)?.split(',');
  const [all, any, notAll, notAny] = [list('tags'), list('tags-any'), list('not-tags'), list('not-tags-any')];
  return (tags) =>
    (!all || all.every((t) => tags.includes(t))) &&
    (!any || any.some((t) => tags.includes(t))) &&
    (!notAll || !notAll.every((t) => tags.includes(t))) &&
    (!notAny || !notAny.some((t) => tags.includes(t)));
}

export async function adminRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const keystone = deps.cloud.keystone;
  const authenticated = { preHandler: requireIdentityAuth(deps) };
  const ctxOf = callerOf;
  /** Keystone's default domain for a create: the token's domain, or its project's. */
  const scopeDomainOf = (caller: TokenContext): string | undefined =>
    caller.domain?.id ?? caller.project?.domainId;

  const { projectById, userById, roleById, domainById, grantedRoles } = lookups(keystone);

  /** A domain answering for a project id (Keystone's projects acting as domains); undefined when none. */
  const domainAsProject = async (id: string) => {
    try {
      const d = await keystone.getDomain(id);
      return d.id === id ? d : undefined;
    } catch (err) {
      if (isCloudError(err, 'NotFound') || isCloudError(err, 'BadRequest')) return undefined;
      throw err;
    }
  };
  /** A create's parent_id: a project, or a domain (then the project is top-level in it). */
  const parentOf = async (id: string): Promise<{ domainId: string }> => {
    const domain = await domainAsProject(id);
    if (domain) return { domainId: domain.id };
    try {
      return await keystone.getProject({ project: id });
    } catch (err) {
      if (isCloudError(err, 'NotFound'))
        throw new ApiError(400, `Could not find project: ${id}.`, 'ValidationError');
      throw err;
    }
  };

  // ---- projects --------------------------------------------------------------------------------------------

  app.get('/v3/projects', authenticated, async (request) => {
    const caller = ctxOf(request);
    // Keystone's list_projects: a domain-scoped token sees its domain's projects only (even an admin's).
    const tokenDomain = caller.domain?.id;
    enforceIdentity(caller, 'identity:list_projects', tokenDomain ? { domainId: tokenDomain } : {});
    const name = queryParam(request, 'name');
    const domainId = queryParam(request, 'domain_id');
    const enabled = boolParam(request, 'enabled');
    const links = collectionLinks(deps, '/projects');
    // Keystone lists projects acting as domains (here: the domains) only when asked with is_domain=true.
    if (boolParam(request, 'is_domain') === true) {
      const domains = (await keystone.listDomains()).filter(
        (d) =>
          (name === undefined || d.name === name) &&
          (tokenDomain === undefined || d.id === tokenDomain) &&
          (enabled === undefined || d.enabled === enabled) &&
          domainId === undefined,
      );
      return { projects: domains.map((d) => domainProjectView(deps, d)), links };
    }
    const parentId = queryParam(request, 'parent_id');
    const tagged = tagFilter(request);
    const projects = (await keystone.listProjects()).filter(
      (p) =>
        (name === undefined || p.name === name) &&
        (domainId === undefined || p.domainId === domainId) &&
        (parentId === undefined || (p.parentId ?? p.domainId) === parentId) &&
        (tokenDomain === undefined || p.domainId === tokenDomain) &&
        (enabled === undefined || p.enabled === enabled) &&
        tagged(p.tags),
    );
    return { projects: projects.map((p) => projectView(deps, p)), links };
  });

  app.post('/v3/projects', authenticated, async (request, reply) => {
    const ctx = ctxOf(request);
    enforceIdentity(ctx, 'identity:create_project');
    const { project: body } = parseBody(projectCreate, request.body);
    // A project acting as a domain is a domain: bootflow keeps it in the domains table (README).
    if (body.is_domain) {
      if (body.parent_id || body.domain_id)
        throw new ApiError(
          400,
          'A project acting as a domain has no parent and no domain.',
          'ValidationError',
        );
      const domain = await keystone.createDomain({
        name: body.name,
        ...(body.description ? { description: body.description } : {}),
        ...(body.enabled !== undefined ? { enabled: body.enabled } : {}),
      });
      return reply.code(201).send({ project: domainProjectView(deps, domain) });
    }
    // Without a domain, Keystone creates the project in its parent's domain, else the token's scope's.
    const parent = body.parent_id ? await parentOf(body.parent_id) : undefined;
    const domainId = body.domain_id ?? parent?.domainId ?? scopeDomainOf(ctx);
    if (!domainId) throw new ApiError(400, 'Expecting to find domain_id in project.', 'ValidationError');
    await domainById(domainId);
    const project = await keystone.createProject({
      name: body.name,
      domainId,
      ...(body.parent_id ? { parentId: body.parent_id } : {}),
      ...(body.tags ? { tags: body.tags } : {}),
      ...(body.description ? { description: body.description } : {}),
      ...(body.enabled !== undefined ? { enabled: body.enabled } : {}),
      extra: extrasOf(body, PROJECT_COLUMNS),
    });
    return reply.code(201).send({ project: projectView(deps, project) });
  });

  app.patch('/v3/projects/:projectId', authenticated, async (request) => {
    const { projectId } = byIdParams(request);
    enforceIdentity(ctxOf(request), 'identity:update_project');
    const { project: body } = parseBody(projectUpdate, request.body);
    const asDomain = await domainAsProject(projectId);
    if (asDomain) {
      const domain = await keystone.updateDomain({
        id: projectId,
        ...(body.name !== undefined ? { name: body.name } : {}),
        ...(body.description !== undefined ? { description: body.description } : {}),
        ...(body.enabled !== undefined ? { enabled: body.enabled } : {}),
      });
      return { project: domainProjectView(deps, domain) };
    }
    const current = await projectById(projectId);
    // Keystone's update_project: the domain and the place in the hierarchy are fixed at create.
    if (body.domain_id !== undefined && body.domain_id !== current.domainId)
      throw new ApiError(400, 'Update of `domain_id` is not allowed.', 'ValidationError');
    if (body.parent_id !== undefined && body.parent_id !== (current.parentId ?? current.domainId))
      throw new ApiError(403, 'Update of `parent_id` is not allowed.', 'Forbidden');
    if (body.is_domain !== undefined && body.is_domain)
      throw new ApiError(400, 'Update of `is_domain` is not allowed.', 'ValidationError');
    const project = await keystone.updateProject({
      id: projectId,
      ...(body.tags !== undefined ? { tags: body.tags } : {}),
      ...(body.name !== undefined ? { name: body.name } : {}),
      ...(body.description !== undefined ? { description: body.description } : {}),
      ...(body.enabled !== undefined ? { enabled: body.enabled } : {}),
      extra: extrasOf(body, PROJECT_COLUMNS),
    });
    return { project: projectView(deps, project) };
  });

  app.get('/v3/projects/:projectId', authenticated, async (request) => {
    const { projectId } = byIdParams(request);
    const caller = ctxOf(request);
    // A project in the caller's own scope is checked before the lookup, so that nothing leaks to others.
    if (!isAdmin(caller) && caller.project?.id !== projectId && !caller.domain)
      throw forbiddenAction('identity:get_project');
    const asDomain = isAdmin(caller) ? await domainAsProject(projectId) : undefined;
    if (asDomain) return { project: domainProjectView(deps, asDomain) };
    const project = await projectById(projectId);
    enforceIdentity(caller, 'identity:get_project', { projectId, domainId: project.domainId });
    const view = (p: Project) => ({ project: projectView(deps, p) });
    const parentsAsList = boolParam(request, 'parents_as_list') === true;
    const subtreeAsList = boolParam(request, 'subtree_as_list') === true;
    if (!parentsAsList && !subtreeAsList) return { project: projectView(deps, project) };
    const family = await keystone.projectFamily(projectId);
    return {
      project: {
        ...projectView(deps, project),
        ...(parentsAsList ? { parents: family.parents.map(view) } : {}),
        ...(subtreeAsList ? { subtree: family.subtree.map(view) } : {}),
      },
    };
  });

  app.delete('/v3/projects/:projectId', authenticated, async (request, reply) => {
    const { projectId } = byIdParams(request);
    enforceIdentity(ctxOf(request), 'identity:delete_project');
    if (await domainAsProject(projectId)) await keystone.deleteDomain(projectId);
    else {
      await projectById(projectId);
      await keystone.deleteProject(projectId);
    }
    return reply.code(204).send();
  });

  // ---- project tags (Keystone's /v3/projects/{id}/tags) -------------------------------------------------------

  const tagsPath = '/v3/projects/:projectId/tags';
  const tagsBody = (projectId: string, tags: string[]) => ({
    links: { self: v3Url(deps, `/projects/${projectId}/tags`) },
    tags,
  });
  /** The project and the caller's right to act on its tags. */
  const tagTarget = async (request: FastifyRequest, rule: Parameters<typeof enforceIdentity>[1]) => {
    const { projectId } = byIdParams(request);
    const caller = ctxOf(request);
    if (!isAdmin(caller) && caller.project?.id !== projectId && !caller.domain) throw forbiddenAction(rule);
    const project = await projectById(projectId);
    enforceIdentity(caller, rule, { projectId, domainId: project.domainId });
    return project;
  };
  // The router has already decoded the path: decoding again turned a tag '100%' into a 500.
  const tagParam = (request: FastifyRequest) => byIdParams(request).tag ?? '';

  app.get(tagsPath, authenticated, async (request) => {
    const project = await tagTarget(request, 'identity:list_project_tags');
    return tagsBody(project.id, project.tags);
  });
  app.put(tagsPath, authenticated, async (request) => {
    const project = await tagTarget(request, 'identity:update_project_tags');
    const { tags } = parseBody(z.strictObject({ tags: z.array(z.string()) }), request.body);
    const updated = await keystone.updateProject({ id: project.id, tags });
    return tagsBody(updated.id, updated.tags);
  });
  app.delete(tagsPath, authenticated, async (request, reply) => {
    const project = await tagTarget(request, 'identity:delete_project_tags');
    await keystone.updateProject({ id: project.id, tags: [] });
    return reply.code(204).send();
  });
  app.get(`${tagsPath}/:tag`, authenticated, async (request, reply) => {
    const project = await tagTarget(request, 'identity:get_project_tag');
    const tag = tagParam(request);
    if (!project.tags.includes(tag)) throw notFound('project tag', tag);
    return reply.code(204).send();
  });
  app.put(`${tagsPath}/:tag`, authenticated, async (request, reply) => {
    const project = await tagTarget(request, 'identity:create_project_tag');
    const tag = tagParam(request);
    await keystone.addProjectTag(project.id, tag);
    return reply
      .code(201)
      .header('location', v3Url(deps, `/projects/${project.id}/tags/${encodeURIComponent(tag)}`))
      .send('');
  });
  app.delete(`${tagsPath}/:tag`, authenticated, async (request, reply) => {
    const project = await tagTarget(request, 'identity:delete_project_tag');
    const tag = tagParam(request);
    await keystone.removeProjectTag(project.id, tag);
    return reply.code(204).send();
  });

  // ---- users -----------------------------------------------------------------------------------------------

  /** Keystone's list_user_projects: admin, or the user itself. */
  const enforceSelfOrAdmin = (ctx: TokenContext, userId: string, action: string) => {
    if (!isAdmin(ctx) && ctx.userId !== userId) throw forbiddenAction(action);
  };

  app.get('/v3/users', authenticated, async (request) => {
    const caller = ctxOf(request);
    // As for projects: a domain-scoped token lists its domain's users only.
    const tokenDomain = caller.domain?.id;
    enforceIdentity(caller, 'identity:list_users', tokenDomain ? { domainId: tokenDomain } : {});
    const name = queryParam(request, 'name');
    const domainId = queryParam(request, 'domain_id');
    const enabled = boolParam(request, 'enabled');
    const users = (await keystone.listUsers()).filter(
      (u) =>
        (name === undefined || u.name === name) &&
        (domainId === undefined || u.domainId === domainId) &&
        (tokenDomain === undefined || u.domainId === tokenDomain) &&
        (enabled === undefined || u.enabled === enabled),
    );
    return { users: users.map((u) => userView(deps, u)), links: collectionLinks(deps, '/users') };
  });

  app.post('/v3/users', authenticated, async (request, reply) => {
    const ctx = ctxOf(request);
    enforceIdentity(ctx, 'identity:create_user');
    const { user: body } = parseBody(userCreate, request.body);
    const domainId = body.domain_id ?? scopeDomainOf(ctx);
    if (!domainId) throw new ApiError(400, 'Expecting to find domain_id in user.', 'ValidationError');
    await domainById(domainId);
    const user = await keystone.createUser({
      name: body.name,
      domainId,
      password: body.password,
      ...(body.email ? { email: body.email } : {}),
      ...(body.enabled !== undefined ? { enabled: body.enabled } : {}),
      extra: extrasOf(body, USER_COLUMNS),
    });
    return reply.code(201).send({ user: userView(deps, user) });
  });

  app.patch('/v3/users/:userId', authenticated, async (request) => {
    const { userId } = byIdParams(request);
    enforceIdentity(ctxOf(request), 'identity:update_user');
    const { user: body } = parseBody(userUpdate, request.body);
    const current = await userById(userId);
    if (body.domain_id !== undefined && body.domain_id !== current.domainId)
      throw new ApiError(400, 'Cannot change Domain ID', 'ValidationError');
    const user = await keystone.updateUser({
      id: userId,
      ...(body.name !== undefined ? { name: body.name } : {}),
      ...(body.password !== undefined ? { password: body.password } : {}),
      ...(body.email !== undefined ? { email: body.email } : {}),
      ...(body.enabled !== undefined ? { enabled: body.enabled } : {}),
      extra: extrasOf(body, USER_COLUMNS),
    });
    return { user: userView(deps, user) };
  });

  // Keystone's self-service password change: no policy, the original password is the proof (a wrong one
  // is the 401 of a failed login), so it also works for a user whose token cannot be had.
  app.post('/v3/users/:userId/password', async (request, reply) => {
    const { userId } = byIdParams(request);
    const { user: body } = parseBody(passwordChange, request.body);
    try {
      await keystone.changePassword({
        id: userId,
        originalPassword: body.original_password,
        password: body.password,
      });
    } catch (err) {
      if (isCloudError(err, 'Unauthorized') || isCloudError(err, 'BadRequest')) throw unauthorized(deps);
      throw err;
    }
    return reply.code(204).send();
  });

  app.get('/v3/users/:userId', authenticated, async (request) => {
    const { userId } = byIdParams(request);
    const caller = ctxOf(request);
    // Keystone's get_user: admin, a reader of the user's domain (domain-scoped), or the user itself.
    if (caller.userId !== userId) {
      if (!isAdmin(caller) && !caller.domain) throw forbiddenAction('identity:get_user');
      const user = await userById(userId);
      enforceIdentity(caller, 'identity:get_user', { domainId: user.domainId });
      return { user: userView(deps, user) };
    }
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
    const ids = new Set((await keystone.scopesOfUser(userId)).projectIds);
    const projects = (await keystone.listProjects()).filter((p) => ids.has(p.id));
    return {
      projects: projects.map((p) => projectView(deps, p)),
      links: collectionLinks(deps, `/users/${userId}/projects`),
    };
  });

  // ---- roles and domains -----------------------------------------------------------------------------------

  // Keystone's roles API: a role with a domain_id is domain-specific (its own *_domain_role policies; only
  // listed with ?domain_id, its name unique in its domain only).
  app.get('/v3/roles', authenticated, async (request) => {
    const name = queryParam(request, 'name');
    const domainId = queryParam(request, 'domain_id');
    if (domainId !== undefined) enforceSystemReader(ctxOf(request), 'identity:list_domain_roles');
    else enforceIdentity(ctxOf(request), 'identity:list_roles');
    const roles = (await keystone.listRoles(domainId !== undefined ? { domainId } : {})).filter(
      (r) => name === undefined || r.name === name,
    );
    return { roles: roles.map((r) => roleView(deps, r)), links: collectionLinks(deps, '/roles') };
  });

  app.post('/v3/roles', authenticated, async (request, reply) => {
    // Keystone enforces before validating, choosing the rule by the body's domain_id.
    const raw = z.object({ role: z.object({ domain_id: z.unknown() }) }).safeParse(request.body);
    const domainRole =
      raw.success && raw.data.role.domain_id !== undefined && raw.data.role.domain_id !== null;
    enforceIdentity(ctxOf(request), domainRole ? 'identity:create_domain_role' : 'identity:create_role');
    const { role: body } = parseBody(roleCreate, request.body);
    const domainId = body.domain_id ?? undefined;
    if (domainId) await domainById(domainId);
    const role = await keystone.createRole({ name: body.name, ...(domainId ? { domainId } : {}) });
    return reply.code(201).send({ role: roleView(deps, role) });
  });

  /** The role of the path once the caller may act on it (a missing role: the global rule, then 404). */
  async function roleFor(request: FastifyRequest, action: 'get' | 'update' | 'delete') {
    const { roleId } = byIdParams(request);
    const caller = ctxOf(request);
    let role: Role;
    try {
      role = await roleById(roleId);
    } catch (err) {
      enforceIdentity(caller, `identity:${action}_role`);
      throw err;
    }
    if (role.domainId === null) enforceIdentity(caller, `identity:${action}_role`);
    else if (action === 'get') enforceSystemReader(caller, 'identity:get_domain_role');
    else enforceIdentity(caller, `identity:${action}_domain_role`);
    return role;
  }

  app.get('/v3/roles/:roleId', authenticated, async (request) => ({
    role: roleView(deps, await roleFor(request, 'get')),
  }));

  app.patch('/v3/roles/:roleId', authenticated, async (request) => {
    const current = await roleFor(request, 'update');
    const { role: body } = parseBody(roleUpdate, request.body);
    if (body.domain_id !== undefined && body.domain_id !== current.domainId)
      throw new ApiError(400, 'Update of `domain_id` is not allowed.', 'ValidationError');
    const role = await keystone.updateRole({
      id: current.id,
      ...(body.name !== undefined ? { name: body.name } : {}),
    });
    return { role: roleView(deps, role) };
  });

  app.delete('/v3/roles/:roleId', authenticated, async (request, reply) => {
    const role = await roleFor(request, 'delete');
    await keystone.deleteRole(role.id);
    return reply.code(204).send();
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

  app.post('/v3/domains', authenticated, async (request, reply) => {
    enforceIdentity(ctxOf(request), 'identity:create_domain');
    const { domain: body } = parseBody(domainCreate, request.body);
    const domain = await keystone.createDomain({
      name: body.name,
      ...(body.description !== undefined ? { description: body.description } : {}),
      ...(body.enabled !== undefined ? { enabled: body.enabled } : {}),
    });
    return reply.code(201).send({ domain: domainView(deps, domain) });
  });

  app.patch('/v3/domains/:domainId', authenticated, async (request) => {
    const { domainId } = byIdParams(request);
    enforceIdentity(ctxOf(request), 'identity:update_domain');
    const { domain: body } = parseBody(domainUpdate, request.body);
    await domainById(domainId);
    const domain = await keystone.updateDomain({
      id: domainId,
      ...(body.name !== undefined ? { name: body.name } : {}),
      ...(body.description !== undefined ? { description: body.description } : {}),
      ...(body.enabled !== undefined ? { enabled: body.enabled } : {}),
    });
    return { domain: domainView(deps, domain) };
  });

  app.delete('/v3/domains/:domainId', authenticated, async (request, reply) => {
    const { domainId } = byIdParams(request);
    enforceIdentity(ctxOf(request), 'identity:delete_domain');
    await domainById(domainId);
    await keystone.deleteDomain(domainId);
    return reply.code(204).send();
  });

  app.get('/v3/domains/:domainId', authenticated, async (request) => {
    const { domainId } = byIdParams(request);
    const ctx = ctxOf(request);
    // Keystone's identity:get_domain: admin, or a token scoped to that domain or to a project in it.
    if (!isAdmin(ctx) && ctx.domain?.id !== domainId && ctx.project?.domainId !== domainId)
      throw forbiddenAction('identity:get_domain');
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
      roles: (await grantedRoles(assigned)).map((r) => roleView(deps, r)),
      links: collectionLinks(deps, `/projects/${projectId}/users/${userId}/roles`),
    };
  });

  // ---- grants: a role for a user on a domain (for domain-scoped tokens) -------------------------------------

  const domainGrantPath = '/v3/domains/:domainId/users/:userId/roles/:roleId';
  async function domainGrantTarget(request: FastifyRequest, rule: Parameters<typeof enforceIdentity>[1]) {
    const { domainId, userId, roleId } = byIdParams(request);
    enforceIdentity(ctxOf(request), rule, { domainId });
    await domainById(domainId);
    await userById(userId);
    await roleById(roleId);
    const assigned = await keystone.listDomainRoleAssignments({ userId, domainId, roleId });
    return { domainId, userId, roleId, assigned: assigned.length > 0 };
  }
  const noDomainGrant = () => new ApiError(404, `Could not find role assignment.`, 'NotFound');

  app.put(domainGrantPath, authenticated, async (request, reply) => {
    const t = await domainGrantTarget(request, 'identity:create_grant');
    await keystone.assignDomainRole({ userId: t.userId, domainId: t.domainId, roleId: t.roleId });
    return reply.code(204).send();
  });

  app.get(domainGrantPath, { ...authenticated, exposeHeadRoute: false }, async (request, reply) => {
    if (!(await domainGrantTarget(request, 'identity:check_grant')).assigned) throw noDomainGrant();
    return reply.code(204).send();
  });

  app.head(domainGrantPath, authenticated, async (request, reply) => {
    if (!(await domainGrantTarget(request, 'identity:check_grant')).assigned) throw noDomainGrant();
    return reply.code(204).send();
  });

  app.delete(domainGrantPath, authenticated, async (request, reply) => {
    const t = await domainGrantTarget(request, 'identity:revoke_grant');
    if (!t.assigned) throw noDomainGrant();
    await keystone.unassignDomainRole({ userId: t.userId, domainId: t.domainId, roleId: t.roleId });
    return reply.code(204).send();
  });

  app.get('/v3/domains/:domainId/users/:userId/roles', authenticated, async (request) => {
    const { domainId, userId } = byIdParams(request);
    enforceIdentity(ctxOf(request), 'identity:list_grants', { domainId });
    await domainById(domainId);
    await userById(userId);
    const assigned = await keystone.listDomainRoleAssignments({ userId, domainId });
    return {
      roles: (await grantedRoles(assigned)).map((r) => roleView(deps, r)),
      links: collectionLinks(deps, `/domains/${domainId}/users/${userId}/roles`),
    };
  });

  // ---- grants: a role for a user on the system (stored and reported; bootflow issues no system tokens) -----

  const systemGrantPath = '/v3/system/users/:userId/roles/:roleId';
  async function systemGrantTarget(request: FastifyRequest, rule: Parameters<typeof enforceIdentity>[1]) {
    const { userId, roleId } = byIdParams(request);
    enforceIdentity(ctxOf(request), rule);
    await userById(userId);
    await roleById(roleId);
    const assigned = await keystone.listSystemRoleAssignments({ userId, roleId });
    return { userId, roleId, assigned: assigned.length > 0 };
  }
  const noSystemGrant = () => new ApiError(404, `Could not find role assignment.`, 'NotFound');

  app.put(systemGrantPath, authenticated, async (request, reply) => {
    const t = await systemGrantTarget(request, 'identity:create_system_grant_for_user');
    await keystone.assignSystemRole({ userId: t.userId, roleId: t.roleId });
    return reply.code(204).send();
  });

  app.get(systemGrantPath, { ...authenticated, exposeHeadRoute: false }, async (request, reply) => {
    if (!(await systemGrantTarget(request, 'identity:check_system_grant_for_user')).assigned)
      throw noSystemGrant();
    return reply.code(204).send();
  });

  app.head(systemGrantPath, authenticated, async (request, reply) => {
    if (!(await systemGrantTarget(request, 'identity:check_system_grant_for_user')).assigned)
      throw noSystemGrant();
    return reply.code(204).send();
  });

  app.delete(systemGrantPath, authenticated, async (request, reply) => {
    const t = await systemGrantTarget(request, 'identity:revoke_system_grant_for_user');
    if (!t.assigned) throw noSystemGrant();
    await keystone.unassignSystemRole({ userId: t.userId, roleId: t.roleId });
    return reply.code(204).send();
  });

  app.get('/v3/system/users/:userId/roles', authenticated, async (request) => {
    const { userId } = byIdParams(request);
    enforceIdentity(ctxOf(request), 'identity:list_system_grants_for_user');
    await userById(userId);
    const assigned = await keystone.listSystemRoleAssignments({ userId });
    return {
      roles: (await grantedRoles(assigned)).map((r) => roleView(deps, r)),
      links: collectionLinks(deps, `/system/users/${userId}/roles`),
    };
  });
}
