/** Neutron's request handling shared by its resources: body parsing with Neutron's 400s, policy, ownership. */
import { z } from 'zod';
import type { RequestContext } from '../../cloud/keystone';
import { ApiError } from '../errors';

export const isAdmin = (ctx: RequestContext) => ctx.roles.includes('admin');

export function policyDenied(rule: string): ApiError {
  return new ApiError(403, `(rule:${rule}) is disallowed by policy`, 'PolicyNotAuthorized');
}

/** Neutron's body checks: unknown attributes and wrong types are 400 with Neutron's wording. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown, resource: string): z.infer<S> {
  if (typeof body !== 'object' || body === null || !(resource in body))
    throw new ApiError(400, `Resource body required`, 'HTTPBadRequest');
  const result = schema.safeParse((body as Record<string, unknown>)[resource]);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  if (issue.code === 'unrecognized_keys')
    throw new ApiError(400, `Unrecognized attribute(s) '${issue.keys.join(', ')}'`, 'HTTPBadRequest');
  throw new ApiError(
    400,
    `Invalid input for ${issue.path.join('.') || resource}. Reason: ${issue.message}.`,
    'HTTPBadRequest',
  );
}

/** Neutron's answer to a PUT naming an attribute that is fixed at create. */
export function readOnly(
  body: unknown,
  resource: string,
  updatable: readonly string[],
  known: readonly string[],
): void {
  const attrs = (body as Record<string, Record<string, unknown> | undefined> | null)?.[resource];
  if (typeof attrs !== 'object' || attrs === null) return;
  const fixed = Object.keys(attrs).find((k) => known.includes(k) && !updatable.includes(k));
  if (fixed) throw new ApiError(400, `Cannot update read-only attribute ${fixed}`, 'HTTPBadRequest');
}

export const projectFields = {
  tenant_id: z.string().min(1).max(255).optional(),
  project_id: z.string().min(1).max(255).optional(),
};

/** The project a create is for: the caller's, or (admin only) the one named. */
export function ownerOf(
  ctx: RequestContext,
  body: { tenant_id?: string | undefined; project_id?: string | undefined },
  rule: string,
) {
  const asked = body.project_id ?? body.tenant_id;
  if (asked && asked !== ctx.projectId && !isAdmin(ctx)) throw policyDenied(rule);
  return asked ?? ctx.projectId;
}
