/**
 * Keystone's GET /v3/role_assignments: the grants to users and groups on projects, domains and the
 * system, filtered by `user.id`, `group.id`, `scope.project.id`, `scope.domain.id`, `scope.system` and
 * `role.id`, with `include_names`; `effective` answers what users hold: each group grant becomes one
 * assignment per member (with Keystone's `membership` link), a `user.id` filter then sees the grants of
 * the user's groups too, and each assignment is followed by the roles its role implies (`prior_role`);
 * OS-INHERIT grants are listed with `OS-INHERIT:inherited_to` (filter `scope.OS-INHERIT:inherited_to`), or
 * (effective) on each project below their target. Admin only (Keystone's default).
 */
import type { FastifyInstance } from 'fastify';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { boolParam, callerOf, enforceIdentity, queryParam, requireIdentityAuth } from './common';
import { collectionLinks, v3Url } from './views';

type Scope = { project: string } | { domain: string } | 'system';
type Actor = { user: string } | { group: string };

interface Row {
  role: { id: string; name: string };
  actor: Actor;
  scope: Scope;
  /** The grant's own URL. */
  assignment: string;
  /** For a group grant expanded to a member (effective): the membership's URL. */
  membership?: string;
  /** For a role implied by the assigned one (effective): the role implying it. */
  priorRole?: string;
  /** An OS-INHERIT grant (not effective): `scope["OS-INHERIT:inherited_to"]: "projects"`. */
  inherited?: true;
}

const scopePath = (scope: Scope) =>
  scope === 'system'
    ? '/system'
    : 'project' in scope
      ? `/projects/${scope.project}`
      : `/domains/${scope.domain}`;
const actorPath = (actor: Actor) => ('user' in actor ? `/users/${actor.user}` : `/groups/${actor.group}`);

export async function roleAssignmentRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const keystone = deps.cloud.keystone;
  const authenticated = { preHandler: requireIdentityAuth(deps) };
  const row = (role: Row['role'], actor: Actor, scope: Scope): Row => ({
    role,
    actor,
    scope,
    assignment: v3Url(deps, `${scopePath(scope)}${actorPath(actor)}/roles/${role.id}`),
  });

  /**
   * Every grant to a user or a group, as rows; OS-INHERIT grants as themselves, or (effective) once on each
   * project below their target.
   */
  async function allGrants(roleId: string | undefined, effective: boolean): Promise<Row[]> {
    const byRole = roleId !== undefined ? { roleId } : {};
    const [projects, domains, system, groups, inherited, roles] = await Promise.all([
      keystone.listRoleAssignments(byRole),
      keystone.listDomainRoleAssignments(byRole),
      keystone.listSystemRoleAssignments(byRole),
      keystone.listGroupRoleAssignments(byRole),
      keystone.listInheritedGrants(),
      keystone.listAllRoles(),
    ]);
    const inheritedRows: Row[] = [];
    for (const g of inherited) {
      const role = roles.find((r) => r.id === g.roleId);
      if (!role || (roleId !== undefined && role.id !== roleId)) continue;
      const actor: Actor = 'user' in g.actor ? { user: g.actor.user } : { group: g.actor.group };
      const target = 'domain' in g.target ? `/domains/${g.target.domain}` : `/projects/${g.target.project}`;
      const assignment = v3Url(
        deps,
        `/OS-INHERIT${target}${actorPath(actor)}/roles/${role.id}/inherited_to_projects`,
      );
      if (!effective) {
        const scope = 'domain' in g.target ? { domain: g.target.domain } : { project: g.target.project };
        inheritedRows.push({ role, actor, scope, assignment, inherited: true });
        continue;
      }
      for (const project of await keystone.projectsBelow(g.target))
        inheritedRows.push({ role, actor, scope: { project }, assignment });
    }
    const role = (a: { roleId: string; roleName: string }) => ({ id: a.roleId, name: a.roleName });
    return [
      ...projects.map((a) => row(role(a), { user: a.userId }, { project: a.projectId })),
      ...domains.map((a) => row(role(a), { user: a.userId }, { domain: a.domainId })),
      ...system.map((a) => row(role(a), { user: a.userId }, 'system')),
      ...groups.map((a) =>
        row(
          role(a),
          { group: a.groupId },
          a.system
            ? 'system'
            : a.projectId !== undefined
              ? { project: a.projectId }
              : { domain: a.domainId ?? '' },
        ),
      ),
      ...inheritedRows,
    ];
  }

  /**
   * Keystone's effective mode keeps the roles a token carries: a domain-specific role only brings the roles it
   * implies (its _strip_domain_roles).
   */
  async function stripDomainRoles(rows: Row[]): Promise<Row[]> {
    const domainRoles = new Set(
      (await keystone.listAllRoles()).filter((r) => r.domainId !== null).map((r) => r.id),
    );
    return rows.filter((r) => !domainRoles.has(r.role.id));
  }

  /** Keystone's effective mode: group grants become their members' (a group without members: nothing). */
  async function expandGroups(rows: Row[]): Promise<Row[]> {
    const groupIds = [...new Set(rows.flatMap((r) => ('group' in r.actor ? [r.actor.group] : [])))];
    const members = await keystone.groupMembers(groupIds);
    return rows.flatMap((r) => {
      if (!('group' in r.actor)) return [r];
      const group = r.actor.group;
      return (members.get(group) ?? []).map((user) => ({
        ...r,
        actor: { user },
        membership: v3Url(deps, `/groups/${group}/users/${user}`),
      }));
    });
  }

  /** Keystone's effective mode: each assignment also stands for the roles its role implies, transitively. */
  async function expandImplied(rows: Row[]): Promise<Row[]> {
    const implies = new Map<string, Array<{ id: string; name: string }>>();
    for (const r of await keystone.listImpliedRoles())
      implies.set(r.prior.id, [...(implies.get(r.prior.id) ?? []), r.implied]);
    return rows.flatMap((r) => {
      const out = [r];
      const seen = new Set([r.role.id]);
      for (let i = 0; i < out.length; i++) {
        const from = out[i];
        if (!from) continue;
        for (const role of implies.get(from.role.id) ?? []) {
          if (seen.has(role.id)) continue;
          seen.add(role.id);
          out.push({ ...r, role, priorRole: v3Url(deps, `/roles/${from.role.id}`) });
        }
      }
      return out;
    });
  }

  app.get('/v3/role_assignments', authenticated, async (request) => {
    enforceIdentity(callerOf(request), 'identity:list_role_assignments');
    const userId = queryParam(request, 'user.id');
    const groupId = queryParam(request, 'group.id');
    const projectId = queryParam(request, 'scope.project.id');
    const domainId = queryParam(request, 'scope.domain.id');
    const system = queryParam(request, 'scope.system');
    const roleId = queryParam(request, 'role.id');
    const inheritedTo = queryParam(request, 'scope.OS-INHERIT:inherited_to');
    const effective = boolParam(request, 'effective') === true;
    const includeNames = boolParam(request, 'include_names') === true;
    if (effective && groupId !== undefined)
      throw new ApiError(
        400,
        'Combining effective and group filter will always result in an empty list.',
        'ValidationError',
      );
    // A role filter applies to the roles held, implied ones included (so filtered after the expansion).
    let rows = await allGrants(effective ? undefined : roleId, effective);
    if (effective) rows = await stripDomainRoles(await expandImplied(await expandGroups(rows)));
    rows = rows.filter(
      (r) =>
        (roleId === undefined || r.role.id === roleId) &&
        (userId === undefined || ('user' in r.actor && r.actor.user === userId)) &&
        (groupId === undefined || ('group' in r.actor && r.actor.group === groupId)) &&
        (projectId === undefined ||
          (r.scope !== 'system' && 'project' in r.scope && r.scope.project === projectId)) &&
        (domainId === undefined ||
          (r.scope !== 'system' && 'domain' in r.scope && r.scope.domain === domainId)) &&
        (system === undefined || (system === 'all' && r.scope === 'system')) &&
        (inheritedTo === undefined || (inheritedTo === 'projects' && r.inherited === true)),
    );
    const names = includeNames ? await nameLookup() : undefined;
    return {
      role_assignments: rows.map((r) => ({
        role: { id: r.role.id, ...(names ? { name: r.role.name, ...names.role(r.role.id) } : {}) },
        ...('user' in r.actor
          ? { user: { id: r.actor.user, ...(names ? names.user(r.actor.user) : {}) } }
          : { group: { id: r.actor.group, ...(names ? names.group(r.actor.group) : {}) } }),
        scope:
          r.scope === 'system'
            ? { system: { all: true } }
            : {
                ...('project' in r.scope
                  ? { project: { id: r.scope.project, ...(names ? names.project(r.scope.project) : {}) } }
                  : { domain: { id: r.scope.domain, ...(names ? names.domain(r.scope.domain) : {}) } }),
                ...(r.inherited ? { 'OS-INHERIT:inherited_to': 'projects' } : {}),
              },
        links: {
          assignment: r.assignment,
          ...(r.membership ? { membership: r.membership } : {}),
          ...(r.priorRole ? { prior_role: r.priorRole } : {}),
        },
      })),
      links: collectionLinks(deps, '/role_assignments'),
    };
  });

  async function nameLookup() {
    const [users, projects, domains, groups, roles] = await Promise.all([
      keystone.listUsers(),
      keystone.listProjects(),
      keystone.listDomains(),
      keystone.listGroups(),
      keystone.listAllRoles(),
    ]);
    const domain = (id: string) => ({ id, name: domains.find((d) => d.id === id)?.name ?? id });
    const named = (list: Array<{ id: string; name: string; domainId: string }>) => (id: string) => {
      const found = list.find((x) => x.id === id);
      return found ? { name: found.name, domain: domain(found.domainId) } : {};
    };
    return {
      user: named(users),
      project: named(projects),
      group: named(groups),
      domain: (id: string) => ({ name: domain(id).name }),
      // Keystone names a domain-specific role's domain too.
      role: (id: string) => {
        const domainId = roles.find((r) => r.id === id)?.domainId;
        return domainId ? { domain: domain(domainId) } : {};
      },
    };
  }
}
