/**
 * The request context a validated token yields (oslo.context's RequestContext, reduced): who is calling, on
 * which project, with which effective roles. Other services take it to apply their visibility rules.
 */
export interface RequestContext {
  userId: string;
  userName: string;
  userDomainId: string;
  projectId: string;
  projectName: string;
  /** The project's domain. */
  domainId: string;
  /** Effective roles on the project, implied roles included (admin → manager, member, reader). */
  roles: string[];
  /** Epoch ms. */
  issuedAt: number;
  /** Epoch ms. */
  expiresAt: number;
  /** The token's audit id (its jti): safe to log, unlike the token. */
  auditId: string;
}

export type Ctx = RequestContext;

/**
 * A token's caller as Keystone's own API sees it: scoped to a project (the services' RequestContext), to a
 * domain, or to nothing (an unscoped token: no roles, no catalog; only good for listing one's projects and
 * re-scoping).
 */
export interface TokenContext {
  userId: string;
  userName: string;
  userDomainId: string;
  /** Effective roles on the scope, implied roles included; empty for an unscoped token. */
  roles: string[];
  issuedAt: number;
  expiresAt: number;
  auditId: string;
  /** Set on a project-scoped token. */
  project?: { id: string; name: string; domainId: string };
  /** Set on a domain-scoped token. */
  domain?: { id: string; name: string };
  /** Set on a system-scoped token (roles on the whole deployment; the services refuse it). */
  system?: true;
  /** Set on a token from an application credential (Keystone's token.application_credential). */
  applicationCredential?: { id: string; name: string; unrestricted: boolean };
}

/** The services' context of a project-scoped token; undefined for a domain-scoped or unscoped one. */
export function projectContext(t: TokenContext): RequestContext | undefined {
  if (!t.project) return undefined;
  return {
    userId: t.userId,
    userName: t.userName,
    userDomainId: t.userDomainId,
    projectId: t.project.id,
    projectName: t.project.name,
    domainId: t.project.domainId,
    roles: t.roles,
    issuedAt: t.issuedAt,
    expiresAt: t.expiresAt,
    auditId: t.auditId,
  };
}
