/**
 * Keystone's lookups by id for the identity routes: a resource named in a path is found by its id only (the
 * CLI resolves names through list filters), and a missing one is Keystone's 404 `Could not find <what>: <id>.`
 */
import type { FastifyRequest } from 'fastify';
import { isCloudError } from '../../cloud/errors';
import type { Keystone, Project, Role, User } from '../../cloud/keystone';
import { ApiError } from '../errors';

export const notFound = (what: string, id: string) =>
  new ApiError(404, `Could not find ${what}: ${id}.`, 'NotFound');

/** A cloud NotFound keeps its message; bad references are 404 too. */
export async function found<T>(what: string, id: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    if (isCloudError(err, 'NotFound') || isCloudError(err, 'BadRequest')) throw notFound(what, id);
    throw err;
  }
}

/** Path parameters; Fastify always sets the ones its route declares. */
export function byIdParams(request: FastifyRequest): Record<string, string> & {
  projectId: string;
  userId: string;
  roleId: string;
  domainId: string;
  groupId: string;
} {
  return request.params as ReturnType<typeof byIdParams>;
}

export function lookups(keystone: Keystone) {
  const exactly = <T extends { id: string }>(what: string, id: string, load: () => Promise<T>) =>
    found(what, id, async () => {
      const row = await load();
      if (row.id !== id) throw notFound(what, id);
      return row;
    });
  return {
    projectById: (id: string): Promise<Project> =>
      exactly('project', id, () => keystone.getProject({ project: id })),
    userById: (id: string): Promise<User> => exactly('user', id, () => keystone.getUser({ user: id })),
    roleById: (id: string) => exactly('role', id, () => keystone.getRole(id)),
    domainById: (id: string) => exactly('domain', id, () => keystone.getDomain(id)),
    groupById: (id: string) => exactly('group', id, () => keystone.getGroup(id)),
    /** The roles of a grant listing, each with its domain (a domain-specific role's domain_id). */
    grantedRoles: async (grants: ReadonlyArray<{ roleId: string }>): Promise<Role[]> => {
      const byId = new Map((await keystone.listAllRoles()).map((r) => [r.id, r]));
      return grants.flatMap((g) => byId.get(g.roleId) ?? []);
    },
  };
}
