/**
 * What every compute route shares: links as nova/api/openstack/common.py ViewBuilder builds them, Nova's
 * timestamps, policy checks with Nova's messages, request-body validation with Nova's JSON-schema error
 * text, and Nova's limit/marker pagination.
 */
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { CloudError } from '../../cloud/errors';
import { authorize, type PolicyRule, type RequestContext } from '../../cloud/keystone';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';

export interface Link {
  rel: 'self' | 'bookmark' | 'next';
  href: string;
}

/** `self` under /compute/v2.1, `bookmark` without the version, as Nova's _get_links. */
export function resourceLinks(deps: Pick<ApiDeps, 'publicUrl'>, collection: string, id: string): Link[] {
  return [
    { rel: 'self', href: `${deps.publicUrl}/compute/v2.1/${collection}/${id}` },
    { rel: 'bookmark', href: `${deps.publicUrl}/compute/${collection}/${id}` },
  ];
}

export function bookmarkLink(deps: Pick<ApiDeps, 'publicUrl'>, collection: string, id: string): Link {
  return { rel: 'bookmark', href: `${deps.publicUrl}/compute/${collection}/${id}` };
}

/** utils.isotime: seconds precision, `Z`. */
export function isotime(epochMs: number): string {
  return new Date(epochMs).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A naive datetime as oslo's to_primitive writes it: microseconds, no zone (OS-SRV-USG, hypervisors). */
export function naiveTime(epochMs: number | null): string | null {
  if (epochMs === null) return null;
  return new Date(epochMs).toISOString().replace(/Z$/, '000');
}

/** Policy enforcement as Nova's context.can(): 403 with oslo.policy's message. */
export function enforcePolicy(ctx: RequestContext, rule: PolicyRule, projectId?: string): void {
  if (!authorize(ctx, rule, projectId === undefined ? undefined : { projectId }).allowed) {
    throw new ApiError(403, `Policy doesn't allow ${rule} to be performed.`);
  }
}

export function can(ctx: RequestContext, rule: PolicyRule, projectId?: string): boolean {
  return authorize(ctx, rule, projectId === undefined ? undefined : { projectId }).allowed;
}

export const isAdmin = (ctx: RequestContext): boolean => ctx.roles.includes('admin');

/** A repr-like rendering of a bad value for the message (JSON, cut short). */
function shown(value: unknown): string {
  const text = value === undefined ? 'None' : JSON.stringify(value);
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}

function valueAt(body: unknown, path: PropertyKey[]): unknown {
  let current: unknown = body;
  for (const key of path) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

/** One zod issue as nova/api/validation/validators.py words jsonschema's errors. */
function novaMessage(issue: z.core.$ZodIssue, body: unknown): string {
  const path = issue.path;
  const value = valueAt(body, path);
  if (issue.code !== 'unrecognized_keys' && value === undefined && path.length > 0) {
    const parent = path.slice(0, -1);
    return `Invalid input for field/attribute ${parent.join('/') || 'body'}. Value: ${shown(valueAt(body, parent))}. '${String(path.at(-1))}' is a required property`;
  }
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => `'${k}'`).join(', ');
    const verb = issue.keys.length === 1 ? 'was' : 'were';
    return `Invalid input for field/attribute ${path.join('/') || 'body'}. Value: ${shown(value)}. Additional properties are not allowed (${keys} ${verb} unexpected)`;
  }
  let reason: string = issue.message;
  if (issue.code === 'invalid_type') reason = `${shown(value)} is not of type '${issue.expected}'`;
  else if (issue.code === 'too_small')
    reason = issue.origin === 'string' ? `${shown(value)} is too short` : issue.message;
  else if (issue.code === 'too_big')
    reason = issue.origin === 'string' ? `${shown(value)} is too long` : issue.message;
  // jsonschema's format errors name the value: "'x' is not a 'uuid'".
  else if (issue.code === 'custom' && reason.startsWith('is not a ')) reason = `${shown(value)} ${reason}`;
  return `Invalid input for field/attribute ${path.join('/') || 'body'}. Value: ${shown(value)}. ${reason}`;
}

/** Validates a request body: 400 badRequest with Nova's wording for the first problem. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  if (body === undefined || body === null) {
    throw new ApiError(400, 'The request body is empty or not a JSON object.');
  }
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0] as z.core.$ZodIssue;
  throw new ApiError(400, novaMessage(issue, body));
}

/** Query parameters as Nova's query schemas see them: each value a string (the last one if repeated). */
export function queryOf(request: FastifyRequest): Record<string, string | undefined> {
  const query = (request.query ?? {}) as Record<string, string | string[] | undefined>;
  return Object.fromEntries(Object.entries(query).map(([k, v]) => [k, Array.isArray(v) ? v.at(-1) : v]));
}

/** Nova's limit: a non-negative integer; max_limit (1000) caps it. */
export const MAX_LIMIT = 1000;

export function parseLimit(raw: string | undefined): number {
  if (raw === undefined) return MAX_LIMIT;
  if (!/^\d+$/.test(raw)) {
    throw new ApiError(
      400,
      `Invalid input for query parameters limit. Value: ${raw}. '${raw}' does not match '^[0-9]*$'`,
    );
  }
  return Math.min(Number(raw), MAX_LIMIT);
}

/**
 * One page after the marker (an id in the list), Nova's common.limited_by_marker; an unknown marker is
 * 400 "marker [x] not found". The `next` link is there when the page is full.
 */
export function paginate<T>(
  items: T[],
  idOf: (item: T) => string,
  limit: number,
  marker: string | undefined,
): { page: T[]; more: boolean } {
  let start = 0;
  if (marker !== undefined) {
    const at = items.findIndex((item) => idOf(item) === marker);
    if (at < 0) throw new ApiError(400, `marker [${marker}] not found`);
    start = at + 1;
  }
  const page = items.slice(start, start + limit);
  return { page, more: page.length > 0 && page.length === limit };
}

/** `<collection>_links` with the next page, as Nova's _get_collection_links. */
export function nextLink(
  deps: Pick<ApiDeps, 'publicUrl'>,
  request: FastifyRequest,
  path: string,
  marker: string,
): Link[] {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(queryOf(request)))
    if (k !== 'marker' && v !== undefined) params.set(k, v);
  params.set('marker', marker);
  return [{ rel: 'next', href: `${deps.publicUrl}/compute/v2.1/${path}?${params.toString()}` }];
}

/** A cloud NotFound becomes the given Nova 404 message (existence never leaks across projects). */
export async function orNotFound<T>(promise: Promise<T>, message: string): Promise<T> {
  try {
    return await promise;
  } catch (err) {
    if (err instanceof CloudError && err.type === 'NotFound') throw new ApiError(404, message);
    throw err;
  }
}
