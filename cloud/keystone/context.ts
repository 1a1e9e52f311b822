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
