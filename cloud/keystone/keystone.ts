/**
 * Identity (Keystone): domains, projects, users, roles and role assignments in the keystone database;
 * password authentication scoped to a project; signed, expiring tokens; revocation.
 *
 * Every credential failure is the same Unauthorized with the same message, so a caller cannot tell an
 * unknown user from a wrong password, a disabled account, an unknown project or a missing role.
 */
import path from 'node:path';
import { randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Clock } from '../clock';
import { systemClock } from '../clock';
import { openServiceDb, type DbConfig, type ServiceDb } from '../db';
import { CloudError } from '../errors';
import { parseRequest } from '../validation';
import type { RequestContext } from './context';
import { keystoneMigrations } from './migrations';
import {
  checkScryptParams,
  DEFAULT_SCRYPT_PARAMS,
  hashPassword,
  verifyPassword,
  type ScryptParams,
} from './passwords';
import * as req from './requests';
import { DEFAULT_IMPLIED_ROLES, DEFAULT_ROLES, expandImpliedRoles } from './roles';
import type { DomainsTable, KeystoneDb, ProjectsTable, UsersTable } from './schema';
import { loadOrCreateSigningKey, parseSigningKey } from './signing-key';
import { isUniqueViolation } from './unique';
import { TokenSigner, type VerifiedToken } from './tokens';

export interface KeystoneOptions {
  db: DbConfig;
  clock?: Clock;
  /** Where the signing key file lives; default `<db.dataDir>/keystone`. */
  keyDir?: string;
  /** An Ed25519 private key (KeyObject or PKCS#8 PEM) instead of the key file. */
  signingKey?: KeyObject | string;
  /** Token lifetime; Keystone's [token] expiration, default 3600. */
  tokenTtlSeconds?: number;
  /** How long past expiry allowExpired still accepts a token; Keystone's allow_expired_window, default 48 h. */
  allowExpiredWindowSeconds?: number;
  /** scrypt cost for new hashes; existing hashes keep the parameters stored with them. */
  passwordHashing?: ScryptParams;
}

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
  description: string | null;
  enabled: boolean;
  createdAt: number;
}

/** A user as list/show return it: never the password or its hash. */
export interface User {
  id: string;
  name: string;
  domainId: string;
  email: string | null;
  enabled: boolean;
  passwordChangedAt: number;
  createdAt: number;
}

export interface Role {
  id: string;
  name: string;
}

export interface RoleAssignment {
  userId: string;
  projectId: string;
  roleId: string;
  roleName: string;
}

export interface AuthResult {
  token: string;
  /** Epoch ms. */
  expiresAt: number;
  context: RequestContext;
}

export const DEFAULT_DOMAIN_ID = 'default';
export const DEFAULT_DOMAIN_NAME = 'Default';
export const DEFAULT_TOKEN_TTL_SECONDS = 3600;
export const DEFAULT_ALLOW_EXPIRED_WINDOW_SECONDS = 48 * 3600;
/** Keystone's message for every 401. */
export const UNAUTHORIZED_MESSAGE = 'The request you have made requires authentication.';
const MAX_TOKEN_LENGTH = 8192;

const unauthorized = (): CloudError => new CloudError('Unauthorized', UNAUTHORIZED_MESSAGE);
/** Keystone ids are uuid4 hex. */
const newId = (): string => randomUUID().replace(/-/g, '');

const toDomain = (r: DomainsTable): Domain => ({
  id: r.id,
  name: r.name,
  description: r.description,
  enabled: r.enabled === 1,
  createdAt: Number(r.created_at),
});
const toProject = (r: ProjectsTable): Project => ({
  id: r.id,
  name: r.name,
  domainId: r.domain_id,
  description: r.description,
  enabled: r.enabled === 1,
  createdAt: Number(r.created_at),
});
const toUser = (r: Omit<UsersTable, 'password_hash'>): User => ({
  id: r.id,
  name: r.name,
  domainId: r.domain_id,
  email: r.email,
  enabled: r.enabled === 1,
  passwordChangedAt: Number(r.password_changed_at),
  createdAt: Number(r.created_at),
});

const USER_COLUMNS = [
  'users.id',
  'users.name',
  'users.domain_id',
  'users.email',
  'users.enabled',
  'users.password_changed_at',
  'users.created_at',
] as const;

function positiveSeconds(value: number | undefined, fallback: number, what: string, min: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min)
    throw new CloudError('BadRequest', `${what} must be an integer ≥ ${min}`);
  return v;
}

export class Keystone {
  private dummyHash: Promise<string> | undefined;

  private constructor(
    private readonly store: ServiceDb<KeystoneDb>,
    private readonly clock: Clock,
    private readonly signer: TokenSigner,
    private readonly tokenTtlMs: number,
    private readonly allowExpiredWindowMs: number,
    private readonly hashParams: ScryptParams,
  ) {}

  static async open(options: KeystoneOptions): Promise<Keystone> {
    const ttl = positiveSeconds(options.tokenTtlSeconds, DEFAULT_TOKEN_TTL_SECONDS, 'tokenTtlSeconds', 1);
    const window = positiveSeconds(
      options.allowExpiredWindowSeconds,
      DEFAULT_ALLOW_EXPIRED_WINDOW_SECONDS,
      'allowExpiredWindowSeconds',
      0,
    );
    const hashParams = options.passwordHashing ?? DEFAULT_SCRYPT_PARAMS;
    checkScryptParams(hashParams);
    const key = options.signingKey
      ? parseSigningKey(options.signingKey)
      : loadOrCreateSigningKey(options.keyDir ?? path.join(options.db.dataDir, 'keystone'));
    const signer = await TokenSigner.create(key);
    const store = await openServiceDb<KeystoneDb>('keystone', keystoneMigrations, options.db);
    const keystone = new Keystone(
      store,
      options.clock ?? systemClock,
      signer,
      ttl * 1000,
      window * 1000,
      hashParams,
    );
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

  /** The keystone database, for audits and tests that read rows; changes go through the methods above. */
  get serviceDb(): ServiceDb<KeystoneDb> {
    return this.store;
  }

  private get db(): Kysely<KeystoneDb> {
    return this.store.db;
  }

  /** What keystone-manage bootstrap creates: the Default domain, the default roles and their implications. */
  private async ensureDefaults(): Promise<void> {
    await this.insertOrFind(
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
      const priorId = roles.get(prior)?.id ?? '';
      const impliedId = roles.get(implied)?.id ?? '';
      await this.insertOrFind(
        () =>
          this.db
            .insertInto('implied_roles')
            .values({ prior_role_id: priorId, implied_role_id: impliedId })
            .execute(),
        () =>
          this.db
            .selectFrom('implied_roles')
            .selectAll()
            .where('prior_role_id', '=', priorId)
            .where('implied_role_id', '=', impliedId)
            .executeTakeFirst(),
      );
    }
  }

  /**
   * Idempotent create: an existing row wins (like `openstack ... create --or-show`); a concurrent creator's
   * unique violation means someone else inserted it first, so read theirs.
   */
  private async insertOrFind<T>(
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

  // ---- lookups -------------------------------------------------------------------------------------------

  private async findDomain(ref: string): Promise<DomainsTable> {
    const row =
      (await this.db.selectFrom('domains').selectAll().where('name', '=', ref).executeTakeFirst()) ??
      (await this.db.selectFrom('domains').selectAll().where('id', '=', ref).executeTakeFirst());
    if (!row) throw new CloudError('NotFound', `Could not find domain: ${ref}.`, { domain: ref });
    return row;
  }

  private async findProject(ref: string, domainRef = DEFAULT_DOMAIN_NAME): Promise<ProjectsTable> {
    const domain = await this.findDomain(domainRef);
    const row =
      (await this.db
        .selectFrom('projects')
        .selectAll()
        .where('domain_id', '=', domain.id)
        .where('name', '=', ref)
        .executeTakeFirst()) ??
      (await this.db.selectFrom('projects').selectAll().where('id', '=', ref).executeTakeFirst());
    if (!row) throw new CloudError('NotFound', `Could not find project: ${ref}.`, { project: ref });
    return row;
  }

  private async findUser(ref: string, domainRef = DEFAULT_DOMAIN_NAME): Promise<User> {
    const domain = await this.findDomain(domainRef);
    const row =
      (await this.db
        .selectFrom('users')
        .select(USER_COLUMNS)
        .where('domain_id', '=', domain.id)
        .where('name', '=', ref)
        .executeTakeFirst()) ??
      (await this.db.selectFrom('users').select(USER_COLUMNS).where('id', '=', ref).executeTakeFirst());
    if (!row) throw new CloudError('NotFound', `Could not find user: ${ref}.`, { user: ref });
    return toUser(row);
  }

  private async findRole(ref: string): Promise<Role> {
    const row =
      (await this.db.selectFrom('roles').select(['id', 'name']).where('name', '=', ref).executeTakeFirst()) ??
      (await this.db.selectFrom('roles').select(['id', 'name']).where('id', '=', ref).executeTakeFirst());
    if (!row) throw new CloudError('NotFound', `Could not find role: ${ref}.`, { role: ref });
    return row;
  }

  // ---- admin operations (idempotent by name) --------------------------------------------------------------

  async ensureDomain(input: unknown): Promise<Domain> {
    const r = parseRequest(req.ensureDomainRequest, input, 'domain');
    const row = await this.insertOrFind(
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

  async ensureProject(input: unknown): Promise<Project> {
    const r = parseRequest(req.ensureProjectRequest, input, 'project');
    const domain = await this.findDomain(r.domain ?? DEFAULT_DOMAIN_NAME);
    const row = await this.insertOrFind(
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
    return toProject(row);
  }

  /** Creates the user if missing; an existing user is returned unchanged (use setUserPassword to change it). */
  async ensureUser(input: unknown): Promise<User> {
    const r = parseRequest(req.ensureUserRequest, input, 'user');
    const domain = await this.findDomain(r.domain ?? DEFAULT_DOMAIN_NAME);
    const row = await this.insertOrFind(
      async () => {
        const now = this.clock.now();
        const passwordHash = await hashPassword(r.password, this.hashParams);
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

  async ensureRole(input: unknown): Promise<Role> {
    const r = parseRequest(req.ensureRoleRequest, input, 'role');
    return this.insertOrFind(
      () =>
        this.db
          .insertInto('roles')
          .values({ id: newId(), name: r.name, created_at: this.clock.now() })
          .execute(),
      () => this.db.selectFrom('roles').select(['id', 'name']).where('name', '=', r.name).executeTakeFirst(),
    );
  }

  async assignRole(input: unknown): Promise<RoleAssignment> {
    const r = parseRequest(req.roleAssignmentRequest, input, 'role assignment');
    const user = await this.findUser(r.user, r.userDomain);
    const project = await this.findProject(r.project, r.projectDomain);
    const role = await this.findRole(r.role);
    await this.insertOrFind(
      () =>
        this.db
          .insertInto('role_assignments')
          .values({
            user_id: user.id,
            project_id: project.id,
            role_id: role.id,
            created_at: this.clock.now(),
          })
          .execute(),
      () =>
        this.db
          .selectFrom('role_assignments')
          .selectAll()
          .where('user_id', '=', user.id)
          .where('project_id', '=', project.id)
          .where('role_id', '=', role.id)
          .executeTakeFirst(),
    );
    return { userId: user.id, projectId: project.id, roleId: role.id, roleName: role.name };
  }

  /** Removes an assignment (idempotent); tokens lose the role at their next validation. */
  async unassignRole(input: unknown): Promise<{ removed: boolean }> {
    const r = parseRequest(req.roleAssignmentRequest, input, 'role assignment');
    const user = await this.findUser(r.user, r.userDomain);
    const project = await this.findProject(r.project, r.projectDomain);
    const role = await this.findRole(r.role);
    const res = await this.db
      .deleteFrom('role_assignments')
      .where('user_id', '=', user.id)
      .where('project_id', '=', project.id)
      .where('role_id', '=', role.id)
      .executeTakeFirst();
    return { removed: Number(res.numDeletedRows) > 0 };
  }

  async disableUser(input: unknown): Promise<User> {
    return this.setUserEnabled(parseRequest(req.userRefRequest, input, 'user reference'), false);
  }

  /** Re-enables the user; tokens issued before the disable stay revoked. */
  async enableUser(input: unknown): Promise<User> {
    return this.setUserEnabled(parseRequest(req.userRefRequest, input, 'user reference'), true);
  }

  private async setUserEnabled(
    ref: { user: string; domain?: string | undefined },
    enabled: boolean,
  ): Promise<User> {
    const user = await this.findUser(ref.user, ref.domain);
    await this.store.transaction(async (trx) => {
      await trx
        .updateTable('users')
        .set({ enabled: enabled ? 1 : 0 })
        .where('id', '=', user.id)
        .execute();
      if (!enabled) await this.addRevocationEvent(trx, { user_id: user.id });
    });
    return { ...user, enabled };
  }

  async disableProject(input: unknown): Promise<Project> {
    return this.setProjectEnabled(parseRequest(req.projectRefRequest, input, 'project reference'), false);
  }

  /** Re-enables the project; tokens issued before the disable stay revoked. */
  async enableProject(input: unknown): Promise<Project> {
    return this.setProjectEnabled(parseRequest(req.projectRefRequest, input, 'project reference'), true);
  }

  private async setProjectEnabled(
    ref: { project: string; domain?: string | undefined },
    enabled: boolean,
  ): Promise<Project> {
    const project = await this.findProject(ref.project, ref.domain);
    await this.store.transaction(async (trx) => {
      await trx
        .updateTable('projects')
        .set({ enabled: enabled ? 1 : 0 })
        .where('id', '=', project.id)
        .execute();
      if (!enabled) await this.addRevocationEvent(trx, { project_id: project.id });
    });
    return toProject({ ...project, enabled: enabled ? 1 : 0 });
  }

  /** Changes the password and revokes the user's existing tokens, as Keystone does. */
  async setUserPassword(input: unknown): Promise<User> {
    const r = parseRequest(req.setPasswordRequest, input, 'password change');
    const user = await this.findUser(r.user, r.domain);
    const passwordHash = await hashPassword(r.password, this.hashParams);
    const now = this.clock.now();
    await this.store.transaction(async (trx) => {
      await trx
        .updateTable('users')
        .set({ password_hash: passwordHash, password_changed_at: now })
        .where('id', '=', user.id)
        .execute();
      await this.addRevocationEvent(trx, { user_id: user.id });
    });
    return { ...user, passwordChangedAt: now };
  }

  // ---- reads ---------------------------------------------------------------------------------------------

  async getUser(input: unknown): Promise<User> {
    const r = parseRequest(req.userRefRequest, input, 'user reference');
    return this.findUser(r.user, r.domain);
  }

  async getProject(input: unknown): Promise<Project> {
    const r = parseRequest(req.projectRefRequest, input, 'project reference');
    return toProject(await this.findProject(r.project, r.domain));
  }

  async listDomains(): Promise<Domain[]> {
    return (await this.db.selectFrom('domains').selectAll().orderBy('name').execute()).map(toDomain);
  }

  async listProjects(): Promise<Project[]> {
    return (await this.db.selectFrom('projects').selectAll().orderBy('name').execute()).map(toProject);
  }

  async listUsers(): Promise<User[]> {
    return (await this.db.selectFrom('users').select(USER_COLUMNS).orderBy('name').execute()).map(toUser);
  }

  async listRoles(): Promise<Role[]> {
    return this.db.selectFrom('roles').select(['id', 'name']).orderBy('name').execute();
  }

  async listRoleAssignments(input: unknown = {}): Promise<RoleAssignment[]> {
    const r = parseRequest(req.listAssignmentsRequest, input, 'role assignment filter');
    let q = this.db
      .selectFrom('role_assignments')
      .innerJoin('roles', 'roles.id', 'role_assignments.role_id')
      .select([
        'role_assignments.user_id as userId',
        'role_assignments.project_id as projectId',
        'roles.id as roleId',
        'roles.name as roleName',
      ]);
    if (r.userId) q = q.where('role_assignments.user_id', '=', r.userId);
    if (r.projectId) q = q.where('role_assignments.project_id', '=', r.projectId);
    return q
      .orderBy('role_assignments.user_id')
      .orderBy('role_assignments.project_id')
      .orderBy('roles.name')
      .execute();
  }

  /** The user's effective roles on the project: assigned ones plus what they imply. */
  async effectiveRoles(userId: string, projectId: string): Promise<string[]> {
    const assigned = await this.db
      .selectFrom('role_assignments')
      .innerJoin('roles', 'roles.id', 'role_assignments.role_id')
      .select('roles.name')
      .where('role_assignments.user_id', '=', userId)
      .where('role_assignments.project_id', '=', projectId)
      .execute();
    if (assigned.length === 0) return [];
    const rules = await this.db
      .selectFrom('implied_roles')
      .innerJoin('roles as prior', 'prior.id', 'implied_roles.prior_role_id')
      .innerJoin('roles as implied', 'implied.id', 'implied_roles.implied_role_id')
      .select(['prior.name as prior', 'implied.name as implied'])
      .execute();
    return expandImpliedRoles(
      assigned.map((a) => a.name),
      rules.map((rule) => [rule.prior, rule.implied] as const),
    );
  }

  // ---- tokens --------------------------------------------------------------------------------------------

  /** Password authentication scoped to a project → a signed token and its context. */
  async authenticate(input: unknown): Promise<AuthResult> {
    const r = parseRequest(req.authenticateRequest, input, 'authentication request');
    const user = await this.db
      .selectFrom('users')
      .innerJoin('domains', 'domains.id', 'users.domain_id')
      .select([
        'users.id',
        'users.name',
        'users.domain_id',
        'users.enabled',
        'users.password_hash',
        'domains.enabled as domain_enabled',
      ])
      .where('users.name', '=', r.username)
      .where('domains.name', '=', r.userDomainName ?? DEFAULT_DOMAIN_NAME)
      .executeTakeFirst();
    // An unknown user still costs one scrypt, so response time does not reveal which names exist.
    const passwordOk = await verifyPassword(
      r.password,
      user?.password_hash ?? (await this.dummyPasswordHash()),
    );
    if (!user || !passwordOk || user.enabled !== 1 || user.domain_enabled !== 1) throw unauthorized();

    const project = await this.db
      .selectFrom('projects')
      .innerJoin('domains', 'domains.id', 'projects.domain_id')
      .select([
        'projects.id',
        'projects.name',
        'projects.domain_id',
        'projects.enabled',
        'domains.enabled as domain_enabled',
      ])
      .where('projects.name', '=', r.projectName)
      .where('domains.name', '=', r.projectDomainName ?? DEFAULT_DOMAIN_NAME)
      .executeTakeFirst();
    if (!project || project.enabled !== 1 || project.domain_enabled !== 1) throw unauthorized();
    const roles = await this.effectiveRoles(user.id, project.id);
    if (roles.length === 0) throw unauthorized();

    const issuedAt = this.clock.now();
    const expiresAt = issuedAt + this.tokenTtlMs;
    // Keystone's audit ids: 16 random bytes, URL-safe base64.
    const auditId = randomBytes(16).toString('base64url');
    const token = await this.signer.sign({
      userId: user.id,
      projectId: project.id,
      roles,
      issuedAt,
      expiresAt,
      auditId,
    });
    return {
      token,
      expiresAt,
      context: {
        userId: user.id,
        userName: user.name,
        userDomainId: user.domain_id,
        projectId: project.id,
        projectName: project.name,
        domainId: project.domain_id,
        roles,
        issuedAt,
        expiresAt,
        auditId,
      },
    };
  }

  /**
   * Validates a token against the current state: signature, expiry by the clock (with allowExpired: up to
   * the allow_expired window past it, for services finishing long work), revocation events, user, project
   * and domains still enabled, and at least one role still assigned. The context's roles are the current
   * effective roles, as Keystone recomputes them at validation.
   */
  async validateToken(token: unknown, options: unknown = {}): Promise<RequestContext> {
    const value = parseRequest(req.tokenSchema, token, 'token');
    const { allowExpired } = parseRequest(req.validateTokenOptions, options, 'token validation options');
    if (value.length > MAX_TOKEN_LENGTH) throw unauthorized();
    const verified = await this.signer.verify(
      value,
      this.clock.now(),
      allowExpired ? this.allowExpiredWindowMs : 0,
    );
    if (!verified || (await this.isRevoked(verified))) throw unauthorized();
    const context = await this.currentContext(verified);
    if (!context) throw unauthorized();
    return context;
  }

  /** Revokes one token (Keystone's DELETE /v3/auth/tokens); revoking it again is a no-op. */
  async revokeToken(token: unknown): Promise<void> {
    const value = parseRequest(req.tokenSchema, token, 'token');
    if (value.length > MAX_TOKEN_LENGTH) throw unauthorized();
    const verified = await this.signer.verify(value, this.clock.now(), this.allowExpiredWindowMs);
    if (!verified) throw unauthorized();
    // One event per token, keyed by its audit id: a second revoke finds it (or loses the insert race).
    const id = `audit-${verified.auditId}`;
    const exists = await this.db
      .selectFrom('revocation_events')
      .select('id')
      .where('id', '=', id)
      .executeTakeFirst();
    if (exists) return;
    try {
      await this.store.transaction(async (trx) => {
        await this.addRevocationEvent(
          trx,
          { audit_id: verified.auditId, issued_before: verified.issuedAt },
          id,
        );
      });
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
    }
  }

  private async isRevoked(token: VerifiedToken): Promise<boolean> {
    const hit = await this.db
      .selectFrom('revocation_events')
      .select('id')
      .where('issued_before', '>=', token.issuedAt)
      .where((eb) =>
        eb.and([
          eb.or([eb('user_id', 'is', null), eb('user_id', '=', token.userId)]),
          eb.or([eb('project_id', 'is', null), eb('project_id', '=', token.projectId)]),
          eb.or([eb('audit_id', 'is', null), eb('audit_id', '=', token.auditId)]),
        ]),
      )
      .limit(1)
      .executeTakeFirst();
    return hit !== undefined;
  }

  private async currentContext(token: VerifiedToken): Promise<RequestContext | undefined> {
    const user = await this.db
      .selectFrom('users')
      .innerJoin('domains', 'domains.id', 'users.domain_id')
      .select([
        'users.id',
        'users.name',
        'users.domain_id',
        'users.enabled',
        'domains.enabled as domain_enabled',
      ])
      .where('users.id', '=', token.userId)
      .executeTakeFirst();
    if (!user || user.enabled !== 1 || user.domain_enabled !== 1) return undefined;
    const project = await this.db
      .selectFrom('projects')
      .innerJoin('domains', 'domains.id', 'projects.domain_id')
      .select([
        'projects.id',
        'projects.name',
        'projects.domain_id',
        'projects.enabled',
        'domains.enabled as domain_enabled',
      ])
      .where('projects.id', '=', token.projectId)
      .executeTakeFirst();
    if (!project || project.enabled !== 1 || project.domain_enabled !== 1) return undefined;
    const roles = await this.effectiveRoles(user.id, project.id);
    if (roles.length === 0) return undefined;
    return {
      userId: user.id,
      userName: user.name,
      userDomainId: user.domain_id,
      projectId: project.id,
      projectName: project.name,
      domainId: project.domain_id,
      roles,
      issuedAt: token.issuedAt,
      expiresAt: token.expiresAt,
      auditId: token.auditId,
    };
  }

  /**
   * Records a revocation event (at least one selector set) and prunes events old enough that every token
   * they could match is past its allow_expired window anyway.
   */
  private async addRevocationEvent(
    trx: Kysely<KeystoneDb>,
    selector: { user_id?: string; project_id?: string; audit_id?: string; issued_before?: number },
    id: string = newId(),
  ): Promise<void> {
    const now = this.clock.now();
    await trx
      .insertInto('revocation_events')
      .values({
        id,
        user_id: selector.user_id ?? null,
        project_id: selector.project_id ?? null,
        audit_id: selector.audit_id ?? null,
        issued_before: selector.issued_before ?? now,
        revoked_at: now,
      })
      .execute();
    await trx
      .deleteFrom('revocation_events')
      .where('revoked_at', '<', now - this.tokenTtlMs - this.allowExpiredWindowMs)
      .execute();
  }

  private dummyPasswordHash(): Promise<string> {
    this.dummyHash ??= hashPassword(randomBytes(16).toString('hex'), this.hashParams);
    return this.dummyHash;
  }
}
