/**
 * Signed tokens, as Keystone's JWS token provider makes them: a compact JWS (EdDSA over Ed25519) whose
 * claims name the user, the scope (a project, a domain, or none) and the roles, with issue and expiry times. `iat` and `exp` are
 * NumericDates with millisecond precision (RFC 7519 allows fractions) so that revocation events and expiry
 * are exact under the injected clock. Nothing secret goes into a token: it is signed, not encrypted.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { SignJWT, calculateJwkThumbprint, exportJWK, jwtVerify } from 'jose';
import { z } from 'zod';

export const TOKEN_ISSUER = 'bootflow-keystone';
const ALGORITHM = 'EdDSA';

const claimsSchema = z.strictObject({
  iss: z.literal(TOKEN_ISSUER),
  sub: z.string().min(1).max(64),
  // Neither for an unscoped token; never both.
  project_id: z.string().min(1).max(64).optional(),
  domain_id: z.string().min(1).max(64).optional(),
  /** Set on a system-scoped token (Keystone's `system: {all: true}`). */
  system: z.literal('all').optional(),
  roles: z.array(z.string().min(1).max(255)).max(256),
  methods: z.array(z.string()).max(8),
  /** Set on a token from an application credential: its roles are that credential's (auth.ts). */
  app_cred_id: z.string().min(1).max(64).optional(),
  iat: z.number().finite(),
  exp: z.number().finite(),
  jti: z.string().min(1).max(64),
  /**
   * Present on an operation grant only: the one workflow it may authorize (see OperationScope) and the issue
   * time of the token it was made from (`token_iat`, a NumericDate; absent on grants made before it was
   * added), which revocation events are judged against, so that revoking the token kills its grants.
   */
  bootflow_op: z
    .strictObject({
      workflow_type: z.string().min(1).max(255),
      workflow_id: z.string().min(1).max(1000),
      token_iat: z.number().finite().optional(),
    })
    .optional(),
});

/**
 * What an operation grant is good for: one Temporal workflow, by type and id. A grant is signed by
 * Keystone's key like a token, carries its user, project, roles, audit id and the token's issue time (so
 * revoking the token it came from, or all the user's tokens, revokes it), and expires with it; but it is never accepted as a token, and an activity accepts it
 * only from the workflow it names.
 */
export interface OperationScope {
  workflowType: string;
  workflowId: string;
}

export type TokenClaims = z.infer<typeof claimsSchema>;

/** What a token is scoped to: a project, a domain, or nothing (unscoped). */
export type TokenScopeClaim =
  { projectId: string } | { domainId: string } | { system: 'all' } | Record<string, never>;

export interface IssueClaims {
  userId: string;
  scope: TokenScopeClaim;
  roles: string[];
  issuedAt: number;
  expiresAt: number;
  auditId: string;
  /** Keystone's `methods`: how the user proved who they are (password; token when re-scoped). */
  methods: string[];
  /** The application credential the token was issued for. */
  applicationCredentialId?: string;
  /** Makes this an operation grant instead of a token. */
  operation?: OperationScope;
  /** A grant's token's issue time (epoch ms): what revocation events are judged against. */
  tokenIssuedAt?: number;
}

export interface VerifiedToken {
  userId: string;
  /** Set on a project-scoped token. */
  projectId?: string;
  /** Set on a domain-scoped token. */
  domainId?: string;
  /** Set on a system-scoped token. */
  system?: 'all';
  roles: string[];
  issuedAt: number;
  expiresAt: number;
  auditId: string;
  methods: string[];
  applicationCredentialId?: string;
  operation?: OperationScope;
  /** On a grant: the issue time of the token it was made from (absent on grants made before it was kept). */
  tokenIssuedAt?: number;
}

const toNumericDate = (ms: number): number => ms / 1000;
const fromNumericDate = (seconds: number): number => Math.round(seconds * 1000);

export class TokenSigner {
  private constructor(
    private readonly privateKey: KeyObject,
    private readonly publicKey: KeyObject,
    private readonly keyId: string,
  ) {}

  static async create(privateKey: KeyObject): Promise<TokenSigner> {
    const publicKey = createPublicKey(privateKey);
    const keyId = await calculateJwkThumbprint(await exportJWK(publicKey));
    return new TokenSigner(privateKey, publicKey, keyId);
  }

  async sign(claims: IssueClaims): Promise<string> {
    const payload: Omit<TokenClaims, 'iss' | 'sub' | 'iat' | 'exp' | 'jti'> = {
      ...('projectId' in claims.scope ? { project_id: claims.scope.projectId } : {}),
      ...('domainId' in claims.scope ? { domain_id: claims.scope.domainId } : {}),
      ...('system' in claims.scope ? { system: claims.scope.system } : {}),
      roles: claims.roles,
      methods: claims.methods,
      ...(claims.applicationCredentialId !== undefined
        ? { app_cred_id: claims.applicationCredentialId }
        : {}),
      ...(claims.operation
        ? {
            bootflow_op: {
              workflow_type: claims.operation.workflowType,
              workflow_id: claims.operation.workflowId,
              ...(claims.tokenIssuedAt !== undefined
                ? { token_iat: toNumericDate(claims.tokenIssuedAt) }
                : {}),
            },
          }
        : {}),
    };
    return new SignJWT(payload)
      .setProtectedHeader({ alg: ALGORITHM, typ: 'JWT', kid: this.keyId })
      .setIssuer(TOKEN_ISSUER)
      .setSubject(claims.userId)
      .setIssuedAt(toNumericDate(claims.issuedAt))
      .setExpirationTime(toNumericDate(claims.expiresAt))
      .setJti(claims.auditId)
      .sign(this.privateKey);
  }

  /**
   * Checks the signature and the claims' shape, and expiry against `nowMs` (the caller's clock, not the wall
   * clock) allowing `graceMs` past `exp`. Any failure is `undefined`: the caller answers Unauthorized
   * without saying why, as Keystone does.
   */
  async verify(token: string, nowMs: number, graceMs: number): Promise<VerifiedToken | undefined> {
    let payload: unknown;
    try {
      ({ payload } = await jwtVerify(token, this.publicKey, {
        algorithms: [ALGORITHM],
        issuer: TOKEN_ISSUER,
        typ: 'JWT',
        requiredClaims: ['sub', 'iat', 'exp', 'jti'],
        currentDate: new Date(nowMs),
        // jose works in whole seconds; the exact judgement is ours, below.
        clockTolerance: Math.ceil(graceMs / 1000) + 1,
      }));
    } catch {
      return undefined;
    }
    const parsed = claimsSchema.safeParse(payload);
    if (!parsed.success) return undefined;
    const claims = parsed.data;
    const scopes = [claims.project_id, claims.domain_id, claims.system].filter((x) => x !== undefined);
    if (scopes.length > 1) return undefined;
    const expiresAt = fromNumericDate(claims.exp);
    if (nowMs >= expiresAt + graceMs) return undefined;
    return {
      userId: claims.sub,
      ...(claims.project_id !== undefined ? { projectId: claims.project_id } : {}),
      ...(claims.domain_id !== undefined ? { domainId: claims.domain_id } : {}),
      ...(claims.system !== undefined ? { system: claims.system } : {}),
      roles: claims.roles,
      issuedAt: fromNumericDate(claims.iat),
      expiresAt,
      auditId: claims.jti,
      methods: claims.methods,
      ...(claims.app_cred_id !== undefined ? { applicationCredentialId: claims.app_cred_id } : {}),
      ...(claims.bootflow_op
        ? {
            operation: {
              workflowType: claims.bootflow_op.workflow_type,
              workflowId: claims.bootflow_op.workflow_id,
            },
            ...(claims.bootflow_op.token_iat !== undefined
              ? { tokenIssuedAt: fromNumericDate(claims.bootflow_op.token_iat) }
              : {}),
          }
        : {}),
    };
  }
}
