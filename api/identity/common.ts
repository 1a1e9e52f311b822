/** What the identity routes share: Keystone's 403, its body validation, and its views' lookups. */
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { authorize, type PolicyRule, type PolicyTarget, type RequestContext } from '../../cloud/keystone';
import { ApiError } from '../errors';

/** Keystone's ForbiddenAction. */
export function forbiddenAction(action: string): ApiError {
  return new ApiError(403, `You are not authorized to perform the requested action: ${action}.`, 'Forbidden');
}

/** Keystone's enforce_call: the default policy of the action, or 403. */
export function enforceIdentity(ctx: RequestContext, rule: PolicyRule, target?: PolicyTarget): void {
  if (!authorize(ctx, rule, target).allowed) throw forbiddenAction(rule);
}

export const isAdmin = (ctx: RequestContext): boolean => ctx.roles.includes('admin');

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
