/** Input schemas of Keystone's public operations: strict (unknown fields are a BadRequest). */
import { z } from 'zod';
import { idSchema, nameSchema } from '../validation';

/** Keystone's default max_password_length. */
const passwordSchema = z.string().min(1).max(4096);
/** Free text: line breaks and tabs allowed, other control characters not. */
const descriptionSchema = z
  .string()
  .max(4096)
  .refine((s) => !/[^\P{Cc}\n\r\t]/u.test(s), 'must not contain control characters');
/**
 * Keystone's `extra`: the attributes a client sends beyond the schema's, stored and answered back; a JSON
 * object of at most 64 KiB once serialized.
 */
const extraSchema = z
  .record(z.string().max(255), z.json())
  .refine((e) => JSON.stringify(e).length <= 65536, 'extra attributes exceed 64 KiB');
/** A user, project or role given by id or by name (names are looked up within the domain). */
const refSchema = nameSchema;

export const ensureDomainRequest = z.strictObject({
  name: nameSchema,
  description: descriptionSchema.optional(),
  enabled: z.boolean().optional(),
});

export const ensureProjectRequest = z.strictObject({
  name: nameSchema,
  domain: nameSchema.optional(),
  description: descriptionSchema.optional(),
  enabled: z.boolean().optional(),
});

export const ensureUserRequest = z.strictObject({
  name: nameSchema,
  password: passwordSchema,
  domain: nameSchema.optional(),
  email: z.email().max(255).optional(),
  enabled: z.boolean().optional(),
});

export const ensureRoleRequest = z.strictObject({ name: nameSchema });

export const roleAssignmentRequest = z.strictObject({
  user: refSchema,
  project: refSchema,
  role: refSchema,
  userDomain: nameSchema.optional(),
  projectDomain: nameSchema.optional(),
});

export const userRefRequest = z.strictObject({ user: refSchema, domain: nameSchema.optional() });
export const projectRefRequest = z.strictObject({ project: refSchema, domain: nameSchema.optional() });

export const setPasswordRequest = z.strictObject({
  user: refSchema,
  domain: nameSchema.optional(),
  password: passwordSchema,
});

export const authenticateRequest = z.strictObject({
  username: nameSchema,
  password: passwordSchema,
  userDomainName: nameSchema.optional(),
  projectName: nameSchema,
  projectDomainName: nameSchema.optional(),
});

export const tokenSchema = z.string();

const domainLocator = z.union([z.strictObject({ id: idSchema }), z.strictObject({ name: nameSchema })]);
/** A user or project by id, or by name within a domain given by id or name. */
const entityLocator = z.union([
  z.strictObject({ id: idSchema }),
  z.strictObject({ name: nameSchema, domain: domainLocator }),
]);

/** A token's scope: a project, a domain, or none. */
const scopeRef = z.union([
  z.strictObject({ project: entityLocator }),
  z.strictObject({ domain: domainLocator }),
  z.strictObject({ system: z.strictObject({ all: z.literal(true) }) }),
  z.strictObject({ unscoped: z.literal(true) }),
]);

/** Keystone's POST /v3/auth/tokens, reduced to what it decides: who, how, and which scope. */
export const issueTokenRequest = z.discriminatedUnion('method', [
  z.strictObject({
    method: z.literal('password'),
    user: entityLocator,
    password: passwordSchema,
    // None asked: the user's default project if it holds a role there, else unscoped (Keystone's default).
    scope: scopeRef.optional(),
  }),
  // Without a scope, the re-scoped token keeps the scope of the one it came from.
  z.strictObject({ method: z.literal('token'), token: tokenSchema, scope: scopeRef.optional() }),
  // Keystone's application_credential method: by id, or by name with its user; no scope (its project's).
  z.strictObject({
    method: z.literal('application_credential'),
    applicationCredential: z.union([
      z.strictObject({ id: idSchema }),
      z.strictObject({ name: nameSchema, user: entityLocator }),
    ]),
    secret: z.string().min(1).max(4096),
  }),
]);

/** Keystone's POST /v3/users/{id}/application_credentials, once the API has checked who may. */
export const createApplicationCredentialRequest = z.strictObject({
  userId: idSchema,
  projectId: idSchema,
  name: nameSchema,
  description: z.string().max(4096).nullable().optional(),
  secret: z.string().min(1).max(4096).optional(),
  /** Epoch ms, and the microseconds past it. */
  expiresAt: z.number().int().nullable().optional(),
  expiresAtMicros: z.number().int().min(0).max(999).optional(),
  unrestricted: z.boolean().optional(),
  /** The roles asked for (by id or name); none: the creating token's roles. */
  roles: z
    .array(z.union([z.strictObject({ id: idSchema }), z.strictObject({ name: nameSchema })]))
    .max(256)
    .optional(),
  /** The creating token's roles (names): the credential may delegate no other. */
  tokenRoles: z.array(nameSchema).max(256),
});

/** Strict creates (Keystone's POST /v3/projects and /v3/users): a name already taken is a Conflict. */
const tagsSchema = z.array(z.string().max(255)).max(1000);

export const createProjectRequest = z.strictObject({
  name: nameSchema,
  domainId: idSchema,
  parentId: idSchema.optional(),
  tags: tagsSchema.optional(),
  description: descriptionSchema.optional(),
  enabled: z.boolean().optional(),
  extra: extraSchema.optional(),
});

export const createUserRequest = z.strictObject({
  name: nameSchema,
  domainId: idSchema,
  password: passwordSchema,
  email: z.email().max(255).optional(),
  enabled: z.boolean().optional(),
  extra: extraSchema.optional(),
});

export const updateProjectRequest = z.strictObject({
  id: idSchema,
  name: nameSchema.optional(),
  tags: tagsSchema.optional(),
  description: descriptionSchema.nullable().optional(),
  enabled: z.boolean().optional(),
  extra: extraSchema.optional(),
});

export const updateUserRequest = z.strictObject({
  id: idSchema,
  name: nameSchema.optional(),
  password: passwordSchema.optional(),
  email: z.string().max(255).nullable().optional(),
  enabled: z.boolean().optional(),
  extra: extraSchema.optional(),
});

export const changePasswordRequest = z.strictObject({
  id: idSchema,
  originalPassword: passwordSchema,
  password: passwordSchema,
});

export const createDomainRequest = z.strictObject({
  name: nameSchema,
  description: descriptionSchema.nullable().optional(),
  enabled: z.boolean().optional(),
});

export const updateDomainRequest = z.strictObject({
  id: idSchema,
  name: nameSchema.optional(),
  description: descriptionSchema.nullable().optional(),
  enabled: z.boolean().optional(),
});
export const validateTokenOptions = z.strictObject({ allowExpired: z.boolean().optional() });

export const domainRoleAssignmentRequest = z.strictObject({
  userId: idSchema,
  domainId: idSchema,
  roleId: idSchema,
});

export const systemRoleAssignmentRequest = z.strictObject({ userId: idSchema, roleId: idSchema });
export const listSystemAssignmentsRequest = systemRoleAssignmentRequest.partial();

export const listDomainAssignmentsRequest = z.strictObject({
  userId: idSchema.optional(),
  domainId: idSchema.optional(),
  roleId: idSchema.optional(),
});

export const listAssignmentsRequest = z.strictObject({
  userId: idSchema.optional(),
  projectId: idSchema.optional(),
  roleId: idSchema.optional(),
});

export const createGroupRequest = z.strictObject({
  name: nameSchema,
  domainId: idSchema,
  description: descriptionSchema.nullable().optional(),
  extra: extraSchema.optional(),
});

export const updateGroupRequest = z.strictObject({
  id: idSchema,
  name: nameSchema.optional(),
  description: descriptionSchema.nullable().optional(),
  extra: extraSchema.optional(),
});

export const listGroupsRequest = z.strictObject({
  name: nameSchema.optional(),
  domainId: idSchema.optional(),
  userId: idSchema.optional(),
});

export const membershipRequest = z.strictObject({ groupId: idSchema, userId: idSchema });

/** A role for a group on a project or a domain. */
export const groupRoleAssignmentRequest = z.strictObject({
  groupId: idSchema,
  roleId: idSchema,
  on: z.union([
    z.strictObject({ projectId: idSchema }),
    z.strictObject({ domainId: idSchema }),
    z.literal('system'),
  ]),
});

export const listGroupAssignmentsRequest = z.strictObject({
  groupId: idSchema.optional(),
  projectId: idSchema.optional(),
  domainId: idSchema.optional(),
  roleId: idSchema.optional(),
  system: z.boolean().optional(),
});

export const updateRoleRequest = z.strictObject({ id: idSchema, name: nameSchema.optional() });

/** Keystone's POST /v3/roles: a global role, or one of a domain (domain-specific). */
export const createRoleRequest = z.strictObject({ name: nameSchema, domainId: idSchema.optional() });
export const listRolesRequest = z.strictObject({ domainId: idSchema.optional() });

export type EnsureDomainInput = z.input<typeof ensureDomainRequest>;
export type EnsureProjectInput = z.input<typeof ensureProjectRequest>;
export type EnsureUserInput = z.input<typeof ensureUserRequest>;
export type EnsureRoleInput = z.input<typeof ensureRoleRequest>;
export type RoleAssignmentInput = z.input<typeof roleAssignmentRequest>;
export type UserRefInput = z.input<typeof userRefRequest>;
export type ProjectRefInput = z.input<typeof projectRefRequest>;
export type SetPasswordInput = z.input<typeof setPasswordRequest>;
export type AuthenticateInput = z.input<typeof authenticateRequest>;
export type ValidateTokenOptions = z.input<typeof validateTokenOptions>;
export type ListAssignmentsInput = z.input<typeof listAssignmentsRequest>;
export type DomainRoleAssignmentInput = z.input<typeof domainRoleAssignmentRequest>;
export type SystemRoleAssignmentInput = z.input<typeof systemRoleAssignmentRequest>;
export type ListDomainAssignmentsInput = z.input<typeof listDomainAssignmentsRequest>;
export type IssueTokenInput = z.input<typeof issueTokenRequest>;
export type CreateApplicationCredentialInput = z.input<typeof createApplicationCredentialRequest>;
export type CreateProjectInput = z.input<typeof createProjectRequest>;
export type CreateUserInput = z.input<typeof createUserRequest>;
export type UpdateProjectInput = z.input<typeof updateProjectRequest>;
export type UpdateUserInput = z.input<typeof updateUserRequest>;
export type ChangePasswordInput = z.input<typeof changePasswordRequest>;
export type CreateDomainInput = z.input<typeof createDomainRequest>;
export type UpdateDomainInput = z.input<typeof updateDomainRequest>;
export type CreateGroupInput = z.input<typeof createGroupRequest>;
export type UpdateGroupInput = z.input<typeof updateGroupRequest>;
export type ListGroupsInput = z.input<typeof listGroupsRequest>;
export type MembershipInput = z.input<typeof membershipRequest>;
export type GroupRoleAssignmentInput = z.input<typeof groupRoleAssignmentRequest>;
export type ListGroupAssignmentsInput = z.input<typeof listGroupAssignmentsRequest>;
export type UpdateRoleInput = z.input<typeof updateRoleRequest>;
export type CreateRoleInput = z.input<typeof createRoleRequest>;
export type ListRolesInput = z.input<typeof listRolesRequest>;
