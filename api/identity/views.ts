/**
 * Keystone v3's JSON bodies (api-ref/source/v3): projects, users, roles, domains, role assignments and
 * tokens, with their `links`. Times in Keystone's format: ISO 8601 with microseconds and a `Z`.
 */
import type { CatalogEntry, Domain, Group, Project, Role, TokenContext, User } from '../../cloud/keystone';
import type { ApiDeps } from '../deps';

/** Keystone's `2015-11-09T01:42:57.527363Z` (utils.isotime with subsecond=True). */
export function keystoneTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export const v3Url = (deps: Pick<ApiDeps, 'publicUrl'>, path: string): string =>
  `${deps.publicUrl}/identity/v3${path}`;

/** A collection's `links`: bootflow lists whole collections, so never a next or previous page. */
export function collectionLinks(deps: Pick<ApiDeps, 'publicUrl'>, path: string) {
  return { self: v3Url(deps, path), previous: null, next: null };
}

// Keystone's to_dict: the extra attributes first, so that none shadows a real one.
export function projectView(deps: Pick<ApiDeps, 'publicUrl'>, p: Project) {
  return {
    ...p.extra,
    id: p.id,
    name: p.name,
    domain_id: p.domainId,
    description: p.description ?? '',
    enabled: p.enabled,
    is_domain: false,
    // A top-level project's parent is its domain (Keystone's projects-as-domains).
    parent_id: p.parentId ?? p.domainId,
    tags: p.tags,
    options: {},
    links: { self: v3Url(deps, `/projects/${p.id}`) },
  };
}

export function userView(deps: Pick<ApiDeps, 'publicUrl'>, u: User) {
  return {
    ...u.extra,
    id: u.id,
    name: u.name,
    domain_id: u.domainId,
    enabled: u.enabled,
    password_expires_at: null,
    options: {},
    ...(u.email ? { email: u.email } : {}),
    links: { self: v3Url(deps, `/users/${u.id}`) },
  };
}

export function roleView(deps: Pick<ApiDeps, 'publicUrl'>, r: Role) {
  return {
    id: r.id,
    name: r.name,
    domain_id: r.domainId,
    description: null,
    options: {},
    links: { self: v3Url(deps, `/roles/${r.id}`) },
  };
}

/** A domain seen through the projects API: Keystone's project acting as a domain (is_domain, no parent). */
export function domainProjectView(deps: Pick<ApiDeps, 'publicUrl'>, d: Domain) {
  return {
    id: d.id,
    name: d.name,
    domain_id: null,
    description: d.description ?? '',
    enabled: d.enabled,
    is_domain: true,
    parent_id: null,
    tags: [] as string[],
    options: {},
    links: { self: v3Url(deps, `/projects/${d.id}`) },
  };
}

export function domainView(deps: Pick<ApiDeps, 'publicUrl'>, d: Domain) {
  return {
    id: d.id,
    name: d.name,
    description: d.description ?? '',
    enabled: d.enabled,
    tags: [] as string[],
    options: {},
    links: { self: v3Url(deps, `/domains/${d.id}`) },
  };
}

export interface TokenFacts {
  caller: TokenContext;
  methods: string[];
  auditIds: string[];
  userDomainName: string;
  /** The project's domain name, for a project-scoped token. */
  projectDomainName?: string;
  roles: Role[];
  /** Keystone's catalog for the token's scope; left out with ?nocatalog. */
  catalog?: CatalogEntry[];
}

/**
 * The `token` of POST and GET /v3/auth/tokens: a project-scoped token names its project, a domain-scoped one
 * its domain; both carry roles and (unless ?nocatalog) the catalog. An unscoped token has neither.
 */
export function tokenView(t: TokenFacts) {
  const { caller: c } = t;
  const scoped = c.project !== undefined || c.domain !== undefined || c.system === true;
  return {
    methods: t.methods,
    user: {
      domain: { id: c.userDomainId, name: t.userDomainName },
      id: c.userId,
      name: c.userName,
      password_expires_at: null,
    },
    audit_ids: t.auditIds,
    expires_at: keystoneTime(c.expiresAt),
    issued_at: keystoneTime(c.issuedAt),
    ...(c.project
      ? {
          project: {
            domain: { id: c.project.domainId, name: t.projectDomainName ?? c.project.domainId },
            id: c.project.id,
            name: c.project.name,
          },
          is_domain: false,
        }
      : {}),
    ...(c.domain ? { domain: { id: c.domain.id, name: c.domain.name } } : {}),
    ...(c.system ? { system: { all: true } } : {}),
    ...(c.applicationCredential
      ? {
          application_credential: {
            id: c.applicationCredential.id,
            name: c.applicationCredential.name,
            restricted: !c.applicationCredential.unrestricted,
          },
        }
      : {}),
    ...(scoped ? { roles: t.roles.map((r) => ({ id: r.id, name: r.name })) } : {}),
    ...(scoped && t.catalog ? { catalog: t.catalog } : {}),
  };
}

export function groupView(deps: Pick<ApiDeps, 'publicUrl'>, g: Group) {
  return {
    ...g.extra,
    id: g.id,
    name: g.name,
    domain_id: g.domainId,
    description: g.description ?? '',
    links: { self: v3Url(deps, `/groups/${g.id}`) },
  };
}
