/** Row types of the keystone database (see migrations.ts). Booleans are 0/1, times epoch ms. */
import type { Generated } from 'kysely';

export interface DomainsTable {
  id: string;
  name: string;
  description: string | null;
  enabled: number;
  created_at: number;
}

export interface ProjectsTable {
  id: string;
  domain_id: string;
  name: string;
  description: string | null;
  enabled: number;
  created_at: number;
  /** Keystone's `extra`: a JSON object of the attributes without a column. */
  extra: string;
  /** The parent project; null for a top-level project, whose parent is its domain. */
  parent_id: string | null;
}

/** Keystone's project_tag table. */
export interface ProjectTagTable {
  project_id: string;
  name: string;
}

export interface UsersTable {
  id: string;
  domain_id: string;
  name: string;
  email: string | null;
  enabled: number;
  /** PHC-style scrypt string: `$scrypt$ln=..,r=..,p=..$salt$hash`; never the password. */
  password_hash: string;
  password_changed_at: number;
  created_at: number;
  /** Keystone's `extra`: a JSON object of the attributes without a column (description, ...). */
  extra: string;
}

export interface RolesTable {
  id: string;
  name: string;
  created_at: number;
  /** A domain-specific role's domain; Keystone's NULL_DOMAIN_ID ('<<null>>') for a global role. */
  domain_id: Generated<string>;
}

/** Keystone's implied_role table: holding prior_role_id grants implied_role_id too. */
export interface ImpliedRolesTable {
  prior_role_id: string;
  implied_role_id: string;
}

export interface RoleAssignmentsTable {
  user_id: string;
  project_id: string;
  role_id: string;
  created_at: number;
}

/** A role for a user on a domain (Keystone's UserDomain assignments). */
export interface DomainRoleAssignmentsTable {
  user_id: string;
  domain_id: string;
  role_id: string;
  created_at: number;
}

/** A role for a user on the system (Keystone's system assignments; bootflow issues no system tokens). */
export interface SystemRoleAssignmentsTable {
  user_id: string;
  role_id: string;
  created_at: number;
}

/**
 * Keystone's revocation events: a token is revoked when it was issued at or before issued_before and every
 * non-null selector (user, project, audit id) matches it.
 */
export interface RevocationEventsTable {
  id: string;
  user_id: string | null;
  project_id: string | null;
  audit_id: string | null;
  issued_before: number;
  revoked_at: number;
}

/** Keystone's group table: users of any domain may be members of a group of one domain. */
export interface GroupsTable {
  id: string;
  domain_id: string;
  name: string;
  description: string | null;
  created_at: number;
  /** Keystone's `extra`: a JSON object of the attributes without a column. */
  extra: string;
}

export interface UserGroupMembershipTable {
  user_id: string;
  group_id: string;
}

/** A role for a group on a project (Keystone's GroupProject assignments): each member holds it. */
export interface GroupRoleAssignmentsTable {
  group_id: string;
  project_id: string;
  role_id: string;
  created_at: number;
}

/** A role for a group on a domain (Keystone's GroupDomain assignments). */
export interface GroupDomainRoleAssignmentsTable {
  group_id: string;
  domain_id: string;
  role_id: string;
  created_at: number;
}

/** A role for a group on the system (Keystone's system assignments of a group). */
export interface GroupSystemRoleAssignmentsTable {
  group_id: string;
  role_id: string;
  created_at: number;
}

/** Keystone's region table: a region may have a parent region. */
export interface RegionsTable {
  id: string;
  description: string;
  parent_region_id: string | null;
  /** JSON object: the attributes without a column. */
  extra: string;
  created_at: number;
}

/** Keystone's service table: the name and description are in `extra`, as Keystone keeps them. */
export interface ServicesTable {
  id: string;
  type: string;
  enabled: number;
  extra: string;
  created_at: number;
}

/** Keystone's endpoint table: one URL of a service, for one interface, in a region (or none). */
export interface EndpointsTable {
  id: string;
  interface: string;
  region_id: string | null;
  service_id: string;
  url: string;
  enabled: number;
  extra: string;
  created_at: number;
}

/** OS-EP-FILTER's endpoint_group: `filters` is a JSON object of endpoint attributes to match. */
export interface EndpointGroupsTable {
  id: string;
  name: string;
  description: string | null;
  filters: string;
  created_at: number;
}

export interface ProjectEndpointGroupsTable {
  endpoint_group_id: string;
  project_id: string;
}

/** Keystone's credential table: the blob is stored encrypted (credential-key.ts), never in clear. */
export interface CredentialsTable {
  id: string;
  user_id: string;
  project_id: string | null;
  type: string;
  /** AES-256-GCM of the blob: `v1.<iv>.<tag>.<ciphertext>`, base64url. */
  encrypted_blob: string;
  /** Which credential key encrypted it (a SHA-256 prefix of the key). */
  key_hash: string;
  extra: string;
  created_at: number;
}

/** Keystone's application_credential: the secret is kept as a scrypt hash only. */
export interface ApplicationCredentialsTable {
  id: string;
  name: string;
  user_id: string;
  project_id: string;
  secret_hash: string;
  description: string | null;
  /** Epoch ms; null for one that never expires. */
  expires_at: number | null;
  /** The microseconds past expires_at's millisecond (0-999), as the client gave them. */
  expires_at_us: number;
  unrestricted: number;
  created_at: number;
}

export interface ApplicationCredentialRolesTable {
  application_credential_id: string;
  role_id: string;
}

/** Keystone's policy table: a blob of a type (Keystone neither reads nor enforces it). */
export interface PoliciesTable {
  id: string;
  type: string;
  blob: string;
  extra: string;
  created_at: number;
}

/** OS-INHERIT: a role for a user or a group on every project below a domain or a project (not on it). */
export interface InheritedRoleAssignmentsTable {
  actor_type: 'user' | 'group';
  actor_id: string;
  target_type: 'domain' | 'project';
  target_id: string;
  role_id: string;
  created_at: number;
}

/** OS-OAUTH1 consumers: the secret AES-GCM sealed with the credential key (key_hash names the key). */
export interface OAuth1ConsumersTable {
  id: string;
  description: string | null;
  secret_sealed: string;
  key_hash: string;
  extra: string;
  created_at: number;
}

/** One option of a domain's configuration: value is JSON, sealed with the credential key when sensitive. */
export interface DomainConfigTable {
  domain_id: string;
  group_name: string;
  option_name: string;
  value: string;
  sensitive: number;
  created_at: number;
}

export interface KeystoneDb {
  domains: DomainsTable;
  projects: ProjectsTable;
  project_tag: ProjectTagTable;
  users: UsersTable;
  roles: RolesTable;
  implied_roles: ImpliedRolesTable;
  role_assignments: RoleAssignmentsTable;
  domain_role_assignments: DomainRoleAssignmentsTable;
  system_role_assignments: SystemRoleAssignmentsTable;
  revocation_events: RevocationEventsTable;
  groups: GroupsTable;
  user_group_membership: UserGroupMembershipTable;
  group_role_assignments: GroupRoleAssignmentsTable;
  group_domain_role_assignments: GroupDomainRoleAssignmentsTable;
  group_system_role_assignments: GroupSystemRoleAssignmentsTable;
  regions: RegionsTable;
  services: ServicesTable;
  endpoints: EndpointsTable;
  endpoint_groups: EndpointGroupsTable;
  project_endpoint_groups: ProjectEndpointGroupsTable;
  credentials: CredentialsTable;
  application_credentials: ApplicationCredentialsTable;
  application_credential_roles: ApplicationCredentialRolesTable;
  policies: PoliciesTable;
  inherited_role_assignments: InheritedRoleAssignmentsTable;
  oauth1_consumers: OAuth1ConsumersTable;
  domain_config: DomainConfigTable;
}
