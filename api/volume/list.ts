/**
 * Cinder's list conventions (cinder/api/common.py, v3/volumes.py, v3/snapshots.py): the filters bootflow's
 * volumes carry (name, status, availability_zone, metadata), `sort` (`key[:dir],...`) or `sort_key`/`sort_dir`
 * (default newest first), `marker`, `offset` and `limit`, and the next link (`volumes_links`,
 * `snapshots_links`) whenever a page is full. Snapshots use the same page with their own keys and filters.
 */
import type { Volume } from '../../cloud/cinder';
import { ApiError } from '../errors';
import { parseMetadataFilter } from './validation';

/** The sort keys bootflow answers, each with how a volume compares by it. */
const SORT_KEYS: Record<string, (v: Volume) => string | number> = {
  id: (v) => v.id,
  name: (v) => v.name,
  status: (v) => v.status,
  size: (v) => v.sizeGb,
  created_at: (v) => v.createdAt,
  updated_at: (v) => v.updatedAt,
  bootable: (v) => (v.bootable ? 1 : 0),
  availability_zone: () => 'nova',
};

type Sort = Array<{ key: string; dir: 'asc' | 'desc' }>;
type SortKeys<T> = Record<string, (item: T) => string | number>;

function parseSort<T>(query: Record<string, string | undefined>, keys: SortKeys<T>): Sort {
  const pairs: Array<[string, string | undefined]> = query.sort
    ? query.sort.split(',').map((item) => {
        const [key = '', dir] = item.trim().split(':');
        return [key, dir];
      })
    : query.sort_key
      ? [[query.sort_key, query.sort_dir]]
      : [];
  const sort = pairs.map(([key, dir]) => {
    if (!Object.hasOwn(keys, key)) throw new ApiError(400, `Invalid input received: Invalid sort key ${key}`);
    const direction = (dir ?? query.sort_dir ?? 'desc').toLowerCase();
    if (direction !== 'asc' && direction !== 'desc')
      throw new ApiError(400, `Invalid input received: Unknown sort direction, must be 'desc' or 'asc'`);
    return { key, dir: direction as 'asc' | 'desc' };
  });
  // Cinder adds created_at and id (its default keys) as tie-breakers.
  for (const key of ['created_at', 'id'])
    if (!sort.some((s) => s.key === key)) sort.push({ key, dir: sort[0]?.dir ?? 'desc' });
  return sort;
}

function compare<T>(sort: Sort, keys: SortKeys<T>) {
  return (a: T, b: T): number => {
    for (const { key, dir } of sort) {
      const x = keys[key]!(a);
      const y = keys[key]!(b);
      if (x !== y) return (x < y ? -1 : 1) * (dir === 'asc' ? 1 : -1);
    }
    return 0;
  };
}

/** One page of the volumes: filtered, sorted, after the marker, up to the limit, with the next link. */
export function volumePage(
  all: Volume[],
  query: Record<string, string | undefined>,
  collectionUrl: string,
): { volumes: Volume[]; links: Array<{ rel: 'next'; href: string }> } {
  let volumes = all;
  if (query.name !== undefined) volumes = volumes.filter((v) => v.name === query.name);
  if (query.status !== undefined) volumes = volumes.filter((v) => v.status === query.status);
  // Every volume is in `nova`.
  if (query.availability_zone !== undefined && query.availability_zone !== 'nova') volumes = [];
  if (query.metadata !== undefined) {
    const wanted = Object.entries(parseMetadataFilter(query.metadata));
    volumes = volumes.filter((v) => wanted.every(([k, value]) => v.metadata[k] === value));
  }
  const page = pageOf(volumes, query, collectionUrl, SORT_KEYS, 'Volume');
  return { volumes: page.items, links: page.links };
}

/**
 * One page of filtered items: sorted by Cinder's keys (the `keys` a collection has), after the marker (404
 * "<Kind> <id> could not be found." for one not in the list), from the offset, up to the limit, with the next
 * link when the page is full.
 */
export function pageOf<T extends { id: string }>(
  filtered: T[],
  query: Record<string, string | undefined>,
  collectionUrl: string,
  keys: SortKeys<T>,
  kind: string,
): { items: T[]; links: Array<{ rel: 'next'; href: string }> } {
  const integer = (name: string, text: string): number => {
    const value = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(value))
      throw new ApiError(400, `${name} param must be an integer`);
    return value;
  };
  let items = [...filtered].sort(compare(parseSort(query, keys), keys));
  if (query.marker !== undefined) {
    const at = items.findIndex((v) => v.id === query.marker);
    if (at < 0) throw new ApiError(404, `${kind} ${query.marker} could not be found.`);
    items = items.slice(at + 1);
  }
  if (query.offset !== undefined) items = items.slice(integer('offset', query.offset));
  if (query.limit === undefined) return { items, links: [] };
  const limit = integer('limit', query.limit);
  items = items.slice(0, limit);
  const last = items.at(-1);
  if (!last || items.length < limit) return { items, links: [] };
  const params = new URLSearchParams(
    Object.entries(query).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
  params.set('marker', last.id);
  params.delete('offset');
  return { items, links: [{ rel: 'next', href: `${collectionUrl}?${params.toString()}` }] };
}
