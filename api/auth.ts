/**
 * keystonemiddleware's auth_token, as every service but Keystone runs it: the X-Auth-Token header is
 * validated against Keystone once per request (and, as auth_token does, taken from its validated-token cache
 * for token_cache_time: cloud/keystone/token-cache.ts) and the request carries the resulting context. A missing, forged, expired or
 * revoked token is 401 with `WWW-Authenticate: Keystone uri="<identity endpoint>"`, which tells clients
 * where to authenticate.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { isCloudError } from '../cloud/errors';
import type { RequestContext, ValidatedToken } from '../cloud/keystone';
import type { ApiDeps } from './deps';
import { ApiError } from './errors';

export interface AuthenticatedRequest {
  /** The validated caller: user, project, effective roles. */
  ctx: RequestContext;
  /** The token as presented: never logged, never handed to a workflow. */
  token: string;
  /** The validation itself: a workflow's operation grant is made from it, without a second check. */
  validated: ValidatedToken;
}

declare module 'fastify' {
  interface FastifyRequest {
    auth: AuthenticatedRequest | null;
  }
}

export const AUTH_TOKEN_HEADER = 'x-auth-token';

export function identityEndpoint(deps: Pick<ApiDeps, 'publicUrl'>): string {
  return `${deps.publicUrl}/identity`;
}

export function unauthorized(deps: Pick<ApiDeps, 'publicUrl'>): ApiError {
  return new ApiError(401, 'The request you have made requires authentication.', 'Unauthorized', {
    'www-authenticate': `Keystone uri="${identityEndpoint(deps)}"`,
  });
}

/** The token of a request, or 401. */
export function tokenOf(request: FastifyRequest, deps: Pick<ApiDeps, 'publicUrl'>): string {
  const header = request.headers[AUTH_TOKEN_HEADER];
  const token = Array.isArray(header) ? header[0] : header;
  if (!token) throw unauthorized(deps);
  return token;
}

/**
 * A preHandler hook: validates the token and sets `request.auth`, or answers 401. A valid token that is not
 * project-scoped is the service's 403 (the services' policies have scope_types ['project']).
 */
export function requireAuth(deps: ApiDeps) {
  return async function authenticate(request: FastifyRequest, _reply: FastifyReply): Promise<void> {
    const token = tokenOf(request, deps);
    try {
      const validated = await deps.cloud.keystone.authenticateRequest(token);
      request.auth = { ctx: validated.context, token, validated };
    } catch (err) {
      if (
        isCloudError(err, 'Unauthorized') ||
        isCloudError(err, 'NotFound') ||
        isCloudError(err, 'BadRequest')
      )
        throw unauthorized(deps);
      throw err;
    }
  };
}

/** The authenticated caller of a request that went through requireAuth. */
export function authOf(request: FastifyRequest): AuthenticatedRequest {
  if (!request.auth) throw new Error('route registered without requireAuth');
  return request.auth;
}
