/** What Keystone's operations return: plain objects, camelCase, never a password or its hash. */
import type { RequestContext, TokenContext } from './context';
import { NULL_DOMAIN_ID } from './migrations';
import type { DomainsTable, GroupsTable, ProjectsTable, UsersTable } from './schema';

export interface Domain {
  id: string;
  name: string;
  description: string | null;
  enabled: boolean;
  createdAt: number;
}

export interface Project {
  id: string;
  name: string;
  domainId: string;
  /** The parent project; null when the parent is the domain. */
  parentId: string | null;
  tags: string[];
  description: string | null;
  enabled: boolean;
  createdAt: number;
  /** Attributes without a column, answered back as Keystone does. */
  extra: Record<string, unknown>;
}

export interface User {
  id: string;
  name: string;
  domainId: string;
  email: string | null;
  enabled: boolean;
  passwordChangedAt: number;
  createdAt: number;
  /** Attributes without a column (description, default_project_id, ...), answered back as Keystone does. */
  extra: Record<string, unknown>;
}

export interface Role {
  id: string;
  name: string;
  /** A domain-specific role's domain (never in a token; it implies global roles); null for a global role. */
  domainId: string | null;
}

export interface RoleAssignment {
  userId: string;
  projectId: string;
  roleId: string;
  roleName: string;
}

/** A role for a user on a domain. */
export interface DomainRoleAssignment {
  userId: string;
  domainId: string;
  roleId: string;
  roleName: string;
}

export interface Group {
  id: string;
  name: string;
  domainId: string;
  description: string | null;
  /** Attributes without a column, answered back as Keystone does. */
  extra: Record<string, unknown>;
}

/** A role for a group on a project, a domain (domainId) or the system. */
export interface GroupRoleAssignment {
  groupId: string;
  projectId?: string;
  domainId?: string;
  system?: true;
  roleId: string;
  roleName: string;
}

export interface AuthResult {
  token: string;
  /** Epoch ms. */
  expiresAt: number;
  context: RequestContext;
  /** How the user authenticated: ['password'], or ['token', 'password'] for a re-scoped token. */
  methods: string[];
  /** This token's audit id, then the one it was re-scoped from (Keystone's audit_ids). */
  auditIds: string[];
}

/** A token of any scope, as Keystone's POST /v3/auth/tokens issues it. */
export interface IssuedToken {
  token: string;
  /** Epoch ms. */
  expiresAt: number;
  caller: TokenContext;
  methods: string[];
  auditIds: string[];
}

/** The user columns that may leave the service: everything but password_hash. */
export const USER_COLUMNS = [
  'users.id',
  'users.name',
  'users.domain_id',
  'users.email',
  'users.enabled',
  'users.password_changed_at',
  'users.created_at',
  'users.extra',
] as const;

/** A stored `extra` column: a JSON object (anything else reads as empty). */
export function parseExtra(text: string): Record<string, unknown> {
  const value: unknown = JSON.parse(text);
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

/** A role row: Keystone's NULL_DOMAIN_ID reads as null (a global role). */
export const toRole = (r: { id: string; name: string; domain_id: string }): Role => ({
  id: r.id,
  name: r.name,
  domainId: r.domain_id === NULL_DOMAIN_ID ? null : r.domain_id,
});

export const toDomain = (r: DomainsTable): Domain => ({
  id: r.id,
  name: r.name,
  description: r.description,
  enabled: r.enabled === 1,
  createdAt: Number(r.created_at),
});

export const toProject = (r: ProjectsTable, tags: string[] = []): Project => ({
  id: r.id,
  name: r.name,
  domainId: r.domain_id,
  parentId: r.parent_id,
  tags,
  description: r.description,
  enabled: r.enabled === 1,
  createdAt: Number(r.created_at),
  extra: parseExtra(r.extra),
});

export const toUser = (r: Omit<UsersTable, 'password_hash'>): User => ({
  id: r.id,
  name: r.name,
  domainId: r.domain_id,
  email: r.email,
  enabled: r.enabled === 1,
  passwordChangedAt: Number(r.password_changed_at),
  createdAt: Number(r.created_at),
  extra: parseExtra(r.extra),
});

export const toGroup = (r: GroupsTable): Group => ({
  id: r.id,
  name: r.name,
  domainId: r.domain_id,
  description: r.description,
  extra: parseExtra(r.extra),
});
