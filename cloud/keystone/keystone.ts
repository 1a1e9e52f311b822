/**
 * Identity (Keystone): domains, projects, users, roles and role assignments in the keystone database;
 * password authentication scoped to a project; signed, expiring tokens; revocation (auth.ts). Inputs are
 * typed but still validated at run time (they may come from a CLI or a workflow payload): bad input is a
 * BadRequest that changes nothing.
 */
import path from 'node:path';
import { randomUUID, type KeyObject } from 'node:crypto';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { systemClock, type Clock } from '../clock';
import { openServiceDb, type DbConfig, type ServiceDb } from '../db';
import { CloudError } from '../errors';
import { idSchema, parseRequest } from '../validation';
import { Authenticator } from './auth';
import {
  createAppCred,
  deleteAppCred,
  generateSecret,
  getAppCred,
  listAppCreds,
  type ApplicationCredential,
} from './app-credentials';
import { Catalog } from './catalog';
import {
  addInherited,
  forgetInherited,
  hasInherited,
  listInherited,
  projectsBelow,
  removeInherited,
  type InheritedGrant,
} from './inherited';
import { CredentialKey } from './credential-key';
import { DomainConfigs } from './domain-config';
import { OAuth1Consumers } from './oauth1';
import { Credentials } from './credentials';
import { PolicyDocuments } from './policy-documents';
import type { RequestContext, TokenContext } from './context';
import { keystoneMigrations, NULL_DOMAIN_ID } from './migrations';
import { checkScryptParams, DEFAULT_SCRYPT_PARAMS, verifyPassword, type ScryptParams } from './passwords';
import * as q from './queries';
import * as req from './requests';
import { DEFAULT_IMPLIED_ROLES, DEFAULT_ROLES, expandImpliedRoles } from './roles';
import { addGrant, removeGrant, type Grant } from './grants';
import * as groups from './groups';
import {
  ancestorsOf,
  checkBranch,
  checkEnabledChange,
  checkTags,
  descendantsOf,
  lockedDomain,
  lockedProject,
  tagsOf,
  writeTags,
} from './project-tree';
import type { KeystoneDb, ProjectsTable } from './schema';
import { loadOrCreateSigningKey, parseSigningKey } from './signing-key';
import { TokenSigner, type OperationScope } from './tokens';
import { DEFAULT_TOKEN_CACHE_ENTRIES, DEFAULT_TOKEN_CACHE_SECONDS, type ValidatedToken } from './token-cache';
import { isUniqueViolation } from '../db';
import {
  USER_COLUMNS,
  toDomain,
  toProject,
  toRole,
  toUser,
  type AuthResult,
  type DomainRoleAssignment,
  type Group,
  type GroupRoleAssignment,
  type IssuedToken,
  type Domain,
  type Project,
  type Role,
  type RoleAssignment,
  type User,
} from './views';

export interface KeystoneOptions {
  db: DbConfig;
  clock?: Clock;
  /** Where the signing key file lives; default `<db.dataDir>/keystone`. */
  keyDir?: string;
  /** An Ed25519 private key (KeyObject or PKCS#8 PEM) instead of the key file. */
  signingKey?: KeyObject | string;
  /** The 32-byte credential encryption key instead of the key file (credential-key.ts). */
  credentialKey?: Buffer;
  /** Token lifetime; Keystone's [token] expiration, default 3600. */
  tokenTtlSeconds?: number;
  /** How long past expiry allowExpired still accepts a token; Keystone's allow_expired_window, default 48 h. */
  allowExpiredWindowSeconds?: number;
  /** scrypt cost for new hashes; existing hashes keep the parameters stored with them. */
  passwordHashing?: ScryptParams;
  /**
   * How long the services take a validated token without validating it again (keystonemiddleware's
   * token_cache_time, default 300; 0 turns the cache off). See token-cache.ts for what it means for revocation.
   */
  tokenCacheSeconds?: number;
  /** Most tokens the cache holds (default 10,000). */
  tokenCacheEntries?: number;
}

const inheritedGrantSchema = z.strictObject({
  actor: z.union([z.strictObject({ user: idSchema }), z.strictObject({ group: idSchema })]),
  target: z.union([z.strictObject({ domain: idSchema }), z.strictObject({ project: idSchema })]),
  roleId: idSchema,
});

export const DEFAULT_DOMAIN_ID = 'default';
export const DEFAULT_DOMAIN_NAME = 'Default';
export const DEFAULT_TOKEN_TTL_SECONDS = 3600;
export const DEFAULT_ALLOW_EXPIRED_WINDOW_SECONDS = 48 * 3600;

/** Keystone ids are uuid4 hex. */
const newId = (): string => randomUUID().replace(/-/g, '');

function wholeSeconds(value: number | undefined, fallback: number, what: string, min: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min)
    throw new CloudError('BadRequest', `${what} must be an integer ≥ ${min}`);
  return v;
}

/** A strict create of a row named within a domain: a name already taken is Keystone's 409. */
async function insertNamed(
  kind: 'project' | 'user',
  name: string,
  domainId: string,
  insert: () => Promise<unknown>,
): Promise<void> {
  try {
    await insert();
  } catch (err) {
    if (!isUniqueViolation(err)) throw err;
    throw new CloudError(
      'Conflict',
      `Conflict occurred attempting to store ${kind} - Duplicate entry found with name ${name} at domain ID ${domainId}.`,
    );
  }
}

/** A domain name is unique across the deployment: Keystone's 409. */
async function insertNamedDomain(name: string, insert: () => Promise<unknown>): Promise<void> {
  try {
    await insert();
  } catch (err) {
    if (!isUniqueViolation(err)) throw err;
    throw new CloudError(
      'Conflict',
      `Conflict occurred attempting to store domain - Duplicate entry found with name ${name}.`,
    );
  }
}

/**
 * Idempotent create: an existing row wins (like `openstack ... create --or-show`); a unique violation means
 * a concurrent creator inserted it first, so read theirs.
 */
async function insertOrFind<T>(
  insert: () => Promise<unknown>,
  find: () => Promise<T | undefined>,
): Promise<T> {
  const existing = await find();
  if (existing) return existing;
  try {
    await insert();
  } catch (err) {
    if (!isUniqueViolation(err)) throw err;
  }
  const row = await find();
  if (!row) throw new CloudError('Conflict', 'The row being created was removed concurrently; try again');
  return row;
}

export class Keystone {
  /** Regions, services, endpoints and endpoint groups: every token's catalog (catalog.ts). */
  readonly catalog: Catalog;
  /** Users' credentials and EC2 credentials, their blobs encrypted (credentials.ts). */
  readonly credentials: Credentials;
  /** Keystone's /v3/policies blobs (policy-documents.ts). */
  readonly policies: PolicyDocuments;
  /** OS-OAUTH1 consumers, their secrets sealed (oauth1.ts). */
  readonly oauth1Consumers: OAuth1Consumers;
  /** The domain configuration API's stored options (domain-config.ts). */
  readonly domainConfigs: DomainConfigs;

  private constructor(
    private readonly store: ServiceDb<KeystoneDb>,
    private readonly clock: Clock,
    private readonly auth: Authenticator,
    credentialKey: CredentialKey,
  ) {
    this.catalog = new Catalog(store, clock);
    this.credentials = new Credentials(store, clock, credentialKey);
    this.policies = new PolicyDocuments(store, clock);
    this.oauth1Consumers = new OAuth1Consumers(store, clock, credentialKey);
    this.domainConfigs = new DomainConfigs(store, clock, credentialKey);
  }

  static async open(options: KeystoneOptions): Promise<Keystone> {
    const ttl = wholeSeconds(options.tokenTtlSeconds, DEFAULT_TOKEN_TTL_SECONDS, 'tokenTtlSeconds', 1);
    const window = wholeSeconds(
      options.allowExpiredWindowSeconds,
      DEFAULT_ALLOW_EXPIRED_WINDOW_SECONDS,
      'allowExpiredWindowSeconds',
      0,
    );
    const cacheSeconds = wholeSeconds(
      options.tokenCacheSeconds,
      DEFAULT_TOKEN_CACHE_SECONDS,
      'tokenCacheSeconds',
      0,
    );
    const cacheEntries = wholeSeconds(
      options.tokenCacheEntries,
      DEFAULT_TOKEN_CACHE_ENTRIES,
      'tokenCacheEntries',
      0,
    );
    const hashParams = options.passwordHashing ?? DEFAULT_SCRYPT_PARAMS;
    checkScryptParams(hashParams);
    const key = options.signingKey
      ? parseSigningKey(options.signingKey)
      : loadOrCreateSigningKey(options.keyDir ?? path.join(options.db.dataDir, 'keystone'));
    const signer = await TokenSigner.create(key);
    const credentialKey = options.credentialKey
      ? CredentialKey.fromBytes(options.credentialKey)
      : CredentialKey.loadOrCreate(options.keyDir ?? path.join(options.db.dataDir, 'keystone'));
    const clock = options.clock ?? systemClock;
    const store = await openServiceDb<KeystoneDb>('keystone', keystoneMigrations, options.db);
    const auth = new Authenticator(store, clock, signer, {
      tokenTtlMs: ttl * 1000,
      allowExpiredWindowMs: window * 1000,
      hashParams,
      tokenCacheMs: cacheSeconds * 1000,
      tokenCacheEntries: cacheEntries,
    });
    const keystone = new Keystone(store, clock, auth, credentialKey);
    try {
      await keystone.ensureDefaults();
    } catch (err) {
      await store.close();
      throw err;
    }
    return keystone;
  }

  async close(): Promise<void> {
    await this.store.close();
  }

  /**
   * A write that can take away what a token was validated with (a revocation, a disable, a delete, a role
   * removed): once it commits (or fails), this process's validated-token cache is dropped, so the change
   * holds here at once (token-cache.ts).
   */
  private async identityChange<T>(work: (trx: Kysely<KeystoneDb>) => Promise<T>): Promise<T> {
    try {
      return await this.store.transaction(work);
    } finally {
      this.auth.forgetValidatedTokens();
    }
  }

  /** The keystone database, for audits and tests that read rows; changes go through the methods. */
  get serviceDb(): ServiceDb<KeystoneDb> {
    return this.store;
  }

  private get db(): Kysely<KeystoneDb> {
    return this.store.db;
  }

  /** What keystone-manage bootstrap creates: the Default domain, the default roles and their implications. */
  private async ensureDefaults(): Promise<void> {
    await insertOrFind(
      () =>
        this.db
          .insertInto('domains')
          .values({
            id: DEFAULT_DOMAIN_ID,
            name: DEFAULT_DOMAIN_NAME,
            description: 'The default domain',
            enabled: 1,
            created_at: this.clock.now(),
          })
          .execute(),
      () => this.db.selectFrom('domains').selectAll().where('id', '=', DEFAULT_DOMAIN_ID).executeTakeFirst(),
    );
    const roles = new Map<string, Role>();
    for (const name of DEFAULT_ROLES) roles.set(name, await this.ensureRole({ name }));
    for (const [prior, implied] of DEFAULT_IMPLIED_ROLES) {
      const rule = {
        prior_role_id: roles.get(prior)?.id ?? '',
        implied_role_id: roles.get(implied)?.id ?? '',
      };
      await insertOrFind(
        () => this.db.insertInto('implied_roles').values(rule).execute(),
        () =>
          this.db
            .selectFrom('implied_roles')
            .selectAll()
            .where('prior_role_id', '=', rule.prior_role_id)
            .where('implied_role_id', '=', rule.implied_role_id)
            .executeTakeFirst(),
      );
    }
  }

  private findUser(ref: string, domain: string | undefined): Promise<User> {
    return q.findUser(this.db, ref, domain ?? DEFAULT_DOMAIN_NAME);
  }

  private findProject(ref: string, domain: string | undefined): Promise<ProjectsTable> {
    return q.findProject(this.db, ref, domain ?? DEFAULT_DOMAIN_NAME);
  }

  // ---- admin operations (idempotent by name) --------------------------------------------------------------

  async ensureDomain(input: req.EnsureDomainInput): Promise<Domain> {
    const r = parseRequest(req.ensureDomainRequest, input, 'domain');
    const row = await insertOrFind(
      () =>
        this.db
          .insertInto('domains')
          .values({
            id: newId(),
            name: r.name,
            description: r.description ?? null,
            enabled: r.enabled === false ? 0 : 1,
            created_at: this.clock.now(),
          })
          .execute(),
      () => this.db.selectFrom('domains').selectAll().where('name', '=', r.name).executeTakeFirst(),
    );
    return toDomain(row);
  }

  async ensureProject(input: req.EnsureProjectInput): Promise<Project> {
    const r = parseRequest(req.ensureProjectRequest, input, 'project');
    const domain = await q.findDomain(this.db, r.domain ?? DEFAULT_DOMAIN_NAME);
    const row = await insertOrFind(
      () =>
        this.db
          .insertInto('projects')
          .values({
            id: newId(),
            domain_id: domain.id,
            name: r.name,
            description: r.description ?? null,
            enabled: r.enabled === false ? 0 : 1,
            created_at: this.clock.now(),
            extra: '{}',
            parent_id: null,
          })
          .execute(),
      () =>
        this.db
          .selectFrom('projects')
          .selectAll()
          .where('domain_id', '=', domain.id)
          .where('name', '=', r.name)
          .executeTakeFirst(),
    );
    return this.withTags(row);
  }

  /** Creates the user if missing; an existing user is returned unchanged (setUserPassword changes it). */
  async ensureUser(input: req.EnsureUserInput): Promise<User> {
    const r = parseRequest(req.ensureUserRequest, input, 'user');
    const domain = await q.findDomain(this.db, r.domain ?? DEFAULT_DOMAIN_NAME);
    const row = await insertOrFind(
      async () => {
        const passwordHash = await this.auth.hashPassword(r.password);
        const now = this.clock.now();
        await this.db
          .insertInto('users')
          .values({
            id: newId(),
            domain_id: domain.id,
            name: r.name,
            email: r.email ?? null,
            enabled: r.enabled === false ? 0 : 1,
            password_hash: passwordHash,
            password_changed_at: now,
            created_at: now,
            extra: '{}',
          })
          .execute();
      },
      () =>
        this.db
          .selectFrom('users')
          .select(USER_COLUMNS)
          .where('domain_id', '=', domain.id)
          .where('name', '=', r.name)
          .executeTakeFirst(),
    );
    return toUser(row);
  }

  async ensureRole(input: req.EnsureRoleInput): Promise<Role> {
    const r = parseRequest(req.ensureRoleRequest, input, 'role');
    const row = await insertOrFind(
      () =>
        this.db
          .insertInto('roles')
          .values({ id: newId(), name: r.name, created_at: this.clock.now() })
          .execute(),
      () =>
        this.db
          .selectFrom('roles')
          .select(['id', 'name', 'domain_id'])
          .where('name', '=', r.name)
          .where('domain_id', '=', NULL_DOMAIN_ID)
          .executeTakeFirst(),
    );
    return toRole(row);
  }

  /**
   * Keystone's POST /v3/roles: a global role, or (domainId) a domain-specific one, whose name is unique in
   * its domain only; Conflict when the name is taken there.
   */
  async createRole(input: req.CreateRoleInput): Promise<Role> {
    const r = parseRequest(req.createRoleRequest, input, 'role');
    const domainId = r.domainId !== undefined ? (await this.getDomain(r.domainId)).id : NULL_DOMAIN_ID;
    const row = { id: newId(), name: r.name, created_at: this.clock.now(), domain_id: domainId };
    try {
      await this.db.insertInto('roles').values(row).execute();
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      throw new CloudError(
        'Conflict',
        `Conflict occurred attempting to store role - Duplicate entry found with name ${r.name}.`,
      );
    }
    return toRole(row);
  }

  /** Keystone's PATCH /v3/roles/{id}: a new name (Conflict if taken); tokens carry role names, so the cache goes. */
  async updateRole(input: req.UpdateRoleInput): Promise<Role> {
    const r = parseRequest(req.updateRoleRequest, input, 'role update');
    const current = await q.findRoleById(this.db, r.id);
    if (r.name === undefined || r.name === current.name) return current;
    const name = r.name;
    await this.identityChange(async (trx) => {
      try {
        await trx.updateTable('roles').set({ name }).where('id', '=', r.id).execute();
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
        throw new CloudError(
          'Conflict',
          `Conflict occurred attempting to store role - Duplicate entry found with name ${name}.`,
        );
      }
    });
    return { ...current, name };
  }

  /** Keystone's implied_role rules, as role pairs (prior first), by the prior role's name. */
  async listImpliedRoles(): Promise<Array<{ prior: Role; implied: Role }>> {
    const rows = await this.db
      .selectFrom('implied_roles')
      .innerJoin('roles as prior', 'prior.id', 'implied_roles.prior_role_id')
      .innerJoin('roles as implied', 'implied.id', 'implied_roles.implied_role_id')
      .select([
        'prior.id as priorId',
        'prior.name as priorName',
        'prior.domain_id as priorDomainId',
        'implied.id as impliedId',
        'implied.name as impliedName',
        'implied.domain_id as impliedDomainId',
      ])
      .orderBy('prior.name')
      .orderBy('implied.name')
      .execute();
    return rows.map((r) => ({
      prior: toRole({ id: r.priorId, name: r.priorName, domain_id: r.priorDomainId }),
      implied: toRole({ id: r.impliedId, name: r.impliedName, domain_id: r.impliedDomainId }),
    }));
  }

  /**
   * Keystone's PUT /v3/roles/{prior}/implies/{implied} (again: a no-op): whoever holds the prior role holds
   * the implied one too, in tokens validated from now on. `admin` is never implied (Keystone's
   * prohibited_implied_role).
   */
  async addImpliedRole(priorRoleId: string, impliedRoleId: string): Promise<void> {
    const [prior, implied] = [
      await q.findRoleById(this.db, parseRequest(idSchema, priorRoleId, 'prior role id')),
      await q.findRoleById(this.db, parseRequest(idSchema, impliedRoleId, 'implied role id')),
    ];
    if (implied.name === 'admin' && implied.domainId === null)
      throw new CloudError('Forbidden', 'admin role cannot be an implied role.');
    // Keystone's create_implied_role: a global role implies global roles only.
    if (prior.domainId === null && implied.domainId !== null)
      throw new CloudError('Forbidden', 'Global role cannot imply a domain-specific role');
    const rule = { prior_role_id: prior.id, implied_role_id: implied.id };
    await this.identityChange((trx) =>
      insertOrFind(
        () => trx.insertInto('implied_roles').values(rule).execute(),
        () =>
          trx
            .selectFrom('implied_roles')
            .selectAll()
            .where('prior_role_id', '=', rule.prior_role_id)
            .where('implied_role_id', '=', rule.implied_role_id)
            .executeTakeFirst(),
      ),
    );
  }

  /** Keystone's DELETE of an inference rule: NotFound when the prior role does not imply that one. */
  async removeImpliedRole(priorRoleId: string, impliedRoleId: string): Promise<void> {
    const prior = parseRequest(idSchema, priorRoleId, 'prior role id');
    const implied = parseRequest(idSchema, impliedRoleId, 'implied role id');
    await this.identityChange(async (trx) => {
      const res = await trx
        .deleteFrom('implied_roles')
        .where('prior_role_id', '=', prior)
        .where('implied_role_id', '=', implied)
        .executeTakeFirst();
      if (Number(res.numDeletedRows) === 0)
        throw new CloudError('NotFound', `${prior} does not imply ${implied}.`, { role: implied });
    });
  }

  /** Keystone's DELETE /v3/roles/{id}: the role, its implications and every grant of it. */
  async deleteRole(roleId: string): Promise<void> {
    const id = parseRequest(idSchema, roleId, 'role id');
    await q.findRoleById(this.db, id);
    await this.identityChange(async (trx) => {
      for (const table of [
        'role_assignments',
        'domain_role_assignments',
        'system_role_assignments',
        'group_role_assignments',
        'group_domain_role_assignments',
        'group_system_role_assignments',
      ] as const)
        await trx.deleteFrom(table).where('role_id', '=', id).execute();
      await trx
        .deleteFrom('implied_roles')
        .where((eb) => eb.or([eb('prior_role_id', '=', id), eb('implied_role_id', '=', id)]))
        .execute();
      await trx.deleteFrom('roles').where('id', '=', id).execute();
    });
  }

  async assignRole(input: req.RoleAssignmentInput): Promise<RoleAssignment> {
    const r = parseRequest(req.roleAssignmentRequest, input, 'role assignment');
    const user = await this.findUser(r.user, r.userDomain);
    const project = await this.findProject(r.project, r.projectDomain);
    const role = await q.findRole(this.db, r.role);
    await q.checkRoleFitsProject(this.db, role, project.id);
    await addGrant(
      this.db,
      { userId: user.id, roleId: role.id, on: { projectId: project.id } },
      this.clock.now(),
    );
    return { userId: user.id, projectId: project.id, roleId: role.id, roleName: role.name };
  }

  /** Removes an assignment (idempotent); tokens lose the role at their next validation. */
  async unassignRole(input: req.RoleAssignmentInput): Promise<{ removed: boolean }> {
    const r = parseRequest(req.roleAssignmentRequest, input, 'role assignment');
    const user = await this.findUser(r.user, r.userDomain);
    const project = await this.findProject(r.project, r.projectDomain);
    const role = await q.findRole(this.db, r.role);
    return this.revokeGrant({ userId: user.id, roleId: role.id, on: { projectId: project.id } });
  }

  /** Disables the user and revokes the tokens issued so far, as Keystone does. */
  async disableUser(input: req.UserRefInput): Promise<User> {
    return this.setUserEnabled(parseRequest(req.userRefRequest, input, 'user reference'), false);
  }

  /** Re-enables the user; tokens issued before the disable stay revoked. */
  async enableUser(input: req.UserRefInput): Promise<User> {
    return this.setUserEnabled(parseRequest(req.userRefRequest, input, 'user reference'), true);
  }

  private async setUserEnabled(
    ref: { user: string; domain?: string | undefined },
    enabled: boolean,
  ): Promise<User> {
    const user = await this.findUser(ref.user, ref.domain);
    await this.identityChange(async (trx) => {
      await trx
        .updateTable('users')
        .set({ enabled: enabled ? 1 : 0 })
        .where('id', '=', user.id)
        .execute();
      if (!enabled) await this.auth.revoke(trx, { userId: user.id });
    });
    return { ...user, enabled };
  }

  /** Disables the project and revokes the tokens scoped to it. */
  async disableProject(input: req.ProjectRefInput): Promise<Project> {
    return this.setProjectEnabled(parseRequest(req.projectRefRequest, input, 'project reference'), false);
  }

  /** Re-enables the project; tokens issued before the disable stay revoked. */
  async enableProject(input: req.ProjectRefInput): Promise<Project> {
    return this.setProjectEnabled(parseRequest(req.projectRefRequest, input, 'project reference'), true);
  }

  private async setProjectEnabled(
    ref: { project: string; domain?: string | undefined },
    enabled: boolean,
  ): Promise<Project> {
    const { id } = await this.findProject(ref.project, ref.domain);
    const project = await this.identityChange(async (trx) => {
      const current = await lockedProject(trx, this.store, id);
      await checkEnabledChange(trx, this.store, current, enabled);
      await trx
        .updateTable('projects')
        .set({ enabled: enabled ? 1 : 0 })
        .where('id', '=', id)
        .execute();
      if (!enabled) await this.auth.revoke(trx, { projectId: id });
      return current;
    });
    return this.withTags({ ...project, enabled: enabled ? 1 : 0 });
  }

  /** Changes the password and revokes the user's existing tokens, as Keystone does. */
  async setUserPassword(input: req.SetPasswordInput): Promise<User> {
    const r = parseRequest(req.setPasswordRequest, input, 'password change');
    const user = await this.findUser(r.user, r.domain);
    const passwordHash = await this.auth.hashPassword(r.password);
    const now = this.clock.now();
    await this.identityChange(async (trx) => {
      await trx
        .updateTable('users')
        .set({ password_hash: passwordHash, password_changed_at: now })
        .where('id', '=', user.id)
        .execute();
      await this.auth.revoke(trx, { userId: user.id });
    });
    return { ...user, passwordChangedAt: now };
  }

  /** Keystone's POST /v3/projects: a new project, Conflict if the domain already has one of that name. */
  async createProject(input: req.CreateProjectInput): Promise<Project> {
    const r = parseRequest(req.createProjectRequest, input, 'project');
    const domain = await q.findDomain(this.db, r.domainId);
    const tags = checkTags(r.tags ?? []);
    const parent = r.parentId && r.parentId !== domain.id ? r.parentId : null;
    const row: ProjectsTable = {
      id: newId(),
      domain_id: domain.id,
      name: r.name,
      description: r.description ?? null,
      enabled: r.enabled === false ? 0 : 1,
      created_at: this.clock.now(),
      extra: JSON.stringify(r.extra ?? {}),
      parent_id: parent,
    };
    // The branch is checked and the project written in one transaction, its rows locked (TreeLock).
    await this.store.transaction(async (trx) => {
      await checkBranch(trx, this.store, await lockedDomain(trx, this.store, domain.id), parent);
      await insertNamed('project', r.name, domain.id, () => trx.insertInto('projects').values(row).execute());
      await writeTags(trx, row.id, tags);
    });
    return this.withTags(row);
  }

  /** Keystone's POST /v3/users: a new user, Conflict if the domain already has one of that name. */
  async createUser(input: req.CreateUserInput): Promise<User> {
    const r = parseRequest(req.createUserRequest, input, 'user');
    const domain = await q.findDomain(this.db, r.domainId);
    const now = this.clock.now();
    const row = {
      id: newId(),
      domain_id: domain.id,
      name: r.name,
      email: r.email ?? null,
      enabled: r.enabled === false ? 0 : 1,
      password_changed_at: now,
      created_at: now,
      extra: JSON.stringify(r.extra ?? {}),
    };
    const passwordHash = await this.auth.hashPassword(r.password);
    await insertNamed('user', r.name, domain.id, () =>
      this.db
        .insertInto('users')
        .values({ ...row, password_hash: passwordHash })
        .execute(),
    );
    return toUser(row);
  }

  /**
   * Keystone's PATCH /v3/projects/{id}: the given attributes change (extra ones merge into the stored
   * ones); a name taken in the domain is a Conflict; disabling revokes the tokens scoped to the project.
   */
  async updateProject(input: req.UpdateProjectInput): Promise<Project> {
    const r = parseRequest(req.updateProjectRequest, input, 'project update');
    const tags = r.tags && checkTags(r.tags);
    const work = async (trx: Kysely<KeystoneDb>) => {
      const current = await lockedProject(trx, this.store, r.id);
      // Keystone's update_project: a project is enabled only under enabled parents, disabled only over
      // disabled children.
      await checkEnabledChange(trx, this.store, current, r.enabled);
      const row: ProjectsTable = {
        ...current,
        ...(r.name !== undefined ? { name: r.name } : {}),
        ...(r.description !== undefined ? { description: r.description } : {}),
        ...(r.enabled !== undefined ? { enabled: r.enabled ? 1 : 0 } : {}),
        extra: JSON.stringify({ ...toProject(current).extra, ...r.extra }),
      };
      await insertNamed('project', row.name, row.domain_id, () =>
        trx
          .updateTable('projects')
          .set({ name: row.name, description: row.description, enabled: row.enabled, extra: row.extra })
          .where('id', '=', row.id)
          .execute(),
      );
      if (tags) await writeTags(trx, row.id, tags);
      if (current.enabled === 1 && row.enabled === 0) await this.auth.revoke(trx, { projectId: row.id });
      return row;
    };
    // A validated token carries the project's name and needs it enabled; its tags, description and extra
    // attributes it does not: a change of those alone keeps the validated-token cache.
    const touchesTokens = r.name !== undefined || r.enabled !== undefined;
    const row = await (touchesTokens ? this.identityChange(work) : this.store.transaction(work));
    return this.withTags(row);
  }

  /**
   * Keystone's PUT /v3/projects/{id}/tags/{tag}: one row added, in one transaction with the project locked,
   * so concurrent adds and removes of other tags are all kept (no read-modify-write of the list). Adding a
   * tag the project has changes nothing. Tokens do not carry tags: the validated-token cache stays.
   */
  async addProjectTag(projectId: string, tag: string): Promise<void> {
    const id = parseRequest(idSchema, projectId, 'project id');
    await this.store.transaction(async (trx) => {
      await lockedProject(trx, this.store, id);
      const current = (await tagsOf(trx, [id])).get(id) ?? [];
      if (current.includes(tag)) return;
      // The new tag's own rules and the project's limit of 80.
      checkTags([...current, tag]);
      await trx.insertInto('project_tag').values({ project_id: id, name: tag }).execute();
    });
  }

  /** Keystone's DELETE /v3/projects/{id}/tags/{tag}: one row removed (NotFound when the project has no such tag). */
  async removeProjectTag(projectId: string, tag: string): Promise<void> {
    const id = parseRequest(idSchema, projectId, 'project id');
    const res = await this.store.db
      .deleteFrom('project_tag')
      .where('project_id', '=', id)
      .where('name', '=', tag)
      .executeTakeFirst();
    if (Number(res.numDeletedRows) === 0)
      throw new CloudError('NotFound', `Could not find project tag: ${tag}.`, { projectTag: tag });
  }

  /**
   * Keystone's PATCH /v3/users/{id}: as for projects; a new password or a disable revokes the user's
   * tokens.
   */
  async updateUser(input: req.UpdateUserInput): Promise<User> {
    const r = parseRequest(req.updateUserRequest, input, 'user update');
    const current = await q.findUserById(this.db, r.id);
    const now = this.clock.now();
    const passwordHash = r.password !== undefined ? await this.auth.hashPassword(r.password) : undefined;
    const user: User = {
      ...current,
      ...(r.name !== undefined ? { name: r.name } : {}),
      ...(r.email !== undefined ? { email: r.email } : {}),
      ...(r.enabled !== undefined ? { enabled: r.enabled } : {}),
      ...(passwordHash !== undefined ? { passwordChangedAt: now } : {}),
      extra: { ...current.extra, ...r.extra },
    };
    await this.identityChange(async (trx) => {
      await insertNamed('user', user.name, user.domainId, () =>
        trx
          .updateTable('users')
          .set({
            name: user.name,
            email: user.email,
            enabled: user.enabled ? 1 : 0,
            extra: JSON.stringify(user.extra),
            ...(passwordHash !== undefined ? { password_hash: passwordHash, password_changed_at: now } : {}),
          })
          .where('id', '=', user.id)
          .execute(),
      );
      if ((current.enabled && !user.enabled) || passwordHash !== undefined)
        await this.auth.revoke(trx, { userId: user.id });
    });
    return user;
  }

  /**
   * Keystone's POST /v3/users/{id}/password: the user's own change, proven by the original password
   * (Unauthorized otherwise, as a failed login is); the user's tokens are revoked.
   */
  async changePassword(input: req.ChangePasswordInput): Promise<User> {
    const r = parseRequest(req.changePasswordRequest, input, 'password change');
    const row = await this.db
      .selectFrom('users')
      .select(['password_hash', 'enabled'])
      .where('id', '=', r.id)
      .executeTakeFirst();
    const ok = await verifyPassword(r.originalPassword, row?.password_hash ?? '');
    if (!row || !ok || row.enabled !== 1)
      throw new CloudError('Unauthorized', 'The request you have made requires authentication.');
    return this.updateUser({ id: r.id, password: r.password });
  }

  /** Keystone's POST /v3/domains: a new domain, Conflict if the name is taken. */
  async createDomain(input: req.CreateDomainInput): Promise<Domain> {
    const r = parseRequest(req.createDomainRequest, input, 'domain');
    const row = {
      id: newId(),
      name: r.name,
      description: r.description ?? null,
      enabled: r.enabled === false ? 0 : 1,
      created_at: this.clock.now(),
    };
    await insertNamedDomain(r.name, () => this.db.insertInto('domains').values(row).execute());
    return toDomain(row);
  }

  /**
   * Keystone's PATCH /v3/domains/{id}; disabling a domain revokes the tokens of its users and projects and
   * of tokens scoped to it. The Default domain stays enabled (bootflow's own services authenticate there).
   */
  async updateDomain(input: req.UpdateDomainInput): Promise<Domain> {
    const r = parseRequest(req.updateDomainRequest, input, 'domain update');
    if (r.id === DEFAULT_DOMAIN_ID && r.enabled === false)
      throw new CloudError('Forbidden', 'The default domain cannot be disabled.');
    const row = await this.identityChange(async (trx) => {
      // Read locked in the write's transaction: a concurrent delete or create in the domain waits for it.
      const current = await lockedDomain(trx, this.store, r.id);
      const row = {
        ...current,
        ...(r.name !== undefined ? { name: r.name } : {}),
        ...(r.description !== undefined ? { description: r.description } : {}),
        ...(r.enabled !== undefined ? { enabled: r.enabled ? 1 : 0 } : {}),
      };
      await insertNamedDomain(row.name, () =>
        trx
          .updateTable('domains')
          .set({ name: row.name, description: row.description, enabled: row.enabled })
          .where('id', '=', row.id)
          .execute(),
      );
      if (current.enabled === 1 && row.enabled === 0) await this.revokeDomain(trx, row.id);
      return row;
    });
    return toDomain(row);
  }

  /**
   * Keystone's DELETE /v3/domains/{id}: only a disabled domain (else Forbidden), with its projects, users
   * and every role assignment on or of them.
   */
  async deleteDomain(domainId: string): Promise<void> {
    const id = parseRequest(idSchema, domainId, 'domain id');
    await this.identityChange(async (trx) => {
      // Checked in the delete's transaction, locked: a concurrent enable cannot slip in between.
      if ((await lockedDomain(trx, this.store, id)).enabled === 1)
        throw new CloudError('Forbidden', 'Cannot delete a domain that is enabled, please disable it first.');
      await this.revokeDomain(trx, id);
      const projects = trx.selectFrom('projects').select('id').where('domain_id', '=', id);
      const users = trx.selectFrom('users').select('id').where('domain_id', '=', id);
      const domainGroups = trx.selectFrom('groups').select('id').where('domain_id', '=', id);
      await trx.deleteFrom('role_assignments').where('project_id', 'in', projects).execute();
      await trx.deleteFrom('group_role_assignments').where('project_id', 'in', projects).execute();
      await trx.deleteFrom('credentials').where('project_id', 'in', projects).execute();
      const [projectIds, userIds] = [await projects.execute(), await users.execute()];
      await forgetInherited(trx, { targetType: 'project', ids: projectIds.map((p) => p.id) });
      await forgetInherited(trx, { actorType: 'user', ids: userIds.map((u) => u.id) });
      await forgetInherited(trx, { targetType: 'domain', ids: [id] });
      await trx.deleteFrom('group_domain_role_assignments').where('domain_id', '=', id).execute();
      await trx.deleteFrom('user_group_membership').where('user_id', 'in', users).execute();
      for (const g of await domainGroups.execute()) await groups.deleteGroup(trx, g.id);
      await trx.deleteFrom('role_assignments').where('user_id', 'in', users).execute();
      await trx.deleteFrom('domain_role_assignments').where('user_id', 'in', users).execute();
      await trx.deleteFrom('system_role_assignments').where('user_id', 'in', users).execute();
      await trx.deleteFrom('group_system_role_assignments').where('group_id', 'in', domainGroups).execute();
      await trx.deleteFrom('domain_role_assignments').where('domain_id', '=', id).execute();
      await trx.deleteFrom('domain_config').where('domain_id', '=', id).execute();
      // Its domain-specific roles, their rules and every grant of them.
      const domainRoles = trx.selectFrom('roles').select('id').where('domain_id', '=', id);
      for (const table of [
        'role_assignments',
        'domain_role_assignments',
        'system_role_assignments',
        'group_role_assignments',
        'group_domain_role_assignments',
        'group_system_role_assignments',
        'inherited_role_assignments',
        'application_credential_roles',
      ] as const)
        await trx.deleteFrom(table).where('role_id', 'in', domainRoles).execute();
      await trx
        .deleteFrom('implied_roles')
        .where((eb) =>
          eb.or([eb('prior_role_id', 'in', domainRoles), eb('implied_role_id', 'in', domainRoles)]),
        )
        .execute();
      await trx.deleteFrom('roles').where('domain_id', '=', id).execute();
      await trx.deleteFrom('projects').where('domain_id', '=', id).execute();
      await trx.deleteFrom('users').where('domain_id', '=', id).execute();
      await trx.deleteFrom('domains').where('id', '=', id).execute();
    });
  }

  /** Revokes the tokens of a domain's users and those scoped to its projects. */
  private async revokeDomain(trx: Kysely<KeystoneDb>, domainId: string): Promise<void> {
    for (const u of await trx.selectFrom('users').select('id').where('domain_id', '=', domainId).execute())
      await this.auth.revoke(trx, { userId: u.id });
    for (const p of await trx.selectFrom('projects').select('id').where('domain_id', '=', domainId).execute())
      await this.auth.revoke(trx, { projectId: p.id });
  }

  private async projectRowById(id: string): Promise<ProjectsTable> {
    const row = await this.db.selectFrom('projects').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new CloudError('NotFound', `Could not find project: ${id}.`, { project: id });
    return row;
  }

  /** Deletes a project (by id) and its role assignments; tokens scoped to it stop validating. */
  async deleteProject(projectId: string): Promise<void> {
    const id = parseRequest(idSchema, projectId, 'project id');
    await this.identityChange(async (trx) => {
      // Locked: a create under it (which locks its parent) waits, then finds it gone.
      await lockedProject(trx, this.store, id);
      const child = await trx
        .selectFrom('projects')
        .select('id')
        .where('parent_id', '=', id)
        .executeTakeFirst();
      if (child)
        throw new CloudError(
          'Forbidden',
          `Cannot delete the project ${id} since it is not a leaf in the hierarchy. Use the cascade option if you want to delete a whole subtree.`,
        );
      await trx.deleteFrom('project_tag').where('project_id', '=', id).execute();
      await trx.deleteFrom('projects').where('id', '=', id).execute();
      await trx.deleteFrom('role_assignments').where('project_id', '=', id).execute();
      await trx.deleteFrom('group_role_assignments').where('project_id', '=', id).execute();
      // Keystone's delete_credentials_for_project.
      await trx.deleteFrom('credentials').where('project_id', '=', id).execute();
      await forgetInherited(trx, { targetType: 'project', ids: [id] });
      await this.auth.revoke(trx, { projectId: id });
    });
  }

  /** Deletes a user (by id) and its role assignments; its tokens stop validating. */
  async deleteUser(userId: string): Promise<void> {
    const id = parseRequest(idSchema, userId, 'user id');
    await this.identityChange(async (trx) => {
      const res = await trx.deleteFrom('users').where('id', '=', id).executeTakeFirst();
      if (Number(res.numDeletedRows) === 0)
        throw new CloudError('NotFound', `Could not find user: ${id}.`, { user: id });
      await trx.deleteFrom('role_assignments').where('user_id', '=', id).execute();
      await trx.deleteFrom('domain_role_assignments').where('user_id', '=', id).execute();
      await trx.deleteFrom('system_role_assignments').where('user_id', '=', id).execute();
      await trx.deleteFrom('user_group_membership').where('user_id', '=', id).execute();
      await forgetInherited(trx, { actorType: 'user', ids: [id] });
      await this.auth.revoke(trx, { userId: id });
    });
  }

  // ---- reads ---------------------------------------------------------------------------------------------

  async getUser(input: req.UserRefInput): Promise<User> {
    const r = parseRequest(req.userRefRequest, input, 'user reference');
    return this.findUser(r.user, r.domain);
  }

  async getProject(input: req.ProjectRefInput): Promise<Project> {
    const r = parseRequest(req.projectRefRequest, input, 'project reference');
    return this.withTags(await this.findProject(r.project, r.domain));
  }

  /** A domain by name, else by id. */
  async getDomain(ref: string): Promise<Domain> {
    return toDomain(await q.findDomain(this.db, parseRequest(idSchema, ref, 'domain reference')));
  }

  /** A role by name, else by id. */
  async getRole(ref: string): Promise<Role> {
    return q.findRole(this.db, parseRequest(idSchema, ref, 'role reference'));
  }

  async listDomains(): Promise<Domain[]> {
    return (await this.db.selectFrom('domains').selectAll().orderBy('name').execute()).map(toDomain);
  }

  async listProjects(): Promise<Project[]> {
    const rows = await this.db.selectFrom('projects').selectAll().orderBy('name').execute();
    const tags = await tagsOf(
      this.db,
      rows.map((r) => r.id),
    );
    return rows.map((r) => toProject(r, tags.get(r.id) ?? []));
  }

  /** Keystone's parents_as_list and subtree_as_list: a project's ancestors (nearest first) and descendants. */
  async projectFamily(projectId: string): Promise<{ parents: Project[]; subtree: Project[] }> {
    const row = await this.projectRowById(parseRequest(idSchema, projectId, 'project id'));
    const [parents, subtree] = [await ancestorsOf(this.db, row), await descendantsOf(this.db, row.id)];
    const tags = await tagsOf(
      this.db,
      [...parents, ...subtree].map((p) => p.id),
    );
    const view = (p: ProjectsTable) => toProject(p, tags.get(p.id) ?? []);
    return { parents: parents.map(view), subtree: subtree.map(view) };
  }

  private async withTags(row: ProjectsTable): Promise<Project> {
    return toProject(row, (await tagsOf(this.db, [row.id])).get(row.id) ?? []);
  }

  async listUsers(): Promise<User[]> {
    return (await this.db.selectFrom('users').select(USER_COLUMNS).orderBy('name').execute()).map(toUser);
  }

  /** Every role, global and domain-specific. */
  async listAllRoles(): Promise<Role[]> {
    const rows = await this.db
      .selectFrom('roles')
      .select(['id', 'name', 'domain_id'])
      .orderBy('name')
      .execute();
    return rows.map(toRole);
  }

  /** The global roles (Keystone's GET /v3/roles), or those of one domain (`?domain_id`). */
  async listRoles(input: req.ListRolesInput = {}): Promise<Role[]> {
    return q.listRoles(this.db, parseRequest(req.listRolesRequest, input, 'role filter').domainId);
  }

  async listRoleAssignments(input: req.ListAssignmentsInput = {}): Promise<RoleAssignment[]> {
    const r = parseRequest(req.listAssignmentsRequest, input, 'role assignment filter');
    let query = this.db
      .selectFrom('role_assignments')
      .innerJoin('roles', 'roles.id', 'role_assignments.role_id')
      .select([
        'role_assignments.user_id as userId',
        'role_assignments.project_id as projectId',
        'roles.id as roleId',
        'roles.name as roleName',
      ]);
    if (r.userId) query = query.where('role_assignments.user_id', '=', r.userId);
    if (r.projectId) query = query.where('role_assignments.project_id', '=', r.projectId);
    if (r.roleId) query = query.where('role_assignments.role_id', '=', r.roleId);
    return query
      .orderBy('role_assignments.user_id')
      .orderBy('role_assignments.project_id')
      .orderBy('roles.name')
      .execute();
  }

  /** Grants a role on a domain (Keystone's PUT /v3/domains/{d}/users/{u}/roles/{r}); again is a no-op. */
  async assignDomainRole(input: req.DomainRoleAssignmentInput): Promise<void> {
    const r = parseRequest(req.domainRoleAssignmentRequest, input, 'domain role assignment');
    await addGrant(
      this.db,
      { userId: r.userId, roleId: r.roleId, on: { domainId: r.domainId } },
      this.clock.now(),
    );
  }

  /** Removes a domain grant (idempotent); domain-scoped tokens lose the role at their next validation. */
  async unassignDomainRole(input: req.DomainRoleAssignmentInput): Promise<{ removed: boolean }> {
    const r = parseRequest(req.domainRoleAssignmentRequest, input, 'domain role assignment');
    return this.revokeGrant({ userId: r.userId, roleId: r.roleId, on: { domainId: r.domainId } });
  }

  /** Keystone's PUT /v3/system/users/{user}/roles/{role} (idempotent). */
  async assignSystemRole(input: req.SystemRoleAssignmentInput): Promise<void> {
    const r = parseRequest(req.systemRoleAssignmentRequest, input, 'system role assignment');
    await q.checkRoleFitsSystem(this.db, r.roleId);
    await addGrant(this.db, { userId: r.userId, roleId: r.roleId, on: 'system' }, this.clock.now());
  }

  async unassignSystemRole(input: req.SystemRoleAssignmentInput): Promise<{ removed: boolean }> {
    const r = parseRequest(req.systemRoleAssignmentRequest, input, 'system role assignment');
    return this.revokeGrant({ userId: r.userId, roleId: r.roleId, on: 'system' });
  }

  // ---- groups (groups.ts) ---------------------------------------------------------------------------------

  /** Keystone's POST /v3/groups: Conflict if the domain already has a group of that name. */
  async createGroup(input: req.CreateGroupInput): Promise<Group> {
    const r = parseRequest(req.createGroupRequest, input, 'group');
    const domain = await q.findDomain(this.db, r.domainId);
    return groups.createGroup(this.db, { ...r, domainId: domain.id }, this.clock.now());
  }

  async getGroup(groupId: string): Promise<Group> {
    return groups.groupById(this.db, parseRequest(idSchema, groupId, 'group id'));
  }

  async updateGroup(input: req.UpdateGroupInput): Promise<Group> {
    return groups.updateGroup(this.db, parseRequest(req.updateGroupRequest, input, 'group update'));
  }

  /** Deletes the group, its memberships and grants; its members' tokens lose those roles at once here. */
  async deleteGroup(groupId: string): Promise<void> {
    const id = parseRequest(idSchema, groupId, 'group id');
    await this.identityChange((trx) => groups.deleteGroup(trx, id));
  }

  async listGroups(input: req.ListGroupsInput = {}): Promise<Group[]> {
    return groups.listGroups(this.db, parseRequest(req.listGroupsRequest, input, 'group filter'));
  }

  async listGroupUsers(groupId: string): Promise<User[]> {
    return groups.usersInGroup(this.db, parseRequest(idSchema, groupId, 'group id'));
  }

  async isGroupMember(input: req.MembershipInput): Promise<boolean> {
    const r = parseRequest(req.membershipRequest, input, 'group membership');
    return groups.isMember(this.db, r.groupId, r.userId);
  }

  /** Keystone's PUT /v3/groups/{g}/users/{u}: the user gains the group's roles (again: a no-op). */
  async addGroupMember(input: req.MembershipInput): Promise<void> {
    const r = parseRequest(req.membershipRequest, input, 'group membership');
    await groups.groupById(this.db, r.groupId);
    await q.findUserById(this.db, r.userId);
    await groups.addMember(this.db, r.groupId, r.userId);
  }

  /**
   * Keystone's DELETE /v3/groups/{g}/users/{u}: NotFound if not a member; the user's tokens are revoked,
   * as Keystone's remove_user_from_group does.
   */
  async removeGroupMember(input: req.MembershipInput): Promise<void> {
    const r = parseRequest(req.membershipRequest, input, 'group membership');
    await this.identityChange(async (trx) => {
      await groups.removeMember(trx, r.groupId, r.userId);
      await this.auth.revoke(trx, { userId: r.userId });
    });
  }

  /** A role for a group on a project or a domain (idempotent): every member holds it. */
  async assignGroupRole(input: req.GroupRoleAssignmentInput): Promise<void> {
    const r = parseRequest(req.groupRoleAssignmentRequest, input, 'group role assignment');
    if (r.on === 'system') await q.checkRoleFitsSystem(this.db, r.roleId);
    else if ('projectId' in r.on)
      await q.checkRoleFitsProject(this.db, await q.findRoleById(this.db, r.roleId), r.on.projectId);
    await addGrant(this.db, r, this.clock.now());
  }

  async unassignGroupRole(input: req.GroupRoleAssignmentInput): Promise<{ removed: boolean }> {
    return this.revokeGrant(parseRequest(req.groupRoleAssignmentRequest, input, 'group role assignment'));
  }

  async listGroupRoleAssignments(input: req.ListGroupAssignmentsInput = {}): Promise<GroupRoleAssignment[]> {
    const r = parseRequest(req.listGroupAssignmentsRequest, input, 'group role assignment filter');
    return groups.listGroupAssignments(this.db, r);
  }

  /** Each group's member ids (for role_assignments?effective). */
  async groupMembers(groupIds: string[]): Promise<Map<string, string[]>> {
    return groups.membersOf(this.db, parseRequest(idSchema.array(), groupIds, 'group ids'));
  }

  /** The projects and domains where the user holds a role, directly or through its groups. */
  async scopesOfUser(userId: string): Promise<{ projectIds: string[]; domainIds: string[] }> {
    return q.scopesOfUser(this.db, parseRequest(idSchema, userId, 'user id'));
  }

  /** Removes a grant (idempotent); tokens lose the role at their next validation here. */
  private async revokeGrant(grant: Grant): Promise<{ removed: boolean }> {
    try {
      return await removeGrant(this.db, grant);
    } finally {
      this.auth.forgetValidatedTokens();
    }
  }

  /** System grants, filtered by user and role. */
  async listSystemRoleAssignments(
    input: Partial<req.SystemRoleAssignmentInput> = {},
  ): Promise<Array<{ userId: string; roleId: string; roleName: string }>> {
    const r = parseRequest(req.listSystemAssignmentsRequest, input, 'system role assignment filter');
    let query = this.db
      .selectFrom('system_role_assignments')
      .innerJoin('roles', 'roles.id', 'system_role_assignments.role_id')
      .select(['system_role_assignments.user_id as userId', 'roles.id as roleId', 'roles.name as roleName']);
    if (r.userId) query = query.where('system_role_assignments.user_id', '=', r.userId);
    if (r.roleId) query = query.where('system_role_assignments.role_id', '=', r.roleId);
    return query.orderBy('system_role_assignments.user_id').orderBy('roles.name').execute();
  }

  /** Domain grants (not the implied roles), filtered by user, domain and role. */
  async listDomainRoleAssignments(
    input: req.ListDomainAssignmentsInput = {},
  ): Promise<DomainRoleAssignment[]> {
    const r = parseRequest(req.listDomainAssignmentsRequest, input, 'domain role assignment filter');
    let query = this.db
      .selectFrom('domain_role_assignments')
      .innerJoin('roles', 'roles.id', 'domain_role_assignments.role_id')
      .select([
        'domain_role_assignments.user_id as userId',
        'domain_role_assignments.domain_id as domainId',
        'roles.id as roleId',
        'roles.name as roleName',
      ]);
    if (r.userId) query = query.where('domain_role_assignments.user_id', '=', r.userId);
    if (r.domainId) query = query.where('domain_role_assignments.domain_id', '=', r.domainId);
    if (r.roleId) query = query.where('domain_role_assignments.role_id', '=', r.roleId);
    return query
      .orderBy('domain_role_assignments.user_id')
      .orderBy('domain_role_assignments.domain_id')
      .orderBy('roles.name')
      .execute();
  }

  /** The user's effective roles on the project: the assigned ones plus what they imply. */
  async effectiveRoles(userId: string, projectId: string): Promise<string[]> {
    return q.effectiveRoles(this.db, userId, projectId);
  }

  // ---- OS-INHERIT (inherited.ts) -------------------------------------------------------------------------

  /**
   * Keystone's PUT /v3/OS-INHERIT/{domains,projects}/{id}/{users,groups}/{id}/roles/{role}/inherited_to_projects
   * (again: a no-op): the role on every project below the target; the actor, target and role must exist.
   */
  async addInheritedGrant(grant: InheritedGrant): Promise<void> {
    await this.checkInheritedRefs(grant);
    await addInherited(this.db, grant, this.clock.now());
  }

  async hasInheritedGrant(grant: InheritedGrant): Promise<boolean> {
    return hasInherited(this.db, parseRequest(inheritedGrantSchema, grant, 'inherited grant'));
  }

  /** Removes it (false if there was none); tokens lose the role at their next validation here. */
  async removeInheritedGrant(grant: InheritedGrant): Promise<boolean> {
    const g = parseRequest(inheritedGrantSchema, grant, 'inherited grant');
    try {
      return await removeInherited(this.db, g);
    } finally {
      this.auth.forgetValidatedTokens();
    }
  }

  async listInheritedGrants(): Promise<InheritedGrant[]> {
    return listInherited(this.db);
  }

  /** The projects an inherited grant's target passes its role down to. */
  async projectsBelow(target: InheritedGrant['target']): Promise<string[]> {
    return projectsBelow(this.db, target);
  }

  private async checkInheritedRefs(grant: InheritedGrant): Promise<void> {
    const g = parseRequest(inheritedGrantSchema, grant, 'inherited grant');
    const role = await q.findRoleById(this.db, g.roleId);
    if ('project' in g.target) await q.checkRoleFitsProject(this.db, role, g.target.project);
    if ('user' in g.actor) await q.findUserById(this.db, g.actor.user);
    else await groups.groupById(this.db, g.actor.group);
    if ('domain' in g.target) await q.findDomain(this.db, g.target.domain);
    else await this.projectRowById(g.target.project);
  }

  // ---- application credentials (app-credentials.ts) -------------------------------------------------------

  /**
   * Keystone's POST /v3/users/{id}/application_credentials: the roles asked for and those they imply (all
   * in the creating token, else 400), or the token's roles; the secret (generated unless given) is returned
   * here once and stored hashed.
   */
  async createApplicationCredential(
    input: req.CreateApplicationCredentialInput,
  ): Promise<{ appCred: ApplicationCredential; secret: string }> {
    const r = parseRequest(req.createApplicationCredentialRequest, input, 'application credential');
    const all = await this.listRoles();
    const asked = (r.roles ?? []).map((ref) => {
      const role = all.find((x) => ('id' in ref ? x.id === ref.id : x.name === ref.name));
      if (!role) throw new CloudError('NotFound', `Could not find role: ${'id' in ref ? ref.id : ref.name}.`);
      return role.name;
    });
    const names = asked.length
      ? expandImpliedRoles(
          asked,
          (await this.listImpliedRoles()).map((x) => [x.prior.name, x.implied.name] as const),
        )
      : r.tokenRoles;
    if (names.some((n) => !r.tokenRoles.includes(n)))
      throw new CloudError(
        'BadRequest',
        'Invalid application credential: Cannot create an application credential with unassigned role',
      );
    const secret = r.secret ?? generateSecret();
    const secretHash = await this.auth.hashPassword(secret);
    const appCred = await this.store.transaction((trx) =>
      createAppCred(
        trx,
        {
          userId: r.userId,
          projectId: r.projectId,
          name: r.name,
          ...(r.description !== undefined ? { description: r.description } : {}),
          ...(r.expiresAt !== undefined ? { expiresAt: r.expiresAt } : {}),
          ...(r.expiresAtMicros !== undefined ? { expiresAtMicros: r.expiresAtMicros } : {}),
          ...(r.unrestricted !== undefined ? { unrestricted: r.unrestricted } : {}),
          roleIds: all.filter((x) => names.includes(x.name)).map((x) => x.id),
        },
        secretHash,
        this.clock.now(),
      ),
    );
    return { appCred, secret };
  }

  async listApplicationCredentials(
    userId: string,
    filter: { name?: string } = {},
  ): Promise<ApplicationCredential[]> {
    return listAppCreds(this.db, parseRequest(idSchema, userId, 'user id'), filter);
  }

  async getApplicationCredential(id: string): Promise<ApplicationCredential> {
    return getAppCred(this.db, id);
  }

  /** Deletes it; the tokens it gave stop validating (here at once: the validated-token cache goes). */
  async deleteApplicationCredential(id: string): Promise<void> {
    const appCredId = parseRequest(idSchema, id, 'application credential id');
    await this.identityChange((trx) => deleteAppCred(trx, appCredId));
  }

  // ---- tokens --------------------------------------------------------------------------------------------

  /** Password authentication scoped to a project → a signed token and its context (Unauthorized if not). */
  async authenticate(input: req.AuthenticateInput): Promise<AuthResult> {
    const r = parseRequest(req.authenticateRequest, input, 'authentication request');
    return this.auth.authenticate({
      username: r.username,
      password: r.password,
      userDomainName: r.userDomainName ?? DEFAULT_DOMAIN_NAME,
      projectName: r.projectName,
      projectDomainName: r.projectDomainName ?? DEFAULT_DOMAIN_NAME,
    });
  }

  /**
   * The token's context if it is genuine, unexpired by the clock (allowExpired: within the allow_expired
   * window past expiry, for services finishing long work), not revoked, and its user, project and role
   * assignment still stand; Unauthorized otherwise. Roles are the current effective roles.
   */
  async validateToken(token: string, options: req.ValidateTokenOptions = {}): Promise<RequestContext> {
    const value = parseRequest(req.tokenSchema, token, 'token');
    const { allowExpired } = parseRequest(req.validateTokenOptions, options, 'token validation options');
    return this.auth.validate(value, allowExpired === true);
  }

  /**
   * keystonemiddleware's auth_token for the services: as validateToken (fresh tokens only), answered from
   * the validated-token cache within token_cache_time (token-cache.ts says what that means for revocation).
   * With the token's methods, for the grant the request may make (grantFor).
   */
  async authenticateRequest(token: string): Promise<ValidatedToken> {
    return this.auth.validateCached(parseRequest(req.tokenSchema, token, 'token'));
  }

  /**
   * The operation grant of a request authenticated in this process (authenticateRequest): the token is not
   * checked a second time; the grant carries its audit id and issue time, so a revocation still kills it.
   */
  async grantFor(
    validated: ValidatedToken,
    operation: OperationScope,
  ): Promise<{ grant: string; expiresAt: number }> {
    return this.auth.grantFor(validated, operation);
  }

  /**
   * Keystone's POST /v3/auth/tokens: the password method (user by id, or by name in a domain by id or
   * name) or the token method (re-scoping), scoped to a project or a domain (by id or name), or unscoped.
   * Every failure is the same Unauthorized.
   */
  async issueToken(input: req.IssueTokenInput): Promise<IssuedToken> {
    const r = parseRequest(req.issueTokenRequest, input, 'authentication request');
    if (r.method === 'password') return this.auth.passwordToken(r.user, r.password, r.scope);
    if (r.method === 'application_credential')
      return this.auth.appCredToken(r.applicationCredential, r.secret);
    return this.auth.tokenToken(r.token, r.scope);
  }

  /** A fresh token → an operation grant for one workflow (see OperationScope); Unauthorized otherwise. */
  async issueGrant(token: string, operation: OperationScope): Promise<{ grant: string; expiresAt: number }> {
    return this.auth.issueGrant(parseRequest(req.tokenSchema, token, 'token'), operation);
  }

  /**
   * The context of an operation grant presented by the workflow `operation` (its type and id, as the
   * activity's Temporal context says); Unauthorized for anything else, a token included.
   */
  async validateGrant(
    grant: string,
    operation: OperationScope,
    options: req.ValidateTokenOptions = {},
  ): Promise<RequestContext> {
    const value = parseRequest(req.tokenSchema, grant, 'grant');
    const { allowExpired } = parseRequest(req.validateTokenOptions, options, 'token validation options');
    return this.auth.validateGrant(value, operation, allowExpired === true);
  }

  /** A valid token's caller (any scope) and methods (Keystone's GET /v3/auth/tokens); Unauthorized otherwise. */
  async describeToken(token: string): Promise<{ caller: TokenContext; methods: string[] }> {
    return this.auth.describe(parseRequest(req.tokenSchema, token, 'token'));
  }

  /** Revokes one token (Keystone's DELETE /v3/auth/tokens); revoking it again is a no-op. */
  async revokeToken(token: string): Promise<void> {
    await this.auth.revokeToken(parseRequest(req.tokenSchema, token, 'token'));
  }
}
