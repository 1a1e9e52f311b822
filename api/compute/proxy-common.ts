/**
 * What Nova's deprecated proxy APIs (images, volumes, security groups: nova-api passing the call on to
 * Glance, Cinder or Neutron) share: the microversion that removed them (MAX_PROXY_API_SUPPORT_VERSION,
 * 2.35; image metadata 2.38), after which a route answers as one that is not there, and Nova's
 * common.limited offset/limit paging.
 */
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../errors';
import { MAX_LIMIT, queryOf } from './common';
import { atLeast } from './microversion';

/** api_version_request.MAX_PROXY_API_SUPPORT_VERSION. */
export const MAX_PROXY_MINOR = 35;

/** wsgi's VersionNotFoundForAPIMethod: past `2.<lastMinor>` the method is a plain 404. */
export function proxyUntil(request: FastifyRequest, lastMinor = MAX_PROXY_MINOR): void {
  if (atLeast(request, 2, lastMinor + 1)) throw new ApiError(404, 'The resource could not be found.');
}

/**
 * A collection's GET with a trailing slash (`/os-volumes/`) is a show without an id in Nova's router: 404,
 * not the list.
 */
export function refuseEmptyId(request: FastifyRequest): void {
  if (request.url.split('?')[0]!.endsWith('/')) throw new ApiError(404, 'The resource could not be found.');
}

/** A non-negative integer query parameter as Nova's query schema and get_pagination_params read it. */
export function pageParam(name: 'limit' | 'offset', raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^[0-9]*$/.test(raw))
    throw new ApiError(
      400,
      `Invalid input for query parameters ${name}. Value: ${raw}. '${raw}' does not match '^[0-9]*$'`,
    );
  if (raw === '') throw new ApiError(400, `Invalid input received: ${name} must be an integer`);
  return Number(raw);
}

/** common.limited: `offset` items skipped, then at most `limit` (0 or none: max_limit, 1000). */
export function limited<T>(items: readonly T[], request: FastifyRequest): T[] {
  const query = queryOf(request);
  const offset = pageParam('offset', query.offset) ?? 0;
  const limit = Math.min(MAX_LIMIT, pageParam('limit', query.limit) || MAX_LIMIT);
  return items.slice(offset, offset + limit);
}

/** oslo's uuidutils.is_uuid_like: 32 hex digits once hyphens, braces and a urn:uuid: prefix are dropped. */
export function isUuidLike(value: string): boolean {
  const bare = value
    .toLowerCase()
    .replace(/^urn:/, '')
    .replace(/^uuid:/, '')
    .replace(/[{}-]/g, '');
  return /^[0-9a-f]{32}$/.test(bare);
}

/** Cinder's refusal (400), as nova's cinder.API words it (InvalidInput): the proxies' os-volumes and os-snapshots. */
export function invalidInput(message: string): ApiError {
  return new ApiError(
    400,
    message.startsWith('Invalid input received') ? message : `Invalid input received: ${message}`,
  );
}
