/**
 * Password authentication, token validation and revocation. Every credential failure is the same
 * Unauthorized with the same message, so a caller cannot tell an unknown user from a wrong password, a
 * disabled account, an unknown project or a missing role.
 */
import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Clock } from '../clock';
import type { ServiceDb } from '../db';
import { CloudError } from '../errors';
import { projectContext, type RequestContext, type TokenContext } from './context';
import { hashPassword, verifyPassword, type ScryptParams } from './passwords';
import * as q from './queries';
import type { DomainLocator, EntityLocator } from './queries';
import { appCredRow } from './app-credentials';
import { addRevocationEvent, isRevoked, type RevocationSelector } from './revocation';
import type { KeystoneDb } from './schema';
import type { OperationScope, TokenSigner, VerifiedToken } from './tokens';
import { ValidatedTokenCache, type ValidatedToken } from './token-cache';
import { isUniqueViolation } from '../db';
import { parseExtra, type AuthResult, type IssuedToken } from './views';

/** Keystone's message for every 401. */
export const UNAUTHORIZED_MESSAGE = 'The request you have made requires authentication.';
const MAX_TOKEN_LENGTH = 8192;

const unauthorized = (): CloudError => new CloudError('Unauthorized', UNAUTHORIZED_MESSAGE);

/** Why a service refuses a valid token that is not scoped to a project. */
export const PROJECT_SCOPE_REQUIRED = 'This service takes project-scoped tokens only.';

/** The scope a token is asked for: a project, a domain, or none (unscoped). */
export type ScopeRef =
  { project: EntityLocator } | { domain: DomainLocator } | { system: { all: true } } | { unscoped: true };

const scopeOf = (t: VerifiedToken): ScopeRef =>
  t.projectId !== undefined
    ? { project: { id: t.projectId } }
    : t.domainId !== undefined
      ? { domain: { id: t.domainId } }
      : t.system !== undefined
        ? { system: { all: true } }
        : { unscoped: true };

export interface AuthSettings {
  tokenTtlMs: number;
  allowExpiredWindowMs: number;
  hashParams: ScryptParams;
  /** The services' validated-token cache (keystonemiddleware's token_cache_time); 0 turns it off. */
  tokenCacheMs: number;
  tokenCacheEntries: number;
}

export interface Login {
  username: string;
  password: string;
  userDomainName: string;
  projectName: string;
  projectDomainName: string;
}

export class Authenticator {
  private dummyHash: Promise<string> | undefined;
  private readonly validated: ValidatedTokenCache;

  constructor(
    private readonly store: ServiceDb<KeystoneDb>,
    private readonly clock: Clock,
    private readonly signer: TokenSigner,
    private readonly settings: AuthSettings,
  ) {
    this.validated = new ValidatedTokenCache(clock, settings.tokenCacheMs, settings.tokenCacheEntries);
  }

  /** Drops every cached validation: called once a revocation or an identity change is committed. */
  forgetValidatedTokens(): void {
    this.validated.forget();
  }

  /** Password authentication scoped to a project → a signed token and its context. */
  async authenticate(login: Login): Promise<AuthResult> {
    const issued = await this.passwordToken(
      { name: login.username, domain: { name: login.userDomainName } },
      login.password,
      { project: { name: login.projectName, domain: { name: login.projectDomainName } } },
    );
    const context = projectContext(issued.caller);
    if (!context) throw unauthorized();
    return {
      token: issued.token,
      expiresAt: issued.expiresAt,
      context,
      methods: issued.methods,
      auditIds: issued.auditIds,
    };
  }

  /** Keystone's password method: the user by id or by name in a domain, with the scope asked for. */
  async passwordToken(
    userRef: EntityLocator,
    password: string,
    scope: ScopeRef | undefined,
  ): Promise<IssuedToken> {
    const user = await q.loginUser(this.store.db, userRef);
    // An unknown user still costs one scrypt, so response time does not reveal which names exist.
    const passwordOk = await verifyPassword(
      password,
      user?.password_hash ?? (await this.dummyPasswordHash()),
    );
    if (!user || !passwordOk || user.enabled !== 1 || user.domain_enabled !== 1) throw unauthorized();
    return this.issue(user, scope ?? (await this.defaultScope(user.id)), ['password'], []);
  }

  /**
   * No scope asked: Keystone's default scoping, the user's default_project_id when that project is enabled
   * and the user holds a role there; otherwise an unscoped token.
   */
  private async defaultScope(userId: string): Promise<ScopeRef> {
    const row = await this.store.db
      .selectFrom('users')
      .select('extra')
      .where('id', '=', userId)
      .executeTakeFirst();
    const projectId = row ? parseExtra(row.extra).default_project_id : undefined;
    if (typeof projectId !== 'string' || projectId === '') return { unscoped: true };
    const scope = { project: { id: projectId } };
    return (await this.resolveScope(userId, scope)) ? scope : { unscoped: true };
  }

  /**
   * Keystone's token method: a valid token re-scoped (to the same scope when none is asked). The new token
   * expires no later than the one it came from, as Keystone's re-scoping keeps expires_at.
   */
  async tokenToken(token: string, scope: ScopeRef | undefined): Promise<IssuedToken> {
    const verified = await this.liveToken(token, 0);
    const user = await q.activeUser(this.store.db, verified.userId);
    if (!user) throw unauthorized();
    const methods = ['token', ...verified.methods.filter((m) => m !== 'token')];
    // A token from an application credential re-scopes to nothing else: its credential's project only.
    return this.issue(
      user,
      scope ?? scopeOf(verified),
      methods,
      [verified.auditId],
      verified.expiresAt,
      verified.applicationCredentialId,
    );
  }

  /**
   * Keystone's application_credential method: the credential by id, or by name with its user (by id, or by
   * name in a domain); its secret checked against the stored hash; unexpired; its user enabled. The token is
   * scoped to the credential's project with the credential's roles the user still holds, and expires no
   * later than the credential. Every failure is the same Unauthorized.
   */
  async appCredToken(
    ref: { id: string } | { name: string; user: EntityLocator },
    secret: string,
  ): Promise<IssuedToken> {
    const db = this.store.db;
    let found: Awaited<ReturnType<typeof appCredRow>>;
    if ('id' in ref) found = await appCredRow(db, ref);
    else {
      const owner = await q.loginUser(db, ref.user);
      found = owner ? await appCredRow(db, { name: ref.name, userId: owner.id }) : undefined;
    }
    // An unknown credential still costs one scrypt, as an unknown user does.
    const secretOk = await verifyPassword(secret, found?.secretHash ?? (await this.dummyPasswordHash()));
    if (!found || !secretOk) throw unauthorized();
    const { appCred } = found;
    const expiresAtMs = appCred.expiresAt ?? undefined;
    if (expiresAtMs !== undefined && expiresAtMs <= this.clock.now()) throw unauthorized();
    const user = await q.activeUser(db, appCred.userId);
    if (!user) throw unauthorized();
    return this.issue(
      user,
      { project: { id: appCred.projectId } },
      ['application_credential'],
      [],
      expiresAtMs,
      appCred.id,
    );
  }

  /**
   * The scope resolved as for any token; for a token from an application credential, its roles are only
   * the credential's roles the user still holds on its project (Keystone's
   * _get_application_credential_roles), and the credential must still exist, unexpired, for that project.
   */
  private async restrictedScope(
    userId: string,
    scope: ScopeRef,
    appCredId: string | undefined,
  ): Promise<
    Pick<TokenContext, 'roles' | 'project' | 'domain' | 'system' | 'applicationCredential'> | undefined
  > {
    const target = await this.resolveScope(userId, scope);
    if (!target || appCredId === undefined) return target;
    const found = await appCredRow(this.store.db, { id: appCredId });
    if (!found) return undefined;
    const { appCred } = found;
    if (appCred.userId !== userId || target.project?.id !== appCred.projectId) return undefined;
    if (appCred.expiresAt !== null && appCred.expiresAt <= this.clock.now()) return undefined;
    const roles = target.roles.filter((r) => appCred.roles.some((a) => a.name === r));
    if (roles.length === 0) return undefined;
    return {
      ...target,
      roles,
      applicationCredential: { id: appCred.id, name: appCred.name, unrestricted: appCred.unrestricted },
    };
  }

  private async issue(
    user: { id: string; name: string; domain_id: string },
    scope: ScopeRef,
    methods: string[],
    parentAuditIds: string[],
    notAfter?: number,
    appCredId?: string,
  ): Promise<IssuedToken> {
    const target = await this.restrictedScope(user.id, scope, appCredId);
    if (!target) throw unauthorized();
    const issuedAt = this.clock.now();
    const expiresAt = Math.min(issuedAt + this.settings.tokenTtlMs, notAfter ?? Infinity);
    // Keystone's audit ids: 16 random bytes, URL-safe base64.
    const auditId = randomBytes(16).toString('base64url');
    const token = await this.signer.sign({
      userId: user.id,
      scope: target.project
        ? { projectId: target.project.id }
        : target.domain
          ? { domainId: target.domain.id }
          : target.system
            ? { system: 'all' as const }
            : {},
      roles: target.roles,
      issuedAt,
      expiresAt,
      auditId,
      methods,
      ...(appCredId !== undefined ? { applicationCredentialId: appCredId } : {}),
    });
    const caller: TokenContext = {
      userId: user.id,
      userName: user.name,
      userDomainId: user.domain_id,
      issuedAt,
      expiresAt,
      auditId,
      ...target,
    };
    return { token, expiresAt, caller, methods, auditIds: [auditId, ...parentAuditIds] };
  }

  /**
   * The scope's project or domain (enabled, with at least one role for the user) and the effective roles
   * there; an unscoped token has no roles. Undefined when the user may not have that scope.
   */
  private async resolveScope(
    userId: string,
    scope: ScopeRef,
  ): Promise<Pick<TokenContext, 'roles' | 'project' | 'domain' | 'system'> | undefined> {
    const db = this.store.db;
    if ('project' in scope) {
      const project = await q.activeProject(db, scope.project);
      if (!project) return undefined;
      const roles = await q.effectiveRoles(db, userId, project.id);
      if (roles.length === 0) return undefined;
      return { roles, project: { id: project.id, name: project.name, domainId: project.domain_id } };
    }
    if ('domain' in scope) {
      const domain = await q.activeDomain(db, scope.domain);
      if (!domain) return undefined;
      const roles = await q.effectiveDomainRoles(db, userId, domain.id);
      if (roles.length === 0) return undefined;
      return { roles, domain: { id: domain.id, name: domain.name } };
    }
    if ('system' in scope) {
      // Keystone's system scope: a role assigned on the system is needed, as a role on a project is.
      const roles = await q.effectiveSystemRoles(db, userId);
      if (roles.length === 0) return undefined;
      return { roles, system: true };
    }
    return { roles: [] };
  }

  /** The token's caller and how it was obtained (Keystone's GET /v3/auth/tokens), whatever its scope. */
  async describe(token: string): Promise<{ caller: TokenContext; methods: string[] }> {
    const verified = await this.liveToken(token, 0);
    const caller = await this.currentCaller(verified);
    if (!caller) throw unauthorized();
    return { caller, methods: verified.methods };
  }

  /**
   * Signature, expiry by the clock (allowExpired: up to the allow_expired window past it), revocation
   * events, user, project and domains still enabled, at least one role still assigned. The context's roles
   * are the current effective roles, as Keystone recomputes them at validation. The services take
   * project-scoped tokens only (their policies' scope_types are ['project']): a valid domain-scoped or
   * unscoped token is Forbidden there.
   */
  async validate(token: string, allowExpired: boolean): Promise<RequestContext> {
    const verified = await this.liveToken(token, allowExpired ? this.settings.allowExpiredWindowMs : 0);
    return this.projectContextOf(verified);
  }

  /**
   * What the services' auth_token does: `validate` of a fresh token, answered from the validated-token cache
   * when this token was validated less than token_cache_time ago (see token-cache.ts for the revocation
   * bound). Failures are not cached.
   */
  async validateCached(token: string): Promise<ValidatedToken> {
    const hit = this.validated.get(token);
    if (hit) return hit;
    const generation = this.validated.generation;
    const verified = await this.liveToken(token, 0);
    const validated = {
      context: await this.projectContextOf(verified),
      methods: verified.methods,
      ...(verified.applicationCredentialId !== undefined
        ? { applicationCredentialId: verified.applicationCredentialId }
        : {}),
    };
    this.validated.put(token, validated, generation);
    return validated;
  }

  /**
   * A valid (fresh) project-scoped token → an operation grant for one workflow: the token's user, project,
   * roles, audit id and issue time, expiring with the token (see OperationScope). A grant cannot make
   * another grant.
   */
  async issueGrant(token: string, operation: OperationScope): Promise<{ grant: string; expiresAt: number }> {
    const verified = await this.liveToken(token, 0);
    const context = await this.projectContextOf(verified);
    return this.grantFor(
      {
        context,
        methods: verified.methods,
        ...(verified.applicationCredentialId !== undefined
          ? { applicationCredentialId: verified.applicationCredentialId }
          : {}),
      },
      operation,
    );
  }

  /**
   * The grant of a token this process has just validated (validate or validateCached): no second check.
   * The grant carries the token's audit id and issue time, so a revocation of the token that this process
   * had not yet seen still refuses it at the first activity that checks it.
   */
  async grantFor(
    validated: ValidatedToken,
    operation: OperationScope,
  ): Promise<{ grant: string; expiresAt: number }> {
    const { context } = validated;
    const grant = await this.signer.sign({
      userId: context.userId,
      scope: { projectId: context.projectId },
      roles: context.roles,
      issuedAt: this.clock.now(),
      expiresAt: context.expiresAt,
      auditId: context.auditId,
      methods: validated.methods,
      ...(validated.applicationCredentialId !== undefined
        ? { applicationCredentialId: validated.applicationCredentialId }
        : {}),
      operation,
      tokenIssuedAt: context.issuedAt,
    });
    return { grant, expiresAt: context.expiresAt };
  }

  /**
   * The context of a grant presented by the workflow `operation` names: signature, expiry (allowExpired as for
   * tokens, for work already under way), revocation (of the token it came from), the user, project and roles
   * still standing, and the workflow type and id exactly those it was issued for.
   */
  async validateGrant(
    grant: string,
    operation: OperationScope,
    allowExpired: boolean,
  ): Promise<RequestContext> {
    const verified = await this.verify(grant, allowExpired ? this.settings.allowExpiredWindowMs : 0);
    if (
      !verified?.operation ||
      verified.operation.workflowType !== operation.workflowType ||
      verified.operation.workflowId !== operation.workflowId ||
      // Judged as the token it came from: a revocation of that token (or of all the user's) kills it.
      (await isRevoked(this.store.db, { ...verified, issuedAt: verified.tokenIssuedAt ?? verified.issuedAt }))
    ) {
      throw unauthorized();
    }
    return this.projectContextOf(verified);
  }

  /** The current caller of a verified token, which must be project-scoped (Forbidden otherwise). */
  private async projectContextOf(verified: VerifiedToken): Promise<RequestContext> {
    const caller = await this.currentCaller(verified);
    if (!caller) throw unauthorized();
    const context = projectContext(caller);
    if (!context) throw new CloudError('Forbidden', PROJECT_SCOPE_REQUIRED);
    return context;
  }

  /** Revokes one token by its audit id (Keystone's DELETE /v3/auth/tokens); again is a no-op. */
  async revokeToken(token: string): Promise<void> {
    const verified = await this.verify(token, this.settings.allowExpiredWindowMs);
    if (!verified) throw unauthorized();
    const id = `audit-${verified.auditId}`;
    const db = this.store.db;
    if (await db.selectFrom('revocation_events').select('id').where('id', '=', id).executeTakeFirst()) {
      // Revoked already (perhaps by another process): this process stops taking it now too.
      this.forgetValidatedTokens();
      return;
    }
    try {
      await this.store.transaction((trx) =>
        this.revoke(trx, { auditId: verified.auditId }, { id, issuedBefore: verified.issuedAt }),
      );
    } catch (err) {
      // A concurrent revoke of the same token inserted the event first.
      if (!isUniqueViolation(err)) throw err;
    } finally {
      this.forgetValidatedTokens();
    }
  }

  /** Records a revocation event inside the caller's transaction (disable, password change, ...). */
  async revoke(
    trx: Kysely<KeystoneDb>,
    selector: RevocationSelector,
    options: { id?: string; issuedBefore?: number } = {},
  ): Promise<void> {
    const now = this.clock.now();
    // Now, and again by the caller once its transaction commits (a validation in between stores nothing).
    this.forgetValidatedTokens();
    await addRevocationEvent(trx, {
      id: options.id ?? randomBytes(16).toString('hex'),
      selector,
      issuedBefore: options.issuedBefore ?? now,
      now,
      pruneBefore: now - this.settings.tokenTtlMs - this.settings.allowExpiredWindowMs,
    });
  }

  hashPassword(password: string): Promise<string> {
    return hashPassword(password, this.settings.hashParams);
  }

  /**
   * A token whose signature and expiry (with `graceMs` past it) hold and that no revocation event matches,
   * else the one Unauthorized. An operation grant is no token: it authorizes its one workflow, is never
   * re-scoped and never passes for a token at the APIs.
   */
  private async liveToken(token: string, graceMs: number): Promise<VerifiedToken> {
    const verified = await this.verify(token, graceMs);
    if (!verified || verified.operation || (await isRevoked(this.store.db, verified))) throw unauthorized();
    return verified;
  }

  private async verify(token: string, graceMs: number): Promise<VerifiedToken | undefined> {
    if (token.length > MAX_TOKEN_LENGTH) return undefined;
    return this.signer.verify(token, this.clock.now(), graceMs);
  }

  private async currentCaller(token: VerifiedToken): Promise<TokenContext | undefined> {
    const user = await q.activeUser(this.store.db, token.userId);
    if (!user) return undefined;
    const target = await this.restrictedScope(user.id, scopeOf(token), token.applicationCredentialId);
    if (!target) return undefined;
    return {
      userId: user.id,
      userName: user.name,
      userDomainId: user.domain_id,
      issuedAt: token.issuedAt,
      expiresAt: token.expiresAt,
      auditId: token.auditId,
      ...target,
    };
  }

  private dummyPasswordHash(): Promise<string> {
    this.dummyHash ??= this.hashPassword(randomBytes(16).toString('hex'));
    return this.dummyHash;
  }
}
