/**
 * What the identity routes share: their authentication (tokens of any scope), Keystone's 403, its body
 * validation, and its views' lookups.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { isCloudError } from '../../cloud/errors';
import {
  authorize,
  type PolicyCredentials,
  type PolicyRule,
  type PolicyTarget,
  type TokenContext,
} from '../../cloud/keystone';
import { tokenOf, unauthorized } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';

export interface IdentityAuth {
  /** The validated caller: scoped to a project, to a domain, or unscoped. */
  caller: TokenContext;
  token: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    identityAuth: IdentityAuth | null;
  }
}

/**
 * Keystone's own token check: unlike the other services it takes domain-scoped and unscoped tokens too
 * (its policies decide what they may do). A missing, forged, expired or revoked token is 401.
 */
export function requireIdentityAuth(deps: ApiDeps) {
  return async function authenticate(request: FastifyRequest, _reply: FastifyReply): Promise<void> {
    const token = tokenOf(request, deps);
    try {
      request.identityAuth = { caller: (await deps.cloud.keystone.describeToken(token)).caller, token };
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

/** The caller of a request that went through requireIdentityAuth. */
export function callerOf(request: FastifyRequest): TokenContext {
  if (!request.identityAuth) throw new Error('route registered without requireIdentityAuth');
  return request.identityAuth.caller;
}

/** oslo.policy's creds of a token: its roles and its scope. */
export const credentialsOf = (caller: TokenContext): PolicyCredentials => ({
  roles: caller.roles,
  ...(caller.project ? { projectId: caller.project.id } : {}),
  ...(caller.domain ? { scopeDomainId: caller.domain.id } : {}),
});

/** Keystone's ForbiddenAction. */
export function forbiddenAction(action: string): ApiError {
  return new ApiError(403, `You are not authorized to perform the requested action: ${action}.`, 'Forbidden');
}

/** Keystone's enforce_call: the default policy of the action, or 403. */
export function enforceIdentity(caller: TokenContext, rule: PolicyRule, target?: PolicyTarget): void {
  if (!authorize(credentialsOf(caller), rule, target ?? {}).allowed) throw forbiddenAction(rule);
}

export const isAdmin = (caller: TokenContext): boolean => caller.roles.includes('admin');

/** Keystone's ADMIN_OR_SYSTEM_READER: `rule:admin_required or (role:reader and system_scope:all)`. */
export function enforceSystemReader(caller: TokenContext, action: string): void {
  if (!isAdmin(caller) && !(caller.system === true && caller.roles.includes('reader')))
    throw forbiddenAction(action);
}

/** Keystone's admin_required (`role:admin`, any scope). */
export function enforceAdmin(caller: TokenContext, action: string): void {
  if (!isAdmin(caller)) throw forbiddenAction(action);
}

/** Keystone's ValidationError for a body that does not match the schema: 400 naming the first problem. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.join('.') : 'request body';
  throw new ApiError(
    400,
    `Invalid input for field '${field}': ${issue?.message ?? 'invalid'}`,
    'ValidationError',
  );
}

/** A query parameter given once (Keystone filters take one value). */
export function queryParam(request: FastifyRequest, name: string): string | undefined {
  const value = (request.query as Record<string, unknown>)[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new ApiError(400, `Invalid value for query parameter ${name}`);
  return value;
}

/** Keystone's boolean query values ("true", "1", "false", "0"; a bare `?enabled` is true). */
export function boolParam(request: FastifyRequest, name: string): boolean | undefined {
  const value = queryParam(request, name);
  if (value === undefined) return undefined;
  if (['', 'true', 'True', '1', 'yes'].includes(value)) return true;
  if (['false', 'False', '0', 'no'].includes(value)) return false;
  throw new ApiError(400, `Invalid value for query parameter ${name}: ${value}`);
}
