/**
 * Neutron's list conventions for every collection: filters as query parameters (any attribute of the
 * resource; a repeated parameter matches any of its values; an unknown attribute is 400; `tags`, `tags-any`,
 * `not-tags`, `not-tags-any` on tagged resources), `fields` to pick
 * attributes, and `limit`/`marker` pagination with a `<collection>_links` next link.
 */
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../errors';

const CONTROL = new Set(['fields', 'limit', 'marker', 'sort_key', 'sort_dir', 'page_reverse']);

const TAG_FILTERS: Record<string, (tags: string[], wanted: string[]) => boolean> = {
  tags: (tags, wanted) => wanted.every((t) => tags.includes(t)),
  'tags-any': (tags, wanted) => wanted.some((t) => tags.includes(t)),
  'not-tags': (tags, wanted) => !wanted.every((t) => tags.includes(t)),
  'not-tags-any': (tags, wanted) => !wanted.some((t) => tags.includes(t)),
};

function values(raw: unknown): string[] {
  return (Array.isArray(raw) ? raw : [raw]).map(String);
}

function matches(actual: unknown, wanted: string[]): boolean {
  if (typeof actual === 'boolean')
    return wanted.some((w) =>
      ['true', 'True', '1'].includes(w) ? actual : ['false', 'False', '0'].includes(w) ? !actual : false,
    );
  if (Array.isArray(actual)) {
    // fixed_ips=ip_address=10.0.0.5 / subnet_id=... / ip_address_substr=10.0.0 (ip-substring-filtering);
    // list attributes otherwise match a member.
    return wanted.some((w) => {
      const substr = /^ip_address_substr=(.*)$/.exec(w);
      if (substr)
        return actual.some((a) => String((a as Record<string, unknown>).ip_address).includes(substr[1]!));
      const pair = /^(ip_address|subnet_id)=(.*)$/.exec(w);
      if (pair) return actual.some((a) => (a as Record<string, unknown>)[pair[1]!] === pair[2]);
      return actual.map(String).includes(w);
    });
  }
  return wanted.includes(actual === null ? '' : String(actual));
}

export function listResponse<T extends { id: string }>(
  request: FastifyRequest,
  collection: string,
  items: Array<T & Record<string, unknown>>,
  attributes: readonly string[],
  baseUrl: string,
): Record<string, unknown> {
  const query = request.query as Record<string, unknown>;
  let result = items;
  for (const [key, raw] of Object.entries(query)) {
    if (CONTROL.has(key)) continue;
    const tagFilter = TAG_FILTERS[key];
    if (tagFilter && attributes.includes('tags')) {
      // Neutron's tag filters take comma-separated tags (tagging.py TAGS, TAGS_ANY, NOT_TAGS, NOT_TAGS_ANY).
      const wanted = values(raw).flatMap((v) => v.split(','));
      result = result.filter((item) =>
        tagFilter(Array.isArray(item.tags) ? item.tags.map(String) : [], wanted),
      );
      continue;
    }
    if (!attributes.includes(key))
      throw new ApiError(400, `[${key}] is invalid attribute for filtering`, 'HTTPBadRequest');
    const wanted = values(raw);
    result = result.filter((item) => matches(item[key], wanted));
  }
  if (query.marker !== undefined) {
    const at = result.findIndex((item) => item.id === String(query.marker));
    if (at < 0) throw new ApiError(404, `Marker ${String(query.marker)} could not be found.`, 'NotFound');
    result = result.slice(at + 1);
  }
  let links: Array<{ rel: string; href: string }> | undefined;
  if (query.limit !== undefined) {
    const limit = Number(query.limit);
    if (!Number.isInteger(limit) || limit < 0)
      throw new ApiError(
        400,
        `Bad limit request: Limit must be an integer 0 or greater and not '${String(query.limit)}'.`,
        'BadRequest',
      );
    if (limit > 0 && result.length > limit) {
      result = result.slice(0, limit);
      const params = new URLSearchParams();
      for (const [key, raw] of Object.entries(query))
        if (key !== 'marker') for (const v of values(raw)) params.append(key, v);
      params.set('marker', result.at(-1)!.id);
      links = [{ rel: 'next', href: `${baseUrl}?${params}` }];
    }
  }
  const fields = query.fields === undefined ? undefined : values(query.fields);
  const shaped = fields
    ? result.map((item) => Object.fromEntries(fields.filter((f) => f in item).map((f) => [f, item[f]])))
    : result;
  return { [collection]: shaped, ...(links ? { [`${collection}_links`]: links } : {}) };
}

/** `fields` on a show. */
export function showFields<T extends Record<string, unknown>>(request: FastifyRequest, item: T): Partial<T> {
  const raw = (request.query as Record<string, unknown>).fields;
  if (raw === undefined) return item;
  return Object.fromEntries(
    values(raw)
      .filter((f) => f in item)
      .map((f) => [f, item[f]]),
  ) as Partial<T>;
}
